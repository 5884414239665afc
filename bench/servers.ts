/**
 * Starting and stopping one server of a target: spawned with its open-files
 * limit raised (and pinned to CPU 0 when asked), its output drained and its
 * last lines kept for error messages, up once its readiness line is printed
 * and its port accepts connections.
 * @module
 */
import { ROOT } from "./paths.ts";
import { sleep, spawn, stop, wrap } from "./process.ts";
import type { Target } from "./targets.ts";

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
export interface Server {
  child: Deno.ChildProcess;
  pid: number;
  port: number;
  out: LineTap;
  err: LineTap;
}

async function freePort(): Promise<number> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await sleep(10);
  return port;
}

/** Starts one server of a target and waits until it accepts connections (throws if it does not). */
export async function startServer(
  t: Target,
  opts: { conns: number; pin: boolean; redisPrefix?: string },
): Promise<Server> {
  const port = t.choosePort ? await freePort() : 0;
  const { cmd, env } = t.command(port, opts);
  const child = spawn(wrap(cmd, opts.pin ? 0 : null), {
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
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
      await sleep(50);
    }
  }
  return { child, pid: child.pid, port: realPort, out, err };
}

/** Stops a server (SIGTERM, SIGKILL after 5 s) and drains its output. */
export async function stopServer(s: Server): Promise<void> {
  await stop(s.child);
  await Promise.all([s.out.done(), s.err.done()]);
}

/** Whether a server is still running (it has not exited within 50 ms). */
export function running(s: Server): Promise<boolean> {
  return Promise.race([s.child.status.then(() => false), sleep(50).then(() => true)]);
}
