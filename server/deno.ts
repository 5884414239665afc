/**
 * The Deno adapter: `Deno.serve` + `Deno.upgradeWebSocket` → the hub's
 * {@linkcode Connection}. Events bound for one socket within one turn of the
 * event loop leave as one frame (newline-delimited JSON).
 */
import type { Connection, Hub } from "./hub.ts";
import { handleHttp, originAllowed } from "./http.ts";
import type { Listener, ServeOptions } from "./serve.ts";

/** Sockets with events waiting, flushed together once the turn's input is handled. */
const dirty = new Set<DenoConnection>();
/**
 * Flushes so far. Deno writes between turns, so the bytes of the latest flush
 * say nothing yet about whether the client reads; what is older than that does.
 */
let flushes = 0;

function flushAll(): void {
  flushes++;
  for (const c of dirty) c.flush();
  dirty.clear();
}

/** A socket with per-turn batching of outgoing text. */
class DenoConnection implements Connection {
  #ws: WebSocket;
  #pending: string[] = [];
  /** Bytes handed to the socket by flush number `#flushed`. */
  #flushedBytes = 0;
  #flushed = -1;
  readonly remoteAddress: string;

  constructor(ws: WebSocket, remoteAddress: string) {
    this.#ws = ws;
    this.remoteAddress = remoteAddress;
  }

  send(text: string): void {
    if (this.#pending.length === 0) {
      if (dirty.size === 0) setImmediate(flushAll);
      dirty.add(this);
    }
    this.#pending.push(text);
  }

  /** Sends what this turn batched as one frame. */
  flush(): void {
    if (this.#pending.length === 0) return;
    const batch = this.#pending.length === 1 ? this.#pending[0] : this.#pending.join("\n");
    this.#pending = [];
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    [this.#flushed, this.#flushedBytes] = [flushes, batch.length];
    this.#ws.send(batch);
  }

  /** What earlier flushes left unwritten: the client's backlog. */
  get bufferedAmount(): number {
    const buffered = this.#ws.bufferedAmount;
    return this.#flushed === flushes ? Math.max(0, buffered - this.#flushedBytes) : buffered;
  }

  close(code: number, reason: string): void {
    // Whatever is batched leaves before the close frame.
    this.flush();
    try {
      this.#ws.close(code, reason);
    } catch {
      // Already closed.
    }
  }
}

/** Serves the hub on Deno. */
export function serve(hub: Hub, o: ServeOptions): Promise<Listener> {
  return new Promise((resolve) => {
    const server = Deno.serve({
      port: o.port,
      hostname: o.host,
      cert: o.cert,
      key: o.key,
      onListen: ({ port, hostname }) =>
        resolve({ port, host: hostname, close: () => server.shutdown() }),
    }, (req, info) => {
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") return handleHttp(req, hub);
      if (!originAllowed(req.headers.get("origin"), o.allowOrigin)) {
        return new Response("origin not allowed\n", { status: 403 });
      }
      const remote = (info.remoteAddr as Deno.NetAddr).hostname;
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onopen = () => {
        const session = hub.connect(new DenoConnection(socket, remote));
        socket.onmessage = (e) =>
          typeof e.data === "string" ? session.receive(e.data) : session.receiveBinary();
        socket.onclose = () => session.closed();
        socket.onerror = () => {};
      };
      return response;
    });
  });
}
