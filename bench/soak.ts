/**
 * The soak: thousands of peers connecting, describing, joining, sending
 * danmaku and private messages, dropping and resuming, leaving and coming
 * back as new peers, for minutes, against one server process on Deno or Bun,
 * in memory or on Redis. It checks that the server's RSS at the end is at
 * most 10 % above its value after the warm-up and its open file descriptors
 * within 10 % (both sampled with every peer connected and idle, RSS as the
 * lowest of one sample a second over two idle minutes, `--sample S`: after
 * the collector has given memory back, which V8 does at the latest 100 s after
 * its last collection), and that
 * nothing unexpected happened: no `503`, no other error reply but `401` (a
 * peer that just left), no command left without a reply (120 s), no close by
 * the server, no error log line. How long replies took is reported, not
 * judged: on a shared machine that is the machine's business.
 *
 *     deno run -A bench/soak.ts [--runtime deno|bun] [--conns 5000] [--duration 300]
 *                               [--warmup 60] [--think 20] [--sample 120] [--redis URL]
 *                               [--v8-defaults]
 *
 * A Deno server runs as `deno task start` runs it, with its V8 flags (a
 * young generation of at most 8 MiB, see README "Security and reliability");
 * `--v8-defaults` runs it without them. With `--redis` the server gets a key
 * prefix of its own (`soak-<random>:`), whose keys are deleted afterwards.
 * Every generated connection comes from 127.0.0.1, so the server runs with
 * `--max-conns-per-ip 0`, and with `--history-ttl 20000 --retention-ms 20000`,
 * so that what outlives a peer (its grace, its inbox, an empty channel) is at
 * its steady size within the warm-up. Each peer acts every 20 s on average
 * (`--think S`). The client process holds `--conns` sockets, the server as
 * many: mind `ulimit -n`. Exits 1 when a check fails. Not part of
 * `deno task test`; the 30-second form is `tests/soak/soak_test.ts`.
 *
 * @module
 */

/** Options of {@linkcode runSoak}. */
export interface SoakOptions {
  runtime: "deno" | "bun";
  /** Peers connected at once. */
  conns: number;
  /** Seconds of churn measured after the warm-up. */
  durationS: number;
  /** Seconds of churn before the first sample. */
  warmupS: number;
  /** A Redis URL: state in Redis under a fresh prefix. */
  redis?: string;
  /** Mean seconds between two actions of one peer (20). */
  thinkS?: number;
  /** Idle seconds over which each sample takes the lowest RSS (120). */
  sampleS?: number;
  /** Deno: run the server with V8's defaults instead of the flags of `deno task start`. */
  v8Defaults?: boolean;
  /** Progress lines; none by default. */
  progress?: (line: string) => void;
}

/** RSS (KiB) and open descriptors of the server at one moment. */
export interface Sample {
  rssKiB: number;
  fds: number;
  connections: number;
  /** The script engine's heap (total and used) and what it holds outside it, at the RSS sample. */
  heap: { totalKiB: number; usedKiB: number; externalKiB: number };
}

/** What a soak measured. */
export interface SoakReport {
  options: SoakOptions;
  warm: Sample;
  end: Sample;
  /** Commands answered, by command. */
  commands: Record<string, number>;
  /** Error replies, by code. */
  errors: Record<string, number>;
  /** Events received, by type. */
  events: Record<string, number>;
  /** Drops followed by a resume that restored every channel. */
  resumes: number;
  /** Peers that left and came back as new peers. */
  rebirths: number;
  /** `signaller_errors_total{code="503"}` at the end. */
  errors503: number;
  /** Server log lines at level error (and warn). */
  errorLogs: string[];
  warnLogs: number;
  /** How long replies took: the slowest, and how many took over 1 s and over 10 s. */
  latency: { maxMs: number; over1s: number; over10s: number };
  /** Everything that should not have happened (the first 200). */
  unexpected: string[];
  /** The same, counted by kind. */
  unexpectedKinds: Record<string, number>;
  /** How many of them happened after the warm-up sample. */
  unexpectedAfterWarmup: number;
  /** The checks, each with whether it passed. */
  checks: { name: string; ok: boolean; detail: string }[];
  ok: boolean;
}

const ROOT = new URL("..", import.meta.url).pathname;
/** A reply this late counts as lost; the peer then starts over on a new socket. */
const REPLY_TIMEOUT_MS = 120_000;
const QUIESCE_TIMEOUT_MS = 120_000;

/** A seeded-enough random: Math.random is fine for load. */
function between(a: number, b: number): number {
  return a + Math.random() * (b - a);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function hexId(): string {
  const t = Math.floor(Date.now() / 1000).toString(16).padStart(8, "0");
  const r = crypto.getRandomValues(new Uint8Array(8));
  return t + [...r].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Counts into a record. */
function bump(rec: Record<string, number>, key: string | number): void {
  rec[key] = (rec[key] ?? 0) + 1;
}

/** The shared state of one soak run. */
class Run {
  readonly report: Omit<
    SoakReport,
    "warm" | "end" | "checks" | "ok" | "errors503" | "errorLogs" | "unexpectedAfterWarmup"
  >;
  readonly channels: string[];
  readonly peers: VPeer[] = [];
  /** True while the peers finish what they do and stay connected. */
  paused = false;
  stopped = false;

  constructor(readonly url: string, readonly o: SoakOptions) {
    this.report = {
      options: o,
      commands: {},
      errors: {},
      events: {},
      resumes: 0,
      rebirths: 0,
      warnLogs: 0,
      unexpected: [],
      unexpectedKinds: {},
      latency: { maxMs: 0, over1s: 0, over10s: 0 },
    };
    // About 20 members a channel, each peer in 1–3 of them.
    this.channels = Array.from(
      { length: Math.max(2, Math.round(o.conns / 10)) },
      () => "#" + hexId(),
    );
  }

  unexpected(what: string): void {
    // The first few are said at once: a long run that goes wrong shows why while it runs.
    if (this.report.unexpected.length < 5) this.o.progress?.(`unexpected: ${what}`);
    if (this.report.unexpected.length < 200) this.report.unexpected.push(what);
    // Counted by kind: the peer's name and the numbers taken out.
    bump(
      this.report.unexpectedKinds,
      what.replace(/^soak\d+: /, "").replace(/\d+/g, "N").slice(0, 80),
    );
  }
}

/** One simulated peer: a socket, its identity, its channels, its pending commands. */
class VPeer {
  id = hexId();
  readonly name: string;
  resume = "";
  channels = new Set<string>();
  ws?: WebSocket;
  /** Connected and described, nothing pending. */
  ready = false;
  #waiters: {
    resolve: (m: Record<string, unknown>) => void;
    cmd: string;
    timer: ReturnType<typeof setTimeout>;
    sent: number;
  }[] = [];

  constructor(readonly run: Run, readonly n: number) {
    this.name = `soak${n}`;
  }

  /** Connects and describes (resuming when `resume` is set); true on success. */
  async connect(resume: boolean): Promise<boolean> {
    const ws = new WebSocket(this.run.url);
    this.ws = ws;
    const opened = await new Promise<string | true>((resolve) => {
      ws.onopen = () => resolve(true);
      ws.onerror = (e) => resolve((e as ErrorEvent).message ?? "error");
    });
    if (opened !== true) {
      this.run.unexpected(`${this.name}: connection failed: ${opened}`);
      return false;
    }
    ws.onerror = () => {};
    // A socket this peer dropped may still deliver a late frame or its close: ignored.
    ws.onmessage = (e) => {
      if (this.ws === ws) this.#frame(e.data as string);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.#flush();
      // The server closing us is unexpected, whatever the code.
      if (!this.run.stopped) {
        this.run.unexpected(`${this.name}: closed by the server ${e.code} ${e.reason}`);
      }
    };
    const desc: Record<string, unknown> = { id: this.id, name: this.name };
    if (resume) desc.resume = this.resume;
    const r = await this.cmd(`/descp ${JSON.stringify(desc)}`);
    if (r.type !== "ok") return false;
    const data = r.data as { resume: string; channels: string[] };
    this.resume = data.resume;
    if (resume) {
      const got = [...data.channels].sort().join();
      const want = [...this.channels].sort().join();
      if (got === want) this.run.report.resumes++;
      else this.run.unexpected(`${this.name}: resumed with channels ${got}, expected ${want}`);
    }
    return true;
  }

  /** Sends one command; resolves with its reply (or `{type: "closed"|"timeout"}`). */
  cmd(text: string): Promise<Record<string, unknown>> {
    const ws = this.ws;
    const cmd = text.slice(1, text.indexOf(" ") > 0 ? text.indexOf(" ") : undefined);
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) {
      return Promise.resolve({ type: "closed" });
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.run.unexpected(`${this.name}: no reply to /${cmd} within ${REPLY_TIMEOUT_MS} ms`);
        // Replies come in order: past a lost one, this socket's replies cannot be matched.
        this.drop();
      }, REPLY_TIMEOUT_MS);
      this.#waiters.push({ resolve, cmd, timer, sent: Date.now() });
      ws.send(text);
    });
  }

  #frame(frame: string): void {
    for (const line of frame.split("\n")) {
      // Replies are parsed; events only counted by type.
      if (line.startsWith('{"type":"ok"') || line.startsWith('{"type":"error"')) {
        const m = JSON.parse(line);
        const w = this.#waiters.shift();
        if (w === undefined) {
          this.run.unexpected(`${this.name}: a reply nobody waited for: ${line.slice(0, 100)}`);
          continue;
        }
        clearTimeout(w.timer);
        bump(this.run.report.commands, w.cmd);
        const lat = this.run.report.latency, ms = Date.now() - w.sent;
        lat.maxMs = Math.max(lat.maxMs, ms);
        if (ms > 1000) lat.over1s++;
        if (ms > 10_000) lat.over10s++;
        if (m.type === "error") {
          bump(this.run.report.errors, m.code);
          // 401: the target left or its grace ended meanwhile — a live system's normal race.
          if (m.code !== 401) {
            this.run.unexpected(`${this.name}: /${w.cmd} got ${line.slice(0, 160)}`);
          }
        }
        w.resolve(m);
      } else {
        const type = /^\{"type":"(\w+)"/.exec(line)?.[1] ?? "?";
        bump(this.run.report.events, type);
      }
    }
  }

  /** Resolves every pending command as unanswered: its socket is gone. */
  #flush(): void {
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.resolve({ type: "closed" });
    }
  }

  /** Closes the socket from the client side (the server sees a disconnect). */
  drop(): void {
    const ws = this.ws;
    this.ws = undefined;
    this.#flush();
    try {
      ws?.close();
    } catch { /* closed */ }
  }

  async join(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const ch = this.run.channels[Math.floor(Math.random() * this.run.channels.length)];
      if (this.channels.has(ch)) continue;
      const r = await this.cmd(`/join ${ch}`);
      if (r.type === "ok") this.channels.add(ch);
    }
  }

  /** The peer's life: act now and then until the run stops. */
  async live(): Promise<void> {
    const think = this.run.o.thinkS ?? 20;
    // Spread out: the peers start, and start again after a pause, at random moments.
    let idle = true;
    while (!this.run.stopped) {
      if (idle && !this.run.paused) {
        idle = false;
        await sleep(Math.random() * think * 1000);
        continue;
      }
      if (this.run.paused) {
        idle = true;
        const open = this.ws !== undefined && this.ws.readyState === WebSocket.OPEN;
        // One that lost its socket comes back before it counts as idle.
        if (!open) await this.act();
        this.ready = open && this.#waiters.length === 0;
        await sleep(200);
        continue;
      }
      this.ready = false;
      await this.act();
      await sleep(between(0.5, 1.5) * think * 1000);
    }
  }

  async act(): Promise<void> {
    const run = this.run;
    if (this.ws === undefined || this.ws.readyState !== WebSocket.OPEN) {
      // Lost its socket (an unexpected close): a new identity takes over.
      this.id = hexId();
      this.channels.clear();
      if (await this.connect(false)) await this.join(1 + Math.floor(Math.random() * 3));
      return;
    }
    const roll = Math.random();
    const chs = [...this.channels];
    if (roll < 0.4 && chs.length > 0) {
      await this.cmd(
        `/pubmsg ${chs[Math.floor(Math.random() * chs.length)]} danmaku ${Date.now()}`,
      );
    } else if (roll < 0.65) {
      const to = run.peers[Math.floor(Math.random() * run.peers.length)];
      await this.cmd(
        `/privmsg ${to.id} {"candidate":"candidate:1 1 udp 2122260223 10.0.0.1 ${
          Math.floor(between(1024, 65535))
        } typ host"}`,
      );
    } else if (roll < 0.7) {
      await this.cmd(Math.random() < 0.5 ? "/away brb" : "/away");
    } else if (roll < 0.75) {
      const to = run.peers[Math.floor(Math.random() * run.peers.length)];
      await this.cmd(`/whois ${to.id}`);
    } else if (roll < 0.85) {
      // Drop the socket, come back within the grace and resume.
      this.drop();
      await sleep(between(100, 2000));
      if (run.stopped) return;
      await this.connect(true);
    } else if (roll < 0.9) {
      // Leave for good, then come back as a new peer.
      for (const ch of chs) await this.cmd(`/quit ${ch}`);
      this.channels.clear();
      this.drop();
      await sleep(between(100, 2000));
      if (run.stopped) return;
      this.id = hexId();
      if (await this.connect(false)) {
        run.report.rebirths++;
        await this.join(1 + Math.floor(Math.random() * 3));
      }
    } else {
      // Swap one channel for another.
      if (chs.length > 0) {
        const ch = chs[Math.floor(Math.random() * chs.length)];
        const r = await this.cmd(`/quit ${ch}`);
        if (r.type === "ok") this.channels.delete(ch);
      }
      await this.join(1);
    }
  }
}

/** RSS (KiB) and descriptor count of `pid`. */
async function sampleProc(pid: number): Promise<{ rssKiB: number; fds: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  let fds = 0;
  for await (const _ of Deno.readDir(`/proc/${pid}/fd`)) fds++;
  return { rssKiB, fds };
}

async function metric(httpUrl: string, name: string): Promise<number> {
  return (await metrics(httpUrl, [name]))[0];
}

/** The values of the unlabelled `names` in the server's `/metrics` (0 if absent). */
async function metrics(httpUrl: string, names: string[]): Promise<number[]> {
  const lines = (await (await fetch(`${httpUrl}/metrics`)).text()).split("\n");
  return names.map((name) => {
    const line = lines.find((l) => l.startsWith(name + " "));
    return line === undefined ? 0 : Number(line.slice(name.length + 1));
  });
}

/** The script engine's heap, from the server's `/metrics`. */
async function sampleHeap(httpUrl: string): Promise<Sample["heap"]> {
  const [total, used, external] = await metrics(
    httpUrl,
    ["heap_total", "heap_used", "external"].map((m) => `signaller_memory_${m}_bytes`),
  );
  return { totalKiB: total >> 10, usedKiB: used >> 10, externalKiB: external >> 10 };
}

/** Pauses the peers until every one is connected, described and idle; samples; resumes. */
async function quiescentSample(run: Run, pid: number, httpUrl: string): Promise<Sample> {
  run.paused = true;
  const t0 = Date.now();
  while (run.peers.some((p) => !p.ready) && Date.now() - t0 < QUIESCE_TIMEOUT_MS) await sleep(250);
  const missing = run.peers.filter((p) => !p.ready).length;
  if (missing > 0) run.unexpected(`${missing} peers not back and idle for the sample`);
  // Let the grace of the dropped peers and the last writes settle; GC runs as it runs.
  await sleep(3000);
  // The lowest of samples over two minutes of idleness: the heap after the collector has run and
  // given memory back, not between two runs. V8's memory reducer shrinks the heap once allocation
  // has slowed down, 8 s after a collection at the soonest, and its watchdog at the latest 100 s
  // after the last one: a shorter window measures when the collector ran, not what is held.
  const samples = [];
  for (let i = 0; i < (run.o.sampleS ?? 120); i++) {
    samples.push({ ...await sampleProc(pid), heap: await sampleHeap(httpUrl) });
    await sleep(1000);
  }
  const lowest = samples.reduce((a, b) => b.rssKiB < a.rssKiB ? b : a);
  const connections = await metric(httpUrl, "signaller_connections");
  run.paused = false;
  return {
    rssKiB: lowest.rssKiB,
    fds: Math.min(...samples.map((s) => s.fds)),
    connections,
    heap: lowest.heap,
  };
}

/**
 * The command of `deno task start` (the way a Deno node is meant to run, with its V8 flags), or
 * without V8 flags when `v8Defaults`.
 */
function denoStart(v8Defaults = false): string[] {
  const start: string = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks.start;
  return start.split(" ").filter((arg) => !(v8Defaults && arg.startsWith("--v8-flags=")));
}

/** Starts the server; resolves with its process, URL and its stderr lines (errors, warns). */
async function startSoakServer(o: SoakOptions, prefix: string) {
  const flags = [
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    "--max-conns-per-ip",
    "0",
    "--max-conns",
    String(Math.max(10_000, o.conns * 2)),
    // What outlives a peer is kept for less than the warm-up, so the state is at its steady
    // size by the first sample: growth after it is a leak, not a cache filling up.
    "--history-ttl",
    "20000",
    "--retention-ms",
    "20000",
    // A client process with thousands of sockets on a busy machine may open one and send its
    // /descp seconds later: that is the load generator's lag, not the server's.
    "--handshake-ms",
    "60000",
    ...(o.redis ? ["--redis", o.redis, "--redis-prefix", prefix] : []),
  ];
  const [cmd, ...args] = o.runtime === "deno"
    ? [...denoStart(o.v8Defaults), ...flags]
    : ["bun", "server.ts", ...flags];
  const child = new Deno.Command(cmd, {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const errors: string[] = [];
  const counts = { warn: 0 };
  const logs = (async () => {
    let buf = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.includes('"level":"error"')) errors.push(line);
        else if (line.includes('"level":"warn"')) counts.warn++;
      }
    }
  })();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const deadline = Date.now() + 20_000;
  let port = 0;
  while (port === 0 && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
    port = Number(/listening on ws:\/\/\S+:(\d+)\//.exec(out)?.[1] ?? 0);
  }
  // Keep draining stdout so the server never blocks on it.
  (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  if (port === 0) {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    throw new Error(`the ${o.runtime} server did not start: ${out}\n${errors.join("\n")}`);
  }
  return { child, port, errors, counts, logs };
}

/** Deletes every key under `prefix` in the Redis at `url`. */
async function dropPrefix(url: string, prefix: string): Promise<void> {
  const u = new URL(url);
  const cli = `redis-cli -h ${u.hostname} -p ${u.port || "6379"}`;
  await new Deno.Command("sh", {
    args: ["-c", `${cli} --scan --pattern '${prefix}*' | xargs -r -n 500 ${cli} del >/dev/null`],
  }).output();
}

/** Runs one soak; never throws for a failed check (see `ok`), only when it cannot run. */
export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const say = o.progress ?? (() => {});
  const prefix = `soak-${crypto.randomUUID().slice(0, 8)}:`;
  const server = await startSoakServer(o, prefix);
  const httpUrl = `http://127.0.0.1:${server.port}`;
  const run = new Run(`ws://127.0.0.1:${server.port}/`, o);
  let warm: Sample | undefined, end: Sample | undefined;
  let errors503 = 0;
  let unexpectedAtWarm = 0;
  try {
    // Ramp: connect and join in waves, so the start is not a SYN flood.
    for (let i = 0; i < o.conns; i++) run.peers.push(new VPeer(run, i));
    const WAVE = 100;
    for (let i = 0; i < o.conns; i += WAVE) {
      await Promise.all(
        run.peers.slice(i, i + WAVE).map(async (p) => {
          if (await p.connect(false)) await p.join(1 + Math.floor(Math.random() * 3));
        }),
      );
    }
    say(`${o.conns} peers connected`);
    const lives = run.peers.map((p) => p.live());
    const progress = setInterval(async () => {
      try {
        const s = await sampleProc(server.child.pid);
        const conns = await metric(httpUrl, "signaller_connections");
        const heap = await sampleHeap(httpUrl);
        const answered = Object.values(run.report.commands).reduce((a, b) => a + b, 0);
        say(
          `rss ${(s.rssKiB / 1024).toFixed(1)} MiB (heap ${heap.usedKiB >> 10}/` +
            `${heap.totalKiB >> 10}, external ${heap.externalKiB >> 10}), ` +
            `fds ${s.fds}, connections ${conns}, ` +
            `commands ${answered}, slowest reply ${run.report.latency.maxMs} ms, ` +
            `unexpected ${JSON.stringify(run.report.unexpectedKinds)}`,
        );
      } catch { /* the server is gone; the end says so */ }
    }, 10_000);
    try {
      await sleep(o.warmupS * 1000);
      warm = await quiescentSample(run, server.child.pid, httpUrl);
      unexpectedAtWarm = Object.values(run.report.unexpectedKinds).reduce((a, b) => a + b, 0);
      say(`after warm-up: ${JSON.stringify(warm)}`);
      await sleep(o.durationS * 1000);
      end = await quiescentSample(run, server.child.pid, httpUrl);
      say(`at the end: ${JSON.stringify(end)}`);
      errors503 = await metric(httpUrl, 'signaller_errors_total{code="503"}');
    } finally {
      clearInterval(progress);
      run.stopped = true;
      for (const p of run.peers) p.drop();
      await Promise.all(lives);
    }
  } finally {
    try {
      server.child.kill("SIGTERM");
    } catch { /* gone */ }
    const status = await Promise.race([server.child.status, sleep(10_000).then(() => null)]);
    if (status === null) {
      server.child.kill("SIGKILL");
      await server.child.status;
    }
    await server.logs.catch(() => {});
    if (o.redis) await dropPrefix(o.redis, prefix);
  }
  const within10 = (a: number, b: number) => b <= 1.1 * a;
  const checks = [
    {
      name: "RSS at the end at most 10 % above after the warm-up",
      ok: within10(warm!.rssKiB, end!.rssKiB),
      detail: `${(warm!.rssKiB / 1024).toFixed(1)} → ${(end!.rssKiB / 1024).toFixed(1)} MiB`,
    },
    {
      name: "open descriptors at the end within 10 % of after the warm-up",
      ok: Math.abs(end!.fds - warm!.fds) <= 0.1 * warm!.fds,
      detail: `${warm!.fds} → ${end!.fds}`,
    },
    { name: "no 503", ok: errors503 === 0, detail: String(errors503) },
    {
      name: "no error log line",
      ok: server.errors.length === 0,
      detail: String(server.errors.length),
    },
    {
      name: "nothing unexpected",
      ok: run.report.unexpected.length === 0,
      detail: JSON.stringify(run.report.unexpectedKinds),
    },
  ];
  return {
    ...run.report,
    warm: warm!,
    end: end!,
    errors503,
    unexpectedAfterWarmup: Object.values(run.report.unexpectedKinds).reduce((a, b) => a + b, 0) -
      unexpectedAtWarm,
    errorLogs: server.errors,
    warnLogs: server.counts.warn,
    checks,
    ok: checks.every((c) => c.ok),
  };
}

function parseFlags(args: string[]): SoakOptions {
  const o: SoakOptions = { runtime: "deno", conns: 5000, durationS: 300, warmupS: 60 };
  for (let i = 0; i < args.length; i++) {
    const v = args[i + 1];
    switch (args[i]) {
      case "--runtime":
        if (v !== "deno" && v !== "bun") throw new Error("--runtime takes deno or bun");
        o.runtime = v;
        break;
      case "--conns":
        o.conns = Number(v);
        break;
      case "--duration":
        o.durationS = Number(v);
        break;
      case "--warmup":
        o.warmupS = Number(v);
        break;
      case "--think":
        o.thinkS = Number(v);
        break;
      case "--sample":
        o.sampleS = Number(v);
        break;
      case "--redis":
        o.redis = v;
        break;
      case "--v8-defaults":
        o.v8Defaults = true;
        continue;
      default:
        throw new Error(`unknown flag ${args[i]}`);
    }
    i++;
  }
  for (const [k, n] of [["conns", o.conns], ["duration", o.durationS], ["warmup", o.warmupS]]) {
    if (!Number.isFinite(n as number) || (n as number) <= 0) {
      throw new Error(`--${k} needs a number`);
    }
  }
  return o;
}

if (import.meta.main) {
  const o = parseFlags(Deno.args);
  const t0 = Date.now();
  const r = await runSoak({
    ...o,
    progress: (line) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0)} s] ${line}`),
  });
  const { options: _, ...rest } = r;
  console.log(JSON.stringify({ options: o, ...rest }, null, 1));
  for (const c of r.checks) console.log(`${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`);
  Deno.exit(r.ok ? 0 : 1);
}
