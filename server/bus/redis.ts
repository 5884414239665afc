/**
 * The Redis {@linkcode Bus}: envelopes travel over Redis pub/sub, one Redis
 * channel per topic under the key prefix, encoded as `envelope.ts` says.
 *
 * @module
 */
import type { Redis } from "ioredis";
import type { Bus, Deliver, Envelope } from "./bus.ts";
import { decodeEnvelope, encodeEnvelope } from "./envelope.ts";
import { DEFAULTS } from "../config.ts";
import type { Logger } from "../log.ts";
import { connectRedis, endRedis, whenReady } from "../redis_conn.ts";

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

/** Carries envelopes between nodes over Redis pub/sub. */
export class RedisBus implements Bus {
  #pub: Redis;
  #sub: Redis;
  #prefix: string;
  #node: string;
  #deliver: Deliver;
  /** Topics the hub wants, re-subscribed whenever the subscriber (re)connects. */
  #topics = new Set<string>();
  /** Subscriptions not yet confirmed by Redis, with what resolves their confirmation. */
  #pending = new Map<string, { done: Promise<void>; resolve: () => void }>();

  /** Connects a publisher and a subscriber in the background; both reconnect by themselves. */
  constructor(url: string, options: RedisBusOptions) {
    this.#prefix = options.prefix ?? DEFAULTS.redisPrefix;
    this.#node = options.node;
    this.#deliver = options.deliver;
    this.#pub = connectRedis(url, { log: options.log, role: "bus publisher" });
    this.#sub = connectRedis(url, { subscriber: true, log: options.log, role: "bus subscriber" });
    // SUBSCRIBE only once ready: before it, ioredis' ready check can force a
    // reconnect that drops what was published meanwhile.
    this.#sub.on("ready", () => this.#resubscribe());
    this.#sub.on("message", (channel: string, payload: string) => this.#receive(channel, payload));
  }

  /** Resolves once both connections are ready; rejects after `timeoutMs`. */
  async ready(timeoutMs: number = DEFAULTS.readyTimeoutMs): Promise<void> {
    await Promise.all([whenReady(this.#pub, timeoutMs), whenReady(this.#sub, timeoutMs)]);
  }

  /** Both connections are up: what is published reaches the other nodes. */
  get up(): boolean {
    return this.#pub.status === "ready" && this.#sub.status === "ready";
  }

  /** Publishes `env` to `topic`; dropped while Redis is down (the hub checks {@linkcode up}). */
  publish(topic: string, env: Envelope): void {
    if (this.#pub.status !== "ready") return;
    this.#pub.publish(this.#prefix + topic, encodeEnvelope(this.#node, env)).catch(() => {});
  }

  subscribe(topic: string): Promise<void> {
    if (this.#topics.has(topic)) return this.#pending.get(topic)?.done ?? Promise.resolve();
    this.#topics.add(topic);
    const { promise: done, resolve } = Promise.withResolvers<void>();
    this.#pending.set(topic, { done, resolve });
    if (this.#sub.status === "ready") {
      // A failure means the connection dropped: the next 'ready' subscribes and confirms.
      this.#sub.subscribe(this.#prefix + topic).then(() => this.#confirm([topic]), () => {});
    }
    return done;
  }

  unsubscribe(topic: string): void {
    if (!this.#topics.delete(topic)) return;
    // Whoever awaits the confirmation is not left waiting: there is nothing to receive.
    this.#confirm([topic]);
    if (this.#sub.status === "ready") {
      this.#sub.unsubscribe(this.#prefix + topic).catch(() => {});
    }
  }

  async close(): Promise<void> {
    this.#confirm([...this.#pending.keys()]);
    this.#topics.clear();
    await Promise.all([endRedis(this.#pub), endRedis(this.#sub)]);
  }

  #resubscribe(): void {
    const topics = [...this.#topics];
    for (let i = 0; i < topics.length; i += SUBSCRIBE_CHUNK) {
      const chunk = topics.slice(i, i + SUBSCRIBE_CHUNK);
      // A failure means the connection dropped again: the next 'ready' retries.
      this.#sub.subscribe(...chunk.map((t) => this.#prefix + t)).then(
        () => this.#confirm(chunk),
        () => {},
      );
    }
  }

  /** The subscriptions to `topics` are active (or no longer wanted). */
  #confirm(topics: string[]): void {
    for (const t of topics) {
      this.#pending.get(t)?.resolve();
      this.#pending.delete(t);
    }
  }

  #receive(channel: string, payload: string): void {
    if (!channel.startsWith(this.#prefix)) return;
    const env = decodeEnvelope(payload, this.#node);
    if (env !== null) this.#deliver(channel.slice(this.#prefix.length), env);
  }
}
