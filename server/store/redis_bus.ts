/**
 * The Redis {@linkcode Bus}: envelopes travel over Redis pub/sub, one Redis
 * channel per topic under the key prefix.
 *
 * Wire format of a message: `origin node \n header \n text`, where the header
 * is the envelope without `text` as JSON (empty when there is nothing else)
 * and the text, already serialized JSON, follows verbatim — so a pubmsg is
 * neither re-encoded nor escaped. Without a text there is no second newline.
 */
import type { Redis } from "ioredis";
import type { Bus, Deliver, Envelope } from "../bus.ts";
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
    this.#pub.publish(this.#prefix + topic, encode(this.#node, env)).catch(() => {});
  }

  subscribe(topic: string): void {
    if (this.#topics.has(topic)) return;
    this.#topics.add(topic);
    if (this.#sub.status === "ready") {
      this.#sub.subscribe(this.#prefix + topic).catch(() => {});
    }
  }

  unsubscribe(topic: string): void {
    if (!this.#topics.delete(topic)) return;
    if (this.#sub.status === "ready") {
      this.#sub.unsubscribe(this.#prefix + topic).catch(() => {});
    }
  }

  async close(): Promise<void> {
    this.#topics.clear();
    await Promise.all([endRedis(this.#pub), endRedis(this.#sub)]);
  }

  #resubscribe(): void {
    const channels = [...this.#topics].map((t) => this.#prefix + t);
    for (let i = 0; i < channels.length; i += SUBSCRIBE_CHUNK) {
      // A failure means the connection dropped again: the next 'ready' retries.
      this.#sub.subscribe(...channels.slice(i, i + SUBSCRIBE_CHUNK)).catch(() => {});
    }
  }

  #receive(channel: string, payload: string): void {
    if (!channel.startsWith(this.#prefix)) return;
    const env = decode(this.#node, payload);
    if (env !== null) this.#deliver(channel.slice(this.#prefix.length), env);
  }
}

/** Encodes an envelope published by `node`. */
function encode(node: string, env: Envelope): string {
  const { text, ...rest } = env;
  const header = Object.keys(rest).length === 0 ? "" : JSON.stringify(rest);
  return text === undefined ? `${node}\n${header}` : `${node}\n${header}\n${text}`;
}

/** Decodes a message; null when `self` published it (already delivered locally) or it is garbled. */
function decode(self: string, payload: string): Envelope | null {
  const i = payload.indexOf("\n");
  if (i < 0 || (i === self.length && payload.startsWith(self))) return null;
  const j = payload.indexOf("\n", i + 1);
  const header = j < 0 ? payload.slice(i + 1) : payload.slice(i + 1, j);
  let env: Envelope;
  try {
    env = header === "" ? {} : JSON.parse(header);
  } catch {
    return null;
  }
  if (j >= 0) env.text = payload.slice(j + 1);
  return env;
}
