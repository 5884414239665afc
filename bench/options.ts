/**
 * The bench's command line (documented in `run.ts`): which targets and
 * phases, how long and how hard, where the report goes.
 * @module
 */
import { BENCH, BUILD } from "./paths.ts";
import { type Phase, PHASES } from "./results.ts";

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
  | "rate";

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
    }
  }
  return o;
}
