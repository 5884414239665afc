/**
 * Front-ends: wire protocols in front of the hub. A runtime adapter accepts a
 * WebSocket, picks the front-end by the request's path, and feeds it the
 * socket's frames; the front-end turns them into calls of the hub's commands
 * and the hub's replies and events into frames. Adding a protocol means adding
 * a front-end, never editing the hub.
 */
import type { Connection, Hub } from "../hub/mod.ts";

/** What a front-end is fed for one socket. */
export interface SocketHandler {
  /** A text frame arrived. */
  text(frame: string): void;
  /** A binary frame arrived. */
  binary(data: Uint8Array): void;
  /**
   * The socket closed, with the code the client's close frame carried (1005
   * when it had none), or 1006 when the connection ended without one
   * (undefined where the runtime does not tell).
   */
  closed(code?: number): void;
}

/** A wire protocol served on one path. */
export interface Frontend {
  /** The path it serves; `/` also serves every path no other front-end claims. */
  readonly path: string;
  /**
   * Whether what one socket is sent within one turn may leave as one frame
   * of newline-separated messages (default true). False for protocols whose
   * clients parse exactly one message per frame.
   */
  readonly batch?: boolean;
  /**
   * How often the runtime pings an idle socket of this front-end, in ms; a
   * socket that does not answer with a pong in as long is closed. Default:
   * the runtime's own keep-alive.
   */
  readonly pingMs?: number;
  /** A socket opened on this front-end's path. */
  open(hub: Hub, conn: Connection, url: URL): SocketHandler;
  /**
   * Answers a plain HTTP request this front-end serves (its own routes next to
   * the socket), or returns undefined to leave it to the others.
   */
  http?(req: Request, url: URL): Response | Promise<Response> | undefined;
}

/** The front-end for `url`: the one serving its path, else the one serving `/`. */
export function route(frontends: readonly Frontend[], url: URL): Frontend | undefined {
  return frontends.find((f) => f.path === url.pathname) ?? frontends.find((f) => f.path === "/");
}
