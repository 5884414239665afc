/**
 * One phase run against one target: its server(s) started (with a fresh
 * Redis prefix in Redis mode), the C load generator (`loadgen.c`, built here)
 * run against them with the phase's flags, its JSON result read, the servers
 * stopped and the prefix's keys deleted.
 * @module
 */
import type { BenchOptions } from "./options.ts";
import { BENCH, BUILD, exists } from "./paths.ts";
import { run, which, wrap } from "./process.ts";
import { dropPhaseKeys, phasePrefix, redisPids } from "./redis.ts";
import {
  CHANNEL_SIZE,
  type LoadgenResult,
  MEMORY_PHASES,
  type Phase,
  PHASES,
  type RunRecord,
} from "./results.ts";
import { running, type Server, startServer, stopServer } from "./servers.ts";
import type { Target } from "./targets.ts";

const LOADGEN = `${BUILD}/loadgen`;

/** One run of the plan: a target, a phase, a repetition. */
export interface Step {
  t: Target;
  phase: Phase;
  rep: number;
}

/** Compiles the generator unless the binary is newer than its source. */
export async function buildLoadgen(): Promise<void> {
  await Deno.mkdir(BUILD, { recursive: true });
  const src = `${BENCH}/loadgen.c`;
  const fresh = exists(LOADGEN) && Deno.statSync(LOADGEN).mtime! >= Deno.statSync(src).mtime!;
  if (fresh) return;
  const cc = (await which("cc")) ? "cc" : "gcc";
  const r = await run([cc, "-O2", "-Wall", "-o", LOADGEN, src]);
  if (r.code !== 0) throw new Error(`building loadgen failed:\n${r.stderr}`);
}

function loadgenArgs(
  { t, phase }: Step,
  { servers, o, tag }: { servers: Server[]; o: BenchOptions; tag: string },
): string[] {
  const [s, ...others] = servers;
  const a = [
    "--proto",
    t.proto,
    "--phase",
    // The member phases are the idle storm with a channel to join (`--group`).
    MEMORY_PHASES.includes(phase) ? "idle" : phase,
    "--host",
    "127.0.0.1",
    "--port",
    String(s.port),
    "--pid",
    String(s.pid),
    "--tag",
    tag,
    "--size",
    String(o.size),
  ];
  if (t.path !== undefined) a.push("--path", t.path);
  // More nodes: the receivers spread over them (in relay over every node but the senders'
  // first one); server CPU is every node's.
  for (const [i, node] of others.entries()) {
    a.push(`--port${i + 2}`, String(node.port), `--pid${i + 2}`, String(node.pid));
  }
  for (const pid of t.redis ? redisPids(t.redis) : []) a.push("--aux-pid", String(pid));
  if (phase === "idle") {
    a.push("--conns", String(o.conns), "--settle", o.quick ? "1" : "3");
  } else if (phase === "senders") {
    a.push(
      "--n",
      String(o.viewers),
      "--senders",
      String(o.senders),
      "--rate",
      String(o.senderRate),
      "--warmup",
      String(o.warmup),
      "--duration",
      String(o.duration),
      "--drain",
      "5",
    );
  } else if (phase === "members" || phase === "storm") {
    // Channels of 20, or one channel for all (the join storm); floors have no channels.
    const group = phase === "members" ? CHANNEL_SIZE : o.members;
    a.push("--conns", String(o.members), "--group", String(group));
    // The storm's join events are still leaving when the last reply is in, and its garbage
    // (a 500-member list in every reply) is given back by V8 some 15 s after it ends.
    const settle = phase === "storm" ? (o.quick ? 10 : 30) : (o.quick ? 2 : 5);
    a.push("--settle", String(settle));
  } else {
    a.push(
      "--n",
      String(o.receivers),
      "--pairs",
      String(o.pairs),
      "--window",
      String(o.window),
      "--rate",
      String(o.rate),
      "--warmup",
      String(o.warmup),
      "--duration",
      String(o.duration),
      // A saturated open loop drains its backlog for as long as it was given: bound it.
      "--drain",
      o.quick || phase === "latency" ? "5" : "10",
    );
  }
  return a;
}

/** Runs one step of the plan; a failure is recorded with its reason, never thrown. */
export async function runPhase(step: Step, o: BenchOptions): Promise<RunRecord> {
  const { t, phase, rep } = step;
  const record = (result: LoadgenResult | null, problem?: string): RunRecord => ({
    target: t.name,
    phase,
    rep,
    result,
    problem,
  });
  const servers: Server[] = [];
  const redisPrefix = t.redis ? phasePrefix(t.redis) : undefined;
  try {
    // The nodes of a cluster all run where a single server does (CPU 0 when pinned).
    for (let i = 0; i < (t.nodes ?? 1); i++) {
      servers.push(await startServer(t, { conns: o.conns, pin: o.pin, redisPrefix }));
    }
    const tag = (0x1000 + rep * 16 + PHASES.indexOf(phase)).toString(16);
    const cmd = wrap([LOADGEN, ...loadgenArgs(step, { servers, o, tag })], o.pin ? 1 : null);
    // Bounded well past what a healthy phase needs: a hung server costs minutes, not the run.
    const r = await run(cmd, { timeoutMs: MEMORY_PHASES.includes(phase) ? 150_000 : 90_000 });
    const line = r.stdout.trim().split("\n").pop() ?? "";
    let result: LoadgenResult;
    try {
      result = JSON.parse(line);
    } catch {
      return record(null, `generator exit ${r.code}: ${r.stderr.trim().slice(0, 200)}`);
    }
    const exited: string[] = [];
    for (const [i, server] of servers.entries()) {
      if (await running(server)) continue;
      const node = servers.length > 1 ? ` (node ${i + 1})` : "";
      exited.push(`server exited${node}: ${server.err.lines.slice(-3).join(" | ")}`);
    }
    return record(result, exited.length ? exited.join("; ") : undefined);
  } catch (e) {
    return record(null, (e as Error).message);
  } finally {
    await Promise.all(servers.map(stopServer));
    if (t.redis && redisPrefix) await dropPhaseKeys(t.redis, redisPrefix);
  }
}
