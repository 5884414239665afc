/**
 * The Signaller benchmark: `deno task bench` (= `deno run -A bench/run.ts`).
 *
 * Builds the C load generator, then for every target — Signaller on each
 * runtime found (Deno when `server.ts` exists, Bun when `server/bun.ts` exists
 * and `bun` is on PATH), the same in Redis mode on one, two and three nodes
 * when a Redis answers at 127.0.0.1:6379, and on a Redis Cluster on one and
 * three nodes when `redis-server` is on PATH, the floors (`floor_bun.ts`,
 * `floor_deno.ts`), y-webrtc's signalling server and peerjs-server — starts a
 * fresh server per phase on 127.0.0.1, runs the generator against it, stops it,
 * and writes `bench/RESULTS.md`. Everything is bounded: each phase has a
 * timeout, each server is killed after its phase, and the whole run has a
 * deadline. Redis targets get a fresh key prefix per phase (`bench-<run>-<n>:`),
 * whose keys are deleted after the phase; nothing else in that Redis is touched.
 * The cluster targets run on a Redis Cluster the bench starts on ports
 * 7200-7205 (`tests/support/redis_cluster.sh`) and stops at the end.
 *
 * Flags: `deno task bench --help` (the text is `USAGE` in `options.ts`).
 *
 * The parts, by concern: `options.ts` (the flags), `targets.ts` (the servers
 * and how each is started), `servers.ts` (starting, readiness, stopping),
 * `phases.ts` (one phase: the generator's flags and its result), `redis.ts`
 * (key prefixes and their deletion, the bench's Redis Cluster), `process.ts`
 * (child processes, CPU pinning, spinners), `machine.ts` (facts for the
 * header); the report:
 * `results.ts` (the raw records), `report.ts` with `report_tables.ts`,
 * `goals.ts` and `summary.ts`, and `format.ts` for its cells. The generator is
 * `loadgen.c`; the floors are `floor_bun.ts` and `floor_deno.ts`.
 *
 * @module
 */
import { buildLoadgen, runPhase, type Step } from "./phases.ts";
import { hardFileLimit, loadAverage, machine, versions } from "./machine.ts";
import { type BenchOptions, parseOptions, USAGE } from "./options.ts";
import { BUILD, ROOT } from "./paths.ts";
import { killAll, startSpinners, which } from "./process.ts";
import { dropRunKeys, REDIS_URL, redisUp, startCluster, stopCluster } from "./redis.ts";
import { renderReport, section } from "./report.ts";
import { MEMORY_PHASES, type RunMeta, type RunRecord } from "./results.ts";
import { renderSummary } from "./summary.ts";
import { discoverTargets, ensureDeps, EXTRA_REPS, REDIS_REPS, type Target } from "./targets.ts";

/**
 * Caps the idle phase's connections to what the open-files limit allows;
 * returns why, for the report, when it did.
 */
function capConns(o: BenchOptions, notes: string[]): string | undefined {
  const limit = hardFileLimit();
  // Each connection is one descriptor in the server (and one here); keep room for the rest.
  const maxConns = limit - 100;
  o.members = Math.min(o.members, maxConns);
  if (o.conns <= maxConns) return undefined;
  const why = `${o.conns.toLocaleString("en-US")} asked; the open-files limit of ${
    limit.toLocaleString("en-US")
  } per process caps a server below that`;
  notes.push(
    `The open-files hard limit here is ${limit} per process and cannot be raised without ` +
      `root's CAP_SYS_RESOURCE, so the idle phase opens ${maxConns} connections instead of ` +
      `${o.conns}: a server needs one descriptor per connection plus its own.`,
  );
  o.conns = maxConns;
  return why;
}

/** Notes on what this machine lacks, and so what did not run. */
function availabilityNotes(
  targets: Target[],
  has: { bun: boolean; node: boolean; redis: string | null; redisServer: boolean },
): string[] {
  const notes: string[] = [];
  if (!targets.some((t) => t.name.startsWith("signaller"))) {
    notes.push("No Signaller server was found (server.ts): only the reference servers ran.");
  }
  if (!has.bun) notes.push("`bun` is not on PATH: Bun targets skipped.");
  if (!has.node) notes.push("`node` is not on PATH: y-webrtc and peerjs-server skipped.");
  if (has.redis === null) {
    notes.push(`No Redis answered at ${REDIS_URL} (or no \`redis-cli\`): Redis targets skipped.`);
  }
  if (!has.redisServer) {
    notes.push("`redis-server` or `redis-cli` is not on PATH: Redis Cluster targets skipped.");
  }
  return notes;
}

/** Notes on pinning: which CPU each side of the loop runs on. */
function pinNotes(targets: Target[]): string[] {
  const notes = [
    "Servers run pinned to CPU 0 and the generator to CPU 1 (`taskset`), so each has one core " +
    "of the two; runtimes with helper threads (Deno's I/O, GC) share CPU 0 with their JS thread.",
  ];
  if (targets.some((t) => (t.nodes ?? 1) > 1)) {
    notes.push(
      "Two- and three-node runs: every node is pinned to CPU 0 (where a single server runs) and " +
        "the generator to CPU 1; with two cores there is no third one, so the nodes share one " +
        "core and the numbers show the cluster's cost per delivery, not how it scales: each " +
        "more node adds its own Redis round trips, pub/sub decoding and event loop to that one " +
        "core. Redis is a process of the machine, not the bench's: it is not pinned and runs on " +
        "either CPU.",
    );
  }
  if (targets.some((t) => t.redis === "cluster")) {
    notes.push(
      "Redis Cluster runs: the cluster's six processes are not pinned either, as the one Redis " +
        "is not: they take their CPU from both cores, the servers' and the generator's, so what " +
        "they cost shows partly as a slower generator or server; their own CPU is the table's " +
        "Redis CPU-s.",
    );
  }
  return notes;
}

/**
 * Every phase once first, then the extra repetitions: if the deadline comes, only
 * repetitions are lost. Targets interleave, so a slow spell on the shared machine
 * hits them alike rather than one target's every run.
 */
function plan(targets: Target[], o: BenchOptions): Step[] {
  const steps: Step[] = [];
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const phase of o.phases) {
      if (MEMORY_PHASES.includes(phase) && rep > 1) continue;
      for (const t of targets) {
        if (t.phases.includes(phase) && rep <= (t.reps ?? o.reps)) steps.push({ t, phase, rep });
      }
    }
  }
  return steps;
}

/** The console line of one finished run. */
function progress(rec: RunRecord, seconds: number): string {
  const r = rec.result;
  const what = !r
    ? `FAILED ${rec.problem}`
    : MEMORY_PHASES.includes(rec.phase)
    ? `held ${r.held}/${r.conns}, ${Math.round(r.setups_per_s ?? 0)} setups/s in ${
      (r.setup_s ?? 0).toFixed(1)
    } s, ${((r.rss_per_conn_b ?? 0) / 1024).toFixed(2)} KiB/conn`
    : `${Math.round(r.deliveries_per_s ?? 0)} deliveries/s, p99 ${
      ((r.lat_p99_us ?? 0) / 1000).toFixed(2)
    } ms, cpu ${r.server_cpu_s}s, ${r.delivered}/${r.expected}${r.ok ? "" : " NOT OK"}`;
  return `  ${rec.target.padEnd(22)} ${rec.phase.padEnd(8)} #${rec.rep}  ${what}  (${
    seconds.toFixed(1)
  } s)${rec.problem && r ? ` [${rec.problem}]` : ""}`;
}

/** Writes the report and the raw numbers it comes from. */
async function write(meta: RunMeta, records: RunRecord[], o: BenchOptions): Promise<string> {
  await Deno.mkdir(BUILD, { recursive: true });
  // The raw numbers, so the report can be re-rendered (--render) without a new run.
  const json = `${BUILD}/${o.out.split("/").pop()!.replace(/\.md$/, "")}.json`;
  await Deno.writeTextFile(json, JSON.stringify({ meta, records }, null, 2));
  const summary = renderSummary(records, o.conns);
  await Deno.writeTextFile(o.out, await keepRunApart(o.out, renderReport(meta, records, summary)));
  return summary;
}

/**
 * `report` with the sections of the report already at `out` that are run apart
 * from this bench appended: the fuzz figures (`bench/fuzz.ts`) and the soak
 * (`bench/soak.ts`).
 */
async function keepRunApart(out: string, report: string): Promise<string> {
  let old = "";
  try {
    old = await Deno.readTextFile(out);
  } catch {
    return report;
  }
  const kept = ["Fuzz", "Soak"].map((name) => section(old, name)).filter((s) => s !== "");
  return [report.trimEnd(), ...kept].join("\n\n") + "\n";
}

/** `--render FILE.json`: rewrites the report from a saved run. */
async function render(json: string, out: string): Promise<void> {
  const { meta, records } = JSON.parse(await Deno.readTextFile(json)) as {
    meta: RunMeta;
    records: RunRecord[];
  };
  const summary = renderSummary(records, Number(meta.settings.conns));
  await Deno.writeTextFile(out, await keepRunApart(out, renderReport(meta, records, summary)));
  console.log(`${summary}\n\nwrote ${out} from ${json}`);
}

async function main() {
  const started = performance.now();
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) return console.log(USAGE);
  let o: BenchOptions;
  try {
    o = parseOptions(Deno.args);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(2);
  }
  const renderFrom = Deno.args.indexOf("--render");
  if (renderFrom >= 0) return render(Deno.args[renderFrom + 1], o.out);
  // Other work on the machine skews every number: say how busy it was before we began.
  const loadBefore = loadAverage();
  Deno.addSignalListener("SIGINT", () => {
    killAll().then(dropRunKeys).then(stopCluster).then(() => Deno.exit(130));
  });
  if ((navigator.hardwareConcurrency ?? 1) < 2 || !(await which("taskset"))) o.pin = false;
  const notes: string[] = [];
  const connsCapNote = capConns(o, notes);
  await ensureDeps();
  await buildLoadgen();
  const has = {
    bun: await which("bun"),
    node: await which("node"),
    redis: (await which("redis-cli")) ? await redisUp() : null,
    redisServer: (await which("redis-server")) && (await which("redis-cli")),
  };
  let targets = discoverTargets({ ...has, redis: has.redis !== null });
  if (o.only) {
    const unknown = o.only.filter((n) => !targets.some((t) => t.name === n));
    if (unknown.length) console.log(`--only: not available here: ${unknown.join(", ")}`);
    targets = targets.filter((t) => o.only!.includes(t.name));
  }
  notes.push(...availabilityNotes(targets, has));
  if (targets.some((t) => t.redis === "cluster")) {
    console.log("starting the bench's Redis Cluster on 127.0.0.1:7200-7205 ...");
    const why = await startCluster();
    if (why) {
      notes.push(`The Redis Cluster did not start (${why}): Redis Cluster targets skipped.`);
      targets = targets.filter((t) => t.redis !== "cluster");
    }
  }
  if (o.pin) notes.push(...pinNotes(targets));
  // No run starts in the last minute, so the whole bench, its last phase included,
  // ends within `--minutes`.
  const deadline = started + (o.minutes - 1) * 60_000;
  if (o.pin && o.spin) {
    await startSpinners([0, 1], (deadline - performance.now()) / 1000 + 30);
    notes.push(
      "Both CPUs carry an idle-priority (SCHED_IDLE) busy loop during the run: in this VM a halted " +
        "vCPU wakes slowly, which made closed-loop results flip between two modes (2.0 M vs " +
        "5.5 M deliveries/s for the same Bun floor). Server and generator preempt it at once, " +
        "and its CPU time is not counted to them. `--no-spin` turns it off.",
    );
  }
  const records: RunRecord[] = [];
  const steps = plan(targets, o);
  console.log(
    `bench: ${steps.length} runs over ${targets.map((t) => t.name).join(", ")}; ` +
      `report -> ${o.out.replace(`${ROOT}/`, "")}`,
  );
  for (const step of steps) {
    if (performance.now() > deadline) {
      const { t, phase, rep } = step;
      notes.push(`Run deadline reached: ${t.name} ${phase} rep ${rep} and later runs skipped.`);
      break;
    }
    const t0 = performance.now();
    const rec = await runPhase(step, o);
    records.push(rec);
    console.log(progress(rec, (performance.now() - t0) / 1000));
  }
  const meta: RunMeta = {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    command: `deno task bench${Deno.args.length ? " " + Deno.args.join(" ") : ""}`,
    machine: await machine(),
    versions: await versions(has),
    settings: {
      receivers: o.receivers,
      pairs: o.pairs,
      conns: o.conns,
      members: o.members,
      window: o.window,
      size: o.size,
      rate: o.rate,
      viewers: o.viewers,
      senders: o.senders,
      sender_rate: o.senderRate,
      warmup_s: o.warmup,
      duration_s: o.duration,
      reps: o.reps,
      ...(targets.some((t) => t.redis) ? { redis_reps: Math.min(o.reps, REDIS_REPS) } : {}),
      ...(targets.some((t) => t.reps === EXTRA_REPS)
        ? { cluster_reps: Math.min(o.reps, EXTRA_REPS) }
        : {}),
      pinned: o.pin,
      spinners: o.pin && o.spin,
    },
    elapsedS: (performance.now() - started) / 1000,
    notes: [
      ...notes,
      `Load average (1, 5, 15 min) before the run: ${loadBefore}${
        Number(loadBefore.split(" ")[0]) > 0.5
          ? " — other work was running on the machine, so expect noise"
          : " (a quiet machine)"
      }.`,
    ],
    connsCapNote,
  };
  const summary = await write(meta, records, o);
  console.log(`\n${summary}\n\nwrote ${o.out} in ${meta.elapsedS.toFixed(0)} s`);
}

if (import.meta.main) {
  try {
    await main();
  } finally {
    await killAll();
    await dropRunKeys();
    await stopCluster();
  }
}
