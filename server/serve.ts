/** What every runtime adapter takes and returns. */
import type { ConnectionGuard } from "./guard.ts";

/** Options of a runtime adapter's `serve`. */
export interface ServeOptions {
  port: number;
  host: string;
  /** PEM certificate and key: serve TLS (`wss://`). */
  cert?: string;
  key?: string;
  allowOrigin?: string[];
  /** Largest frame the runtime should accept before closing with 1009. */
  maxPayload: number;
  /** Bytes queued to one client before it is closed 4008. */
  maxBuffered: number;
  /** Counts open WebSockets per address and in all; none: no connection limits. */
  guard?: ConnectionGuard;
  /** Time allowed for a request head, ms (`DEFAULTS.headerTimeoutMs` when absent). */
  headerTimeoutMs?: number;
}

/** A listening server. */
export interface Listener {
  port: number;
  host: string;
  /** Stops accepting connections. */
  close(): Promise<void>;
}
