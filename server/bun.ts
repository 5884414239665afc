/**
 * The Bun adapter: `Bun.serve` with its `websocket` handlers → the hub's
 * {@linkcode Connection}. Channel fan-out uses Bun's native topics: one
 * `publish` frames a channel's events of one turn once for every subscriber.
 */
import { CloseCodes } from "../protocol/mod.ts";
import { Batched, flushBatches } from "./batch.ts";
import { DEFAULTS } from "./config.ts";
import { type Frontend, route, type SocketHandler } from "./frontends/frontend.ts";
import type { Connection, Hub } from "./hub/mod.ts";
import { handleHttp, originAllowed } from "./http.ts";
import type { Listener, ServeOptions } from "./serve.ts";

/** The parts of Bun's `ServerWebSocket` the adapter uses. */
interface BunSocket {
  data: {
    remote: string;
    /** The upgrade's URL, until the socket opens (an open socket holds none). */
    url?: URL;
    frontend: Frontend;
    handler?: SocketHandler;
    /** The front-end's own ping period: whether the last ping got its pong, and the timer. */
    ponged?: boolean;
    pinger?: ReturnType<typeof setInterval>;
    release?: () => void;
  };
  send(text: string): number;
  cork(write: () => void): void;
  ping(): number;
  terminate(): void;
  publish(topic: string, text: string): number;
  subscribe(topic: string): void;
  unsubscribe(topic: string): void;
  close(code: number, reason: string): void;
  getBufferedAmount(): number;
}

/** The parts of Bun's `Server` the adapter uses. */
interface BunServer {
  port: number;
  hostname: string;
  upgrade(req: Request, options: { data: BunSocket["data"] }): boolean;
  publish(topic: string, text: string): number;
  requestIP(req: Request): { address: string } | null;
  stop(closeActiveConnections?: boolean): Promise<void>;
}

declare const Bun: {
  serve(options: Record<string, unknown>): BunServer;
};

/**
 * A socket whose direct sends (replies, privmsg) are batched per turn; channel
 * fan-out goes around the batch through Bun's native publish.
 */
class BunConnection extends Batched implements Connection {
  constructor(readonly ws: BunSocket, readonly remoteAddress: string, batch: boolean) {
    super(batch);
  }
  protected write(frame: string): void {
    // -1: queued behind backpressure (the hub checks the buffer); 0: dropped, and
    // closeOnBackpressureLimit closes the socket, so nothing is silently lost.
    this.ws.send(frame);
  }
  failed(): void {
    // Only a frame too large to build throws here: the client is far behind.
    this.ws.close(CloseCodes.TOO_SLOW, "too slow: messages not read");
  }
  protected override writeFrames(frames: string[]): void {
    // One write for all of them.
    this.ws.cork(() => {
      for (const f of frames) this.ws.send(f);
    });
  }
  get bufferedAmount(): number {
    return this.ws.getBufferedAmount();
  }
  close(code: number, reason: string): void {
    // Whatever this turn made leaves before the close frame, channel events too.
    flushBatches();
    this.ws.close(code, reason);
  }
}

/** Serves the hub's front-ends on Bun. */
export function serve(
  hub: Hub,
  frontends: readonly Frontend[],
  o: ServeOptions,
): Promise<Listener> {
  const server = Bun.serve({
    port: o.port,
    hostname: o.host,
    tls: o.cert === undefined ? undefined : { cert: o.cert, key: o.key },
    // Seconds an HTTP connection may stay silent, a half-sent request head included.
    idleTimeout: Math.min(
      255,
      Math.max(1, Math.ceil((o.headerTimeoutMs ?? DEFAULTS.headerTimeoutMs) / 1000)),
    ),
    fetch(req: Request, srv: BunServer) {
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return handleHttp(req, hub, frontends);
      }
      if (!originAllowed(req.headers.get("origin"), o.allowOrigin)) {
        return new Response("origin not allowed\n", { status: 403 });
      }
      const url = new URL(req.url);
      const frontend = route(frontends, url);
      if (frontend === undefined) return new Response("not found\n", { status: 404 });
      const peer = srv.requestIP(req)?.address ?? "";
      const admitted = o.guard?.admit(req, peer);
      if (admitted instanceof Response) return admitted;
      const remote = admitted?.address ?? peer;
      const release = admitted?.release;
      if (srv.upgrade(req, { data: { remote, url, frontend, release } })) return undefined;
      release?.();
      return new Response("WebSocket upgrade failed\n", { status: 400 });
    },
    websocket: {
      maxPayloadLength: o.maxPayload,
      // A client whose queue reaches the hub's limit is closed (4008) by the hub;
      // this hard stop twice as high only catches a single huge burst.
      backpressureLimit: o.maxBuffered * 2,
      closeOnBackpressureLimit: true,
      idleTimeout: 120,
      sendPings: true,
      publishToSelf: false,
      open(ws: BunSocket) {
        const { frontend, remote, url } = ws.data;
        ws.data.url = undefined;
        ws.data.handler = frontend.open(
          hub,
          new BunConnection(ws, remote, frontend.batch ?? true),
          url!,
        );
        if (frontend.pingMs !== undefined) {
          // Bun's own pings follow the server-wide idle timeout: this front-end wants its own.
          ws.data.ponged = true;
          ws.data.pinger = setInterval(() => {
            if (!ws.data.ponged) return ws.terminate();
            ws.data.ponged = false;
            ws.ping();
          }, frontend.pingMs);
        }
      },
      pong(ws: BunSocket) {
        ws.data.ponged = true;
      },
      message(ws: BunSocket, message: string | Uint8Array) {
        if (typeof message === "string") ws.data.handler!.text(message);
        else ws.data.handler!.binary(message);
      },
      close(ws: BunSocket, code: number) {
        clearInterval(ws.data.pinger);
        ws.data.release?.();
        ws.data.handler?.closed(code);
      },
    },
  });
  // Set before the first socket opens: the handlers above run on a later turn.
  hub.useFanout({
    accepts: (conn) => conn instanceof BunConnection,
    subscribe: (conn, topic) => (conn as BunConnection).ws.subscribe(topic),
    unsubscribe: (conn, topic) => (conn as BunConnection).ws.unsubscribe(topic),
    publish: (topic, text, except) => {
      // A socket's own publish skips itself: the sender does not get its own pubmsg. (It
      // still publishes once closed, as the end of a turn may find it.)
      const sent = except === undefined
        ? server.publish(topic, text)
        : (except as BunConnection).ws.publish(topic, text);
      // 0: dropped, -1: queued behind backpressure somewhere.
      return sent <= 0;
    },
  });
  return Promise.resolve({
    port: server.port,
    host: server.hostname,
    close: () => server.stop(true),
  });
}
