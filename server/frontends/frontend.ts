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
  /** The socket closed. */
  closed(): void;
}

/** A wire protocol served on one path. */
export interface Frontend {
  /** The path it serves; `/` also serves every path no other front-end claims. */
  readonly path: string;
  /** A socket opened on this front-end's path. */
  open(hub: Hub, conn: Connection, url: URL): SocketHandler;
}

/** The front-end for `url`: the one serving its path, else the one serving `/`. */
export function route(frontends: readonly Frontend[], url: URL): Frontend | undefined {
  return frontends.find((f) => f.path === url.pathname) ?? frontends.find((f) => f.path === "/");
}
