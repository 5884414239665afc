/**
 * Turns the bench's raw results into `bench/RESULTS.md`: the run's facts, the
 * summary, the performance targets met or missed (and why), the tables, and
 * how it was measured. Pure functions, no I/O, so the report can be rebuilt
 * from a saved `.json` (`deno task bench --render FILE`).
 * @module
 */
import { checkTargets, whyMissed } from "./goals.ts";
import {
  clusterTable,
  fanoutTable,
  idleTable,
  latencyTable,
  membersTable,
  redisTables,
  relayTable,
  sendersTable,
  type Tables,
} from "./report_tables.ts";
import {
  MEMORY_MODE,
  Results,
  type RunMeta,
  type RunRecord,
  SINGLE_REDIS,
  TARGET_LABELS,
} from "./results.ts";

/** Renders the whole RESULTS.md. */
export function renderReport(meta: RunMeta, records: RunRecord[], summary: string): string {
  const results = new Results(records);
  const ran = Object.keys(TARGET_LABELS).filter((t) => results.ran(t));
  // Redis mode has its own section, beside the same runtime's memory mode, and the Redis
  // Cluster its own beside Redis mode.
  const memory: Tables = {
    meta,
    results,
    targets: ran.filter((t) => !(t in MEMORY_MODE) && !(t in SINGLE_REDIS)),
  };
  const redisTargets = ran.filter((t) => t in MEMORY_MODE);
  const clusterTargets = ran.filter((t) => t in SINGLE_REDIS);
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

  L.push(
    ...fanoutTable(memory),
    ...latencyTable(memory),
    ...sendersTable(memory),
    ...relayTable(memory),
  );
  if (redisTargets.length) L.push(...redisTables({ meta, results, targets: redisTargets }));
  if (clusterTargets.length) L.push(...clusterTable({ meta, results, targets: clusterTargets }));
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
      "send counts against the server (no coordinated omission); receivers only. Many senders: " +
      "each sender an open loop of its own, their sends spread evenly over the period.",
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
  if (redisTargets.length || clusterTargets.length) {
    L.push(
      "- Redis mode: each phase of a Redis target starts its server(s) with a key prefix of its " +
        "own (`bench-<run>-<n>:`) and deletes that prefix's keys once they have stopped; the " +
        "Redis is shared, and nothing outside those prefixes is read or written. Redis " +
        "CPU-seconds are the Redis server's utime+stime over the measured window (other clients " +
        `of that Redis would count too). Redis targets run ${
          meta.settings.redis_reps ?? meta.settings.reps
        } repetition(s) of each phase, best kept, to keep the whole bench short.`,
    );
  }
  if (clusterTargets.length) {
    L.push(
      "- Redis Cluster: the bench starts its own cluster before the first run " +
        "(`REDIS_CLUSTER_BASE=7200 tests/support/redis_cluster.sh start`: three masters, three " +
        "replicas, no persistence, on ports 7200-7205, apart from the tests' cluster on " +
        "7100-7105) and stops it at the end of the run. Each phase gets its own prefix as on one " +
        "Redis; its keys are deleted on every master once the servers have stopped. Redis " +
        "CPU-seconds are the sum over the six processes (replicas included: they apply every " +
        "write their master takes). Like the one Redis, the cluster's processes are not pinned: " +
        "they run on either CPU, beside the servers and the generator, so the one Redis and the " +
        "cluster are measured alike; six processes have more wake-ups to schedule than one. " +
        `The Redis Cluster targets and the three nodes on one Redis run ${
          meta.settings.cluster_reps ?? 1
        } repetition(s) of each phase, so that the whole bench stays within its deadline ` +
        "without cutting the other targets' repetitions (so the one-node cluster, a single run, " +
        "is held against the best of one Redis's repetitions, which favours one Redis).",
    );
  }
  for (const n of meta.notes) L.push(`- ${n}`);
  L.push("");
  return L.join("\n");
}

/** The `## name` section of a Markdown report, up to the next `## ` heading, or "" if absent. */
export function section(doc: string, name: string): string {
  const at = doc.indexOf(`\n## ${name}\n`);
  if (at < 0) return "";
  const next = doc.indexOf("\n## ", at + 1);
  return doc.slice(at + 1, next < 0 ? undefined : next + 1).trimEnd();
}

/**
 * `doc` with the section `text` (which starts with its `## name` heading) in
 * place of the one of that name, or else just before `## before`, or else at the end.
 */
export function putSection(doc: string, text: string, before: string): string {
  const name = text.slice(3, text.indexOf("\n"));
  const old = section(doc, name);
  if (old) return doc.replace(old, () => text.trimEnd());
  const at = doc.indexOf(`\n## ${before}\n`);
  if (at < 0) return `${doc.trimEnd()}\n\n${text.trimEnd()}\n`;
  return `${doc.slice(0, at + 1)}${text.trimEnd()}\n\n${doc.slice(at + 1)}`;
}
