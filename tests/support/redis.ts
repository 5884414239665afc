/**
 * Whether and how tests that need Redis run. In CI (`CI=true`) Redis is
 * required: the tests run and fail when it is unreachable. Elsewhere they are
 * registered with `ignore: true` when Redis is unreachable, and one line says so.
 *
 * @example
 * ```ts
 * import { assertRedis, deleteKeys, redisTests, uniquePrefix } from "./redis.ts";
 *
 * const env = await redisTests();
 * Deno.test({ name: "the Redis store keeps peers", ignore: env.ignore }, async () => {
 *   assertRedis(env);
 *   const prefix = uniquePrefix();
 *   try {
 *     // ... use env.url and prefix ...
 *   } finally {
 *     await deleteKeys(env.url, prefix);
 *   }
 * });
 * ```
 * @module
 */
import { Cluster, Redis } from "ioredis";
import type { RedisTarget } from "../../server/redis_conn.ts";
import { bbtest, type Runtime } from "./server.ts";

/** How Redis-backed tests should run. */
export interface RedisTestEnv {
  /**
   * The Redis URL: `REDIS_URL`, or `redis://127.0.0.1:6379`; for a cluster, its
   * seed nodes as `--redis-cluster` takes them.
   */
  url: string;
  /** What the store and the bus connect to: the URL, or the cluster's seed nodes. */
  target: RedisTarget;
  /** The server flags that point a node at it. */
  flags: string[];
  /** True when Redis must be there (CI): tests then fail rather than skip. */
  required: boolean;
  /** Whether Redis answered a PING. */
  available: boolean;
  /** Pass as `Deno.test`'s `ignore`: true when Redis is unreachable and not required. */
  ignore: boolean;
}

let checked: Promise<RedisTestEnv> | undefined;

/**
 * Checks once per process whether Redis is reachable and required, printing
 * one line when the Redis tests are skipped.
 */
export function redisTests(): Promise<RedisTestEnv> {
  checked ??= (async () => {
    const url = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";
    const required = Deno.env.get("CI") === "true";
    const available = await reachable(url);
    const ignore = !available && !required;
    if (ignore) {
      console.log(
        `Redis tests skipped: no Redis answers at ${
          redact(url)
        } (set REDIS_URL; CI=true makes them required).`,
      );
    }
    return { url, target: url, flags: ["--redis", url], required, available, ignore };
  })();
  return checked;
}

let checkedCluster: Promise<RedisTestEnv> | undefined;

/**
 * Checks once per process whether the Redis Cluster of `REDIS_CLUSTER_NODES`
 * (`host:port,...`, as `tests/support/redis_cluster.sh start` prints it) answers
 * with `cluster_state:ok`, printing one line when the cluster tests are skipped.
 * In CI (`CI=true`) the cluster is required.
 */
export function redisClusterTests(): Promise<RedisTestEnv> {
  checkedCluster ??= (async () => {
    const url = Deno.env.get("REDIS_CLUSTER_NODES") ?? "";
    const nodes = url.split(",").map((s) => s.trim()).filter((s) => s !== "");
    const required = Deno.env.get("CI") === "true";
    const available = nodes.length > 0 && await clusterReachable(nodes);
    const ignore = !available && !required;
    if (ignore) {
      console.log(
        nodes.length === 0
          ? "Redis Cluster tests skipped: REDIS_CLUSTER_NODES is not set " +
            "(tests/support/redis_cluster.sh start prints it)."
          : `Redis Cluster tests skipped: no cluster answers at ${url}.`,
      );
    }
    return {
      url,
      target: { cluster: nodes },
      flags: ["--redis-cluster", url],
      required,
      available,
      ignore,
    };
  })();
  return checkedCluster;
}

/** Whether a cluster answers at `nodes` and says its state is ok. */
async function clusterReachable(nodes: string[]): Promise<boolean> {
  const [host, port] = nodes[0].split(":");
  const redis = new Redis({
    host,
    port: Number(port),
    lazyConnect: true,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on("error", () => {});
  try {
    await redis.connect();
    const info = String(await redis.call("CLUSTER", "INFO"));
    return info.includes("cluster_state:ok");
  } catch {
    return false;
  } finally {
    await close(redis);
  }
}

/** A test client of the cluster at `nodes` (every key routed to its master). */
export async function openCluster(nodes: readonly string[]): Promise<Cluster> {
  const cluster = new Cluster(
    nodes.map((n) => {
      const [host, port] = n.split(":");
      return { host, port: Number(port) };
    }),
    { lazyConnect: true, redisOptions: { maxRetriesPerRequest: 0 } },
  );
  cluster.on("error", () => {});
  await cluster.connect();
  return cluster;
}

/** Every key under `prefix` on every master of the cluster. */
async function scanCluster(cluster: Cluster, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (const node of cluster.nodes("master")) out.push(...await scan(node, prefix));
  return out;
}

/** Ends a test's cluster client and waits until it is closed. */
export async function closeCluster(cluster: Cluster): Promise<void> {
  if (cluster.status === "end") return;
  const ended = new Promise<void>((resolve) => cluster.once("end", () => resolve()));
  cluster.disconnect();
  await ended;
}

/**
 * Throws when Redis was unreachable: called first in each Redis test, so a CI
 * run without Redis fails at once with the reason instead of timing out.
 */
export function assertRedis(env: RedisTestEnv): void {
  if (!env.available) {
    throw new Error(
      `Redis is required (CI=true) but does not answer at ${redact(env.url) || "(not set)"}`,
    );
  }
}

/** A key prefix no other test run uses, e.g. `signaller-test-3f9a0c12:`. */
export function uniquePrefix(tag = "test"): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `signaller-${tag}-${hex}:`;
}

/** Deletes every key under `prefix`. */
export async function deleteKeys(target: RedisTarget, prefix: string): Promise<void> {
  if (typeof target !== "string") {
    const cluster = await openCluster(target.cluster);
    try {
      // One UNLINK per key: the keys of one call must share a slot.
      for (const key of await scanCluster(cluster, prefix)) await cluster.unlink(key);
    } finally {
      await closeCluster(cluster);
    }
    return;
  }
  const url = target;
  const redis = await open(url);
  try {
    const keys = await scan(redis, prefix);
    for (let i = 0; i < keys.length; i += 1000) await redis.unlink(...keys.slice(i, i + 1000));
  } finally {
    await close(redis);
  }
}

/** A connected client for a test's own look into Redis; `close` it after. */
async function open(url: string): Promise<Redis> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  redis.on("error", () => {});
  try {
    await redis.connect();
  } catch (e) {
    await close(redis);
    throw e;
  }
  return redis;
}

/** Every key under `prefix`. */
export async function keysUnder(target: RedisTarget, prefix: string): Promise<string[]> {
  if (typeof target !== "string") {
    const cluster = await openCluster(target.cluster);
    try {
      return await scanCluster(cluster, prefix);
    } finally {
      await closeCluster(cluster);
    }
  }
  const url = target;
  const redis = await open(url);
  try {
    return await scan(redis, prefix);
  } finally {
    await close(redis);
  }
}

async function scan(redis: Redis, prefix: string): Promise<string[]> {
  const match = prefix.replace(/[*?[\]\\]/g, "\\$&") + "*";
  const out: string[] = [];
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", match, "COUNT", 1000);
    out.push(...keys);
    cursor = next;
  } while (cursor !== "0");
  return out;
}

/** What one key holds, as strings: a string's value, a hash's fields and values, members. */
export interface KeyDump {
  key: string;
  type: string;
  /** Every string in it: values, hash fields and values, (sorted) set members, list items. */
  strings: string[];
  /** A sorted set's members and scores. */
  scores?: Map<string, number>;
}

/** Reads every key under `prefix`, whatever its type: to look for what the server stored. */
export async function dumpKeys(url: string, prefix: string): Promise<KeyDump[]> {
  const redis = await open(url);
  try {
    const out: KeyDump[] = [];
    for (const key of await scan(redis, prefix)) {
      const type = await redis.type(key);
      const d: KeyDump = { key, type, strings: [] };
      if (type === "string") d.strings.push((await redis.get(key)) ?? "");
      else if (type === "hash") d.strings.push(...Object.entries(await redis.hgetall(key)).flat());
      else if (type === "set") d.strings.push(...await redis.smembers(key));
      else if (type === "list") d.strings.push(...await redis.lrange(key, 0, -1));
      else if (type === "zset") {
        const flat = await redis.zrange(key, "0", "-1", "WITHSCORES");
        d.scores = new Map();
        for (let i = 0; i < flat.length; i += 2) {
          d.strings.push(flat[i]);
          d.scores.set(flat[i], Number(flat[i + 1]));
        }
      }
      out.push(d);
    }
    return out;
  } finally {
    await close(redis);
  }
}

/** Whether Redis at `url` answers a PING within a second. */
async function reachable(url: string): Promise<boolean> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1_000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on("error", () => {});
  try {
    await redis.connect();
    return await redis.ping() === "PONG";
  } catch {
    return false;
  } finally {
    await close(redis);
  }
}

/** Closes `redis` and waits for its socket to end, so test sanitizers see nothing left. */
async function close(redis: Redis): Promise<void> {
  if (redis.status === "end" || redis.status === "wait") return;
  const ended = new Promise<void>((resolve) => redis.once("end", () => resolve()));
  redis.disconnect();
  await ended;
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, "//***@");
}

/**
 * A black-box test on every runtime that needs Redis: it gets a fresh key
 * prefix, whose keys are deleted afterwards, and is skipped (or, in CI, fails)
 * without Redis.
 */
export function redisTest(
  env: RedisTestEnv,
  name: string,
  fn: (rt: Runtime, prefix: string) => Promise<void>,
): void {
  bbtest(name, async (rt) => {
    assertRedis(env);
    const prefix = uniquePrefix("bb");
    try {
      await fn(rt, prefix);
    } finally {
      await deleteKeys(env.target, prefix);
    }
  }, { ignore: env.ignore });
}
