/**
 * The servers the bench measures and how each is started: Signaller on each
 * runtime found (in memory, and in Redis mode on one node and on two; its
 * PeerJS and y-webrtc endpoints too), the floors, y-webrtc's signalling server
 * and peerjs-server.
 * @module
 */
import { exists, ROOT } from "./paths.ts";
import { run } from "./process.ts";
import { REDIS_URL } from "./redis.ts";
import type { Phase } from "./results.ts";

/** Repetitions of the Redis targets: they are extra runs, and the whole bench must stay under 10 minutes. */
export const REDIS_REPS = 2;

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
  /** Signaller in Redis mode: each phase gets a fresh key prefix, deleted after the phase. */
  redis?: boolean;
  /** Server processes per phase: 2 = two nodes of one cluster (same Redis and prefix). */
  nodes?: 1 | 2;
  /** At most this many repetitions of each phase (default: `--reps`). */
  reps?: number;
}

/** What this machine has besides Deno. */
export interface Available {
  bun: boolean;
  node: boolean;
  redis: boolean;
}

/** Where every server listens: loopback only. */
function listen(port: number): string[] {
  return ["--port", String(port), "--host", "127.0.0.1"];
}

const DENO = ["deno", "run", "-A"];

/** The targets this machine can run, Signaller runtimes picked by what exists. */
export function discoverTargets(has: Available): Target[] {
  const sigArgs = (port: number, redisPrefix?: string) => [
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
    ...(redisPrefix === undefined ? [] : ["--redis", REDIS_URL, "--redis-prefix", redisPrefix]),
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
      phases: ["fanout", "latency", "relay", "idle", "members", "storm"],
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
      phases: ["fanout", "latency", "idle", "members"],
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
  // Redis mode last: one node, then two nodes sharing the Redis and the prefix.
  for (const [rt, exe] of has.redis ? signallerOn : []) {
    for (const nodes of [1, 2] as const) {
      all.push({
        name: `signaller-${rt}-redis${nodes === 2 ? "-2" : ""}`,
        proto: "signaller",
        phases: ["fanout", "latency", "relay"],
        command: (port, { redisPrefix }) => ({ cmd: [...exe, ...sigArgs(port, redisPrefix)] }),
        ready: sigReady,
        redis: true,
        nodes,
        reps: REDIS_REPS,
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
