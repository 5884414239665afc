/**
 * The report's tables: fan-out, latency, relay and idle connections for the
 * servers in memory mode, Redis mode beside the same runtime in memory mode,
 * and the Redis Cluster beside one Redis with as many nodes. Each returns its
 * lines (a heading, the table, a blank line), or none when no target ran its
 * phase.
 * @module
 */
import {
  behind,
  busy,
  countCell,
  fmtMiB,
  fmtMs,
  fmtNum,
  fmtPerConn,
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
  SINGLE_REDIS,
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

/** Many senders at a low rate each: the latency when events from many sockets meet in a turn. */
export function sendersTable(t: Tables): string[] {
  const { meta, results } = t;
  const ran = t.targets.filter((target) => results.ran(target, "senders"));
  if (!ran.length) return [];
  const { senders, sender_rate: rate, viewers } = meta.settings;
  const offered = Number(senders) * Number(rate) * Number(viewers);
  const L = [
    `## Many senders: ${senders} senders at ${rate} msg/s each (open loop) into a ` +
    `${fmtNum(Number(viewers))}-viewer channel`,
    "",
    "The senders are members too; deliveries and latency are counted at the viewers. Events " +
    "from several senders in one turn cannot share a frame, so this shows what batching costs " +
    "when it cannot help: compare each p99 with its runtime's floor in the same run.",
    "",
    ...head([...LATENCY_HEAD, "delivered / expected", "events per frame", "floor p99 ms", "notes"]),
  ];
  for (const target of ran) {
    const rec = results.best(target, "senders");
    const r = rec?.result ?? undefined;
    const floor = RUNTIMES.find((x) => x.target === target)?.floor;
    L.push(row([
      label(target),
      ...latencyCells(r),
      busy(r),
      countCell(r),
      perFrame(r),
      floor ? fmtMs(results.result(floor, "senders")?.lat_p99_us) : "",
      [behind(r, offered), problemCell(rec)].filter(Boolean).join("; "),
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
      fmtMiB(r?.rss_before_kb),
      fmtMiB(r?.rss_after_kb),
      fmtPerConn(r?.rss_per_conn_b),
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
        fmtMiB(r?.rss_before_kb),
        fmtMiB(r?.rss_done_kb),
        fmtMiB(r?.rss_after_kb),
        fmtPerConn(r?.rss_per_conn_b),
        problemCell(rec),
      ]));
    }
  }
  L.push("");
  return L;
}

/** How the nodes of a two- and a three-node target share the load. */
const TWO_NODES = "**Two nodes**: two server processes on the same Redis and prefix. In fan-out " +
  "the sender and every other receiver are on the first node and the other half of the " +
  "receivers on the second, so half the deliveries cross nodes through Redis pub/sub; in relay " +
  "every sender is on the first node and its receiver on the second, so every message crosses.";
const THREE_NODES = "**Three nodes** (fan-out and relay): three server processes on the same " +
  "Redis and prefix. In fan-out the sender is on the first node and the receivers on the three " +
  "in turn, so two thirds of the deliveries cross nodes; in relay every sender is on the first " +
  "node and the receivers on the second and third in turn, so every message crosses. Server " +
  "CPU-s is all nodes' together.";

/**
 * Fan-out then relay rows of the targets: deliveries/s, server and Redis CPU,
 * the count, and the `compare` cells of each.
 */
function redisRows(t: Tables, compare: (target: string, phase: Phase) => string[]): string[] {
  const L: string[] = [];
  for (const [phase, what] of [["fanout", "fan-out"], ["relay", "relay"]] as const) {
    for (const target of t.targets) {
      if (!t.results.ran(target, phase)) continue;
      const rec = t.results.best(target, phase);
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
        ...compare(target, phase),
        problemCell(rec),
      ]));
    }
  }
  return L;
}

const REDIS_HEAD = [
  "server",
  "phase",
  "deliveries/s",
  "server CPU-s",
  "Redis CPU-s",
  "deliveries / server CPU-s",
  "delivered / expected",
  "events per frame",
];

/** The Redis-mode section: one, two and three nodes, each against its runtime's memory mode. */
export function redisTables(t: Tables): string[] {
  const { meta, results } = t;
  const L = [
    "## Redis mode: fan-out and relay through Redis",
    "",
    "Signaller started with `--redis redis://127.0.0.1:6379` and a fresh `--redis-prefix` per " +
    "phase, under the same loads as above. **One node**: one server, all connections on it. " +
    `${TWO_NODES} ${THREE_NODES} The ratios compare with the same runtime in memory mode ` +
    "(deliveries/s, and deliveries per server CPU-second in brackets). With message streams " +
    "(the default) each `/pubmsg` and `/privmsg` is one Lua script that numbers, stores and " +
    "publishes it; a sender's window of messages goes to Redis back to back (pipelined), so a " +
    "window costs about one round trip, not one per message. The targets with streams off " +
    "(`--history 0`) compare with memory mode with streams off: there a relay to the other node " +
    "reads the target's presence from the node's presence cache, not from Redis.",
    "",
    ...head([...REDIS_HEAD, "vs memory mode", "notes"]),
    ...redisRows(t, (target, phase) => [
      versus(results, { target, base: MEMORY_MODE[target], phase }),
    ]),
  ];
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

/** The Redis Cluster section: one and three nodes, against one Redis and against memory mode. */
export function clusterTable(t: Tables): string[] {
  const { results } = t;
  return [
    "## Redis Cluster: fan-out and relay through a Redis Cluster",
    "",
    "Signaller started with `--redis-cluster` on a local Redis Cluster the bench starts for the " +
    "run (three masters and three replicas on 127.0.0.1:7200-7205, `tests/support/" +
    "redis_cluster.sh`), a fresh `--redis-prefix` per phase, under the same loads as above. " +
    `**One node**: one server, all connections on it. ${THREE_NODES} Redis CPU-s is the six ` +
    "cluster processes' together. The ratios compare with the same runtime and node count on " +
    "one Redis (the section above), and with the same runtime in memory mode (deliveries/s, " +
    "and deliveries per server CPU-second in brackets).",
    "",
    ...head([...REDIS_HEAD, "vs one Redis, same nodes", "vs memory mode", "notes"]),
    ...redisRows(t, (target, phase) => {
      const single = SINGLE_REDIS[target];
      return [
        versus(results, { target, base: single, phase }),
        versus(results, { target, base: MEMORY_MODE[single], phase }),
      ];
    }),
    "",
  ];
}
