/**
 * What a bench run records — the generator's output for each phase run
 * against each target, and the facts about the run — with the target names
 * the report shows and the lookups every part of the report shares (best
 * repetition, deliveries/s, deliveries per server CPU-second).
 * @module
 */

/** A load-generator phase. */
export type Phase =
  | "fanout"
  | "latency"
  | "relay"
  | "idle"
  | "senders"
  | "members"
  | "storm";

/** Every phase, in the order a run takes them (the index is part of a run's tag). */
export const PHASES: readonly Phase[] = [
  "fanout",
  "latency",
  "relay",
  "idle",
  "senders",
  "members",
  "storm",
];

/** Phases that measure latency: the repetition with the lowest p99 is kept. */
export const OPEN_LOOP: readonly Phase[] = ["latency", "senders"];

/**
 * Phases that open connections, hold them and read the server's RSS: idle
 * connections, members in channels of {@linkcode CHANNEL_SIZE}, and the join
 * storm (every member joins one channel). They run once, not per repetition.
 */
export const MEMORY_PHASES: readonly Phase[] = ["idle", "members", "storm"];

/** Members per channel in the `members` phase. */
export const CHANNEL_SIZE = 20;

/** What one `loadgen` run printed (fields absent in phases that lack them). */
export interface LoadgenResult {
  ok: boolean;
  error?: string;
  setup_s?: number;
  receivers?: number;
  sent?: number;
  expected?: number;
  delivered?: number;
  errors?: number;
  window_s?: number;
  deliveries_per_s?: number;
  server_cpu_s?: number;
  gen_cpu_s?: number;
  lat_samples?: number;
  lat_p50_us?: number;
  lat_p99_us?: number;
  lat_p999_us?: number;
  lat_max_us?: number;
  /** Frames the receivers got that held deliveries: deliveries / frames is the batching. */
  frames?: number;
  /** The drain time ran out with deliveries still owed (a backlog, not necessarily a loss). */
  drain_timeout?: boolean;
  /**
   * CPU-seconds of the Redis server, or of every process of the Redis Cluster
   * together, over the same window (Redis targets; -1 when unreadable).
   */
  aux_cpu_s?: number;
  conns?: number;
  ready?: number;
  held?: number;
  setups_per_s?: number;
  setup_server_cpu_s?: number;
  rss_before_kb?: number;
  /** RSS when the last connection was set up, before the settle time. */
  rss_done_kb?: number;
  rss_after_kb?: number;
  rss_per_conn_b?: number;
  closes?: Record<string, number>;
  failed?: number;
}

/** One phase run against one target. */
export interface RunRecord {
  /** Target name, e.g. `signaller-bun`, `signaller-bun-redis-2`, `floor-deno`, `peerjs`. */
  target: string;
  phase: Phase;
  /** Repetition number, from 1. */
  rep: number;
  /** The generator's output, or null when the run could not happen. */
  result: LoadgenResult | null;
  /** Why the run failed (server did not start, generator crashed, ...). */
  problem?: string;
}

/** Facts about the run printed at the top of the report. */
export interface RunMeta {
  date: string;
  command: string;
  machine: string;
  versions: Record<string, string>;
  settings: Record<string, string | number | boolean>;
  elapsedS: number;
  notes: string[];
  /** Why the idle phase opened fewer connections than asked, when it did. */
  connsCapNote?: string;
}

/** Display names of the targets, in the order the tables list them. */
export const TARGET_LABELS: Record<string, string> = {
  "signaller-bun": "Signaller (Bun)",
  "signaller-deno": "Signaller (Deno)",
  "floor-bun": "floor: Bun `server.publish`",
  "floor-deno": "floor: Deno send loop",
  "y-webrtc": "y-webrtc `bin/server.js` (node)",
  "peerjs": "peerjs-server `peer` (node)",
  "signaller-bun-redis": "Signaller (Bun, Redis)",
  "signaller-bun-redis-2": "Signaller (Bun, Redis, 2 nodes)",
  "signaller-deno-redis": "Signaller (Deno, Redis)",
  "signaller-deno-redis-2": "Signaller (Deno, Redis, 2 nodes)",
  "signaller-bun-redis-3": "Signaller (Bun, Redis, 3 nodes)",
  "signaller-deno-redis-3": "Signaller (Deno, Redis, 3 nodes)",
  "signaller-bun-redis-cluster": "Signaller (Bun, Redis Cluster)",
  "signaller-bun-redis-cluster-3": "Signaller (Bun, Redis Cluster, 3 nodes)",
  "signaller-deno-redis-cluster": "Signaller (Deno, Redis Cluster)",
  "signaller-deno-redis-cluster-3": "Signaller (Deno, Redis Cluster, 3 nodes)",
  "signaller-bun-redis-2-nostreams": "Signaller (Bun, Redis, 2 nodes, streams off)",
  "signaller-deno-redis-2-nostreams": "Signaller (Deno, Redis, 2 nodes, streams off)",
  "signaller-bun-nostreams": "Signaller (Bun, streams off)",
  "signaller-deno-nostreams": "Signaller (Deno, streams off)",
  "signaller-bun-peerjs": "Signaller's PeerJS endpoint (Bun)",
  "signaller-deno-peerjs": "Signaller's PeerJS endpoint (Deno)",
  "signaller-bun-y-webrtc": "Signaller's y-webrtc endpoint (Bun)",
  "signaller-deno-y-webrtc": "Signaller's y-webrtc endpoint (Deno)",
};

/** A target's display name (its own name when it has none). */
export function label(target: string): string {
  return TARGET_LABELS[target] ?? target;
}

/**
 * Redis-mode targets and the memory-mode target of the same runtime (and the same
 * `--history`) they are compared to.
 */
export const MEMORY_MODE: Record<string, string> = {
  "signaller-bun-redis": "signaller-bun",
  "signaller-bun-redis-2": "signaller-bun",
  "signaller-bun-redis-3": "signaller-bun",
  "signaller-deno-redis": "signaller-deno",
  "signaller-deno-redis-2": "signaller-deno",
  "signaller-deno-redis-3": "signaller-deno",
  "signaller-bun-redis-2-nostreams": "signaller-bun-nostreams",
  "signaller-deno-redis-2-nostreams": "signaller-deno-nostreams",
};

/**
 * Targets on the Redis Cluster and the same runtime on one Redis with as many
 * nodes, they are compared to (and through it, to memory mode).
 */
export const SINGLE_REDIS: Record<string, string> = {
  "signaller-bun-redis-cluster": "signaller-bun-redis",
  "signaller-bun-redis-cluster-3": "signaller-bun-redis-3",
  "signaller-deno-redis-cluster": "signaller-deno-redis",
  "signaller-deno-redis-cluster-3": "signaller-deno-redis-3",
};

/** A runtime Signaller runs on: its memory-mode target and the floor it is held against. */
export interface Runtime {
  name: "Bun" | "Deno";
  target: string;
  floor: string;
}

/** The runtimes the report compares, in the order it lists them. */
export const RUNTIMES: readonly Runtime[] = [
  { name: "Bun", target: "signaller-bun", floor: "floor-bun" },
  { name: "Deno", target: "signaller-deno", floor: "floor-deno" },
];

/** Deliveries per server CPU-second of one run, when both are known. */
export function perCpu(r: LoadgenResult | undefined): number | undefined {
  if (!r?.deliveries_per_s || !r.window_s || !r.server_cpu_s || r.server_cpu_s <= 0) {
    return undefined;
  }
  return (r.deliveries_per_s * r.window_s) / r.server_cpu_s;
}

/** The records of one run, looked up by target and phase. */
export class Results {
  #records: RunRecord[];

  constructor(records: RunRecord[]) {
    this.#records = records;
  }

  /** Whether the target ran at all, or ran the given phase. */
  ran(target: string, phase?: Phase): boolean {
    return this.#records.some((r) => r.target === target && (!phase || r.phase === phase));
  }

  /** Throughput phases keep the best repetition: noise on a shared box only slows runs down. */
  best(target: string, phase: Phase): RunRecord | undefined {
    const runs = this.#records.filter((r) => r.target === target && r.phase === phase);
    const done = runs.filter((r) => r.result?.ok);
    if (done.length === 0) return runs[0];
    const key = (r: RunRecord) =>
      OPEN_LOOP.includes(phase)
        ? -(r.result?.lat_p99_us ?? Infinity)
        : MEMORY_PHASES.includes(phase)
        ? -(r.result?.rss_per_conn_b ?? Infinity)
        : (r.result?.deliveries_per_s ?? 0);
    return done.reduce((a, b) => (key(b) > key(a) ? b : a));
  }

  /** The generator's output of the best repetition, if it ran. */
  result(target: string, phase: Phase): LoadgenResult | undefined {
    return this.best(target, phase)?.result ?? undefined;
  }

  /** Deliveries/s of the best repetition. */
  dps(target: string, phase: Phase): number | undefined {
    return this.result(target, phase)?.deliveries_per_s;
  }

  /** Deliveries per server CPU-second of the best repetition. */
  perCpu(target: string, phase: Phase): number | undefined {
    return perCpu(this.result(target, phase));
  }
}
