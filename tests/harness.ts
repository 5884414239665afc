/**
 * Black-box test harness: spawns the real server on a real port (Deno or Bun),
 * and talks to it over real sockets with a small raw client that keeps replies
 * and events apart.
 *
 * @example
 * ```ts
 * import { bbtest, connect, describe, sharedServer } from "../harness.ts";
 *
 * const server = await sharedServer();
 * bbtest("/whois of an unknown peer gets 401", async (rt) => {
 *   await using c = await connect(server(rt).url);
 *   await describe(c);
 *   await c.fail("/whois 65a1f0c2e4b0a1b2c3d4e5f6", 401);
 * });
 * ```
 * @module
 */
import assert from "node:assert/strict";
import {
  type Code,
  codeName,
  type CommandName,
  newId,
  ReplyData,
  ServerMessage,
} from "../protocol/mod.ts";

/** A runtime the server can run on; `"binary"` is the single binary `deno task compile` builds. */
export type Runtime = "deno" | "bun" | "binary";

/** The single binary under test: `$SIGNALLER_BINARY`, or `dist/signaller`. */
export function binaryPath(): string {
  return Deno.env.get("SIGNALLER_BINARY") ?? ROOT + "dist/signaller";
}

/** Options of {@linkcode startServer}. */
export interface StartOptions {
  /** Extra command-line flags, after `--port 0 --host 127.0.0.1`. */
  args?: string[];
  /** Extra environment variables for the server process. */
  env?: Record<string, string>;
  /** The runtime to run `server.ts` on; `"deno"` by default. */
  runtime?: Runtime;
}

/** A running server process. */
export interface ServerHandle {
  /** The WebSocket URL, e.g. `ws://127.0.0.1:41234/`. */
  url: string;
  /** The port it listens on. */
  port: number;
  /** The HTTP base URL, without a trailing slash, e.g. `http://127.0.0.1:41234`. */
  httpUrl: string;
  /** The runtime it runs on. */
  runtime: Runtime;
  /** The server's process id (to stop and continue it, say). */
  pid: number;
  /** The last lines the server wrote to stderr (JSON log lines), for failure messages. */
  logs(): string[];
  /** The first lines the server wrote to stdout. */
  stdout(): string[];
  /** Sends SIGTERM and waits for the process to exit; resolves to its exit code. */
  stop(): Promise<number>;
  /** Sends SIGKILL and waits for the process to exit. */
  kill(): Promise<void>;
  /** Stops the server (SIGTERM, then SIGKILL if it does not exit in time). */
  [Symbol.asyncDispose](): Promise<void>;
}

/** The repository root (the parent of `tests/`). */
export const ROOT: string = new URL("..", import.meta.url).pathname;

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
const LOG_LINES = 50;
const LISTENING = /^signaller listening on ws:\/\/(\S+):(\d+)\/\s*$/;

/** Whether `path` (relative to the repository root) exists. */
function exists(path: string): boolean {
  try {
    Deno.statSync(ROOT + path);
    return true;
  } catch {
    return false;
  }
}

/** Reads a stream line by line into `sink`, keeping only the last `LOG_LINES`. */
async function drainLines(
  reader: ReadableStreamDefaultReader<string>,
  sink: string[],
  first?: (line: string) => void,
): Promise<void> {
  let buf = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        first?.(line);
        sink.push(line);
        if (sink.length > LOG_LINES) sink.shift();
      }
    }
  } catch {
    // The process died; whatever we have is what there is.
  }
  if (buf.length > 0) {
    first?.(buf);
    sink.push(buf);
  }
}

/**
 * Spawns `server.ts` on a free port of 127.0.0.1 and waits for its first
 * stdout line `signaller listening on ws://HOST:PORT/`. Stdout and stderr are
 * drained continuously; the last stderr lines are kept for failure messages.
 * Fails if the server does not listen within 15 s.
 */
export async function startServer(opts: StartOptions = {}): Promise<ServerHandle> {
  const runtime = opts.runtime ?? "deno";
  const flags = ["--port", "0", "--host", "127.0.0.1", ...(opts.args ?? [])];
  const [cmd, args] = runtime === "deno"
    ? ["deno", ["run", "-A", "server.ts", ...flags]]
    : runtime === "bun"
    ? ["bun", ["server.ts", ...flags]]
    : [binaryPath(), flags];
  const child = new Deno.Command(cmd, {
    args,
    cwd: ROOT,
    env: opts.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out: string[] = [];
  const err: string[] = [];
  let listening: ((m: RegExpMatchArray) => void) | undefined;
  const listen = new Promise<RegExpMatchArray>((r) => listening = r);
  const drains = Promise.all([
    drainLines(child.stdout.pipeThrough(new TextDecoderStream()).getReader(), out, (line) => {
      const m = line.match(LISTENING);
      if (m && listening) {
        listening(m);
        listening = undefined;
      }
    }),
    drainLines(child.stderr.pipeThrough(new TextDecoderStream()).getReader(), err),
  ]);
  let exitCode: number | undefined;
  const status = child.status.then((s) => {
    exitCode = s.code;
    return s;
  });
  const tail = () =>
    `\n--- stdout ---\n${out.join("\n")}\n--- stderr (last ${LOG_LINES} lines) ---\n${
      err.join("\n")
    }`;

  let timer: Timer | undefined;
  const timeout = new Promise<"timeout">((r) =>
    timer = setTimeout(() => r("timeout"), START_TIMEOUT_MS)
  );
  const first = await Promise.race([listen, status.then(() => "exited" as const), timeout]);
  clearTimeout(timer);
  if (first === "timeout" || first === "exited") {
    if (first === "timeout") {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }
    await status;
    await drains;
    unregister(child);
    throw new Error(
      first === "timeout"
        ? `${runtime} server did not print "signaller listening on ws://HOST:PORT/" within ${START_TIMEOUT_MS} ms (args: ${
          flags.join(" ")
        })${tail()}`
        : `${runtime} server exited with code ${exitCode} before listening (args: ${
          flags.join(" ")
        })${tail()}`,
    );
  }
  const port = Number(first[2]);
  const host = "127.0.0.1";
  register(child);

  let stopping: Promise<number> | undefined;
  const stop = (): Promise<number> => {
    stopping ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      let t: Timer | undefined;
      const late = new Promise<"late">((r) => t = setTimeout(() => r("late"), STOP_TIMEOUT_MS));
      const r = await Promise.race([status, late]);
      clearTimeout(t);
      if (r === "late") {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }
      const s = await status;
      await drains;
      unregister(child);
      if (r === "late") {
        throw new Error(`server did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM${tail()}`);
      }
      return s.code;
    })();
    return stopping;
  };
  const kill = async (): Promise<void> => {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await status;
    await drains;
    unregister(child);
  };
  return {
    pid: child.pid,
    url: `ws://${host}:${port}/`,
    port,
    httpUrl: `http://${host}:${port}`,
    runtime,
    logs: () => [...err],
    stdout: () => [...out],
    stop,
    kill,
    async [Symbol.asyncDispose]() {
      if (exitCode !== undefined) {
        await drains;
        unregister(child);
        return;
      }
      await stop();
    },
  };
}

// Children still running when the test module ends are killed, so a failed or
// filtered run never leaves servers behind.
const children = new Set<Deno.ChildProcess>();
let unloadHooked = false;
function register(child: Deno.ChildProcess): void {
  children.add(child);
  if (unloadHooked) return;
  unloadHooked = true;
  globalThis.addEventListener("unload", () => {
    for (const c of children) {
      try {
        c.kill("SIGKILL");
      } catch { /* already gone */ }
    }
  });
}
function unregister(child: Deno.ChildProcess): void {
  children.delete(child);
}

let cachedRuntimes: Runtime[] | undefined;

/**
 * The runtimes to test: `"deno"`, plus `"bun"` once `server/bun.ts` exists and
 * `bun` is on the PATH. With `CI=true`, a missing `bun` is an error once the
 * Bun adapter exists. `SIGNALLER_TEST_RUNTIME=deno` (or `bun`) keeps only that one.
 */
export function runtimes(): Runtime[] {
  if (cachedRuntimes) return cachedRuntimes;
  const list: Runtime[] = ["deno"];
  if (exists("server/bun.ts")) {
    let bun = false;
    try {
      bun = new Deno.Command("bun", { args: ["--version"], stdout: "null", stderr: "null" })
        .outputSync().success;
    } catch {
      bun = false;
    }
    if (bun) list.push("bun");
    else if (Deno.env.get("CI") === "true") {
      throw new Error("CI=true: server/bun.ts exists but `bun` is not on the PATH");
    }
  }
  const only = Deno.env.get("SIGNALLER_TEST_RUNTIME");
  cachedRuntimes = only ? list.filter((r) => r === only) : list;
  return cachedRuntimes;
}

/** Options of {@linkcode bbtest}. */
export interface BbTestOptions {
  /** Skip the test, everywhere or on the runtimes listed (each with a reason in the test). */
  ignore?: boolean | Runtime[];
}

/**
 * Registers one `Deno.test` per runtime from {@linkcode runtimes}, named
 * `[deno] name`, `[bun] name`. Sanitizers stay on: every socket a test opens
 * must be closed by its end.
 */
export function bbtest(
  name: string,
  fn: (rt: Runtime) => Promise<void>,
  opts: BbTestOptions = {},
): void {
  for (const rt of runtimes()) {
    const ignore = Array.isArray(opts.ignore) ? opts.ignore.includes(rt) : opts.ignore;
    Deno.test({ name: `[${rt}] ${name}`, ignore, fn: () => fn(rt) });
  }
}

/** A server shared by all tests of a file, one per runtime: `server(rt).url`. */
export type SharedServer = (rt: Runtime) => ServerHandle;

/**
 * Starts one server per runtime for the whole test file (call it at module
 * scope with top-level `await`). The processes are killed when the module
 * unloads. Tests must use fresh ids (`newId()`) so they do not interfere.
 */
export async function sharedServer(
  opts: Omit<StartOptions, "runtime"> = {},
): Promise<SharedServer> {
  const rts = runtimes();
  const handles = await Promise.all(rts.map((runtime) => startServer({ ...opts, runtime })));
  const byRt = new Map(rts.map((rt, i) => [rt, handles[i]]));
  return (rt) => {
    const h = byRt.get(rt);
    if (!h) throw new Error(`no shared server for ${rt}`);
    return h;
  };
}

/** A timer id, whatever `setTimeout` returns in this runtime's types. */
export type Timer = ReturnType<typeof setTimeout>;

/**
 * Resolves with `p`, or rejects with "`what` within `ms` ms" when `p` takes
 * longer; the timer is always cleared.
 */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A message from the server: a reply or an event (validated against `ServerMessage`). */
// deno-lint-ignore no-explicit-any
export type Msg = Record<string, any> & { type: string };

/** How a socket closed. */
export interface CloseInfo {
  code: number;
  reason: string;
}

/** An error reply. */
export interface ErrorMsg extends Msg {
  type: "error";
  cmd: string | null;
  code: number;
  error: string;
  message: string;
  retryAfterMs?: number;
}

const DEFAULT_TIMEOUT = 3000;

interface Waiter {
  match: (m: Msg) => boolean;
  resolve: (m: Msg) => void;
  reject: (e: Error) => void;
  timer: Timer;
}

/**
 * A raw test client over the standard `WebSocket`. Every text frame is split
 * on `\n`, each line JSON-parsed and validated against `ServerMessage`;
 * replies (`ok`/`error`) and events are queued apart.
 */
export class TestClient {
  /** The socket. */
  readonly ws: WebSocket;
  /** The peer id after {@linkcode describe}. */
  id = "";
  /** The peer name after {@linkcode describe}. */
  name = "";
  /** The resume token after {@linkcode describe}. */
  resume = "";
  /** Resolves when the socket closes, with the close code and reason. */
  readonly closed: Promise<CloseInfo>;
  /** Number of text frames received (several messages may share one frame). */
  frames = 0;
  /** Every message received, in order (for debugging and ordering checks). */
  readonly log: Msg[] = [];
  #replies: Msg[] = [];
  #events: Msg[] = [];
  #replyWaiters: Waiter[] = [];
  #eventWaiters: Waiter[] = [];
  #violations: string[] = [];
  #closeInfo: CloseInfo | undefined;
  #label: string;

  constructor(ws: WebSocket, label = "client") {
    this.ws = ws;
    this.#label = label;
    this.closed = new Promise<CloseInfo>((resolve) => {
      ws.addEventListener("close", (e) => {
        this.#closeInfo = { code: e.code, reason: e.reason };
        resolve(this.#closeInfo);
        const err = new Error(`${this.#label}: socket closed (${e.code} ${e.reason})`);
        for (const w of [...this.#replyWaiters, ...this.#eventWaiters]) {
          clearTimeout(w.timer);
          w.reject(err);
        }
        this.#replyWaiters = [];
        this.#eventWaiters = [];
      });
    });
    ws.addEventListener("message", (e) => this.#onFrame(e.data));
  }

  #onFrame(data: unknown): void {
    if (typeof data !== "string") {
      this.#violations.push(`binary frame from the server`);
      return;
    }
    this.frames++;
    for (const line of data.split("\n")) {
      if (line.length === 0) continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        this.#violations.push(`not JSON: ${line.slice(0, 200)}`);
        continue;
      }
      const r = ServerMessage.safeParse(value);
      if (!r.success) {
        this.#violations.push(`not a ServerMessage: ${line.slice(0, 300)}`);
        continue;
      }
      const m = value as Msg;
      this.log.push(m);
      const isReply = m.type === "ok" || m.type === "error";
      const waiters = isReply ? this.#replyWaiters : this.#eventWaiters;
      const i = waiters.findIndex((w) => w.match(m));
      if (i >= 0) {
        const [w] = waiters.splice(i, 1);
        clearTimeout(w.timer);
        w.resolve(m);
      } else (isReply ? this.#replies : this.#events).push(m);
    }
  }

  #check(): void {
    if (this.#violations.length > 0) {
      assert.fail(`${this.#label}: protocol violations:\n${this.#violations.join("\n")}`);
    }
  }

  /** Sends a frame: a string as a text frame, bytes as a binary frame. */
  send(frame: string | Uint8Array): void {
    this.ws.send(frame as string);
  }

  /** The next reply (`ok` or `error`), first-in first-out. */
  reply(timeout = DEFAULT_TIMEOUT): Promise<Msg> {
    this.#check();
    const m = this.#replies.shift();
    if (m) return Promise.resolve(m);
    return this.#wait(this.#replyWaiters, () => true, timeout, "a reply");
  }

  /** The next buffered-or-future event of `type` (matching `where`); other events stay buffered. */
  event(
    type: string,
    opts: { timeout?: number; where?: (m: Msg) => boolean } = {},
  ): Promise<Msg> {
    this.#check();
    const where = opts.where ?? (() => true);
    const match = (m: Msg) => m.type === type && where(m);
    const i = this.#events.findIndex(match);
    if (i >= 0) return Promise.resolve(this.#events.splice(i, 1)[0]);
    return this.#wait(
      this.#eventWaiters,
      match,
      opts.timeout ?? DEFAULT_TIMEOUT,
      `a ${type} event`,
    );
  }

  /** Buffered events (not yet consumed), optionally only those of `type`. */
  pending(type?: string): Msg[] {
    return this.#events.filter((e) => type === undefined || e.type === type);
  }

  /** Drops every buffered event. */
  clearEvents(): void {
    this.#events = [];
  }

  /**
   * Asserts that no event of `type` (matching `where`) arrives within `ms`
   * (0: only checks what is buffered now).
   */
  async noEvent(type: string, ms = 150, where: (m: Msg) => boolean = () => true): Promise<void> {
    if (ms > 0) await delay(ms);
    this.#check();
    const got = this.#events.filter((e) => e.type === type && where(e));
    assert.equal(got.length, 0, `${this.#label}: unexpected ${type} event: ${JSON.stringify(got)}`);
  }

  #wait(
    list: Waiter[],
    match: (m: Msg) => boolean,
    timeout: number,
    what: string,
  ): Promise<Msg> {
    if (this.#closeInfo) {
      return Promise.reject(
        new Error(
          `${this.#label}: waiting for ${what} on a closed socket (${this.#closeInfo.code} ${this.#closeInfo.reason})`,
        ),
      );
    }
    return new Promise<Msg>((resolve, reject) => {
      const w: Waiter = {
        match,
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = list.indexOf(w);
          if (i >= 0) list.splice(i, 1);
          reject(new Error(`${this.#label}: no ${what} within ${timeout} ms`));
        }, timeout),
      };
      list.push(w);
    });
  }

  /** Sends `frame` and returns its reply. */
  async cmd(frame: string, timeout = DEFAULT_TIMEOUT): Promise<Msg> {
    this.send(frame);
    return await this.reply(timeout);
  }

  /**
   * Sends `frame`, asserts an `ok` reply for its command and validates `data`
   * with `ReplyData[cmd]`; returns `data` as sent (unstripped).
   */
  async ok(frame: string, timeout = DEFAULT_TIMEOUT): Promise<Msg> {
    const m = await this.cmd(frame, timeout);
    const cmd = frame.slice(1).split(" ")[0].toLowerCase();
    return expectOk(m, cmd as CommandName, frame);
  }

  /**
   * Sends `frame` and asserts an `error` reply with `code` (and the matching
   * `error` name); `cmd` defaults to the frame's command name lowercased.
   */
  async fail(frame: string, code: Code, cmd?: string | null): Promise<ErrorMsg> {
    const m = await this.cmd(frame);
    const expectCmd = cmd !== undefined ? cmd : frame.slice(1).split(" ")[0].toLowerCase();
    return expectError(m, code, expectCmd, frame);
  }

  /** Closes the socket (if open) and waits until it is closed; rejects pending waits. */
  async close(): Promise<CloseInfo> {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      try {
        this.ws.close();
      } catch { /* closing */ }
    }
    return await this.closed;
  }

  /** Closes the socket: `await using c = await connect(url)`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Asserts `m` is an `ok` reply to `cmd` whose data fits `ReplyData[cmd]`; returns the data. */
export function expectOk(m: Msg, cmd: CommandName, what: string = cmd): Msg {
  assert.equal(m.type, "ok", `${what}: expected ok, got ${JSON.stringify(m)}`);
  assert.equal(m.cmd, cmd, `${what}: reply for the wrong command: ${JSON.stringify(m)}`);
  const schema = ReplyData[cmd];
  assert.ok(schema, `unknown command ${cmd}`);
  const r = schema.safeParse(m.data);
  assert.ok(r.success, `${what}: data does not fit ReplyData.${cmd}: ${JSON.stringify(m.data)}`);
  return m.data as Msg;
}

/** Asserts `m` is an error reply with `code`, its name, and `cmd`. */
export function expectError(m: Msg, code: Code, cmd: string | null, what = ""): ErrorMsg {
  assert.equal(m.type, "error", `${what}: expected error ${code}, got ${JSON.stringify(m)}`);
  assert.equal(m.code, code, `${what}: expected code ${code}, got ${JSON.stringify(m)}`);
  assert.equal(m.error, codeName(code), `${what}: wrong error name: ${JSON.stringify(m)}`);
  assert.equal(m.cmd, cmd, `${what}: wrong cmd in error: ${JSON.stringify(m)}`);
  assert.equal(typeof m.message, "string");
  return m as ErrorMsg;
}

/** Opens a WebSocket to `url` and waits until it is open. */
export async function connect(url: string, label = "client"): Promise<TestClient> {
  const ws = new WebSocket(url);
  const c = new TestClient(ws, label);
  await new Promise<void>((resolve, reject) => {
    const onOpen = () => {
      ws.removeEventListener("error", onError);
      resolve();
    };
    const onError = () => {
      ws.removeEventListener("open", onOpen);
      reject(new Error(`${label}: could not connect to ${url}`));
    };
    ws.addEventListener("open", onOpen, { once: true });
    ws.addEventListener("error", onError, { once: true });
  });
  return c;
}

/** Fields of a `/descp` (anything else becomes `meta`). */
export interface DescribeFields {
  id?: string;
  name?: string;
  [field: string]: unknown;
}

/**
 * Sends `/descp` with a fresh id (unless given) and a name, asserts `ok`,
 * validates the reply and records `id`, `name` and `resume` on the client.
 * Returns the reply `data`.
 */
export async function describe(c: TestClient, fields: DescribeFields = {}): Promise<Msg> {
  const body = { ...fields, id: fields.id ?? newId(), name: fields.name ?? "peer" };
  const data = await c.ok("/descp " + JSON.stringify(body));
  c.id = data.peer.id;
  c.name = data.peer.name;
  c.resume = data.resume;
  return data;
}

/** Connects and describes in one go: a ready peer. */
export async function peer(
  url: string,
  fields: DescribeFields = {},
): Promise<TestClient> {
  const c = await connect(url, fields.name ?? "peer");
  try {
    await describe(c, fields);
  } catch (e) {
    await c.close();
    throw e;
  }
  return c;
}

/** Several ready peers, named `p0`, `p1`, …; close them with {@linkcode closeAll}. */
export async function peers(url: string, n: number): Promise<TestClient[]> {
  const out: TestClient[] = [];
  try {
    for (let i = 0; i < n; i++) out.push(await peer(url, { name: `p${i}` }));
  } catch (e) {
    await closeAll(out);
    throw e;
  }
  return out;
}

/** Closes every client. */
export async function closeAll(clients: Iterable<TestClient>): Promise<void> {
  await Promise.all([...clients].map((c) => c.close()));
}

/** A group of clients closed together: `await using g = group(a, b)`. */
export function group(...clients: TestClient[]): TestClient[] & AsyncDisposable {
  const g = clients as TestClient[] & AsyncDisposable;
  g[Symbol.asyncDispose] = () => closeAll(g);
  return g;
}

/** A fresh channel id: `#` + a new ObjectId. */
export function newChannel(): string {
  return "#" + newId();
}

export { newId };

// ---------------------------------------------------------------------------
// A raw WebSocket client over TCP, for clients that stop reading.

/** A WebSocket frame read by {@linkcode RawClient}. */
export interface RawFrame {
  opcode: number;
  payload: Uint8Array;
}

/**
 * A hand-rolled WebSocket client over a plain TCP connection, so a test can
 * stop reading (a slow consumer) — the standard `WebSocket` always reads.
 */
export class RawClient {
  /** The TCP connection. */
  readonly conn: Deno.TcpConn;
  #buf = new Uint8Array(0);
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  /**
   * Connects to `url` (ws://host:port/) and completes the opening handshake,
   * with extra request `headers` (e.g. `Origin`); throws "handshake failed: …"
   * with the status line when the server does not answer 101.
   */
  static async connect(
    url: string,
    opts: { headers?: Record<string, string> } = {},
  ): Promise<RawClient> {
    const u = new URL(url);
    const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
    const c = new RawClient(conn);
    try {
      const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
      await c.#write(
        new TextEncoder().encode(
          `GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
            `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
            Object.entries(opts.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join("") +
            "\r\n",
        ),
      );
      let head = "";
      while (true) {
        const end = indexOfCrlf2(c.#buf);
        if (end >= 0) {
          head = new TextDecoder().decode(c.#buf.subarray(0, end));
          c.#buf = c.#buf.slice(end + 4);
          break;
        }
        if (!(await c.#fill())) throw new Error("connection closed during the handshake");
      }
      if (!head.startsWith("HTTP/1.1 101")) {
        throw new Error(`handshake failed: ${head.split("\r\n")[0]}`);
      }
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  async #write(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }

  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(65536);
    let n: number | null;
    try {
      n = await this.conn.read(chunk);
    } catch (e) {
      if (e instanceof Deno.errors.ConnectionReset) return false;
      throw e;
    }
    if (n === null) return false;
    const b = new Uint8Array(this.#buf.length + n);
    b.set(this.#buf);
    b.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = b;
    return true;
  }

  /** Sends a masked text frame. */
  async sendText(text: string): Promise<void> {
    await this.sendFrame(1, new TextEncoder().encode(text));
  }

  /** Sends a masked frame with `opcode`. */
  async sendFrame(opcode: number, payload: Uint8Array): Promise<void> {
    await this.#write(encodeFrame(opcode, payload));
  }

  /** Sends several text frames in one write, so the server reads them in one go. */
  async sendTexts(texts: string[]): Promise<void> {
    const frames = texts.map((t) => encodeFrame(1, new TextEncoder().encode(t)));
    const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    let off = 0;
    for (const f of frames) {
      all.set(f, off);
      off += f.length;
    }
    await this.#write(all);
  }

  /** Reads the next frame; null at the end of the stream. */
  async readFrame(): Promise<RawFrame | null> {
    while (true) {
      const b = this.#buf;
      if (b.length >= 2) {
        let len = b[1] & 0x7f;
        let off = 2;
        if (len === 126) {
          if (b.length < 4) len = -1;
          else {
            len = (b[2] << 8) | b[3];
            off = 4;
          }
        } else if (len === 127) {
          if (b.length < 10) len = -1;
          else {
            len = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(2));
            off = 10;
          }
        }
        if (len >= 0 && b.length >= off + len) {
          const frame = { opcode: b[0] & 0x0f, payload: b.slice(off, off + len) };
          this.#buf = b.slice(off + len);
          return frame;
        }
      }
      if (!(await this.#fill())) return null;
    }
  }

  /** Reads the next text frame's messages (skipping control frames); null on close. */
  async readMessages(): Promise<Msg[] | null> {
    while (true) {
      const f = await this.readFrame();
      if (f === null || f.opcode === 8) return null;
      if (f.opcode !== 1) continue;
      return new TextDecoder().decode(f.payload).split("\n").filter((l) => l.length > 0)
        .map((l) => JSON.parse(l));
    }
  }

  /** Reads the next reply, skipping events. */
  async reply(): Promise<Msg> {
    while (true) {
      const ms = await this.readMessages();
      if (ms === null) throw new Error("raw client: closed while waiting for a reply");
      const r = ms.find((m) => m.type === "ok" || m.type === "error");
      if (r) return r;
    }
  }

  /**
   * Reads until the server's close frame; returns its code (or null when the
   * stream ended without one) and how many text frames were skipped.
   */
  async readUntilClose(): Promise<{ code: number | null; frames: number }> {
    let frames = 0;
    while (true) {
      const f = await this.readFrame();
      if (f === null) return { code: null, frames };
      if (f.opcode === 8) {
        const code = f.payload.length >= 2 ? (f.payload[0] << 8) | f.payload[1] : 1005;
        return { code, frames };
      }
      frames++;
    }
  }

  /** Closes the TCP connection (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch { /* closed */ }
  }

  /** Closes the TCP connection. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** A masked client frame (RFC 6455 §5.2). */
function encodeFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const f = new Uint8Array(head + 4 + n);
  f[0] = 0x80 | opcode;
  if (n < 126) f[1] = 0x80 | n;
  else if (n < 65536) {
    f[1] = 0x80 | 126;
    f[2] = n >> 8;
    f[3] = n & 0xff;
  } else {
    f[1] = 0x80 | 127;
    new DataView(f.buffer).setBigUint64(2, BigInt(n));
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  f.set(mask, head);
  for (let i = 0; i < n; i++) f[head + 4 + i] = payload[i] ^ mask[i & 3];
  return f;
}

function indexOfCrlf2(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

/** Asserts the keys of `obj` are exactly `keys` (order ignored). */
export function assertKeys(obj: Msg, keys: string[], what = "object"): void {
  assert.deepEqual(
    Object.keys(obj).sort(),
    [...keys].sort(),
    `${what}: unexpected keys in ${JSON.stringify(obj)}`,
  );
}

/** A server-assigned message id: a BSON ObjectId in lowercase hex. */
export function assertObjectId(id: unknown, what = "id"): void {
  assert.equal(typeof id, "string", `${what} must be a string`);
  assert.match(id as string, /^[0-9a-f]{24}$/, `${what} must be a lowercase ObjectId`);
}

/** A plausible server timestamp (ms since epoch, within a minute of now). */
export function assertTs(ts: unknown, what = "ts"): void {
  assert.equal(typeof ts, "number", `${what} must be a number`);
  assert.ok(Math.abs((ts as number) - Date.now()) < 60_000, `${what} ${ts} is not near now`);
}
