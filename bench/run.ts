/**
 * The Signaller benchmark: `deno task bench` (= `deno run -A bench/run.ts`).
 *
 * Builds the C load generator, then for every target — Signaller on each
 * runtime found (Deno when `server.ts` exists, Bun when `server/bun.ts` exists
 * and `bun` is on PATH), the same in Redis mode on one node and on two nodes
 * when a Redis answers at 127.0.0.1:6379, the floors (`floor_bun.ts`,
 * `floor_deno.ts`), y-webrtc's signalling server and peerjs-server — starts a
 * fresh server per phase on 127.0.0.1, runs the generator against it, stops it,
 * and writes `bench/RESULTS.md`. Everything is bounded: each phase has a
 * timeout, each server is killed after its phase, and the whole run has a
 * deadline. Redis targets get a fresh key prefix per phase (`bench-<run>-<n>:`),
 * whose keys are deleted after the phase; nothing else in that Redis is touched.
 *
 * Flags:
 *   --quick            ~1 minute: short phases, 2 000 idle connections, one repetition,
 *                      report to bench/.build/RESULTS.quick.md unless --out is given
 *   --only a,b         targets: signaller-bun, signaller-deno, signaller-bun-redis,
 *                      signaller-deno-redis, signaller-bun-redis-2, signaller-deno-redis-2,
 *                      floor-bun, floor-deno, y-webrtc, peerjs
 *   --phases a,b       phases: fanout, latency, relay, idle
 *   --duration S       measured seconds per throughput phase (default 5; quick 1)
 *   --warmup S         warm-up seconds before measuring (default 1; quick 0.3)
 *   --reps N           repetitions of fanout/latency/relay, best kept (default 3; quick 1)
 *   --conns K          idle connections (default 20 000, capped by the open-files limit)
 *   --receivers N --pairs P --window W --size B --rate R
 *   --no-pin           do not pin server to CPU 0 and generator to CPU 1
 *   --no-spin          no idle-priority spinners keeping both CPUs awake (see below)
 *   --out FILE         where to write the report (raw numbers: bench/.build/<name>.json)
 *   --render FILE      no run: rewrite the report from such a .json
 *
 * @module
 */
import {
  type LoadgenResult,
  type Phase,
  renderReport,
  renderSummary,
  type RunMeta,
  type RunRecord,
} from "./report.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const BENCH = `${ROOT}/bench`;
const BUILD = `${BENCH}/.build`;
const LOADGEN = `${BUILD}/loadgen`;

/** The Redis the Redis-mode targets use (shared: only this run's prefix is ever written or deleted). */
const REDIS = {
  url: "redis://127.0.0.1:6379",
  host: "127.0.0.1",
  port: "6379",
  /** This run's key prefixes start with `bench-<run>-`. */
  run: crypto.randomUUID().slice(0, 8),
  phases: 0,
  /** The Redis server's pid when its /proc entry is readable (its CPU is reported), else 0. */
  pid: 0,
};
/** Repetitions of the Redis targets: they are extra runs, and the whole bench must stay under 10 minutes. */
const REDIS_REPS = 2;

/** Options of one bench run. */
export interface BenchOptions {
  quick: boolean;
  only: string[] | null;
  phases: Phase[];
  duration: number;
  warmup: number;
  reps: number;
  conns: number;
  receivers: number;
  pairs: number;
  window: number;
  size: number;
  rate: number;
  pin: boolean;
  spin: boolean;
  out: string;
}

/** Parses the command line (see the module doc). */
export function parseOptions(args: string[]): BenchOptions {
  const quick = args.includes("--quick");
  const o: BenchOptions = {
    quick,
    only: null,
    phases: ["fanout", "latency", "relay", "idle"],
    duration: quick ? 1 : 5,
    warmup: quick ? 0.3 : 1,
    reps: quick ? 1 : 3,
    conns: quick ? 2000 : 20000,
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
    const num = () => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${args[i]} needs a positive number`);
      i++;
      return n;
    };
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
      case "--duration":
        o.duration = num();
        break;
      case "--warmup":
        o.warmup = num();
        break;
      case "--reps":
        o.reps = Math.round(num());
        break;
      case "--conns":
        o.conns = Math.round(num());
        break;
      case "--receivers":
        o.receivers = Math.round(num());
        break;
      case "--pairs":
        o.pairs = Math.round(num());
        break;
      case "--window":
        o.window = Math.round(num());
        break;
      case "--size":
        o.size = Math.round(num());
        break;
      case "--rate":
        o.rate = Math.round(num());
        break;
    }
  }
  return o;
}

/** A server the bench can start: how, how to tell it is up, which phases it runs. */
interface Target {
  name: string;
  proto: "signaller" | "floor" | "ywebrtc" | "peerjs";
  phases: Phase[];
  /**
   * Command line; `port` is 0 unless `choosePort`, then a free port picked here;
   * `redisPrefix` is given to Redis-mode targets.
   */
  command(
    port: number,
    conns: number,
    redisPrefix?: string,
  ): { cmd: string[]; env?: Record<string, string> };
  /** The server cannot listen on port 0 and report it: the bench picks one. */
  choosePort?: boolean;
  /** A stdout line that says the server listens; group 1 is the port when present. */
  ready: RegExp;
  /** Signaller in Redis mode: each phase gets a fresh key prefix, deleted after the phase. */
  redis?: boolean;
  /** Server processes per phase: 2 = two nodes of one cluster (same Redis and prefix). */
  nodes?: 1 | 2;
  /** At most this many repetitions of each phase (default: `--reps`). */
  reps?: number;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function run(cmd: string[], opts: { cwd?: string; timeoutMs?: number } = {}) {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd: opts.cwd ?? ROOT,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(opts.timeoutMs ?? 120_000),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function which(bin: string): Promise<boolean> {
  try {
    return (await run(["sh", "-c", `command -v ${bin}`])).code === 0;
  } catch {
    return false;
  }
}

async function version(cmd: string[]): Promise<string> {
  try {
    const r = await run(cmd, { timeoutMs: 20_000 });
    return (r.stdout || r.stderr).split("\n")[0].trim();
  } catch {
    return "unavailable";
  }
}

function pkgVersion(name: string): string {
  try {
    return JSON.parse(Deno.readTextFileSync(`${ROOT}/node_modules/${name}/package.json`)).version;
  } catch {
    return "not installed";
  }
}

/** The targets this machine can run, Signaller runtimes picked by what exists. */
function discoverTargets(hasBun: boolean, hasNode: boolean, hasRedis: boolean): Target[] {
  const sigArgs = (port: number, redisPrefix?: string) => [
    "server.ts",
    "--port",
    String(port),
    "--host",
    "127.0.0.1",
    "--rate",
    "0",
    // Every generated connection comes from 127.0.0.1, and the idle phase opens 20 000.
    "--max-conns",
    "0",
    "--max-conns-per-ip",
    "0",
    "--log",
    "warn",
    ...(redisPrefix === undefined ? [] : ["--redis", REDIS.url, "--redis-prefix", redisPrefix]),
  ];
  const sigReady = /signaller listening on ws:\/\/[^\s]*:(\d+)\//;
  const floorReady = /floor listening on ws:\/\/[^\s]*:(\d+)\//;
  const all: Target[] = [];
  const hasServer = exists(`${ROOT}/server.ts`);
  /** Signaller runtimes: name suffix and the command before `server.ts`. */
  const runtimes: [string, string[]][] = [];
  if (hasServer && hasBun && exists(`${ROOT}/server/bun.ts`)) runtimes.push(["bun", ["bun"]]);
  if (hasServer) runtimes.push(["deno", ["deno", "run", "-A"]]);
  for (const [rt, exe] of runtimes) {
    all.push({
      name: `signaller-${rt}`,
      proto: "signaller",
      phases: ["fanout", "latency", "relay", "idle"],
      command: (port) => ({ cmd: [...exe, ...sigArgs(port)] }),
      ready: sigReady,
    });
  }
  if (hasBun) {
    all.push({
      name: "floor-bun",
      proto: "floor",
      phases: ["fanout", "latency", "idle"],
      command: (port) => ({
        cmd: ["bun", "bench/floor_bun.ts", "--port", String(port), "--host", "127.0.0.1"],
      }),
      ready: floorReady,
    });
  }
  all.push({
    name: "floor-deno",
    proto: "floor",
    phases: ["fanout", "latency", "idle"],
    command: (port) => ({
      cmd: [
        "deno",
        "run",
        "-A",
        "bench/floor_deno.ts",
        "--port",
        String(port),
        "--host",
        "127.0.0.1",
      ],
    }),
    ready: floorReady,
  });
  if (hasNode) {
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
      command: (port, conns) => ({
        cmd: [
          "node",
          "node_modules/peer/dist/bin/peerjs.js",
          "--port",
          String(port),
          "--host",
          "127.0.0.1",
          "--concurrent_limit",
          String(conns + 1000),
        ],
      }),
      choosePort: true,
      ready: /Started PeerServer on [^,]*, port: (\d+)/,
    });
  }
  // Redis mode last: one node, then two nodes sharing the Redis and the prefix.
  for (const [rt, exe] of hasRedis ? runtimes : []) {
    for (const nodes of [1, 2] as const) {
      all.push({
        name: `signaller-${rt}-redis${nodes === 2 ? "-2" : ""}`,
        proto: "signaller",
        phases: ["fanout", "latency", "relay"],
        command: (port, _conns, prefix) => ({ cmd: [...exe, ...sigArgs(port, prefix)] }),
        ready: sigReady,
        redis: true,
        nodes,
        reps: REDIS_REPS,
      });
    }
  }
  return all;
}

async function freePort(): Promise<number> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await new Promise((r) => setTimeout(r, 10));
  return port;
}

/** Keeps the last lines of a stream and resolves when a line matches. */
class LineTap {
  lines: string[] = [];
  #done: Promise<void>;
  #waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#done = this.#pump(stream);
  }

  async #pump(stream: ReadableStream<Uint8Array>) {
    const dec = new TextDecoder();
    let buf = "";
    // Drained to the end: a server blocked on a full stdout pipe would stall the bench.
    for await (const chunk of stream) {
      buf += dec.decode(chunk, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.lines.push(line);
        if (this.lines.length > 40) this.lines.shift();
        for (const w of [...this.#waiters]) {
          const m = line.match(w.re);
          if (m) {
            this.#waiters.splice(this.#waiters.indexOf(w), 1);
            w.resolve(m);
          }
        }
      }
    }
  }

  wait(re: RegExp, ms: number): Promise<RegExpMatchArray | null> {
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(null), ms);
      this.#waiters.push({
        re,
        resolve: (m) => {
          clearTimeout(t);
          resolve(m);
        },
      });
    });
  }

  done(): Promise<void> {
    return this.#done.catch(() => {});
  }
}

/** A running server process. */
interface Server {
  child: Deno.ChildProcess;
  pid: number;
  port: number;
  out: LineTap;
  err: LineTap;
}

const live = new Set<Deno.ChildProcess>();

/** Wraps a command: open-files soft limit raised to the hard one, pinned to a CPU. */
function wrap(cmd: string[], cpu: number | null): string[] {
  const pin = cpu === null ? [] : ["taskset", "-c", String(cpu)];
  // exec keeps the pid, so /proc/PID is the server itself, not a shell.
  return ["sh", "-c", 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', "sh", ...pin, ...cmd];
}

async function startServer(t: Target, opts: BenchOptions, redisPrefix?: string): Promise<Server> {
  const port = t.choosePort ? await freePort() : 0;
  const { cmd, env } = t.command(port, opts.conns, redisPrefix);
  const full = wrap(cmd, opts.pin ? 0 : null);
  const child = new Deno.Command(full[0], {
    args: full.slice(1),
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  live.add(child);
  const out = new LineTap(child.stdout);
  const err = new LineTap(child.stderr);
  const m = await Promise.race([
    out.wait(t.ready, 30_000),
    child.status.then(() => null),
  ]);
  if (!m) {
    await stopServer({ child, pid: child.pid, port, out, err });
    throw new Error(
      `${t.name} did not start: ${[...out.lines, ...err.lines].slice(-6).join(" | ")}`,
    );
  }
  const realPort = m[1] ? Number(m[1]) : port;
  // The readiness line may precede listen() by a moment (y-webrtc prints first).
  for (let i = 0; i < 100; i++) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: realPort });
      c.close();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { child, pid: child.pid, port: realPort, out, err };
}

async function stopServer(s: Server): Promise<void> {
  try {
    s.child.kill("SIGTERM");
  } catch { /* already gone */ }
  const t = setTimeout(() => {
    try {
      s.child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, 5000);
  await s.child.status;
  clearTimeout(t);
  await Promise.all([s.out.done(), s.err.done()]);
  live.delete(s.child);
}

/**
 * One SCHED_IDLE busy loop per CPU, for the whole run. In a virtual machine an
 * idle vCPU halts, and waking it takes long enough to dominate a closed loop
 * whose two ends sit on two CPUs: the same server measured 2.0 M or 5.5 M
 * deliveries/s depending on whether the vCPUs happened to be awake. An
 * idle-class task never delays a runnable server or generator (they preempt it
 * at once) and its CPU time is not counted to them. `timeout` ends it even if
 * the bench dies.
 */
async function startSpinners(cpus: number[], seconds: number): Promise<void> {
  if (!(await which("chrt"))) return;
  for (const cpu of cpus) {
    const child = new Deno.Command("chrt", {
      args: [
        "-i",
        "0",
        "taskset",
        "-c",
        String(cpu),
        "timeout",
        String(Math.ceil(seconds)),
        "sh",
        "-c",
        "while :; do :; done",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    live.add(child);
  }
}

function killAll() {
  for (const c of live) {
    try {
      // SIGTERM first: `timeout` (the spinners' parent) forwards it to its child;
      // SIGKILL would orphan the loop until its own time runs out.
      c.kill("SIGTERM");
    } catch { /* gone */ }
  }
  const rest = [...live];
  live.clear();
  return Promise.race([
    Promise.all(rest.map((c) => c.status)),
    new Promise((r) => setTimeout(r, 5000)),
  ]).then(() => {
    for (const c of rest) {
      try {
        c.kill("SIGKILL");
      } catch { /* gone */ }
    }
  });
}

/** `redis-cli` against the bench's Redis, bounded in time. */
function redisCli(args: string[], timeoutMs = 30_000) {
  return run(["redis-cli", "-h", REDIS.host, "-p", REDIS.port, ...args], { timeoutMs });
}

/** Whether the Redis answers; also notes its pid when its CPU can be read. */
async function redisUp(): Promise<string | null> {
  try {
    if ((await redisCli(["ping"], 5_000)).stdout.trim() !== "PONG") return null;
    const info = (await redisCli(["info", "server"], 5_000)).stdout;
    const pid = Number(info.match(/process_id:(\d+)/)?.[1] ?? 0);
    if (pid > 0 && exists(`/proc/${pid}/stat`)) REDIS.pid = pid;
    return info.match(/redis_version:(\S+)/)?.[1] ?? "?";
  } catch {
    return null;
  }
}

/** A fresh key prefix for one phase of a Redis target. */
function redisPrefix(): string {
  return `bench-${REDIS.run}-${++REDIS.phases}:`;
}

/** Deletes the keys under `pattern` (this run's own: `bench-<run>-...`); returns how many remain. */
async function dropKeys(pattern: string): Promise<number> {
  const q = `'${pattern}'`;
  const cli = `redis-cli -h ${REDIS.host} -p ${REDIS.port}`;
  try {
    await run(["sh", "-c", `${cli} --scan --pattern ${q} | xargs -r -n 500 ${cli} del >/dev/null`]);
    const left = await run(["sh", "-c", `${cli} --scan --pattern ${q} | wc -l`]);
    return Number(left.stdout.trim()) || 0;
  } catch {
    return -1;
  }
}

function loadgenArgs(
  t: Target,
  phase: Phase,
  servers: Server[],
  o: BenchOptions,
  tag: string,
): string[] {
  const [s, s2] = servers;
  const a = [
    "--proto",
    t.proto,
    "--phase",
    phase,
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
  // Two nodes: receivers on the second (all of them in relay, half in fan-out), CPU of both.
  if (s2) a.push("--port2", String(s2.port), "--pid2", String(s2.pid));
  if (t.redis && REDIS.pid > 0) a.push("--aux-pid", String(REDIS.pid));
  if (phase === "idle") {
    a.push("--conns", String(o.conns), "--settle", o.quick ? "1" : "3");
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

async function runPhase(
  t: Target,
  phase: Phase,
  o: BenchOptions,
  rep: number,
): Promise<RunRecord> {
  const servers: Server[] = [];
  const prefix = t.redis ? redisPrefix() : undefined;
  try {
    // The nodes of a cluster all run where a single server does (CPU 0 when pinned).
    for (let i = 0; i < (t.nodes ?? 1); i++) servers.push(await startServer(t, o, prefix));
    const tag = (0x1000 + rep * 16 + ["fanout", "latency", "relay", "idle"].indexOf(phase))
      .toString(16);
    const cmd = wrap([LOADGEN, ...loadgenArgs(t, phase, servers, o, tag)], o.pin ? 1 : null);
    // Bounded well past what a healthy phase needs: a hung server costs minutes, not the run.
    const r = await run(cmd, { timeoutMs: phase === "idle" ? 150_000 : 90_000 });
    const line = r.stdout.trim().split("\n").pop() ?? "";
    let result: LoadgenResult | null = null;
    try {
      result = JSON.parse(line);
    } catch {
      return {
        target: t.name,
        phase,
        rep,
        result: null,
        problem: `generator exit ${r.code}: ${r.stderr.trim().slice(0, 200)}`,
      };
    }
    const exited: string[] = [];
    for (const [i, server] of servers.entries()) {
      const alive = await Promise.race([
        server.child.status.then(() => false),
        new Promise<boolean>((res) => setTimeout(() => res(true), 50)),
      ]);
      if (!alive) {
        const which = servers.length > 1 ? ` (node ${i + 1})` : "";
        exited.push(`server exited${which}: ${server.err.lines.slice(-3).join(" | ")}`);
      }
    }
    return {
      target: t.name,
      phase,
      rep,
      result,
      problem: exited.length ? exited.join("; ") : undefined,
    };
  } catch (e) {
    return { target: t.name, phase, rep, result: null, problem: (e as Error).message };
  } finally {
    await Promise.all(servers.map(stopServer));
    // Stopped servers write no more: the phase's keys can all go.
    if (prefix) {
      const left = await dropKeys(`${prefix}*`);
      if (left !== 0) console.log(`  warning: ${left} Redis keys under ${prefix} not deleted`);
    }
  }
}

async function buildLoadgen(): Promise<void> {
  await Deno.mkdir(BUILD, { recursive: true });
  const src = `${BENCH}/loadgen.c`;
  const fresh = exists(LOADGEN) && Deno.statSync(LOADGEN).mtime! >= Deno.statSync(src).mtime!;
  if (fresh) return;
  const cc = (await which("cc")) ? "cc" : "gcc";
  const r = await run([cc, "-O2", "-Wall", "-o", LOADGEN, src]);
  if (r.code !== 0) throw new Error(`building loadgen failed:\n${r.stderr}`);
}

/** node_modules comes from `deno install` (package.json); a fresh clone may lack it. */
async function ensureDeps(): Promise<void> {
  if (exists(`${ROOT}/node_modules/y-webrtc`) && exists(`${ROOT}/node_modules/peer`)) return;
  console.log("installing dependencies (deno install) ...");
  const r = await run(["deno", "install"], { timeoutMs: 300_000 });
  if (r.code !== 0) console.log(`deno install failed: ${r.stderr.slice(0, 500)}`);
}

function hardFileLimit(): number {
  try {
    const m = Deno.readTextFileSync("/proc/self/limits").match(/Max open files\s+\d+\s+(\d+)/);
    return m ? Number(m[1]) : 1024;
  } catch {
    return 1024;
  }
}

function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "unknown";
  }
}

async function machine(): Promise<string> {
  let cpu = "unknown CPU";
  let mem = "";
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    cpu = info.match(/model name\s*:\s*(.*)/)?.[1] ?? cpu;
    const kb = Number(Deno.readTextFileSync("/proc/meminfo").match(/MemTotal:\s+(\d+)/)?.[1]);
    mem = `${(kb / 1024 / 1024).toFixed(0)} GiB RAM`;
  } catch { /* not Linux */ }
  return `${navigator.hardwareConcurrency} cores (${cpu}), ${mem}, Linux ${Deno.osRelease()}, ${(await version(
    ["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"],
  ))}`;
}

/**
 * `report` with the "Soak" section of the report already at `out` appended: the soak
 * (`bench/soak.ts`) is run and written up by hand, apart from this bench.
 */
async function keepSoak(out: string, report: string): Promise<string> {
  let old = "";
  try {
    old = await Deno.readTextFile(out);
  } catch {
    return report;
  }
  const at = old.indexOf("\n## Soak");
  if (at < 0) return report;
  const next = old.indexOf("\n## ", at + 1);
  const section = old.slice(at + 1, next < 0 ? undefined : next + 1).trimEnd();
  return `${report.trimEnd()}\n\n${section}\n`;
}

/** `--render FILE.json`: rewrites the report from a saved run. */
async function render(json: string, out: string): Promise<void> {
  const { meta, records } = JSON.parse(await Deno.readTextFile(json)) as {
    meta: RunMeta;
    records: RunRecord[];
  };
  const summary = renderSummary(records, Number(meta.settings.conns));
  await Deno.writeTextFile(out, await keepSoak(out, renderReport(meta, records, summary)));
  console.log(`${summary}\n\nwrote ${out} from ${json}`);
}

async function main() {
  const started = performance.now();
  const o = parseOptions(Deno.args);
  const renderFrom = Deno.args.indexOf("--render");
  if (renderFrom >= 0) return render(Deno.args[renderFrom + 1], o.out);
  // Other work on the machine skews every number: say how busy it was before we began.
  const loadBefore = loadAverage();
  Deno.addSignalListener("SIGINT", () => {
    killAll().then(dropRunKeys).then(() => Deno.exit(130));
  });
  if ((navigator.hardwareConcurrency ?? 1) < 2 || !(await which("taskset"))) o.pin = false;
  const notes: string[] = [];
  const limit = hardFileLimit();
  // Each connection is one descriptor in the server (and one here); keep room for the rest.
  const maxConns = limit - 100;
  let connsCapNote: string | undefined;
  if (o.conns > maxConns) {
    connsCapNote = `${o.conns.toLocaleString("en-US")} asked; the open-files limit of ${
      limit.toLocaleString("en-US")
    } per process caps a server below that`;
    notes.push(
      `The open-files hard limit here is ${limit} per process and cannot be raised without ` +
        `root's CAP_SYS_RESOURCE, so the idle phase opens ${maxConns} connections instead of ` +
        `${o.conns}: a server needs one descriptor per connection plus its own.`,
    );
    o.conns = maxConns;
  }
  await ensureDeps();
  await buildLoadgen();
  const hasBun = await which("bun");
  const hasNode = await which("node");
  const redisVersion = (await which("redis-cli")) ? await redisUp() : null;
  let targets = discoverTargets(hasBun, hasNode, redisVersion !== null);
  if (o.only) {
    const unknown = o.only.filter((n) => !targets.some((t) => t.name === n));
    if (unknown.length) console.log(`--only: not available here: ${unknown.join(", ")}`);
    targets = targets.filter((t) => o.only!.includes(t.name));
  }
  if (!targets.some((t) => t.name.startsWith("signaller"))) {
    notes.push("No Signaller server was found (server.ts): only the reference servers ran.");
  }
  if (!hasBun) notes.push("`bun` is not on PATH: Bun targets skipped.");
  if (!hasNode) notes.push("`node` is not on PATH: y-webrtc and peerjs-server skipped.");
  if (redisVersion === null) {
    notes.push(`No Redis answered at ${REDIS.url} (or no \`redis-cli\`): Redis targets skipped.`);
  }
  if (o.pin) {
    notes.push(
      "Servers run pinned to CPU 0 and the generator to CPU 1 (`taskset`), so each has one core " +
        "of the two; runtimes with helper threads (Deno's I/O, GC) share CPU 0 with their JS thread.",
    );
    if (targets.some((t) => t.nodes === 2)) {
      notes.push(
        "Two-node runs: both nodes are pinned to CPU 0 (where a single server runs) and the " +
          "generator to CPU 1; with two cores there is no third one, so the two nodes share one " +
          "core and the numbers show the cluster's cost per delivery, not how it scales. Redis is " +
          "a process of the machine, not the bench's: it is not pinned and runs on either CPU.",
      );
    }
  }
  // No run starts after this (9 minutes full, 3 quick), so the whole bench, its
  // last phase included, ends within 10 minutes.
  const deadline = started + (o.quick ? 180_000 : 540_000);
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
  const plan: { t: Target; phase: Phase; rep: number }[] = [];
  // Every phase once first, then the extra repetitions: if the deadline comes, only
  // repetitions are lost. Targets interleave, so a slow spell on the shared machine
  // hits them alike rather than one target's every run.
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const phase of o.phases) {
      if (phase === "idle" && rep > 1) continue;
      for (const t of targets) {
        if (t.phases.includes(phase) && rep <= (t.reps ?? o.reps)) plan.push({ t, phase, rep });
      }
    }
  }
  console.log(
    `bench: ${plan.length} runs over ${targets.map((t) => t.name).join(", ")}; ` +
      `report -> ${o.out.replace(`${ROOT}/`, "")}`,
  );
  for (const { t, phase, rep } of plan) {
    if (performance.now() > deadline) {
      notes.push(`Run deadline reached: ${t.name} ${phase} rep ${rep} and later runs skipped.`);
      break;
    }
    const t0 = performance.now();
    const rec = await runPhase(t, phase, o, rep);
    records.push(rec);
    const r = rec.result;
    const what = !r
      ? `FAILED ${rec.problem}`
      : phase === "idle"
      ? `held ${r.held}/${r.conns}, ${Math.round(r.setups_per_s ?? 0)} setups/s, ${
        ((r.rss_per_conn_b ?? 0) / 1024).toFixed(2)
      } KiB/conn`
      : `${Math.round(r.deliveries_per_s ?? 0)} deliveries/s, p99 ${
        ((r.lat_p99_us ?? 0) / 1000).toFixed(2)
      } ms, cpu ${r.server_cpu_s}s, ${r.delivered}/${r.expected}${r.ok ? "" : " NOT OK"}`;
    console.log(
      `  ${t.name.padEnd(22)} ${phase.padEnd(8)} #${rep}  ${what}  (${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s)${rec.problem && r ? ` [${rec.problem}]` : ""}`,
    );
  }
  const git = await run(["git", "describe", "--always", "--dirty"]).catch(() => null);
  const meta: RunMeta = {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    command: `deno task bench${Deno.args.length ? " " + Deno.args.join(" ") : ""}`,
    machine: await machine(),
    versions: {
      signaller: `${JSON.parse(Deno.readTextFileSync(`${ROOT}/package.json`)).version} (${
        git?.stdout.trim() || "?"
      })`,
      deno: Deno.version.deno,
      bun: hasBun ? await version(["bun", "--version"]) : "absent",
      node: hasNode ? await version(["node", "--version"]) : "absent",
      redis: redisVersion ?? "absent",
      "y-webrtc": pkgVersion("y-webrtc"),
      peer: pkgVersion("peer"),
      "C compiler": await version(["cc", "--version"]),
    },
    settings: {
      receivers: o.receivers,
      pairs: o.pairs,
      conns: o.conns,
      window: o.window,
      size: o.size,
      rate: o.rate,
      warmup_s: o.warmup,
      duration_s: o.duration,
      reps: o.reps,
      ...(targets.some((t) => t.redis) ? { redis_reps: Math.min(o.reps, REDIS_REPS) } : {}),
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
  await Deno.mkdir(BUILD, { recursive: true });
  // The raw numbers, so the report can be re-rendered (--render) without a new run.
  const json = `${BUILD}/${o.out.split("/").pop()!.replace(/\.md$/, "")}.json`;
  await Deno.writeTextFile(json, JSON.stringify({ meta, records }, null, 2));
  const summary = renderSummary(records, o.conns);
  await Deno.writeTextFile(o.out, await keepSoak(o.out, renderReport(meta, records, summary)));
  console.log(`\n${summary}\n\nwrote ${o.out} in ${meta.elapsedS.toFixed(0)} s`);
}

/** The end of the run: whatever keys of this run a phase left (each phase deletes its own). */
async function dropRunKeys(): Promise<void> {
  if (REDIS.phases === 0) return;
  const left = await dropKeys(`bench-${REDIS.run}-*`);
  if (left !== 0) console.log(`warning: ${left} Redis keys under bench-${REDIS.run}- remain`);
}

if (import.meta.main) {
  try {
    await main();
  } finally {
    await killAll();
    await dropRunKeys();
  }
}
