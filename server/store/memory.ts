/** The in-memory {@linkcode Store}: the default, for one node. State dies with the process. */
import { Codes, type PeerEntry } from "../../protocol/mod.ts";
import { ChannelList } from "../channel_list.ts";
import { DEFAULTS } from "../config.ts";
import { sameSecret } from "../secrets.ts";
import { Ring } from "./ring.ts";
import type {
  Appended,
  ChannelView,
  Claim,
  Claimed,
  Expired,
  Fail,
  Joined,
  PeerView,
  Position,
  Presence,
  Routed,
  Store,
  StoreLimits,
  StreamName,
  Touched,
} from "./store.ts";

interface Peer {
  id: string;
  name: string;
  meta: Record<string, unknown>;
  admin: boolean;
  resumeHash: string;
  /** The node and session holding the peer; null while in its grace. */
  node: string | null;
  session: string;
  graceUntil: number;
  away: boolean;
  message?: string;
  channels: ChannelList;
  /** The peer's inbox stream, made when first asked for. */
  inbox?: Ring;
  /** Channels created in the current hour-long window, and when it ends. */
  creates?: { count: number; until: number };
}

interface Channel {
  id: string;
  created: number;
  keyHash: string | null;
  operators: Set<string>;
  bans: Set<string>;
  /** Pending invites: peer id → expiry (ms). */
  invites: Map<string, number>;
  /** Members in join order. */
  members: Set<string>;
  emptySince: number;
  /** The channel's message stream, made when first asked for. */
  stream?: Ring;
}

const fail = (error: Fail["error"]): Fail => ({ error });
const HOUR = 3_600_000;

/** Keeps peers and channels in this process. */
export class MemoryStore implements Store {
  readonly kind = "memory";
  readonly delivers = false;
  readonly history: number;
  readonly #historyTtlMs: number;
  #peers = new Map<string, Peer>();
  #channels = new Map<string, Channel>();
  #limits: StoreLimits;
  #now: () => number;

  /** `now` is injectable so tests can move time. */
  constructor(limits: StoreLimits, now: () => number = Date.now) {
    this.#limits = limits;
    this.#now = now;
    this.history = limits.history ?? 0;
    this.#historyTtlMs = limits.historyTtlMs ?? DEFAULTS.historyTtlMs;
  }

  claimPeer(c: Claim): Promise<Claimed | Fail> {
    const p = this.#peers.get(c.id);
    if (p === undefined) {
      this.#peers.set(c.id, {
        id: c.id,
        name: c.name,
        meta: c.meta,
        admin: c.admin,
        resumeHash: c.freshHash,
        node: c.node,
        session: c.session,
        graceUntil: 0,
        away: false,
        channels: new ChannelList(),
      });
      return Promise.resolve({ fresh: true, channels: [], away: false });
    }
    if (c.resumeHash === null || !sameSecret(c.resumeHash, p.resumeHash)) {
      return Promise.resolve(fail(Codes.ERR_NICKNAMEINUSE));
    }
    const replaced = p.node === null ? undefined : { node: p.node, session: p.session };
    Object.assign(p, {
      name: c.name,
      meta: c.meta,
      admin: c.admin,
      node: c.node,
      session: c.session,
      graceUntil: 0,
    });
    const claimed: Claimed = { fresh: false, channels: [...p.channels], away: p.away };
    if (p.message !== undefined) claimed.message = p.message;
    if (replaced) claimed.replaced = replaced;
    return Promise.resolve(claimed);
  }

  describePeer(
    id: string,
    session: string,
    d: { name: string; meta: Record<string, unknown>; admin: boolean },
  ): Promise<void> {
    const p = this.#peers.get(id);
    if (p !== undefined && p.session === session) Object.assign(p, d);
    return Promise.resolve();
  }

  releasePeer(id: string, session: string, graceUntil: number): Promise<void> {
    const p = this.#peers.get(id);
    if (p !== undefined && p.session === session && p.node !== null) {
      p.node = null;
      p.graceUntil = graceUntil;
    }
    return Promise.resolve();
  }

  expirePeers(now: number): Promise<Expired[]> {
    const out: Expired[] = [];
    for (const p of this.#peers.values()) {
      if (p.node !== null || p.graceUntil > now) continue;
      const touched: Touched[] = [];
      for (const id of p.channels) {
        const ch = this.#channels.get(id);
        if (ch !== undefined) touched.push(this.#leave(ch, p));
      }
      this.#peers.delete(p.id);
      out.push({ id: p.id, channels: touched });
    }
    this.#forgetChannels(now);
    return Promise.resolve(out);
  }

  getPeer(id: string): Promise<PeerView | null> {
    const p = this.#peers.get(id);
    if (p === undefined) return Promise.resolve(null);
    const view: PeerView = {
      id: p.id,
      name: p.name,
      meta: p.meta,
      admin: p.admin,
      away: p.away,
      online: p.node !== null,
      channels: [...p.channels].map((c) => ({
        channel: c,
        keyed: this.#channels.get(c)?.keyHash != null,
      })),
    };
    if (p.message !== undefined) view.message = p.message;
    return Promise.resolve(view);
  }

  presence(id: string): Promise<Presence | null> {
    const p = this.#peers.get(id);
    if (p === undefined) return Promise.resolve(null);
    const r: Presence = { online: p.node !== null, away: p.away };
    if (p.message !== undefined) r.message = p.message;
    return Promise.resolve(r);
  }

  setAway(id: string, away: boolean | null, message?: string) {
    const p = this.#peers.get(id);
    if (p === undefined) return Promise.resolve({ away: false, channels: [] });
    p.away = away ?? !p.away;
    if (p.away && message !== undefined) p.message = message;
    else delete p.message;
    const channels = [...p.channels].map((c) => ({
      channel: c,
      total: this.#channels.get(c)?.members.size ?? 0,
    }));
    return Promise.resolve(
      p.message === undefined
        ? { away: p.away, channels }
        : { away: p.away, message: p.message, channels },
    );
  }

  join(id: string, channel: string, keyHash: string | null): Promise<Joined | Fail> {
    const p = this.#peers.get(id);
    if (p === undefined) return Promise.resolve(fail(Codes.ERR_NOSUCHNICK));
    const now = this.#now();
    let ch = this.#channels.get(channel);
    if (ch === undefined) {
      if (p.channels.size >= this.#limits.maxChannels) {
        return Promise.resolve(fail(Codes.ERR_TOOMANYCHANNELS));
      }
      const wait = this.#createWait(p, now);
      if (wait > 0) return Promise.resolve({ error: Codes.RPL_TRYAGAIN, retryAfterMs: wait });
      ch = {
        id: channel,
        created: now,
        keyHash,
        operators: new Set([id]),
        bans: new Set(),
        invites: new Map(),
        members: new Set(),
        emptySince: 0,
      };
      this.#channels.set(channel, ch);
      this.#enter(ch, p);
      return Promise.resolve({ created: true, op: true, already: false, total: 1 });
    }
    const op = ch.operators.has(id);
    if (ch.members.has(id)) {
      return Promise.resolve({ created: false, op, already: true, total: ch.members.size });
    }
    if (ch.bans.has(id)) return Promise.resolve(fail(Codes.ERR_BANNEDFROMCHAN));
    const invited = (ch.invites.get(id) ?? 0) > now;
    if (ch.keyHash !== null && !invited && (keyHash === null || !sameSecret(keyHash, ch.keyHash))) {
      return Promise.resolve(fail(Codes.ERR_BADCHANNELKEY));
    }
    const maxMembers = this.#limits.maxMembers ?? DEFAULTS.maxMembers;
    if (maxMembers > 0 && ch.members.size >= maxMembers) {
      return Promise.resolve(fail(Codes.ERR_CHANNELISFULL));
    }
    if (p.channels.size >= this.#limits.maxChannels) {
      return Promise.resolve(fail(Codes.ERR_TOOMANYCHANNELS));
    }
    ch.invites.delete(id);
    this.#enter(ch, p);
    return Promise.resolve({ created: false, op, already: false, total: ch.members.size });
  }

  quit(id: string, channel: string): Promise<Touched | Fail> {
    const ch = this.#channels.get(channel);
    if (ch === undefined) return Promise.resolve(fail(Codes.ERR_NOSUCHCHANNEL));
    const p = this.#peers.get(id);
    if (p === undefined || !ch.members.has(id)) {
      return Promise.resolve(fail(Codes.ERR_NOTONCHANNEL));
    }
    return Promise.resolve(this.#leave(ch, p));
  }

  kick(by: string, target: string, channel: string): Promise<Touched | Fail> {
    const ch = this.#opChannel(by, target, channel);
    if ("error" in ch) return Promise.resolve(ch);
    const p = this.#peers.get(target);
    if (p === undefined || !ch.members.has(target)) {
      return Promise.resolve(fail(Codes.ERR_USERNOTINCHANNEL));
    }
    return Promise.resolve(this.#leave(ch, p));
  }

  ban(
    by: string,
    target: string,
    channel: string,
  ): Promise<(Touched & { wasMember: boolean }) | Fail> {
    const ch = this.#opChannel(by, target, channel);
    if ("error" in ch) return Promise.resolve(ch);
    if (!ch.bans.has(target) && ch.bans.size >= (this.#limits.maxBans ?? DEFAULTS.maxBans)) {
      return Promise.resolve(fail(Codes.ERR_BANLISTFULL));
    }
    ch.bans.add(target);
    ch.operators.delete(target);
    ch.invites.delete(target);
    const p = this.#peers.get(target);
    if (p !== undefined && ch.members.has(target)) {
      return Promise.resolve({ ...this.#leave(ch, p), wasMember: true });
    }
    return Promise.resolve({ channel, total: ch.members.size, wasMember: false });
  }

  unban(by: string, target: string, channel: string): Promise<Touched | Fail> {
    const ch = this.#opChannel(by, target, channel);
    if ("error" in ch) return Promise.resolve(ch);
    ch.bans.delete(target);
    return Promise.resolve({ channel, total: ch.members.size });
  }

  invite(by: string, target: string, channel: string): Promise<Touched | Fail> {
    const ch = this.#channels.get(channel);
    if (ch === undefined) return Promise.resolve(fail(Codes.ERR_NOSUCHCHANNEL));
    if (!ch.members.has(by)) return Promise.resolve(fail(Codes.ERR_NOTONCHANNEL));
    if (ch.members.has(target)) return Promise.resolve(fail(Codes.ERR_USERONCHANNEL));
    if (ch.bans.has(target)) return Promise.resolve(fail(Codes.ERR_BANNEDFROMCHAN));
    const now = this.#now();
    for (const [id, until] of ch.invites) if (until <= now) ch.invites.delete(id);
    const maxInvites = this.#limits.maxInvites ?? DEFAULTS.maxInvites;
    if (!ch.invites.has(target) && ch.invites.size >= maxInvites) {
      return Promise.resolve(fail(Codes.ERR_BANLISTFULL));
    }
    ch.invites.set(target, now + this.#limits.retentionMs);
    return Promise.resolve({ channel, total: ch.members.size });
  }

  operatorOf(id: string, channels: readonly string[]): Promise<string[]> {
    return Promise.resolve(channels.filter((c) => this.#channels.get(c)?.operators.has(id)));
  }

  getChannel(channel: string): Promise<ChannelView | null> {
    const ch = this.#channels.get(channel);
    if (ch === undefined) return Promise.resolve(null);
    return Promise.resolve({
      channel,
      created: ch.created,
      keyed: ch.keyHash !== null,
      operators: [...ch.operators],
      total: ch.members.size,
    });
  }

  members(channel: string, offset: number, limit: number): Promise<PeerEntry[]> {
    const ch = this.#channels.get(channel);
    if (ch === undefined) return Promise.resolve([]);
    const out: PeerEntry[] = [];
    let i = 0;
    for (const id of ch.members) {
      if (i++ < offset) continue;
      if (out.length >= limit) break;
      const p = this.#peers.get(id)!;
      const e: PeerEntry = {
        id,
        name: p.name,
        op: ch.operators.has(id),
        away: p.away,
        online: p.node !== null,
      };
      if (p.message !== undefined) e.message = p.message;
      out.push(e);
    }
    return Promise.resolve(out);
  }

  publish(channel: string, head: string): Appended {
    const ch = this.#channels.get(channel)!;
    return this.#ring(ch, "stream").append(head, this.#now());
  }

  route(peer: string, head: string): Routed | null {
    const p = this.#peers.get(peer);
    if (p === undefined) return null;
    const r: Routed = {
      ...this.#ring(p, "inbox").append(head, this.#now()),
      online: p.node !== null,
      away: p.away,
    };
    if (p.message !== undefined) r.message = p.message;
    return r;
  }

  position(stream: StreamName): Promise<Position> {
    const ring = this.#stream(stream);
    return Promise.resolve(ring?.position(this.#now()) ?? { epoch: "", seq: 0 });
  }

  since(stream: StreamName, from: Position, reader: string): Promise<string[] | null> {
    if (stream[0] === "c" && this.#channels.get(stream.slice(2))?.members.has(reader) !== true) {
      return Promise.resolve(null);
    }
    return Promise.resolve(this.#stream(stream)?.since(from, this.#now()) ?? null);
  }

  /** The ring of a stream whose channel or peer exists. */
  #stream(stream: StreamName): Ring | undefined {
    const name = stream.slice(2);
    if (stream[0] === "c") {
      const ch = this.#channels.get(name);
      return ch && this.#ring(ch, "stream");
    }
    const p = this.#peers.get(name);
    return p && this.#ring(p, "inbox");
  }

  #ring<K extends "stream" | "inbox">(owner: { [k in K]?: Ring }, key: K): Ring {
    return owner[key] ??= new Ring(this.history, this.#historyTtlMs);
  }

  onlineCount(): Promise<number> {
    let n = 0;
    for (const p of this.#peers.values()) if (p.node !== null) n++;
    return Promise.resolve(n);
  }

  ping(): Promise<boolean> {
    return Promise.resolve(true);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Counts a channel creation against the peer's hourly allowance: 0 when it
   * may create one, else the ms until its window ends.
   */
  #createWait(p: Peer, now: number): number {
    const max = this.#limits.maxCreates ?? DEFAULTS.maxCreates;
    if (p.creates === undefined || p.creates.until <= now) {
      p.creates = { count: 0, until: now + HOUR };
    }
    if (p.creates.count >= max) return p.creates.until - now;
    p.creates.count++;
    return 0;
  }

  /** The channel if `by` is its operator and `target` is someone else: `403`, `482`. */
  #opChannel(by: string, target: string, channel: string): Channel | Fail {
    const ch = this.#channels.get(channel);
    if (ch === undefined) return fail(Codes.ERR_NOSUCHCHANNEL);
    if (!ch.operators.has(by) || by === target) return fail(Codes.ERR_CHANOPRIVSNEEDED);
    return ch;
  }

  #enter(ch: Channel, p: Peer): void {
    ch.members.add(p.id);
    ch.emptySince = 0;
    p.channels.add(ch.id);
  }

  #leave(ch: Channel, p: Peer): Touched {
    ch.members.delete(p.id);
    p.channels.delete(ch.id);
    if (ch.members.size === 0) ch.emptySince = this.#now();
    return { channel: ch.id, total: ch.members.size };
  }

  /** Forgets channels empty for longer than the retention time, and stale invites. */
  #forgetChannels(now: number): void {
    for (const ch of this.#channels.values()) {
      if (ch.members.size === 0 && now - ch.emptySince >= this.#limits.retentionMs) {
        this.#channels.delete(ch.id);
        continue;
      }
      for (const [id, until] of ch.invites) if (until <= now) ch.invites.delete(id);
    }
  }
}
