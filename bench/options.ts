/**
 * The bench's command line (documented in `run.ts`): which targets and
 * phases, how long and how hard, where the report goes.
 * @module
 */
import { BENCH, BUILD } from "./paths.ts";
import { type Phase, PHASES } from "./results.ts";

/** What `deno task bench --help` prints. */
export const USAGE = `deno task bench [flags]   (= deno run -A bench/run.ts)

Starts each target's server(s) on 127.0.0.1 once per phase, drives them with the C load
generator (bench/loadgen.c) and writes bench/RESULTS.md.

  --quick            ~1 minute: short phases, 2 000 idle connections, one repetition,
                     report to bench/.build/RESULTS.quick.md unless --out is given
  --only a,b         targets (default: every one this machine can run):
                       signaller-bun, signaller-deno              memory mode
                       signaller-bun-nostreams, signaller-deno-nostreams
                                                                  memory, --history 0
                       signaller-bun-peerjs, signaller-deno-peerjs
                                                                  the /peerjs endpoint (relay)
                       signaller-bun-y-webrtc, signaller-deno-y-webrtc
                                                                  the /y-webrtc endpoint (fan-out)
                       signaller-bun-redis, signaller-deno-redis  one node on the Redis at
                                                                  127.0.0.1:6379
                       signaller-bun-redis-2, signaller-deno-redis-2
                                                                  two nodes on that Redis
                       signaller-bun-redis-2-nostreams, signaller-deno-redis-2-nostreams
                                                                  two nodes on that Redis,
                                                                  --history 0 (relay)
                       signaller-bun-redis-3, signaller-deno-redis-3
                                                                  three nodes on that Redis
                                                                  (fan-out, relay)
                       signaller-bun-redis-cluster, signaller-deno-redis-cluster
                                                                  one node on a Redis Cluster the
                                                                  bench starts on 127.0.0.1:7200-7205
                                                                  and stops at the end (fan-out, relay)
                       signaller-bun-redis-cluster-3, signaller-deno-redis-cluster-3
                                                                  three nodes on that cluster
                                                                  (fan-out, relay)
                       floor-bun, floor-deno                      the runtimes' bare WebSocket floors
                       y-webrtc, peerjs                           the servers Signaller replaces (node)
  --phases a,b       phases: fanout, latency, relay, idle, senders, members (described members
                     joined to channels of 20), storm (the same members all joining one
                     channel: the join storm); a target runs those it has
  --duration S       measured seconds per throughput phase (default 5; quick 1)
  --warmup S         warm-up seconds before measuring (default 1; quick 0.3)
  --reps N           repetitions of fanout/latency/relay, best kept (default 3; quick 1;
                     Redis targets at most 2, Redis Cluster and three-node targets 1)
  --conns K          idle connections (default 20 000, capped by the open-files limit)
  --members M        members of the members and storm phases (default 10 000; quick 2 000)
  --receivers N      fan-out and latency: receivers in the channel (default 200)
  --pairs P          relay: sender/receiver pairs (default 50)
  --window W         un-acknowledged messages per sender (default 32)
  --size B           message bytes (default 60)
  --rate R           latency: messages/s, open loop (default 1000)
  --viewers V --senders S --sender-rate R
                     the senders phase: S senders at R msg/s each into V viewers
                     (default 50 at 2 msg/s into 1 000)
  --minutes M        the whole run ends within M minutes: runs that do not fit are
                     skipped and listed in the report (default 10; quick 4)
  --no-pin           do not pin servers to CPU 0 and the generator to CPU 1
  --no-spin          no idle-priority spinners keeping both CPUs awake
  --out FILE         where to write the report (raw numbers: bench/.build/<name>.json)
  --render FILE      no run: rewrite the report from such a .json
  --help             this text`;

/** Options of one bench run. */
export interface BenchOptions {
  quick: boolean;
  only: string[] | null;
  phases: Phase[];
  duration: number;
  warmup: number;
  reps: number;
  conns: number;
  /** Members of the `members` and `storm` phases. */
  members: number;
  receivers: number;
  pairs: number;
  window: number;
  size: number;
  rate: number;
  /** The many-senders phase: channel members who only read, senders, each sender's msg/s. */
  viewers: number;
  senders: number;
  senderRate: number;
  /** The whole run ends within this many minutes: no run starts in the last one. */
  minutes: number;
  pin: boolean;
  spin: boolean;
  out: string;
}

type Numeric =
  | "duration"
  | "warmup"
  | "reps"
  | "conns"
  | "members"
  | "receivers"
  | "pairs"
  | "window"
  | "size"
  | "rate"
  | "viewers"
  | "senders"
  | "senderRate"
  | "minutes";

/** Flags that take a positive number: the option, and whether it is rounded to an integer. */
const NUMERIC: Record<string, [Numeric, boolean]> = {
  "--duration": ["duration", false],
  "--warmup": ["warmup", false],
  "--reps": ["reps", true],
  "--conns": ["conns", true],
  "--members": ["members", true],
  "--receivers": ["receivers", true],
  "--pairs": ["pairs", true],
  "--window": ["window", true],
  "--size": ["size", true],
  "--rate": ["rate", true],
  "--viewers": ["viewers", true],
  "--senders": ["senders", true],
  "--sender-rate": ["senderRate", true],
  "--minutes": ["minutes", false],
};

/** Parses the command line (see the module doc of `run.ts`). */
export function parseOptions(args: string[]): BenchOptions {
  const quick = args.includes("--quick");
  const o: BenchOptions = {
    quick,
    only: null,
    phases: [...PHASES],
    duration: quick ? 1 : 5,
    warmup: quick ? 0.3 : 1,
    reps: quick ? 1 : 3,
    conns: quick ? 2000 : 20000,
    members: quick ? 2000 : 10000,
    receivers: 200,
    pairs: 50,
    window: 32,
    size: 60,
    rate: 1000,
    viewers: 1000,
    senders: 50,
    senderRate: 2,
    minutes: quick ? 4 : 10,
    pin: !args.includes("--no-pin"),
    spin: !args.includes("--no-spin"),
    out: quick ? `${BUILD}/RESULTS.quick.md` : `${BENCH}/RESULTS.md`,
  };
  for (let i = 0; i < args.length; i++) {
    const v = args[i + 1];
    const numeric = NUMERIC[args[i]];
    if (numeric) {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${args[i]} needs a positive number`);
      const [key, integer] = numeric;
      o[key] = integer ? Math.round(n) : n;
      i++;
      continue;
    }
    switch (args[i]) {
      case "--quick":
      case "--no-pin":
      case "--no-spin":
        break;
      case "--render":
        i++;
        break;
      case "--only":
        o.only = v.split(",");
        i++;
        break;
      case "--phases":
        o.phases = v.split(",") as Phase[];
        i++;
        break;
      case "--out":
        o.out = v;
        i++;
        break;
      default:
        // A mistyped flag would otherwise start a full run with the defaults.
        throw new Error(`unknown flag ${args[i]} (deno task bench --help)`);
    }
  }
  return o;
}
