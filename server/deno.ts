/**
 * The Deno adapter: HTTP and WebSocket upgrades → the hub's
 * {@linkcode Connection}. Events bound for one socket within one turn of the
 * event loop leave as one frame (newline-delimited JSON). It serves with
 * `deno_http.ts` (a request head has a deadline; a frame is judged by its
 * header) where `Deno.serve` and `Deno.upgradeWebSocket` have neither limit.
 */
import { CloseCodes } from "../protocol/mod.ts";
import { Batched } from "./batch.ts";
import { DEFAULTS } from "./config.ts";
import { serveHttp, upgradeWebSocket } from "./deno_http.ts";
import type { ServerWebSocket } from "./deno_websocket.ts";
import { type Frontend, route, type SocketHandler } from "./frontends/frontend.ts";
import type { Connection, Hub } from "./hub/mod.ts";
import { handleHttp, originAllowed } from "./http.ts";
import type { Listener, ServeOptions } from "./serve.ts";

/** A socket with per-turn batching of outgoing text. */
class DenoConnection extends Batched implements Connection {
  #ws: ServerWebSocket;
  /**
   * What earlier flushes had left unwritten when this turn's batch was handed
   * over: the client's backlog. Deno writes between turns, so the batch just
   * handed over says nothing yet about whether the client reads.
   */
  #backlog = 0;
  readonly remoteAddress: string;

  constructor(ws: ServerWebSocket, remoteAddress: string, batch: boolean) {
    super(batch);
    this.#ws = ws;
    this.remoteAddress = remoteAddress;
  }

  protected write(frame: string): void {
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    this.#backlog = this.#ws.bufferedAmount;
    this.#ws.send(frame);
  }

  failed(): void {
    // Only a frame too large to build throws here: the client is far behind.
    this.close(CloseCodes.TOO_SLOW, "too slow: messages not read");
  }

  get bufferedAmount(): number {
    return this.#backlog;
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

/**
 * Hands the socket to `frontend` once it opens. Its handlers are made here, apart
 * from the upgrade's scope, so an open socket holds no request, URL or headers.
 */
function attach(
  socket: ServerWebSocket,
  open: () => SocketHandler,
  release: (() => void) | undefined,
): void {
  socket.onclose = () => release?.();
  socket.onopen = () => listen(socket, open(), release);
}

function listen(
  socket: ServerWebSocket,
  handler: SocketHandler,
  release: (() => void) | undefined,
): void {
  socket.onopen = null;
  socket.onmessage = (e) =>
    typeof e.data === "string"
      ? handler.text(e.data)
      : handler.binary(new Uint8Array(e.data as ArrayBuffer));
  socket.onclose = (e) => {
    release?.();
    // A connection lost without a close frame is 1006.
    handler.closed(e.wasClean ? e.code : 1006);
  };
}

/** Serves the hub's front-ends on Deno. */
export function serve(
  hub: Hub,
  frontends: readonly Frontend[],
  o: ServeOptions,
): Promise<Listener> {
  const onError = (e: unknown) => hub.unexpected("socket handler", e);
  return new Promise((resolve) => {
    const server = serveHttp({
      port: o.port,
      hostname: o.host,
      cert: o.cert,
      key: o.key,
      headerTimeoutMs: o.headerTimeoutMs ?? DEFAULTS.headerTimeoutMs,
      onError: (e) => hub.log.error("http server error", { error: String(e) }),
      onListen: ({ port, hostname }) =>
        resolve({ port, host: hostname, close: () => server.shutdown() }),
    }, (req, info) => {
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return handleHttp(req, hub, frontends);
      }
      if (!originAllowed(req.headers.get("origin"), o.allowOrigin)) {
        return new Response("origin not allowed\n", { status: 403 });
      }
      const url = new URL(req.url);
      const frontend = route(frontends, url);
      if (frontend === undefined) return new Response("not found\n", { status: 404 });
      const { socket, response } = upgradeWebSocket(req, {
        maxPayload: o.maxPayload,
        onError,
        // A socket idle this long is pinged, and closed when no pong follows.
        pingMs: frontend.pingMs,
      });
      const admitted = o.guard?.admit(req, info.remoteAddr.hostname);
      if (admitted instanceof Response) return admitted;
      const remote = admitted?.address ?? info.remoteAddr.hostname;
      attach(
        socket,
        () => frontend.open(hub, new DenoConnection(socket, remote, frontend.batch ?? true), url),
        admitted?.release,
      );
      return response;
    });
  });
}
