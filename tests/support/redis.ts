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
import { Redis } from "ioredis";
import { bbtest, type Runtime } from "./server.ts";

/** How Redis-backed tests should run. */
export interface RedisTestEnv {
  /** The Redis URL: `REDIS_URL`, or `redis://127.0.0.1:6379`. */
  url: string;
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
    return { url, required, available, ignore };
  })();
  return checked;
}

/**
 * Throws when Redis was unreachable: called first in each Redis test, so a CI
 * run without Redis fails at once with the reason instead of timing out.
 */
export function assertRedis(env: RedisTestEnv): void {
  if (!env.available) {
    throw new Error(`Redis is required (CI=true) but does not answer at ${redact(env.url)}`);
  }
}

/** A key prefix no other test run uses, e.g. `signaller-test-3f9a0c12:`. */
export function uniquePrefix(tag = "test"): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `signaller-${tag}-${hex}:`;
}

/** Deletes every key under `prefix`. */
export async function deleteKeys(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  redis.on("error", () => {});
  try {
    await redis.connect();
    const match = prefix.replace(/[*?[\]\\]/g, "\\$&") + "*";
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", match, "COUNT", 1000);
      if (keys.length > 0) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== "0");
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
      await deleteKeys(env.url, prefix);
    }
  }, { ignore: env.ignore });
}
