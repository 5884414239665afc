/**
 * The Redis {@linkcode Bus}: envelopes travel over Redis pub/sub, one Redis
 * channel per topic under the key prefix ({@linkcode busChannel}), encoded as
 * `envelope.ts` says.
 *
 * On a Redis Cluster a channel's and a peer's topics are sharded channels
 * (SPUBLISH/SSUBSCRIBE), named with the hash tag of the channel's or the
 * peer's keys: a message goes to the one master (and its replicas) that holds
 * that slot, not to every node of the cluster, and the stream scripts publish
 * from the slot they write. Node-wide topics (`all`) stay classic pub/sub,
 * which a cluster broadcasts. The client keeps the sharded subscriptions per
 * slot and moves them when a slot moves or a replica takes over.
 *
 * @module
 */
import { atEndOfTurn } from "../batch.ts";
import type { Bus, Deliver, Envelope } from "./bus.ts";
import { decodeEnvelopes, encodeBatch, encodeEnvelope } from "./envelope.ts";
import { DEFAULTS } from "../config.ts";
import type { Logger } from "../log.ts";
import {
  connectRedis,
  endRedis,
  isCluster,
  type RedisClient,
  type RedisTarget,
  whenReady,
} from "../redis_conn.ts";

/**
 * The Redis channel of a bus topic: a channel's (`c:<channel>`) and a peer's
 * (`p:<peer>`) topics carry the hash tag of their keys (`<prefix>{c:<channel>}`),
 * the others are plain (`<prefix>all`). The scripts spell it the same way.
 */
export function busChannel(prefix: string, topic: string): string {
  return tagged(topic) ? `${prefix}{${topic}}` : prefix + topic;
}

/** Whether `topic` belongs to one channel or one peer (a sharded channel on a cluster). */
function tagged(topic: string): boolean {
  return topic.startsWith("c:") || topic.startsWith("p:");
}

/** The topic of a Redis channel under `prefix`, or null when it is none of the bus'. */
function topicOf(prefix: string, channel: string): string | null {
  if (!channel.startsWith(prefix)) return null;
  const rest = channel.slice(prefix.length);
  if (rest.startsWith("{") && rest.endsWith("}")) return rest.slice(1, -1);
  return rest;
}

/** Options of {@linkcode RedisBus}. */
export interface RedisBusOptions {
  /** This node's id: messages it published are not delivered back to it. */
  node: string;
  /** Receives envelopes from the other nodes. */
  deliver: Deliver;
  /** Prefix of every Redis channel. Default {@linkcode DEFAULTS}`.redisPrefix`. */
  prefix?: string;
  /** Where a lost and a regained Redis connection are reported. Default: nowhere. */
  log?: Logger;
}

/** SUBSCRIBE arguments per command when (re-)subscribing many topics at once. */
const SUBSCRIBE_CHUNK = 1000;
/** Envelopes one published batch holds at most. */
const BATCH_MAX = 256;

/** Envelopes for one Redis channel, published together. */
interface Batch {
  channel: string;
  sharded: boolean;
  envs: Envelope[];
}

/** Carries envelopes between nodes over Redis pub/sub. */
export class RedisBus implements Bus {
  #pub: RedisClient;
  #sub: RedisClient;
  /** On a cluster: channels' and peers' topics are sharded channels. */
  #sharded: boolean;
  #prefix: string;
  #node: string;
  #deliver: Deliver;
  #log?: Logger;
  /** Topics the hub wants, re-subscribed whenever the subscriber (re)connects. */
  #topics = new Set<string>();
  /** Subscriptions not yet confirmed by Redis, with what resolves their confirmation. */
  #pending = new Map<string, { done: Promise<void>; resolve: () => void }>();
  /** Undecodable messages received, and when that was last logged. */
  #dropped = 0;
  #droppedLogged = -Infinity;
  /** What this turn published, in order; consecutive envelopes to one topic share a batch. */
  #out: Batch[] = [];
  readonly #flushDue = atEndOfTurn(() => this.#flush());

  /** Connects a publisher and a subscriber in the background; both reconnect by themselves. */
  constructor(target: RedisTarget, options: RedisBusOptions) {
    this.#prefix = options.prefix ?? DEFAULTS.redisPrefix;
    this.#node = options.node;
    this.#deliver = options.deliver;
    this.#log = options.log;
    this.#sharded = isCluster(target);
    this.#pub = connectRedis(target, { log: options.log, role: "bus publisher" });
    this.#sub = connectRedis(target, {
      subscriber: true,
      log: options.log,
      role: "bus subscriber",
    });
    // SUBSCRIBE only once ready: before it, ioredis' ready check can force a
    // reconnect that drops what was published meanwhile.
    this.#sub.on("ready", () => this.#resubscribe());
    const receive = (channel: string, payload: string) => this.#receive(channel, payload);
    this.#sub.on("message", receive);
    this.#sub.on("smessage", receive);
  }

  /** Resolves once both connections are ready; rejects after `timeoutMs`. */
  async ready(timeoutMs: number = DEFAULTS.readyTimeoutMs): Promise<void> {
    await Promise.all([whenReady(this.#pub, timeoutMs), whenReady(this.#sub, timeoutMs)]);
  }

  /** Both connections are up: what is published reaches the other nodes. */
  get up(): boolean {
    return this.#pub.status === "ready" && this.#sub.status === "ready";
  }

  /**
   * Publishes `env` to `topic` at the end of this turn; dropped while Redis is
   * down (the hub checks {@linkcode up}). Envelopes published one after the
   * other to the same topic (a burst of relays to one peer) leave as one
   * message; the order of everything published is kept.
   */
  publish(topic: string, env: Envelope): void {
    if (this.#pub.status !== "ready") return;
    const channel = busChannel(this.#prefix, topic);
    const last = this.#out[this.#out.length - 1];
    if (last?.channel === channel && last.envs.length < BATCH_MAX) {
      last.envs.push(env);
      return;
    }
    this.#flushDue();
    this.#out.push({ channel, sharded: this.#sharded && tagged(topic), envs: [env] });
  }

  #flush(): void {
    const out = this.#out;
    this.#out = [];
    if (this.#pub.status !== "ready") return;
    for (const { channel, sharded, envs } of out) {
      const payload = envs.length === 1
        ? encodeEnvelope(this.#node, envs[0])
        : encodeBatch(this.#node, envs);
      const sent = sharded
        ? this.#pub.spublish(channel, payload)
        : this.#pub.publish(channel, payload);
      sent.catch(() => {});
    }
  }

  subscribe(topic: string): Promise<void> {
    if (this.#topics.has(topic)) return this.#pending.get(topic)?.done ?? Promise.resolve();
    this.#topics.add(topic);
    const { promise: done, resolve } = Promise.withResolvers<void>();
    this.#pending.set(topic, { done, resolve });
    if (this.#sub.status === "ready") {
      // A failure means the connection dropped: the next 'ready' subscribes and confirms.
      this.#listen([topic]).then(() => this.#confirm([topic]), () => {});
    }
    return done;
  }

  unsubscribe(topic: string): void {
    if (!this.#topics.delete(topic)) return;
    // Whoever awaits the confirmation is not left waiting: there is nothing to receive.
    this.#confirm([topic]);
    if (this.#sub.status === "ready") {
      const channel = busChannel(this.#prefix, topic);
      const done = this.#sharded && tagged(topic)
        ? this.#sub.sunsubscribe(channel)
        : this.#sub.unsubscribe(channel);
      done.catch(() => {});
    }
  }

  async close(): Promise<void> {
    this.#flush();
    this.#confirm([...this.#pending.keys()]);
    this.#topics.clear();
    await Promise.all([endRedis(this.#pub), endRedis(this.#sub)]);
  }

  #resubscribe(): void {
    const topics = [...this.#topics];
    for (let i = 0; i < topics.length; i += SUBSCRIBE_CHUNK) {
      const chunk = topics.slice(i, i + SUBSCRIBE_CHUNK);
      // A failure means the connection dropped again: the next 'ready' retries.
      this.#listen(chunk).then(() => this.#confirm(chunk), () => {});
    }
  }

  /**
   * Subscribes to `topics`: one SUBSCRIBE on one Redis; on a cluster, one
   * SSUBSCRIBE per sharded topic (each is its own slot) and one SUBSCRIBE for the rest.
   */
  async #listen(topics: string[]): Promise<void> {
    const channels = (ts: string[]) => ts.map((t) => busChannel(this.#prefix, t));
    if (!this.#sharded) {
      await this.#sub.subscribe(...channels(topics));
      return;
    }
    const plain = topics.filter((t) => !tagged(t));
    await Promise.all([
      ...(plain.length > 0 ? [this.#sub.subscribe(...channels(plain))] : []),
      ...channels(topics.filter(tagged)).map((c) => this.#sub.ssubscribe(c)),
    ]);
  }

  /** The subscriptions to `topics` are active (or no longer wanted). */
  #confirm(topics: string[]): void {
    for (const t of topics) {
      this.#pending.get(t)?.resolve();
      this.#pending.delete(t);
    }
  }

  #receive(channel: string, payload: string): void {
    const topic = topicOf(this.#prefix, channel);
    if (topic === null) return;
    const envs = decodeEnvelopes(payload, this.#node);
    if (envs === null) return this.#garbled(channel);
    for (const env of envs) this.#deliver(topic, env);
  }

  /**
   * A message no node of this version writes (a node of an older version, or
   * another program on the prefix) is dropped, and said so at most once a minute.
   */
  #garbled(channel: string): void {
    this.#dropped++;
    const now = Date.now();
    if (now - this.#droppedLogged < 60_000) return;
    this.#droppedLogged = now;
    this.#log?.warn("bus: undecodable messages dropped", { channel, dropped: this.#dropped });
  }
}
