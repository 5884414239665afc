/**
 * Helpers of the typed client's tests: clients whose sockets a test can see,
 * a TCP relay that fails like a network, and event waits that cannot hang.
 */
import {
  SignallerClient,
  type SignallerClientOptions,
  type SignallerEventMap,
} from "../../client/mod.ts";
import { newChannelId } from "../../protocol/ids.ts";
import { within } from "../support/wait.ts";

export { type ServerHandle, startServer } from "../support/server.ts";
export { within } from "../support/wait.ts";

/** How long a test waits for any one thing before it fails, ms. */
export const WAIT_MS = 5000;

/** A test's deadline as a whole, ms: no test may hang, whatever it awaits. */
const TEST_MS = 30_000;

/** Registers a `Deno.test` that fails after {@linkcode TEST_MS}, sanitizers on. */
export function test(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name,
    sanitizeOps: true,
    sanitizeResources: true,
    fn: () => within(fn(), TEST_MS, `the end of "${name}"`),
  });
}

/** A fresh channel id, typed as one so `whois` picks the channel reply. */
export function chan(): `#${string}` {
  return newChannelId() as `#${string}`;
}

/** A WebSocket that records the text frames sent on it. */
export interface TrackedSocket extends WebSocket {
  /** Every text frame sent, in order. */
  readonly sent: string[];
}

/** A typed client whose sockets the test can see. */
export interface Tracked {
  client: SignallerClient;
  /** Every socket the client opened, oldest first. */
  sockets: TrackedSocket[];
  /** The `/descp` bodies sent on each socket, oldest first (commands and all). */
  descps(): Record<string, unknown>[];
}

/**
 * A typed client on `url`, its sockets tracked. Reconnects wait a fixed half
 * of a 50 ms ceiling doubling up to 200 ms (jitter `0.5`), unless given.
 */
export function makeClient(url: string, options: Partial<SignallerClientOptions> = {}): Tracked {
  const sockets: TrackedSocket[] = [];
  const Socket = class extends WebSocket implements TrackedSocket {
    readonly sent: string[] = [];
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
    }
    override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
      super.send(data);
      if (typeof data === "string") this.sent.push(data);
    }
  };
  const client = new SignallerClient(url, {
    name: "peer",
    WebSocket: Socket,
    backoff: { initialMs: 50, maxMs: 200 },
    random: () => 0.5,
    ...options,
  });
  return {
    client,
    sockets,
    descps: () =>
      sockets.flatMap((s) => s.sent).filter((f) => f.startsWith("/descp ")).map((f) =>
        JSON.parse(f.slice("/descp ".length))
      ),
  };
}

/**
 * Resolves with the next event of `type` (that satisfies `where`, if given);
 * await it with {@linkcode within}.
 */
export function next<K extends keyof SignallerEventMap>(
  client: SignallerClient,
  type: K,
  where: (event: SignallerEventMap[K]) => boolean = () => true,
): Promise<SignallerEventMap[K]> {
  return new Promise((resolve) => {
    const off = client.on(type, (event) => {
      if (!where(event)) return;
      off();
      resolve(event);
    });
  });
}

/** Collects every event of `type` from now on. */
export function collect<K extends keyof SignallerEventMap>(
  client: SignallerClient,
  type: K,
): SignallerEventMap[K][] {
  const got: SignallerEventMap[K][] = [];
  client.on(type, (ev) => got.push(ev));
  return got;
}

/** What `p` rejected with, or fails the test when it resolved. */
export async function rejection(p: Promise<unknown>, what = "the promise"): Promise<unknown> {
  let value: unknown;
  try {
    value = await within(p, WAIT_MS, what);
  } catch (e) {
    return e;
  }
  throw new Error(`${what} resolved with ${JSON.stringify(value)}, expected a rejection`);
}

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
export function deadPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

/**
 * A TCP relay in front of a server, to fail connections the way a network
 * does — without a close frame, and with whatever was in flight lost — which
 * no WebSocket API can do to its own socket.
 */
export class TcpProxy {
  #listener: Deno.TcpListener;
  /** The server's port: where new connections are relayed to. */
  target: number;
  /**
   * While true, new connections are closed as soon as they are accepted:
   * the server is out of reach.
   */
  refuse = false;
  #conns = new Set<Deno.Conn>();
  #relays = new Set<Promise<void>>();
  #accepting: Promise<void>;

  /** Relays to `target`, a port on 127.0.0.1. */
  constructor(target: number) {
    this.target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The WebSocket URL of the relay. */
  get url(): string {
    return `ws://127.0.0.1:${this.#listener.addr.port}/`;
  }

  /** Drops every relayed connection now, both ends, nothing more forwarded. */
  cut(): void {
    for (const c of this.#conns) closeQuietly(c);
    this.#conns.clear();
  }

  /** Stops relaying and waits for every relay to end. */
  async close(): Promise<void> {
    this.#listener.close();
    this.cut();
    await this.#accepting;
    await Promise.all(this.#relays);
  }

  /** Closes the relay (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #accept(): Promise<void> {
    try {
      for await (const down of this.#listener) {
        const relay = this.#relay(down);
        this.#relays.add(relay);
        relay.finally(() => this.#relays.delete(relay));
      }
    } catch {
      // The listener was closed.
    }
  }

  async #relay(down: Deno.Conn): Promise<void> {
    if (this.refuse) {
      closeQuietly(down);
      return;
    }
    this.#conns.add(down);
    let up: Deno.Conn;
    try {
      up = await Deno.connect({ hostname: "127.0.0.1", port: this.target });
    } catch {
      this.#conns.delete(down);
      closeQuietly(down);
      return;
    }
    if (!this.#conns.has(down)) {
      // Cut while connecting.
      closeQuietly(up);
      return;
    }
    this.#conns.add(up);
    await Promise.all([pipe(down, up), pipe(up, down)]);
    for (const c of [down, up]) {
      this.#conns.delete(c);
      closeQuietly(c);
    }
  }
}

/** Copies `from` to `to` until either ends; then ends both, as one TCP connection would. */
async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    while (true) {
      const n = await from.read(buf);
      if (n === null) break;
      let off = 0;
      while (off < n) off += await to.write(buf.subarray(off, n));
    }
  } catch {
    // Cut, or the other side is gone.
  }
  closeQuietly(from);
  closeQuietly(to);
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch {
    // Already closed.
  }
}
