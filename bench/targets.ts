/**
 * The servers the bench measures and how each is started: Signaller on each
 * runtime found (in memory; in Redis mode on one node, two and three; on a
 * Redis Cluster on one node and three; its PeerJS and y-webrtc endpoints
 * too), the floors, y-webrtc's signalling server and peerjs-server.
 * @module
 */
import { exists, ROOT } from "./paths.ts";
import { run } from "./process.ts";
import { CLUSTER_SEEDS, REDIS_URL, type RedisKind } from "./redis.ts";
import type { Phase } from "./results.ts";

/** Repetitions of the Redis targets: they are extra runs, and the whole bench must stay short. */
export const REDIS_REPS = 2;
/**
 * Repetitions of the Redis Cluster targets and of the three nodes on one Redis
 * they are compared to: one each, or the run's deadline would cut the other
 * targets' repetitions.
 */
export const EXTRA_REPS = 1;

/** A server the bench can start: how, how to tell it is up, which phases it runs. */
export interface Target {
  name: string;
  proto: "signaller" | "floor" | "ywebrtc" | "peerjs";
  phases: Phase[];
  /**
   * Command line; `port` is 0 unless `choosePort`, then a free port picked by
   * the bench; `redisPrefix` is given to Redis-mode targets.
   */
  command(
    port: number,
    opts: { conns: number; redisPrefix?: string },
  ): { cmd: string[]; env?: Record<string, string> };
  /** The server cannot listen on port 0 and report it: the bench picks one. */
  choosePort?: boolean;
  /** The WebSocket path the generator opens (default `/`; the PeerJS protocol adds its own). */
  path?: string;
  /** A stdout line that says the server listens; group 1 is the port when present. */
  ready: RegExp;
  /**
   * Signaller in Redis mode, on the one Redis or on the bench's Redis Cluster:
   * each phase gets a fresh key prefix, deleted after the phase.
   */
  redis?: RedisKind;
  /** Server processes per phase: 2 or 3 = nodes of one Signaller cluster (same Redis and prefix). */
  nodes?: 1 | 2 | 3;
  /** At most this many repetitions of each phase (default: `--reps`). */
  reps?: number;
}

/** What this machine has besides Deno. */
export interface Available {
  bun: boolean;
  node: boolean;
  redis: boolean;
  /** `redis-server` is on the PATH: the bench can start its own Redis Cluster. */
  redisServer: boolean;
}

/** Where every server listens: loopback only. */
function listen(port: number): string[] {
  return ["--port", String(port), "--host", "127.0.0.1"];
}

const DENO = ["deno", "run", "-A"];

/** The targets this machine can run, Signaller runtimes picked by what exists. */
export function discoverTargets(has: Available): Target[] {
  const sigArgs = (port: number) => [
    "server.ts",
    ...listen(port),
    "--rate",
    "0",
    // Every generated connection comes from 127.0.0.1, and the idle phase opens 20 000.
    "--max-conns",
    "0",
    "--max-conns-per-ip",
    "0",
    "--log",
    "warn",
  ];
  /** The store flags of a Redis-mode target: its Redis and the phase's key prefix. */
  const storeArgs = (kind: RedisKind, prefix = "") => [
    ...(kind === "cluster" ? ["--redis-cluster", CLUSTER_SEEDS] : ["--redis", REDIS_URL]),
    "--redis-prefix",
    prefix,
  ];
  const sigReady = /signaller listening on ws:\/\/[^\s]*:(\d+)\//;
  const all: Target[] = [];
  const hasServer = exists(`${ROOT}/server.ts`);
  /** Runtimes with the command that runs a script on each. */
  const runtimes: [string, string[]][] = [];
  if (has.bun) runtimes.push(["bun", ["bun"]]);
  runtimes.push(["deno", DENO]);
  const signallerOn = runtimes.filter(([rt]) =>
    hasServer && (rt === "deno" || exists(`${ROOT}/server/bun.ts`))
  );
  for (const [rt, exe] of signallerOn) {
    all.push({
      name: `signaller-${rt}`,
      proto: "signaller",
      phases: ["fanout", "latency", "relay", "idle", "senders", "members", "storm"],
      command: (port) => ({ cmd: [...exe, ...sigArgs(port)] }),
      ready: sigReady,
    });
  }
  // The same with message streams off: what keeping history and numbering messages costs.
  for (const [rt, exe] of signallerOn) {
    all.push({
      name: `signaller-${rt}-nostreams`,
      proto: "signaller",
      phases: ["fanout", "relay"],
      command: (port) => ({ cmd: [...exe, ...sigArgs(port), "--history", "0"] }),
      ready: sigReady,
    });
  }
  // Signaller's PeerJS and y-webrtc endpoints, driven exactly as the servers they replace.
  for (const [rt, exe] of signallerOn) {
    all.push({
      name: `signaller-${rt}-peerjs`,
      proto: "peerjs",
      phases: ["relay"],
      command: (port) => ({ cmd: [...exe, ...sigArgs(port)] }),
      ready: sigReady,
    });
    all.push({
      name: `signaller-${rt}-y-webrtc`,
      proto: "ywebrtc",
      phases: ["fanout"],
      path: "/y-webrtc",
      command: (port) => ({ cmd: [...exe, ...sigArgs(port)] }),
      ready: sigReady,
    });
  }
  for (const [rt, exe] of runtimes) {
    all.push({
      name: `floor-${rt}`,
      proto: "floor",
      // Members on a floor: as many sockets, each answered once, no channels (so no storm).
      phases: ["fanout", "latency", "idle", "senders", "members"],
      command: (port) => ({ cmd: [...exe, `bench/floor_${rt}.ts`, ...listen(port)] }),
      ready: /floor listening on ws:\/\/[^\s]*:(\d+)\//,
    });
  }
  if (has.node) {
    all.push({
      name: "y-webrtc",
      proto: "ywebrtc",
      phases: ["fanout", "latency", "idle"],
      // bin/server.js reads only PORT and listens on every interface; the bench
      // still sends to 127.0.0.1 alone.
      command: (port) => ({
        cmd: ["node", "node_modules/y-webrtc/bin/server.js"],
        env: { PORT: String(port) },
      }),
      choosePort: true,
      ready: /Signaling server running/,
    });
    all.push({
      name: "peerjs",
      proto: "peerjs",
      phases: ["relay", "idle"],
      // concurrent_limit (default 5 000) raised so the idle phase measures memory, not the cap
      command: (port, { conns }) => ({
        cmd: [
          "node",
          "node_modules/peer/dist/bin/peerjs.js",
          ...listen(port),
          "--concurrent_limit",
          String(conns + 1000),
        ],
      }),
      choosePort: true,
      ready: /Started PeerServer on [^,]*, port: (\d+)/,
    });
  }
  // Redis mode last: one node, then two and three nodes sharing the Redis and the prefix
  // (three only where the cluster targets are compared with it: fan-out and relay).
  for (const [rt, exe] of has.redis ? signallerOn : []) {
    for (const nodes of [1, 2, 3] as const) {
      all.push({
        name: `signaller-${rt}-redis${nodes > 1 ? `-${nodes}` : ""}`,
        proto: "signaller",
        phases: nodes === 3 ? ["fanout", "relay"] : ["fanout", "latency", "relay"],
        command: (port, { redisPrefix }) => ({
          cmd: [...exe, ...sigArgs(port), ...storeArgs("single", redisPrefix)],
        }),
        ready: sigReady,
        redis: "single",
        nodes,
        reps: nodes === 3 ? EXTRA_REPS : REDIS_REPS,
      });
    }
    // Relay between two nodes with streams off: what the presence cache saves (no Redis read
    // per message), against the same runtime in memory mode with streams off.
    all.push({
      name: `signaller-${rt}-redis-2-nostreams`,
      proto: "signaller",
      phases: ["relay"],
      command: (port, { redisPrefix }) => ({
        cmd: [...exe, ...sigArgs(port), ...storeArgs("single", redisPrefix), "--history", "0"],
      }),
      ready: sigReady,
      redis: "single",
      nodes: 2,
      reps: REDIS_REPS,
    });
  }
  // The same on a Redis Cluster the bench starts: one node, and three sharing the prefix.
  for (const [rt, exe] of has.redisServer ? signallerOn : []) {
    for (const nodes of [1, 3] as const) {
      all.push({
        name: `signaller-${rt}-redis-cluster${nodes > 1 ? `-${nodes}` : ""}`,
        proto: "signaller",
        phases: ["fanout", "relay"],
        command: (port, { redisPrefix }) => ({
          cmd: [...exe, ...sigArgs(port), ...storeArgs("cluster", redisPrefix)],
        }),
        ready: sigReady,
        redis: "cluster",
        nodes,
        reps: EXTRA_REPS,
      });
    }
  }
  return all;
}

/** node_modules comes from `deno install` (package.json); a fresh clone may lack it. */
export async function ensureDeps(): Promise<void> {
  if (exists(`${ROOT}/node_modules/y-webrtc`) && exists(`${ROOT}/node_modules/peer`)) return;
  console.log("installing dependencies (deno install) ...");
  const r = await run(["deno", "install"], { timeoutMs: 300_000 });
  if (r.code !== 0) console.log(`deno install failed: ${r.stderr.slice(0, 500)}`);
}
