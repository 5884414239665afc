/**
 * The Deno adapter: `Deno.serve` + `Deno.upgradeWebSocket` → the hub's
 * {@linkcode Connection}. Events bound for one socket within one turn of the
 * event loop leave as one frame (newline-delimited JSON).
 */
import type { Connection, Hub } from "./hub.ts";
import { handleHttp, originAllowed } from "./http.ts";
import type { Listener, ServeOptions } from "./serve.ts";

/** A socket with per-turn batching of outgoing text. */
class DenoConnection implements Connection {
  #ws: WebSocket;
  #pending: string[] = [];
  #pendingBytes = 0;
  readonly remoteAddress: string;

  constructor(ws: WebSocket, remoteAddress: string) {
    this.#ws = ws;
    this.remoteAddress = remoteAddress;
  }

  send(text: string): void {
    if (this.#pending.length === 0) queueMicrotask(() => this.#flush());
    this.#pending.push(text);
    this.#pendingBytes += text.length;
  }

  #flush(): void {
    const batch = this.#pending.length === 1 ? this.#pending[0] : this.#pending.join("\n");
    this.#pending = [];
    this.#pendingBytes = 0;
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send(batch);
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount + this.#pendingBytes;
  }

  close(code: number, reason: string): void {
    // Whatever is batched leaves before the close frame.
    if (this.#pending.length > 0) this.#flush();
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
