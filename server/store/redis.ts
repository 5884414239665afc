/**
 * The Redis {@linkcode Store}: state shared by every node of a cluster, kept
 * across restarts, on one Redis or on a Redis Cluster. Each check is one Lua
 * script on the keys of one channel, one peer or the node liveness (one slot;
 * `redis_scripts.ts`, with the key schema), so it runs atomically on the Redis
 * server; an operation that spans a peer and a channel is a few such steps in
 * the order `redis_scripts.ts` gives, so two nodes racing cannot both take an
 * id, let a banned peer in, or quit the same peer twice, even when a node dies
 * between two steps.
 *
 * One clock for the cluster: every deadline is computed inside the scripts
 * from Redis `TIME`, never from a node's clock, which may be off. The times
 * the {@linkcode Store} interface takes (`releasePeer`'s `graceUntil`,
 * `expirePeers`' `now`) are read as durations from this node's own clock
 * (`graceUntil - now()`), and those durations are applied to Redis' clock: a
 * node whose clock is a minute off still gives a peer its full grace, and
 * expires nobody early.
 *
 * Redis may lose its state while nodes run (restarted without persistence,
 * flushed). The first beat on an empty Redis writes a new `generation`; each
 * node sees it change at its next beat and writes back what it still knows:
 * the peers it holds live (id, resume hash, name, meta, away state) and their
 * memberships. What no node holds cannot be rebuilt: peers in their grace (their
 * ids are free, their resume fails), bans, channel keys, pending invites,
 * operator rights (the first member written back to a channel becomes its
 * operator), the hourly creation counts, and stream history (streams start new
 * epochs, so a resume asking for what it missed gets `recovered: false`).
 *
 * Node liveness lives here too: each node beats into a sorted set, and
 * `expirePeers` declares nodes that stopped beating dead, moving their peers
 * into their grace as if each socket had closed at that moment.
 *
 * @module
 */
import { atEndOfTurn } from "../batch.ts";
import { Codes, type PeerEntry } from "../../protocol/mod.ts";
import { DEFAULTS } from "../config.ts";
import { type Logger, silent } from "../log.ts";
import {
  connectRedis,
  endRedis,
  isCluster,
  type RedisClient,
  type RedisTarget,
  whenReady,
} from "../redis_conn.ts";
import {
  type ChannelOf,
  defineScripts,
  type Indexed,
  type Left,
  type Reaped,
  type RedisKeys,
  redisKeys,
  type RunScript,
} from "./redis_scripts.ts";
import {
  type Appended,
  type ChannelView,
  type Claim,
  type Claimed,
  type Expired,
  type Fail,
  failed,
  type HeldPeer,
  type Joined,
  type PeerView,
  type Position,
  type Presence,
  type Routed,
  type Store,
  type StoreLimits,
  type StreamName,
  type Touched,
} from "./store.ts";

/** Options of {@linkcode RedisStore}. */
export interface RedisStoreOptions {
  /** This node's id; a node restarted with the same id takes over its predecessor's peers. */
  node: string;
  /** Limits enforced inside the scripts. */
  limits: StoreLimits;
  /** Prefix of every key. Default {@linkcode DEFAULTS}`.redisPrefix`. */
  prefix?: string;
  /** Grace of the peers of a node declared dead, ms. Default {@linkcode DEFAULTS}`.graceMs`. */
  graceMs?: number;
  /** How often this node beats, ms. Default {@linkcode DEFAULTS}`.heartbeatMs`. */
  heartbeatMs?: number;
  /**
   * A node whose last beat is older than this is declared dead, ms.
   * Default {@linkcode DEFAULTS}`.deadMs`.
   */
  deadMs?: number;
  /** Called when a beat finds this node declared dead meanwhile (it stalled, or Redis was away). */
  onDeclaredDead?: () => void;
  /**
   * Called when a beat finds that Redis lost its state (restarted empty, flushed): answers
   * the peers this node holds live, which the store then writes back. Default: none.
   */
  onLost?: () => HeldPeer[] | Promise<HeldPeer[]>;
  /**
   * Called with the sessions whose ids another session took while Redis had lost them
   * (before this node wrote them back): they hold their peers no longer.
   */
  onDisowned?: (sessions: string[]) => void;
  /**
   * Called with the peers this store put into their grace on its own: those of a node
   * declared dead, or of this node's predecessor (a restart).
   */
  onParked?: (ids: string[]) => void;
  /**
   * This node's clock, the one the hub passes times from (`releasePeer`'s
   * `graceUntil`, `expirePeers`' `now`). Default `Date.now`.
   */
  now?: () => number;
  /** Where a lost and a regained Redis connection are reported. Default: nowhere. */
  log?: Logger;
}

/** `/pubmsg`s of one channel sent to Redis in one script call at most. */
const APPEND_BATCH = 256;

/** A `/pubmsg` waiting for its turn's script call. */
interface Append {
  head: string;
  except: string;
  resolve(a: Appended): void;
  reject(e: unknown): void;
}

/** Peers expired by one `expirePeers` call at most; the rest wait for the next call. */
const EXPIRE_BATCH = 500;
/** How long `ping` waits for an answer, ms. */
const PING_TIMEOUT_MS = 1000;

/** Keeps peers, channels and node liveness in Redis, shared by every node on the same prefix. */
export class RedisStore implements Store {
  readonly kind = "redis";
  #redis: RedisClient;
  /** Random per process; with a call count, makes each new stream epoch unique. */
  #salt = crypto.randomUUID().slice(0, 8);
  #calls = 0;
  #keys: RedisKeys;
  #run: RunScript;
  #node: string;
  #limits: StoreLimits;
  #graceMs: number;
  #deadMs: number;
  #now: () => number;
  #beat: ReturnType<typeof setInterval>;
  #closed = false;
  #onDeclaredDead?: () => void;
  #onLost?: () => HeldPeer[] | Promise<HeldPeer[]>;
  #onDisowned?: (sessions: string[]) => void;
  #onParked?: (ids: string[]) => void;
  #log: Logger;
  /** `/pubmsg` appends to one channel not yet sent (see {@linkcode publish}). */
  #appends?: { channel: string; sent: Append[] };
  /** Sends them at the end of this turn. */
  readonly #appendsDue = atEndOfTurn(() => this.#sendAppends());
  /** Runs a script without sending the appends first. */
  #runAppend: RunScript;
  /** Redis' generation as this node last saw it; a change means Redis lost its state. */
  #generation?: string;
  /** Redis lost its state and this node has not yet written its peers back. */
  #lost = false;
  #restoring = false;
  /** Putting a predecessor's peers (same node id) into their grace; done once. */
  #adopting?: Promise<void>;
  #adopted = false;

  /**
   * Connects in the background and starts beating; await {@linkcode ready}
   * before serving. While Redis is down every method rejects at once and the
   * client reconnects by itself.
   */
  constructor(target: RedisTarget, options: RedisStoreOptions) {
    const prefix = options.prefix ?? DEFAULTS.redisPrefix;
    this.#keys = redisKeys(prefix);
    this.#node = options.node;
    this.#limits = options.limits;
    this.#graceMs = options.graceMs ?? DEFAULTS.graceMs;
    this.#deadMs = options.deadMs ?? DEFAULTS.deadMs;
    this.#now = options.now ?? Date.now;
    this.#redis = connectRedis(target, { log: options.log, role: "store" });
    const run = defineScripts(this.#redis, {
      prefix,
      retentionMs: options.limits.retentionMs,
      sharded: isCluster(target),
    });
    // Every script leaves after the appends made before it: calls reach Redis in call order.
    this.#run = ((name, ...args) => {
      this.#sendAppends();
      return run(name, ...args);
    }) as RunScript;
    this.#runAppend = run;
    this.#onDeclaredDead = options.onDeclaredDead;
    this.#onLost = options.onLost;
    this.#onDisowned = options.onDisowned;
    this.#onParked = options.onParked;
    this.#log = options.log ?? silent;
    // Beat as soon as a connection is up, so a reconnected node is not declared dead; the
    // first time, after taking over from a predecessor (even when `ready` timed out).
    this.#redis.on("ready", () => this.#adopt().then(() => this.#heartbeat(), () => {}));
    this.#beat = setInterval(() => this.#heartbeat(), options.heartbeatMs ?? DEFAULTS.heartbeatMs);
  }

  /**
   * Resolves once Redis answers and this node's first beat is stored; rejects
   * after `timeoutMs`. Peers a predecessor with the same node id left behind
   * (a restart) enter their grace now, without waiting to be declared dead.
   */
  async ready(timeoutMs: number = DEFAULTS.readyTimeoutMs): Promise<void> {
    await whenReady(this.#redis, timeoutMs);
    await this.#adopt();
    this.#saw((await this.#run("beat", this.#node)).generation);
  }

  /** Notes Redis' generation; a change from the one seen before means Redis lost its state. */
  #saw(generation: string): void {
    if (this.#generation !== undefined && generation !== this.#generation) this.#lost = true;
    this.#generation = generation;
    if (this.#lost) void this.#restore();
  }

  /**
   * Writes back the peers this node holds live, after Redis lost its state. A
   * failure (Redis went away again) is retried at the next beat.
   */
  async #restore(): Promise<void> {
    if (this.#restoring || this.#closed) return;
    this.#restoring = true;
    try {
      const held = (await this.#onLost?.()) ?? [];
      const taken = await Promise.all(held.map((p) => this.#restorePeer(p)));
      this.#lost = false;
      const disowned = held.filter((_, i) => taken[i]).map((p) => p.session);
      this.#log.warn("Redis lost its state; this node wrote back the peers it holds", {
        peers: held.length - disowned.length,
        taken: disowned.length,
      });
      if (disowned.length > 0) this.#onDisowned?.(disowned);
    } catch (e) {
      this.#log.warn("writing back the peers Redis lost failed; retrying", { error: String(e) });
    } finally {
      this.#restoring = false;
    }
  }

  /**
   * Writes back one peer: enlisted, then the peer and its index, then each of
   * its channels (invariants 1 and 2). True when another session took the id.
   */
  async #restorePeer(p: HeldPeer): Promise<boolean> {
    await this.#run("enlist", this.#node, p.session, p.id);
    const index = await this.#run(
      "restorePeer",
      p.id,
      p.name,
      JSON.stringify(p.meta),
      p.admin ? 1 : 0,
      p.resumeHash,
      this.#node,
      p.session,
      p.away ? 1 : 0,
      p.message === undefined ? 0 : 1,
      p.message ?? "",
      ...p.channels,
    );
    if (index === null) {
      await this.#run("delist", this.#node, p.session);
      return true;
    }
    const mine = new Set(p.channels);
    await Promise.all(
      index.filter((e) => mine.has(e.channel)).map((e) =>
        this.#run("restoreMember", e.channel, p.id, e.tok)
      ),
    );
    return false;
  }

  /**
   * This node's sessions go to its reap list and are parked into their grace;
   * what one batch leaves is parked by the next sweep of any node.
   */
  async #down(): Promise<void> {
    for (const r of await this.#run("nodeDown", this.#node, this.#graceMs, EXPIRE_BATCH)) {
      await this.#parkAll(r);
    }
  }

  /** Puts the peers a predecessor with this node id left behind into their grace, once. */
  #adopt(): Promise<void> {
    this.#adopting ??= this.#down().then(
      () => void (this.#adopted = true),
      (e) => {
        this.#adopting = undefined; // the next 'ready' tries again
        throw e;
      },
    );
    return this.#adopting;
  }

  /** Messages kept per stream (`--history`); 0: streams are off. */
  get history(): number {
    return this.#limits.history ?? 0;
  }

  /** The scripts publish each stream message to every node, this one included. */
  readonly delivers = true;

  /** Unique per call and per process: makes a new stream's epoch unique. */
  #nonce(): string {
    return `${this.#salt}.${++this.#calls}`;
  }

  /**
   * Queues the append for the end of this turn: consecutive messages to one
   * channel (a sender's window, several senders' danmaku) go to Redis as one
   * script call. Any other script call sends them first, so the store's calls
   * reach Redis in the order they were made.
   */
  publish(channel: string, head: string, except: string): Promise<Appended> {
    const { promise, resolve, reject } = Promise.withResolvers<Appended>();
    const a = { head, except, resolve, reject };
    const batch = this.#appends;
    if (batch?.channel === channel && batch.sent.length < APPEND_BATCH) batch.sent.push(a);
    else {
      this.#sendAppends();
      this.#appends = { channel, sent: [a] };
      this.#appendsDue();
    }
    return promise;
  }

  #sendAppends(): void {
    const batch = this.#appends;
    if (batch === undefined) return;
    this.#appends = undefined;
    const args: string[] = [];
    for (const a of batch.sent) args.push(a.head, a.except);
    const sent = batch.sent;
    this.#runAppend(
      "publish",
      batch.channel,
      this.history,
      this.#historyTtlMs,
      this.#nonce(),
      ...args,
    ).then(
      (first) => {
        for (let i = 0; i < sent.length; i++) {
          sent[i].resolve({ seq: first + i, text: `${sent[i].head},"seq":${first + i}}` });
        }
      },
      (e) => {
        for (const a of sent) a.reject(e);
      },
    );
  }

  route(peer: string, head: string): Promise<Routed | null> {
    return this.#run("route", peer, head, this.history, this.#historyTtlMs, this.#nonce());
  }

  position(stream: StreamName): Promise<Position> {
    return this.#run("position", stream, this.#historyTtlMs, this.#nonce());
  }

  since(stream: StreamName, from: Position, reader: string): Promise<string[] | null> {
    return this.#run("since", stream, from.epoch, from.seq, reader);
  }

  get #historyTtlMs(): number {
    return this.#limits.historyTtlMs ?? DEFAULTS.historyTtlMs;
  }

  /**
   * Enlists the session on its node, then takes the id in the peer's slot
   * (redis_scripts.ts, invariant 2); a refused claim delists it again, a
   * taken-over session is delisted from its node. The channels of a resume are
   * the peer's index entries its channels confirm (invariant 1).
   */
  async claimPeer(c: Claim): Promise<Claimed | Fail> {
    await this.#run("enlist", c.node, c.session, c.id);
    const r = await this.#run(
      "claim",
      c.id,
      c.name,
      JSON.stringify(c.meta),
      c.admin ? 1 : 0,
      c.resumeHash ?? "",
      c.freshHash,
      c.node,
      c.session,
    );
    if (failed(r)) {
      // Best effort: a stale entry is only a candidate, checked against the peer when reaped.
      await this.#run("delist", c.node, c.session).catch(() => {});
      return r;
    }
    if (r.fresh) return { fresh: true, channels: [], away: false };
    const claimed: Claimed = {
      fresh: false,
      channels: (await this.#confirmed(c.id, r.channels)).map((e) => e.channel),
      away: r.away,
    };
    if (r.message !== undefined) claimed.message = r.message;
    if (r.node !== "") {
      claimed.replaced = { node: r.node, session: r.session };
      await this.#run("delist", r.node, r.session).catch(() => {});
    }
    return claimed;
  }

  /** The index entries whose channel lists the peer, with what the channel says. */
  async #confirmed(id: string, index: Indexed[]): Promise<(Indexed & ChannelOf)[]> {
    const seen = await Promise.all(index.map((e) => this.#run("channelOf", e.channel, id)));
    return index.map((e, i) => ({ ...e, ...seen[i] })).filter((e) => e.member);
  }

  describePeer(
    id: string,
    session: string,
    d: { name: string; meta: Record<string, unknown>; admin: boolean },
  ): Promise<void> {
    return this.#run("describe", id, session, d.name, JSON.stringify(d.meta), d.admin ? 1 : 0);
  }

  /**
   * The grace lasts `graceUntil - now()` (this node's clock), counted on the
   * clock of the `{nodes}` slot: the grace entry first, then the peer, then
   * the session leaves its node's list (invariants 2 and 3).
   */
  async releasePeer(id: string, session: string, graceUntil: number): Promise<void> {
    const until = await this.#run("graceAt", id, graceUntil - this.#now());
    const node = await this.#run("park", id, session, until);
    await this.#run("delist", node === "" ? this.#node : node, session);
  }

  /**
   * Expires the peers whose grace ended by Redis' clock, moved forward by how
   * far `now` is ahead of this node's clock (0 for the hub; tests move time).
   * Dead nodes' sessions are parked first (invariant 2); each due peer is
   * expired as invariant 4 says, and reported with the channels it left here.
   */
  async expirePeers(now: number): Promise<Expired[]> {
    const s = await this.#run(
      "sweep",
      now - this.#now(),
      this.#graceMs,
      this.#deadMs,
      EXPIRE_BATCH,
    );
    for (const r of s.reaps) await this.#parkAll(r);
    const out = await Promise.all(s.due.map((d) => this.#expire(d.id, d.score, s.now)));
    return out.filter((e) => e !== null);
  }

  /** One due grace entry: see invariant 4. */
  async #expire(id: string, score: number, now: number): Promise<Expired | null> {
    const b = await this.#run("expireBegin", id, now, this.#deadMs);
    switch (b.state) {
      case "busy":
        return null;
      case "later":
        await this.#run("graceLater", id, b.graceUntil);
        return null;
      case "gone":
      case "live":
        await this.#run("graceDone", id, score);
        return null;
    }
    const left = await Promise.all(
      b.channels.map((e) => this.#run("leaveIf", e.channel, id, e.tok)),
    );
    await this.#run("expireEnd", id);
    await this.#run("graceDone", id, score);
    const channels = b.channels
      .map((e, i) => ({ channel: e.channel, ...left[i] }))
      .filter((e) => e.removed)
      .map(({ channel, total }) => ({ channel, total }));
    return { id, channels };
  }

  /** Parks the sessions of a node's reap list and takes them off it. */
  async #parkAll(r: Reaped): Promise<void> {
    await Promise.all(r.sessions.map((s) => this.#run("park", s.id, s.session, r.graceUntil)));
    await this.#run("reaped", r.node, ...r.sessions.map((s) => s.session));
    if (r.sessions.length > 0) this.#onParked?.(r.sessions.map((s) => s.id));
  }

  async getPeer(id: string): Promise<PeerView | null> {
    const view = await this.#run("getPeer", id);
    if (view === null) return null;
    const channels = await this.#confirmed(id, view.channels);
    return {
      id,
      ...view,
      channels: channels.map((e) => ({ channel: e.channel, keyed: e.keyed })),
    };
  }

  async presence(id: string): Promise<Presence | null> {
    // One plain HMGET: the relay path to a peer on another node.
    const [name, node, away, message] = await this.#redis.hmget(
      this.#keys.peer(id),
      "name",
      "node",
      "away",
      "message",
    );
    if (name === null) return null;
    const r: Presence = { online: node !== null && node !== "", away: away === "1" };
    if (message !== null) r.message = message;
    return r;
  }

  async setAway(
    id: string,
    away: boolean | null,
    message?: string,
  ): Promise<{ away: boolean; message?: string; channels: Touched[] }> {
    const mode = away === null ? "t" : away ? "1" : "0";
    const r = await this.#run("setAway", id, mode, message === undefined ? 0 : 1, message ?? "");
    const channels = (await this.#confirmed(id, r.channels)).map((e) => ({
      channel: e.channel,
      total: e.total,
    }));
    return { ...r, channels };
  }

  /**
   * Indexes the channel for the peer, then joins it in the channel's slot
   * (invariant 1); a creation is counted against the hourly allowance in the
   * peer's slot in between. A failed join drops its index entry; a join that
   * raced the peer's expiry is undone (invariant 5).
   */
  async join(id: string, channel: string, keyHash: string | null): Promise<Joined | Fail> {
    const l = this.#limits;
    const prep = await this.#run("joinPrep", id, channel, l.maxChannels);
    if (failed(prep)) return prep;
    const attempt = (mayCreate: 0 | 1) =>
      this.#run(
        "join",
        channel,
        id,
        keyHash ?? "",
        prep.over ? 1 : 0,
        prep.tok,
        mayCreate,
        l.maxMembers ?? DEFAULTS.maxMembers,
      );
    let r = await attempt(0);
    if ("create" in r) {
      const wait = await this.#run("createWait", id, l.maxCreates ?? DEFAULTS.maxCreates);
      r = wait > 0 ? { error: Codes.RPL_TRYAGAIN, retryAfterMs: wait } : await attempt(1);
    }
    if ("create" in r) throw new Error("join: the channel step asked twice to create");
    if (failed(r)) {
      await this.#run("unindex", id, channel, prep.tok);
      return r;
    }
    if (!r.already && !(await this.#run("alive", id, prep.tok))) {
      await this.#run("leaveIf", channel, id, prep.tok);
      return { error: Codes.ERR_NOSUCHNICK };
    }
    return r;
  }

  async quit(id: string, channel: string): Promise<Touched | Fail> {
    return await this.#left(id, channel, await this.#run("quit", channel, id));
  }

  async kick(by: string, target: string, channel: string): Promise<Touched | Fail> {
    return await this.#left(target, channel, await this.#run("kick", channel, by, target));
  }

  async ban(
    by: string,
    target: string,
    channel: string,
  ): Promise<(Touched & { wasMember: boolean }) | Fail> {
    const r = await this.#run(
      "ban",
      channel,
      by,
      target,
      this.#limits.maxBans ?? DEFAULTS.maxBans,
    );
    if (failed(r)) return r;
    if (r.wasMember) await this.#run("unindex", target, channel, r.tok);
    return { channel, total: r.total, wasMember: r.wasMember };
  }

  /** After the channel side removed `id`: its index entry goes too, if still of that join. */
  async #left(id: string, channel: string, r: Left | Fail): Promise<Touched | Fail> {
    if (failed(r)) return r;
    await this.#run("unindex", id, channel, r.tok);
    return { channel, total: r.total };
  }

  async unban(by: string, target: string, channel: string): Promise<Touched | Fail> {
    return touched(channel, await this.#run("unban", channel, by, target));
  }

  async invite(by: string, target: string, channel: string): Promise<Touched | Fail> {
    return touched(
      channel,
      await this.#run(
        "invite",
        channel,
        by,
        target,
        this.#limits.maxInvites ?? DEFAULTS.maxInvites,
      ),
    );
  }

  async operatorOf(id: string, channels: readonly string[]): Promise<string[]> {
    // One SISMEMBER per channel: each in its own slot.
    const ops = await Promise.all(
      channels.map((c) => this.#redis.sismember(this.#keys.channelOps(c), id)),
    );
    return channels.filter((_, i) => ops[i] === 1);
  }

  async getChannel(channel: string): Promise<ChannelView | null> {
    const view = await this.#run("getChannel", channel);
    return view === null ? null : { channel, ...view };
  }

  /** The page from the channel's slot, then each member's fields from its own. */
  async members(channel: string, offset: number, limit: number): Promise<PeerEntry[]> {
    const refs = await this.#run("members", channel, Math.max(0, offset), limit);
    const fields = await Promise.all(
      refs.map((m) => this.#redis.hmget(this.#keys.peer(m.id), "name", "away", "node", "message")),
    );
    return refs.map((m, i) => {
      const [name, away, node, message] = fields[i];
      const e: PeerEntry = {
        id: m.id,
        name: name ?? "",
        op: m.op,
        away: away === "1",
        online: node !== null && node !== "",
      };
      if (message !== null) e.message = message;
      return e;
    });
  }

  onlineCount(): Promise<number> {
    return this.#run("online");
  }

  /** True when Redis answers within a second; never rejects. */
  async ping(): Promise<boolean> {
    if (this.#redis.status !== "ready") return false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.#redis.ping().then(() => true, () => false), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Stops beating, puts the peers still live on this node into their grace
   * (normally none: the hub released each session), and quits the connection.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#beat);
    try {
      await this.#down();
    } catch {
      // Redis is down: the other nodes will declare this one dead instead.
    }
    await endRedis(this.#redis);
  }

  #heartbeat(): void {
    // Beats start once the predecessor's peers are handed over (see #adopt).
    if (this.#closed || !this.#adopted || this.#redis.status !== "ready") return;
    // A missed beat is retried next interval; only a long outage makes the node dead.
    this.#run("beat", this.#node).then((beat) => {
      if (beat.declaredDead) this.#onDeclaredDead?.();
      this.#saw(beat.generation);
    }, () => {});
  }
}

/** A member count of `channel` as the {@linkcode Touched} the store returns, or the failure. */
function touched<T extends { total: number }>(channel: string, r: T | Fail): (Touched & T) | Fail {
  return failed(r) ? r : { channel, ...r };
}
