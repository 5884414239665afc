/**
 * The report's tables: fan-out, latency, relay and idle connections for the
 * servers in memory mode, and Redis mode beside the same runtime in memory
 * mode. Each returns its lines (a heading, the table, a blank line), or none
 * when no target ran its phase.
 * @module
 */
import {
  behind,
  busy,
  countCell,
  fmtKiB,
  fmtMs,
  fmtNum,
  fmtRate,
  fmtRatio,
  perCpuCell,
  perFrame,
  problemCell,
  ratio,
  redisCpu,
} from "./format.ts";
import {
  CHANNEL_SIZE,
  label,
  type LoadgenResult,
  MEMORY_MODE,
  type Phase,
  type Results,
  type RunMeta,
  type RunRecord,
  RUNTIMES,
} from "./results.ts";

/** What every table is drawn from. */
export interface Tables {
  meta: RunMeta;
  results: Results;
  /** The targets of this section, in report order. */
  targets: string[];
}

/** A markdown table's header row and separator. */
function head(columns: string[]): string[] {
  return [row(columns), `|${"---|".repeat(columns.length)}`];
}

function row(cells: string[]): string {
  return `| ${cells.join(" | ")} |`;
}

/** `deliveries/s ratio (CPU: deliveries per CPU-second ratio)` of a target against another. */
function versus(results: Results, cmp: { target: string; base: string; phase: Phase }): string {
  const { target, base, phase } = cmp;
  return `${fmtRatio(ratio(results.dps(target, phase), results.dps(base, phase)))} (CPU: ${
    fmtRatio(ratio(results.perCpu(target, phase), results.perCpu(base, phase)))
  })`;
}

/** The open loop's offered deliveries/s: its rate times the channel's receivers. */
function offered(meta: RunMeta): number {
  return Number(meta.settings.rate) * Number(meta.settings.receivers);
}

function latencyCells(r: LoadgenResult | undefined): string[] {
  return [fmtMs(r?.lat_p50_us), fmtMs(r?.lat_p99_us), fmtMs(r?.lat_p999_us), fmtMs(r?.lat_max_us)];
}

function latencyNotes(rec: RunRecord | undefined, meta: RunMeta): string {
  return [behind(rec?.result ?? undefined, offered(meta)), problemCell(rec)]
    .filter(Boolean).join("; ");
}

const LATENCY_HEAD = ["server", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "server CPU-s (busy)"];

/** Fan-out or relay: deliveries/s and their cost, then how they compare with other servers. */
function throughputTable(
  t: Tables,
  spec: { phase: Phase; heading: string; compare: string[]; versus(target: string): string[] },
): string[] {
  const ran = t.targets.filter((target) => t.results.ran(target, spec.phase));
  if (!ran.length) return [];
  const L = [
    spec.heading,
    "",
    ...head([
      "server",
      "deliveries/s",
      "server CPU-s",
      "deliveries / server CPU-s",
      "generator CPU-s",
      "delivered / expected",
      "events per frame",
      ...spec.compare,
      "notes",
    ]),
  ];
  for (const target of ran) {
    const rec = t.results.best(target, spec.phase);
    const r = rec?.result ?? undefined;
    L.push(row([
      label(target),
      fmtRate(r?.deliveries_per_s),
      fmtNum(r?.server_cpu_s, 2),
      perCpuCell(r),
      fmtNum(r?.gen_cpu_s, 2),
      countCell(r),
      perFrame(r),
      ...spec.versus(target),
      problemCell(rec),
    ]));
  }
  L.push("");
  return L;
}

/** Fan-out: against the runtime's own floor and against y-webrtc. */
export function fanoutTable(t: Tables): string[] {
  const { meta, results } = t;
  return throughputTable(t, {
    phase: "fanout",
    heading: `## Fan-out: ${meta.settings.receivers} receivers in one channel, one sender, ` +
      `${meta.settings.size}-byte danmaku, window ${meta.settings.window}`,
    compare: ["vs own floor", "vs y-webrtc"],
    versus: (target) => {
      const floor = RUNTIMES.find((r) => r.target === target)?.floor;
      return [
        floor ? versus(results, { target, base: floor, phase: "fanout" }) : "",
        target === "y-webrtc" ? "" : versus(results, { target, base: "y-webrtc", phase: "fanout" }),
      ];
    },
  });
}

/** Relay: against peerjs-server. */
export function relayTable(t: Tables): string[] {
  const { meta, results } = t;
  return throughputTable(t, {
    phase: "relay",
    heading:
      `## Relay: ${meta.settings.pairs} sender/receiver pairs, window ${meta.settings.window} per pair`,
    compare: ["vs peerjs-server"],
    versus: (target) => [
      target === "peerjs" ? "" : versus(results, { target, base: "peerjs", phase: "relay" }),
    ],
  });
}

/** Latency of the open loop, with how busy the server was. */
export function latencyTable(t: Tables): string[] {
  const { meta, results } = t;
  const ran = t.targets.filter((target) => results.ran(target, "latency"));
  if (!ran.length) return [];
  const L = [
    `## Latency: ${meta.settings.rate} msg/s (open loop) into a ${meta.settings.receivers}-member channel`,
    "",
    "A server whose core is near 100 % busy at this rate queues, and its p99 shows it: " +
    "compare each row's busy share with the floor's.",
    "",
    ...head([...LATENCY_HEAD, "delivered / expected", "events per frame", "notes"]),
  ];
  for (const target of ran) {
    const rec = results.best(target, "latency");
    const r = rec?.result ?? undefined;
    L.push(row([
      label(target),
      ...latencyCells(r),
      busy(r),
      countCell(r),
      perFrame(r),
      latencyNotes(rec, meta),
    ]));
  }
  L.push("");
  return L;
}

/** The setup storm and the memory each idle connection holds. */
export function idleTable(t: Tables): string[] {
  const { meta, results } = t;
  const ran = t.targets.filter((target) => results.ran(target, "idle"));
  if (!ran.length) return [];
  const L = [
    `## Idle connections and setup storm: ${meta.settings.conns} connections`,
    "",
    "Each connection: TCP connect, WebSocket upgrade, then the protocol's setup (Signaller: " +
    "`/descp`; y-webrtc: subscribe + ping; peerjs: wait for `OPEN`; floors: one message " +
    "answered). Held = answered a WebSocket ping after the settle time.",
    "",
    ...head([
      "server",
      "set up",
      "held",
      "setups/s",
      "server CPU-s for the storm",
      "RSS before MiB",
      "RSS after MiB",
      "RSS per connection",
      "notes",
    ]),
  ];
  for (const target of ran) {
    const rec = results.best(target, "idle");
    const r = rec?.result ?? undefined;
    L.push(row([
      label(target),
      fmtNum(r?.ready),
      fmtNum(r?.held),
      fmtRate(r?.setups_per_s),
      fmtNum(r?.setup_server_cpu_s, 2),
      fmtNum((r?.rss_before_kb ?? -1024) / 1024, 1),
      fmtNum((r?.rss_after_kb ?? -1024) / 1024, 1),
      r?.rss_per_conn_b !== undefined ? `${fmtKiB(r.rss_per_conn_b, 2)} KiB` : "–",
      problemCell(rec),
    ]));
  }
  L.push("");
  return L;
}

/** Members in channels of 20, and the join storm into one channel: time and memory per member. */
export function membersTable(t: Tables): string[] {
  const { meta, results } = t;
  const phases = [["members", `channels of ${CHANNEL_SIZE}`], ["storm", "one channel"]] as const;
  const ran = t.targets.filter((target) => phases.some(([p]) => results.ran(target, p)));
  if (!ran.length) return [];
  const members = meta.settings.members ?? meta.settings.conns;
  const L = [
    `## Memory per member: ${members} described members`,
    "",
    "Each connection: TCP connect, WebSocket upgrade, `/descp`, then `/join`: of a channel of " +
    `${CHANNEL_SIZE} (${CHANNEL_SIZE} members a channel, the channels filled one after another), ` +
    "or of one channel that every member joins (the join storm: with the server's defaults each " +
    "join is announced to the members already there until the channel passes the presence " +
    "limit of 1 000, and each `/join` reply lists the first 500 members). Complete = every " +
    "`/join` answered, from the first connect. RSS is read when the last `/join` is answered " +
    "and after the settle time (5 s; the storm 30 s: its events still leave after the last " +
    "reply, and V8 gives the storm's garbage back some 15 s after it ends). The floors hold as many sockets, each answered once, with no " +
    "channels (so no storm): what the runtime itself costs.",
    "",
    ...head([
      "server",
      "joined",
      "held",
      "complete in s",
      "server CPU-s",
      "RSS before MiB",
      "RSS when complete MiB",
      "RSS settled MiB",
      "RSS per member",
      "notes",
    ]),
  ];
  for (const [phase, what] of phases) {
    for (const target of ran.filter((x) => results.ran(x, phase))) {
      const rec = results.best(target, phase);
      const r = rec?.result ?? undefined;
      L.push(row([
        `${label(target)}, ${what}`,
        fmtNum(r?.ready),
        fmtNum(r?.held),
        fmtNum(r?.setup_s, 2),
        fmtNum(r?.setup_server_cpu_s, 2),
        fmtNum((r?.rss_before_kb ?? -1024) / 1024, 1),
        fmtNum((r?.rss_done_kb ?? -1024) / 1024, 1),
        fmtNum((r?.rss_after_kb ?? -1024) / 1024, 1),
        r?.rss_per_conn_b !== undefined ? `${fmtKiB(r.rss_per_conn_b, 2)} KiB` : "–",
        problemCell(rec),
      ]));
    }
  }
  L.push("");
  return L;
}

/** The Redis-mode section: one node and two nodes, each against its runtime's memory mode. */
export function redisTables(t: Tables): string[] {
  const { meta, results } = t;
  const L = [
    "## Redis mode: fan-out and relay through Redis",
    "",
    "Signaller started with `--redis redis://127.0.0.1:6379` and a fresh `--redis-prefix` per " +
    "phase, under the same loads as above. **One node**: one server, all connections on it. " +
    "**Two nodes**: two server processes on the same Redis and prefix. In fan-out the sender " +
    "and every other receiver are on the first node and the other half of the receivers on the " +
    "second, so half the deliveries cross nodes through Redis pub/sub; in relay every sender is " +
    "on the first node and its receiver on the second, so every message crosses. Server CPU-s " +
    "is both nodes' together. The ratios compare with the same runtime in memory mode " +
    "(deliveries/s, and deliveries per server CPU-second in brackets).",
    "",
    ...head([
      "server",
      "phase",
      "deliveries/s",
      "server CPU-s",
      "Redis CPU-s",
      "deliveries / server CPU-s",
      "delivered / expected",
      "events per frame",
      "vs memory mode",
      "notes",
    ]),
  ];
  for (const [phase, what] of [["fanout", "fan-out"], ["relay", "relay"]] as const) {
    for (const target of t.targets) {
      if (!results.ran(target, phase)) continue;
      const rec = results.best(target, phase);
      const r = rec?.result ?? undefined;
      L.push(row([
        label(target),
        what,
        fmtRate(r?.deliveries_per_s),
        fmtNum(r?.server_cpu_s, 2),
        redisCpu(r),
        perCpuCell(r),
        countCell(r),
        perFrame(r),
        versus(results, { target, base: MEMORY_MODE[target], phase }),
        problemCell(rec),
      ]));
    }
  }
  L.push("");
  const lat = t.targets.filter((target) => results.ran(target, "latency"));
  if (!lat.length) return L;
  L.push(
    `Latency in Redis mode: ${meta.settings.rate} msg/s (open loop) into a ` +
      `${meta.settings.receivers}-member channel (two nodes: half the members on each).`,
    "",
    ...head([
      ...LATENCY_HEAD,
      "Redis CPU-s",
      "delivered / expected",
      "memory mode p99 ms",
      "notes",
    ]),
  );
  for (const target of lat) {
    const rec = results.best(target, "latency");
    const r = rec?.result ?? undefined;
    L.push(row([
      label(target),
      ...latencyCells(r),
      busy(r),
      redisCpu(r),
      countCell(r),
      fmtMs(results.result(MEMORY_MODE[target], "latency")?.lat_p99_us),
      latencyNotes(rec, meta),
    ]));
  }
  L.push("");
  return L;
}
