/**
 * The Redis the Redis-mode targets use. It is shared, so the bench writes and
 * deletes only its own keys: each phase of a Redis target gets a fresh key
 * prefix, `bench-<run>-<n>:`, whose keys are deleted once its servers have
 * stopped, and the end of the run sweeps whatever this run's prefixes left.
 * @module
 */
import { exists } from "./paths.ts";
import { run } from "./process.ts";

const HOST = "127.0.0.1";
const PORT = "6379";
const CLI = ["redis-cli", "-h", HOST, "-p", PORT];

/** The Redis servers are started against. */
export const REDIS_URL = `redis://${HOST}:${PORT}`;

const state = {
  /** This run's key prefixes start with `bench-<run>-`. */
  run: crypto.randomUUID().slice(0, 8),
  /** Prefixes handed out so far. */
  phases: 0,
  /** The Redis server's pid when its /proc entry is readable (its CPU is reported), else 0. */
  pid: 0,
};

/** `redis-cli` against the bench's Redis, bounded in time. */
function redisCli(args: string[], timeoutMs = 30_000) {
  return run([...CLI, ...args], { timeoutMs });
}

/** The Redis version when it answers, else null; also notes its pid when its CPU can be read. */
export async function redisUp(): Promise<string | null> {
  try {
    if ((await redisCli(["ping"], 5_000)).stdout.trim() !== "PONG") return null;
    const info = (await redisCli(["info", "server"], 5_000)).stdout;
    const pid = Number(info.match(/process_id:(\d+)/)?.[1] ?? 0);
    if (pid > 0 && exists(`/proc/${pid}/stat`)) state.pid = pid;
    return info.match(/redis_version:(\S+)/)?.[1] ?? "?";
  } catch {
    return null;
  }
}

/** The Redis server's pid when its CPU can be read, else 0. */
export function redisPid(): number {
  return state.pid;
}

/** A fresh key prefix for one phase of a Redis target. */
export function phasePrefix(): string {
  return `bench-${state.run}-${++state.phases}:`;
}

/** Deletes the keys under `pattern` (this run's own: `bench-<run>-...`); returns how many remain. */
async function dropKeys(pattern: string): Promise<number> {
  const q = `'${pattern}'`;
  const cli = CLI.join(" ");
  try {
    await run(["sh", "-c", `${cli} --scan --pattern ${q} | xargs -r -n 500 ${cli} del >/dev/null`]);
    const left = await run(["sh", "-c", `${cli} --scan --pattern ${q} | wc -l`]);
    return Number(left.stdout.trim()) || 0;
  } catch {
    return -1;
  }
}

/** The end of a phase: its servers have stopped and write no more, so its keys can all go. */
export async function dropPhaseKeys(prefix: string): Promise<void> {
  const left = await dropKeys(`${prefix}*`);
  if (left !== 0) console.log(`  warning: ${left} Redis keys under ${prefix} not deleted`);
}

/** The end of the run: whatever keys of this run a phase left (each phase deletes its own). */
export async function dropRunKeys(): Promise<void> {
  if (state.phases === 0) return;
  const left = await dropKeys(`bench-${state.run}-*`);
  if (left !== 0) console.log(`warning: ${left} Redis keys under bench-${state.run}- remain`);
}
