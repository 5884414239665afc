/**
 * Redis connections, shared by the Redis store and the Redis bus: how a client
 * is made (fail fast while Redis is down, reconnect by itself), how to wait
 * for it and how to end it.
 *
 * @module
 */
import { Redis } from "ioredis";
import { type Logger, silent } from "./log.ts";

/** Options of {@linkcode connectRedis}. */
export interface ConnectOptions {
  /**
   * A pub/sub subscriber: no command timeout (it waits for messages forever)
   * and no automatic re-subscription (the bus re-subscribes once ready).
   */
  subscriber?: boolean;
  /** Where a lost and a regained connection are reported. Default: nowhere. */
  log?: Logger;
  /** Names the connection in log lines, e.g. `"store"`. */
  role?: string;
}

/** How long a connection attempt may take, ms. */
const CONNECT_TIMEOUT_MS = 2_000;
/** How long a command may wait for its answer, ms (not on a subscriber). */
const COMMAND_TIMEOUT_MS = 5_000;
/** Reconnection attempts back off by 100 ms each, up to this, ms. */
const MAX_RETRY_DELAY_MS = 1_000;

/**
 * A client that fails fast while Redis is down (no offline queue, no retries
 * of a command) and reconnects by itself.
 */
export function connectRedis(url: string, options: ConnectOptions = {}): Redis {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    // Commands issued in one turn share one write (many relays at once).
    enableAutoPipelining: true,
    maxRetriesPerRequest: 0,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: options.subscriber ? undefined : COMMAND_TIMEOUT_MS,
    retryStrategy: (times) => Math.min(times * 100, MAX_RETRY_DELAY_MS),
    autoResubscribe: !options.subscriber,
  });
  const log = options.log ?? silent;
  const role = options.role ?? "redis";
  // Reported once per outage, not once per reconnection attempt.
  let lost = false;
  // Without a listener an outage would be an unhandled 'error' event; the
  // failing commands and `ping` report it to their callers.
  redis.on("error", (e: Error) => {
    if (lost) return;
    lost = true;
    log.warn("Redis connection lost", { role, error: e.message });
  });
  redis.on("ready", () => {
    if (!lost) return;
    lost = false;
    log.info("Redis connection back", { role });
  });
  return redis;
}

/** Resolves when `redis` is ready; rejects after `timeoutMs`. */
export function whenReady(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === "ready") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      redis.off("ready", onReady);
      reject(new Error(`Redis not ready after ${timeoutMs} ms`));
    }, timeoutMs);
    redis.once("ready", onReady);
  });
}

/** Quits `redis` (or drops it while down) and resolves once its socket is closed. */
export async function endRedis(redis: Redis): Promise<void> {
  if (redis.status === "end") return;
  if (redis.status === "reconnecting") {
    // Between attempts there is no socket: cancelling the next attempt is all.
    redis.disconnect();
    return;
  }
  const ended = new Promise<void>((resolve) => redis.once("end", () => resolve()));
  if (redis.status === "ready") {
    try {
      await redis.quit();
    } catch {
      redis.disconnect();
    }
  } else {
    redis.disconnect();
  }
  await ended;
}
