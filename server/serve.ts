/** What every runtime adapter takes and returns. */

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
}

/** A listening server. */
export interface Listener {
  port: number;
  host: string;
  /** Stops accepting connections. */
  close(): Promise<void>;
}
