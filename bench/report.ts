/**
 * Turns the bench's raw results into `bench/RESULTS.md`: the run's facts, the
 * summary, the performance targets met or missed (and why), the tables, and
 * how it was measured. Pure functions, no I/O, so the report can be rebuilt
 * from a saved `.json` (`deno task bench --render FILE`).
 * @module
 */
import { checkTargets, whyMissed } from "./goals.ts";
import {
  fanoutTable,
  idleTable,
  latencyTable,
  membersTable,
  redisTables,
  relayTable,
  type Tables,
} from "./report_tables.ts";
import { MEMORY_MODE, Results, type RunMeta, type RunRecord, TARGET_LABELS } from "./results.ts";

/** Renders the whole RESULTS.md. */
export function renderReport(meta: RunMeta, records: RunRecord[], summary: string): string {
  const results = new Results(records);
  const ran = Object.keys(TARGET_LABELS).filter((t) => results.ran(t));
  // Redis mode has its own section, beside the same runtime's memory mode.
  const memory: Tables = { meta, results, targets: ran.filter((t) => !(t in MEMORY_MODE)) };
  const redisTargets = ran.filter((t) => t in MEMORY_MODE);
  const L: string[] = [];
  L.push("# Signaller benchmark results", "");
  L.push(`- Date: ${meta.date}`);
  L.push(`- Command: \`${meta.command}\``);
  L.push(`- Machine: ${meta.machine}`);
  L.push(
    `- Versions: ${Object.entries(meta.versions).map(([k, v]) => `${k} ${v}`).join(", ")}`,
  );
  L.push(
    `- Settings: ${Object.entries(meta.settings).map(([k, v]) => `${k}=${v}`).join(", ")}`,
  );
  L.push(`- Wall time of the whole run: ${meta.elapsedS.toFixed(0)} s`, "");
  L.push("## Summary", "", summary, "");

  L.push("## Targets", "", "| target | measured | met |", "|---|---|---|");
  const checks = checkTargets(results, meta.connsCapNote);
  for (const c of checks) {
    L.push(
      `| ${c.goal} | ${c.measured} | ${c.met === undefined ? "–" : c.met ? "yes" : "**no**"} |`,
    );
  }
  L.push("");
  const missed = checks.filter((c) => c.met === false);
  if (missed.length) {
    L.push("## Where a target is missed, and why", "");
    for (const c of missed) {
      L.push(`- **${c.goal}** (${c.measured}): ${whyMissed(c.goal) ?? "not analysed yet."}`);
    }
    L.push("");
  }

  L.push(...fanoutTable(memory), ...latencyTable(memory), ...relayTable(memory));
  if (redisTargets.length) L.push(...redisTables({ meta, results, targets: redisTargets }));
  L.push(...idleTable(memory), ...membersTable(memory));

  L.push("## Method", "");
  L.push(
    "- Load generator: `bench/loadgen.c`, built by `bench/run.ts` with the system C compiler " +
      "(`-O2`). One epoll thread speaking raw WebSocket over TCP (zero mask key, server frames " +
      "parsed from the byte stream). A delivery is a marker `~T<send time>~` found in a server " +
      "frame, so batched NDJSON frames count once per event. Generator CPU-seconds are listed " +
      "next to the server's so its share of the machine is visible: at " +
      "the Bun floor's pace the generator is about as busy as the server (the kernel spends " +
      "about as much receiving a frame as sending it), so at window 32 the loop's round " +
      "trip, not one side's core, sets that pace.",
    "- Fan-out: the sender is closed-loop: at most `window` messages without an ack (Signaller: " +
      "its `ok` reply to `/pubmsg`; floors and y-webrtc: its own copy of the message, as they " +
      "publish to the sender too). Relay: each pair is closed-loop on deliveries to its receiver. " +
      "Latency: open loop at a fixed rate; the marker carries the scheduled send time, so a late " +
      "send counts against the server (no coordinated omission); receivers only.",
    "- Every phase checks that deliveries = messages sent × receivers: ✓ all arrived; ✗ a " +
      "shortfall; ⧗ deliveries still arriving when the drain time (5–10 s after the last send) " +
      "ran out, i.e. a saturated server's backlog.",
    "- Deliveries/s and CPU are taken after a warm-up, over the measured window and its drain. " +
      "Server CPU-seconds: utime+stime from `/proc/PID/stat` (10 ms ticks); RSS: `VmRSS` from " +
      "`/proc/PID/status`, before the storm and after the settle time.",
    "- Each phase gets a fresh server process. Throughput phases keep the best of the " +
      "repetitions (noise on a shared machine only ever slows a run down); ratios use " +
      "deliveries/s, with the ratio of deliveries per server CPU-second beside it.",
  );
  if (redisTargets.length) {
    L.push(
      "- Redis mode: each phase of a Redis target starts its server(s) with a key prefix of its " +
        "own (`bench-<run>-<n>:`) and deletes that prefix's keys once they have stopped; the " +
        "Redis is shared, and nothing outside those prefixes is read or written. Redis " +
        "CPU-seconds are the Redis server's utime+stime over the measured window (other clients " +
        `of that Redis would count too). Redis targets run ${
          meta.settings.redis_reps ?? meta.settings.reps
        } repetition(s) of each phase, best kept, to keep the whole bench under 10 minutes.`,
    );
  }
  for (const n of meta.notes) L.push(`- ${n}`);
  L.push("");
  return L.join("\n");
}
