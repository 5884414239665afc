/**
 * The Redis {@linkcode Store}: state shared by every node of a cluster, kept
 * across restarts. Each operation is one Lua script (`redis_scripts.ts`, with
 * the key schema), so it runs atomically on the Redis server: two nodes racing
 * cannot both take an id, let a banned peer in, or expire the same peer twice.
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
import type { Redis } from "ioredis";
import type { PeerEntry } from "../../protocol/mod.ts";
import { DEFAULTS } from "../config.ts";
import { type Logger, silent } from "../log.ts";
import { connectRedis, endRedis, whenReady } from "../redis_conn.ts";
import { defineScripts, type RedisKeys, redisKeys, type RunScript } from "./redis_scripts.ts";
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
   * This node's clock, the one the hub passes times from (`releasePeer`'s
   * `graceUntil`, `expirePeers`' `now`). Default `Date.now`.
   */
  now?: () => number;
  /** Where a lost and a regained Redis connection are reported. Default: nowhere. */
  log?: Logger;
}

/** Peers expired by one `expirePeers` call at most; the rest wait for the next call. */
const EXPIRE_BATCH = 500;
/** How long `ping` waits for an answer, ms. */
const PING_TIMEOUT_MS = 1000;

/** Keeps peers, channels and node liveness in Redis, shared by every node on the same prefix. */
export class RedisStore implements Store {
  readonly kind = "redis";
  #redis: Redis;
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
  #log: Logger;
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
  constructor(url: string, options: RedisStoreOptions) {
    const prefix = options.prefix ?? DEFAULTS.redisPrefix;
    this.#keys = redisKeys(prefix);
    this.#node = options.node;
    this.#limits = options.limits;
    this.#graceMs = options.graceMs ?? DEFAULTS.graceMs;
    this.#deadMs = options.deadMs ?? DEFAULTS.deadMs;
    this.#now = options.now ?? Date.now;
    this.#redis = connectRedis(url, { log: options.log, role: "store" });
    this.#run = defineScripts(this.#redis, { prefix, retentionMs: options.limits.retentionMs });
    this.#onDeclaredDead = options.onDeclaredDead;
    this.#onLost = options.onLost;
    this.#onDisowned = options.onDisowned;
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
      const taken = await Promise.all(held.map((p) =>
        this.#run(
          "restore",
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
        )
      ));
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

  /** Puts the peers a predecessor with this node id left behind into their grace, once. */
  #adopt(): Promise<void> {
    this.#adopting ??= this.#run("nodeDown", this.#node, this.#graceMs).then(
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

  publish(channel: string, head: string, except: string): Promise<Appended> {
    return this.#run("publish", channel, head, except, this.history, this.#historyTtlMs);
  }

  route(peer: string, head: string): Promise<Routed | null> {
    return this.#run("route", peer, head, this.history, this.#historyTtlMs);
  }

  position(stream: StreamName): Promise<Position> {
    return this.#run("position", stream, this.#historyTtlMs);
  }

  since(stream: StreamName, from: Position, reader: string): Promise<string[] | null> {
    return this.#run("since", stream, from.epoch, from.seq, reader);
  }

  get #historyTtlMs(): number {
    return this.#limits.historyTtlMs ?? DEFAULTS.historyTtlMs;
  }

  claimPeer(c: Claim): Promise<Claimed | Fail> {
    return this.#run(
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
  }

  describePeer(
    id: string,
    session: string,
    d: { name: string; meta: Record<string, unknown>; admin: boolean },
  ): Promise<void> {
    return this.#run("describe", id, session, d.name, JSON.stringify(d.meta), d.admin ? 1 : 0);
  }

  /** The grace lasts `graceUntil - now()` (this node's clock), counted on Redis' clock. */
  releasePeer(id: string, session: string, graceUntil: number): Promise<void> {
    return this.#run("release", id, session, graceUntil - this.#now());
  }

  /**
   * Expires the peers whose grace ended by Redis' clock, moved forward by how
   * far `now` is ahead of this node's clock (0 for the hub; tests move time).
   */
  expirePeers(now: number): Promise<Expired[]> {
    return this.#run("expire", now - this.#now(), this.#graceMs, this.#deadMs, EXPIRE_BATCH);
  }

  async getPeer(id: string): Promise<PeerView | null> {
    const view = await this.#run("getPeer", id);
    return view === null ? null : { id, ...view };
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

  setAway(
    id: string,
    away: boolean | null,
    message?: string,
  ): Promise<{ away: boolean; message?: string; channels: Touched[] }> {
    const mode = away === null ? "t" : away ? "1" : "0";
    return this.#run("setAway", id, mode, message === undefined ? 0 : 1, message ?? "");
  }

  join(id: string, channel: string, keyHash: string | null): Promise<Joined | Fail> {
    const l = this.#limits;
    return this.#run(
      "join",
      id,
      channel,
      keyHash ?? "",
      l.maxChannels,
      l.maxMembers ?? DEFAULTS.maxMembers,
      l.maxCreates ?? DEFAULTS.maxCreates,
    );
  }

  async quit(id: string, channel: string): Promise<Touched | Fail> {
    return touched(channel, await this.#run("quit", id, channel));
  }

  async kick(by: string, target: string, channel: string): Promise<Touched | Fail> {
    return touched(channel, await this.#run("kick", by, target, channel));
  }

  async ban(
    by: string,
    target: string,
    channel: string,
  ): Promise<(Touched & { wasMember: boolean }) | Fail> {
    return touched(
      channel,
      await this.#run("ban", by, target, channel, this.#limits.maxBans ?? DEFAULTS.maxBans),
    );
  }

  async unban(by: string, target: string, channel: string): Promise<Touched | Fail> {
    return touched(channel, await this.#run("unban", by, target, channel));
  }

  async invite(by: string, target: string, channel: string): Promise<Touched | Fail> {
    return touched(
      channel,
      await this.#run(
        "invite",
        by,
        target,
        channel,
        this.#limits.maxInvites ?? DEFAULTS.maxInvites,
      ),
    );
  }

  async operatorOf(id: string, channels: readonly string[]): Promise<string[]> {
    if (channels.length === 0) return [];
    return await this.#run("operatorOf", id, ...channels);
  }

  async getChannel(channel: string): Promise<ChannelView | null> {
    const view = await this.#run("getChannel", channel);
    return view === null ? null : { channel, ...view };
  }

  members(channel: string, offset: number, limit: number): Promise<PeerEntry[]> {
    return this.#run("members", channel, Math.max(0, offset), limit);
  }

  onlineCount(): Promise<number> {
    return this.#redis.scard(this.#keys.online);
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
      await this.#run("nodeDown", this.#node, this.#graceMs);
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
