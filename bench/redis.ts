/**
 * The Redis the Redis-mode targets use, and the bench's own Redis Cluster.
 *
 * The Redis at 127.0.0.1:6379 is shared, so the bench writes and deletes only
 * its own keys: each phase of a Redis target gets a fresh key prefix,
 * `bench-<run>-<n>:`, whose keys are deleted once its servers have stopped,
 * and the end of the run sweeps whatever this run's prefixes left.
 *
 * The cluster targets run on a Redis Cluster the bench starts for the run
 * (`tests/support/redis_cluster.sh` on ports 7200-7205: three masters, three
 * replicas) and stops at its end; the tests' cluster on 7100-7105 is never
 * touched. Its phases get prefixes and deletion the same way.
 * @module
 */
import { exists } from "./paths.ts";
import { run } from "./process.ts";

const HOST = "127.0.0.1";
const PORT = 6379;

/** The Redis servers are started against. */
export const REDIS_URL = `redis://${HOST}:${PORT}`;

/** Which Redis a target's servers share: the one Redis, or the bench's Redis Cluster. */
export type RedisKind = "single" | "cluster";

/** The bench's cluster: its first port, its six nodes, and the seeds given to `--redis-cluster`. */
const CLUSTER_BASE = 7200;
const CLUSTER_PORTS = [0, 1, 2, 3, 4, 5].map((i) => CLUSTER_BASE + i);
export const CLUSTER_SEEDS = CLUSTER_PORTS.slice(0, 3).map((p) => `${HOST}:${p}`).join(",");
const CLUSTER_SCRIPT = ["env", `REDIS_CLUSTER_BASE=${CLUSTER_BASE}`, "bash"];
const CLUSTER_SH = "tests/support/redis_cluster.sh";

const state = {
  /** This run's key prefixes start with `bench-<run>-`. */
  run: crypto.randomUUID().slice(0, 8),
  /** Prefixes handed out so far. */
  phases: 0,
  /** The kinds of Redis those prefixes were handed out for. */
  used: new Set<RedisKind>(),
  /** The Redis server's pid when its /proc entry is readable (its CPU is reported), else 0. */
  pid: 0,
  /** The pids of the cluster's six processes once the bench has started it, else empty. */
  clusterPids: [] as number[],
  /** Whether this run started the cluster (and so stops it). */
  clusterUp: false,
};

/** `redis-cli` against one port of this machine, bounded in time. */
function redisCli(port: number, args: string[], timeoutMs = 30_000) {
  return run(["redis-cli", "-h", HOST, "-p", String(port), ...args], { timeoutMs });
}

/** A Redis server's `info server`. */
async function serverInfo(port: number): Promise<string> {
  return (await redisCli(port, ["info", "server"], 5_000)).stdout;
}

/** The pid in an `info server`, when its /proc entry is readable (its CPU can be read), else 0. */
function pidOf(info: string): number {
  const pid = Number(info.match(/process_id:(\d+)/)?.[1] ?? 0);
  return pid > 0 && exists(`/proc/${pid}/stat`) ? pid : 0;
}

/** The Redis version when it answers, else null; also notes its pid when its CPU can be read. */
export async function redisUp(): Promise<string | null> {
  try {
    if ((await redisCli(PORT, ["ping"], 5_000)).stdout.trim() !== "PONG") return null;
    const info = await serverInfo(PORT);
    state.pid = pidOf(info);
    return info.match(/redis_version:(\S+)/)?.[1] ?? "?";
  } catch {
    return null;
  }
}

/**
 * Starts the bench's Redis Cluster (or finds it up) and notes its processes' pids;
 * returns null when it serves, else why not.
 */
export async function startCluster(): Promise<string | null> {
  try {
    state.clusterUp = true;
    const r = await run([...CLUSTER_SCRIPT, CLUSTER_SH, "start"], { timeoutMs: 60_000 });
    if (r.code !== 0) return `${CLUSTER_SH} start failed: ${r.stderr.trim().slice(0, 200)}`;
    const pids = (await Promise.all(CLUSTER_PORTS.map(serverInfo))).map(pidOf);
    state.clusterPids = pids.every((p) => p > 0) ? pids : [];
    return null;
  } catch (e) {
    return `${CLUSTER_SH} start failed: ${(e as Error).message}`;
  }
}

/** Stops the bench's cluster if this run started it (its data goes with it). */
export async function stopCluster(): Promise<void> {
  if (!state.clusterUp) return;
  state.clusterUp = false;
  state.clusterPids = [];
  await run([...CLUSTER_SCRIPT, CLUSTER_SH, "stop"], { timeoutMs: 30_000 }).catch(() => {});
}

/** The pids whose CPU is reported as the Redis's: the one server, or every node of the cluster. */
export function redisPids(kind: RedisKind): number[] {
  if (kind === "cluster") return state.clusterPids;
  return state.pid > 0 ? [state.pid] : [];
}

/** A fresh key prefix for one phase of a target on that kind of Redis. */
export function phasePrefix(kind: RedisKind): string {
  state.used.add(kind);
  return `bench-${state.run}-${++state.phases}:`;
}

/** The ports that hold keys: the one Redis, or the cluster's masters as it reports them now. */
async function keyPorts(kind: RedisKind): Promise<number[]> {
  if (kind === "single") return [PORT];
  for (const port of CLUSTER_PORTS) {
    const r = await redisCli(port, ["cluster", "nodes"], 5_000).catch(() => null);
    if (!r || r.code !== 0 || !r.stdout.trim()) continue;
    return r.stdout.split("\n")
      .filter((l) => / (myself,)?master /.test(l))
      .map((l) => Number(l.split(" ")[1].match(/:(\d+)@/)?.[1] ?? 0))
      .filter((p) => p > 0);
  }
  return [];
}

/**
 * Deletes the keys under `pattern` (this run's own: `bench-<run>-...`) on every
 * port that holds keys; returns how many remain, -1 when that is unknown.
 */
async function dropKeys(kind: RedisKind, pattern: string): Promise<number> {
  const q = `'${pattern}'`;
  let left = 0;
  try {
    const ports = await keyPorts(kind);
    if (!ports.length) return -1;
    for (const port of ports) {
      const cli = `redis-cli -h ${HOST} -p ${port}`;
      // One UNLINK per key, all through one client: in a cluster a command's keys share a slot.
      await run([
        "sh",
        "-c",
        `${cli} --scan --pattern ${q} | sed 's/.*/UNLINK "&"/' | ${cli} >/dev/null`,
      ]);
      const rest = await run(["sh", "-c", `${cli} --scan --pattern ${q} | wc -l`]);
      left += Number(rest.stdout.trim()) || 0;
    }
    return left;
  } catch {
    return -1;
  }
}

/** The end of a phase: its servers have stopped and write no more, so its keys can all go. */
export async function dropPhaseKeys(kind: RedisKind, prefix: string): Promise<void> {
  const left = await dropKeys(kind, `${prefix}*`);
  if (left !== 0) console.log(`  warning: ${left} Redis keys under ${prefix} not deleted`);
}

/** The end of the run: whatever keys of this run a phase left (each phase deletes its own). */
export async function dropRunKeys(): Promise<void> {
  for (const kind of state.used) {
    if (kind === "cluster" && !state.clusterUp) continue;
    const left = await dropKeys(kind, `bench-${state.run}-*`);
    if (left !== 0) {
      console.log(`warning: ${left} ${kind} Redis keys under bench-${state.run}- remain`);
    }
  }
}
