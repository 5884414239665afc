/**
 * The few sentences at the top of the report (and for the README), written
 * from the same numbers as the tables.
 * @module
 */
import { fmtKiB, fmtMs, fmtNum, fmtRate, fmtRatio, ratio } from "./format.ts";
import { Results, type RunRecord, type Runtime, RUNTIMES } from "./results.ts";

/** A few sentences for the README, generated from the same numbers. */
export function renderSummary(records: RunRecord[], fullConns: number): string {
  const results = new Results(records);
  const parts: string[] = [];
  for (const runtime of RUNTIMES) {
    const memory = memorySummary(results, { runtime, fullConns });
    if (memory) parts.push(memory);
    const redis = redisSummary(results, runtime);
    if (redis) parts.push(redis);
    const cluster = clusterSummary(results, runtime);
    if (cluster) parts.push(cluster);
  }
  if (!parts.length) return "No Signaller runtime was available in this run; see the tables.";
  return parts.join(" ");
}

/** One sentence on a runtime in memory mode, against its floor and the other servers. */
function memorySummary(
  results: Results,
  { runtime, fullConns }: { runtime: Runtime; fullConns: number },
): string {
  const { target: s, floor } = runtime;
  const f = results.dps(s, "fanout");
  const rl = results.dps(s, "relay");
  const lat = results.result(s, "latency");
  const senders = results.result(s, "senders");
  const idle = results.result(s, "idle");
  const bits: string[] = [];
  if (f !== undefined) {
    bits.push(
      `fans danmaku out at ${fmtRate(f)} deliveries/s to a 200-viewer channel (${
        fmtRatio(ratio(f, results.dps(floor, "fanout")))
      } its runtime's floor, ${fmtRatio(ratio(f, results.dps("y-webrtc", "fanout")))} y-webrtc)`,
    );
  }
  if (rl !== undefined) {
    bits.push(
      `relays ${fmtRate(rl)} signalling messages/s over 50 pairs (${
        fmtRatio(ratio(rl, results.dps("peerjs", "relay")))
      } peerjs-server)`,
    );
  }
  if (lat?.lat_p99_us !== undefined) {
    bits.push(`keeps p99 latency at ${fmtMs(lat.lat_p99_us)} ms at 1 000 msg/s into 200 members`);
  }
  if (senders?.lat_p99_us !== undefined) {
    bits.push(
      `keeps it at ${fmtMs(senders.lat_p99_us)} ms (its floor: ${
        fmtMs(results.result(floor, "senders")?.lat_p99_us)
      } ms) with 50 senders at 2 msg/s into 1 000 viewers`,
    );
  }
  if (idle?.rss_per_conn_b !== undefined) {
    bits.push(
      `holds ${fmtNum(idle.held)} of ${fmtNum(idle.conns ?? fullConns)} idle described ` +
        `connections at ${fmtKiB(idle.rss_per_conn_b, 1)} KiB each, set up at ${
          fmtRate(idle.setups_per_s)
        }/s`,
    );
  }
  const members = results.result(s, "members"), storm = results.result(s, "storm");
  if (members?.rss_per_conn_b !== undefined) {
    bits.push(
      `keeps ${fmtNum(members.ready)} members in channels of 20 at ${
        fmtKiB(members.rss_per_conn_b, 1)
      } KiB each`,
    );
  }
  if (storm?.rss_per_conn_b !== undefined) {
    bits.push(
      `takes ${fmtNum(storm.ready)} joining one channel in ${fmtNum(storm.setup_s, 1)} s, ` +
        `settling at ${fmtKiB(storm.rss_per_conn_b, 1)} KiB per member`,
    );
  }
  return bits.length ? `On ${runtime.name}, Signaller ${bits.join("; ")}.` : "";
}

/** One sentence on a runtime's Redis mode, one node and two, against its memory mode. */
function redisSummary(results: Results, runtime: Runtime): string {
  const memory = runtime.target;
  const two = "two nodes (half the fan-out deliveries and every relayed message cross Redis)";
  const bits = [[`${memory}-redis`, "one node"], [`${memory}-redis-2`, two]]
    .map(([t, where]) => versusBit(results, { target: t, base: memory, where }))
    .filter(Boolean);
  if (!bits.length) return "";
  return `In Redis mode on ${runtime.name} (ratios to memory mode), ${bits.join("; ")}.`;
}

/** One sentence on a runtime on the Redis Cluster, one node and three, against one Redis. */
function clusterSummary(results: Results, runtime: Runtime): string {
  const memory = runtime.target;
  const bits = [["", "one node"], ["-3", "three nodes"]]
    .map(([n, where]) =>
      versusBit(results, {
        target: `${memory}-redis-cluster${n}`,
        base: `${memory}-redis${n}`,
        where,
      })
    )
    .filter(Boolean);
  if (!bits.length) return "";
  return `On a Redis Cluster on ${runtime.name} (ratios to one Redis with as many nodes), ` +
    `${bits.join("; ")}.`;
}

/** `on <where> it fans out X/s (r×) and relays Y/s (r×)`, or "" when neither ran. */
function versusBit(
  results: Results,
  { target, base, where }: { target: string; base: string; where: string },
): string {
  const f = results.dps(target, "fanout"), rl = results.dps(target, "relay");
  const parts: string[] = [];
  if (f !== undefined) {
    parts.push(`fans out ${fmtRate(f)}/s (${fmtRatio(ratio(f, results.dps(base, "fanout")))})`);
  }
  if (rl !== undefined) {
    parts.push(`relays ${fmtRate(rl)}/s (${fmtRatio(ratio(rl, results.dps(base, "relay")))})`);
  }
  return parts.length ? `on ${where} it ${parts.join(" and ")}` : "";
}
