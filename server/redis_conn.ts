/**
 * Redis connections, shared by the Redis store and the Redis bus: how a client
 * is made (fail fast while Redis is down, reconnect by itself), how to wait
 * for it and how to end it.
 *
 * @module
 */
import { Cluster, Redis } from "ioredis";
import { type Logger, silent } from "./log.ts";

/** Where Redis is: one server's URL, or a Redis Cluster's seed nodes (`host:port`). */
export type RedisTarget = string | { cluster: readonly string[] };

/** A client of one Redis or of a Redis Cluster; both speak the same commands. */
export type RedisClient = Redis | Cluster;

/** Whether `target` names a Redis Cluster. */
export function isCluster(target: RedisTarget): target is { cluster: readonly string[] } {
  return typeof target !== "string";
}

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
 * of a command) and reconnects by itself. On a Redis Cluster it follows slot
 * moves and failovers: a command whose slot has no master fails after a few
 * short retries (the node answers 503), and the slot map is refreshed until a
 * replica has taken over.
 */
export function connectRedis(target: RedisTarget, options: ConnectOptions = {}): RedisClient {
  const retry = (times: number) => Math.min(times * 100, MAX_RETRY_DELAY_MS);
  const redis: RedisClient = isCluster(target)
    ? new Cluster(target.cluster.map(hostPort), {
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      clusterRetryStrategy: retry,
      // A slot whose master is gone answers CLUSTERDOWN until a replica is promoted
      // (--cluster-node-timeout and the election): retried briefly, then the command fails.
      retryDelayOnClusterDown: 200,
      retryDelayOnFailover: 200,
      retryDelayOnTryAgain: 100,
      maxRedirections: 8,
      slotsRefreshTimeout: CONNECT_TIMEOUT_MS,
      // The slot map is also refreshed on every MOVED and connection error; the interval
      // catches a failover seen by no command.
      // A subscriber sends nothing that would tell it of a failover: it looks more often, as
      // what is published before it moves to the new master does not reach it.
      slotsRefreshInterval: options.subscriber ? 500 : 2_000,
      shardedSubscribers: options.subscriber === true,
      redisOptions: {
        maxRetriesPerRequest: 0,
        connectTimeout: CONNECT_TIMEOUT_MS,
        commandTimeout: options.subscriber ? undefined : COMMAND_TIMEOUT_MS,
        autoResubscribe: !options.subscriber,
      },
    })
    : new Redis(target, {
      enableOfflineQueue: false,
      // Commands issued in one turn share one write (many relays at once).
      enableAutoPipelining: true,
      maxRetriesPerRequest: 0,
      connectTimeout: CONNECT_TIMEOUT_MS,
      commandTimeout: options.subscriber ? undefined : COMMAND_TIMEOUT_MS,
      retryStrategy: retry,
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

/** `{host, port}` of a seed `host:port` (IPv6 in brackets: `[::1]:7000`). */
function hostPort(s: string): { host: string; port: number } {
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(s.trim());
  return m ? { host: m[1], port: Number(m[2]) } : { host: s.trim(), port: 6379 };
}

/** Resolves when `redis` is ready; rejects after `timeoutMs`. */
export function whenReady(redis: RedisClient, timeoutMs: number): Promise<void> {
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
export async function endRedis(redis: RedisClient): Promise<void> {
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
