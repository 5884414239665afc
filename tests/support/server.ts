/**
 * The server under test: spawns the real `server.ts` (on Deno or Bun) or the
 * single binary on a free port, and registers black-box tests once per runtime.
 *
 * @example
 * ```ts
 * import { bbtest, sharedServer } from "./server.ts";
 * import { connect, describe } from "./client.ts";
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
import type { Timer } from "./wait.ts";

/** A runtime the server can run on; `"binary"` is the single binary `deno task compile` builds. */
export type Runtime = "deno" | "bun" | "binary";

/** The repository root (the parent of `tests/`). */
export const ROOT: string = new URL("../..", import.meta.url).pathname;

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
  /**
   * Whether `--port 0 --host 127.0.0.1` come first; true by default. False
   * leaves port and host to `args` or the environment (`PORT`, `HOST`).
   */
  listenFlags?: boolean;
}

/** A running server process. */
export interface ServerHandle {
  /** The WebSocket URL, e.g. `ws://127.0.0.1:41234/` (`wss://` when serving TLS). */
  url: string;
  /** The port it listens on. */
  port: number;
  /** The host it printed in its first line, e.g. `127.0.0.1` or `0.0.0.0`. */
  host: string;
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

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
const LOG_LINES = 50;
const LISTENING = /^signaller listening on (wss?):\/\/(\S+):(\d+)\/\s*$/;

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
 * stdout line `signaller listening on ws://HOST:PORT/` (or `wss://`). Stdout
 * and stderr are drained continuously; the last stderr lines are kept for
 * failure messages. Fails if the server does not listen within 15 s.
 */
export async function startServer(opts: StartOptions = {}): Promise<ServerHandle> {
  const runtime = opts.runtime ?? "deno";
  const listen = opts.listenFlags === false ? [] : ["--port", "0", "--host", "127.0.0.1"];
  const flags = [...listen, ...(opts.args ?? [])];
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
  const listened = new Promise<RegExpMatchArray>((r) => listening = r);
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
  const first = await Promise.race([listened, status.then(() => "exited" as const), timeout]);
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
  const tls = first[1] === "wss";
  const printedHost = first[2];
  const port = Number(first[3]);
  // Whatever address it listens on, the tests reach it over the loopback.
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
    url: `${tls ? "wss" : "ws"}://${host}:${port}/`,
    port,
    host: printedHost,
    httpUrl: `${tls ? "https" : "http"}://${host}:${port}`,
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

/** The runtimes `SIGNALLER_TEST_RUNTIME` may name. */
const SELECTABLE: Runtime[] = ["deno", "bun"];

let cachedRuntimes: Runtime[] | undefined;

/** Whether `bun` runs. */
function haveBun(): boolean {
  try {
    return new Deno.Command("bun", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/**
 * The runtimes to test: `"deno"`, plus `"bun"` once `server/bun.ts` exists and
 * `bun` is on the PATH; without `bun` one line says the Bun runs are skipped,
 * and with `CI=true` it is an error. `SIGNALLER_TEST_RUNTIME=deno` (or `bun`)
 * keeps only that one; any other value, or naming a runtime that is missing,
 * throws, so a typo never registers zero tests.
 */
export function runtimes(): Runtime[] {
  if (cachedRuntimes) return cachedRuntimes;
  const only = Deno.env.get("SIGNALLER_TEST_RUNTIME");
  if (only !== undefined && only !== "" && !(SELECTABLE as string[]).includes(only)) {
    throw new Error(
      `SIGNALLER_TEST_RUNTIME=${only} is not a runtime: use ${SELECTABLE.join(" or ")}`,
    );
  }
  const list: Runtime[] = ["deno"];
  if (exists("server/bun.ts")) {
    if (haveBun()) list.push("bun");
    else if (Deno.env.get("CI") === "true") {
      throw new Error("CI=true: server/bun.ts exists but `bun` is not on the PATH");
    } else if (!only) {
      console.log("Bun runs of the black-box tests skipped: `bun` is not on the PATH.");
    }
  }
  if (only === "bun" && !list.includes("bun")) {
    throw new Error("SIGNALLER_TEST_RUNTIME=bun but `bun` is not on the PATH");
  }
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
