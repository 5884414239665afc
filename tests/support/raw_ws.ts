/**
 * A hand-rolled RFC 6455 client over plain TCP (or TLS), for what the standard
 * `WebSocket` cannot do: stop reading (a slow consumer), send raw or malformed
 * frames, several frames in one write, or extra handshake headers.
 *
 * @example
 * ```ts
 * import { RawClient } from "./raw_ws.ts";
 *
 * using c = await RawClient.connect(url, { headers: { Origin: "http://good.example" } });
 * await c.sendText('/descp {"id":"65a1f0c2e4b0a1b2c3d4e5f6","name":"raw"}');
 * const reply = await c.reply();
 * ```
 * @module
 */
import type { Msg } from "./client.ts";

/** A WebSocket frame read by {@linkcode RawClient}. */
export interface RawFrame {
  opcode: number;
  payload: Uint8Array;
}

/** Options of {@linkcode RawClient.connect}. */
export interface RawConnectOptions {
  /** Extra request headers of the opening handshake. */
  headers?: Record<string, string>;
  /** PEM certificates to trust for `wss://` (a self-signed test certificate). */
  caCerts?: string[];
}

/**
 * A hand-rolled WebSocket client over a plain TCP connection, so a test can
 * stop reading (a slow consumer) — the standard `WebSocket` always reads.
 */
export class RawClient {
  /** The TCP (or TLS) connection. */
  readonly conn: Deno.Conn;
  #buf = new Uint8Array(0);
  #closed = false;

  private constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /**
   * Connects to `url` (`ws://host:port/`, or `wss://` trusting `caCerts`) and
   * completes the opening handshake, with extra request `headers` (e.g.
   * `Origin`); throws "handshake failed: …" with the status line when the
   * server does not answer 101.
   */
  static async connect(url: string, opts: RawConnectOptions = {}): Promise<RawClient> {
    const u = new URL(url);
    const target = { hostname: u.hostname, port: Number(u.port) };
    const conn = u.protocol === "wss:"
      ? await Deno.connectTls({ ...target, caCerts: opts.caCerts })
      : await Deno.connect(target);
    const c = new RawClient(conn);
    try {
      const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
      await c.#write(
        new TextEncoder().encode(
          `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
            `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
            Object.entries(opts.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join("") +
            "\r\n",
        ),
      );
      let head = "";
      while (true) {
        const end = indexOfCrlf2(c.#buf);
        if (end >= 0) {
          head = new TextDecoder().decode(c.#buf.subarray(0, end));
          c.#buf = c.#buf.slice(end + 4);
          break;
        }
        if (!(await c.#fill())) throw new Error("connection closed during the handshake");
      }
      if (!head.startsWith("HTTP/1.1 101")) {
        throw new Error(`handshake failed: ${head.split("\r\n")[0]}`);
      }
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  async #write(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }

  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(65536);
    let n: number | null;
    try {
      n = await this.conn.read(chunk);
    } catch (e) {
      if (e instanceof Deno.errors.ConnectionReset) return false;
      throw e;
    }
    if (n === null) return false;
    const b = new Uint8Array(this.#buf.length + n);
    b.set(this.#buf);
    b.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = b;
    return true;
  }

  /** Sends a masked text frame. */
  async sendText(text: string): Promise<void> {
    await this.sendFrame(1, new TextEncoder().encode(text));
  }

  /** Sends a masked frame with `opcode`; `fin: false` makes it a fragment of a longer message. */
  async sendFrame(
    opcode: number,
    payload: Uint8Array,
    opts: { fin?: boolean } = {},
  ): Promise<void> {
    await this.#write(encodeFrame(opcode, payload, opts.fin ?? true));
  }

  /** Sends several text frames in one write, so the server reads them in one go. */
  async sendTexts(texts: string[]): Promise<void> {
    await this.sendFrames(texts.map((t) => ({ opcode: 1, payload: new TextEncoder().encode(t) })));
  }

  /** Sends several frames, text or binary, in one write. */
  async sendFrames(list: RawFrame[]): Promise<void> {
    const frames = list.map((f) => encodeFrame(f.opcode, f.payload));
    const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
    let off = 0;
    for (const f of frames) {
      all.set(f, off);
      off += f.length;
    }
    await this.#write(all);
  }

  /** Reads the next frame; null at the end of the stream. */
  async readFrame(): Promise<RawFrame | null> {
    while (true) {
      const b = this.#buf;
      if (b.length >= 2) {
        let len = b[1] & 0x7f;
        let off = 2;
        if (len === 126) {
          if (b.length < 4) len = -1;
          else {
            len = (b[2] << 8) | b[3];
            off = 4;
          }
        } else if (len === 127) {
          if (b.length < 10) len = -1;
          else {
            len = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(2));
            off = 10;
          }
        }
        if (len >= 0 && b.length >= off + len) {
          const frame = { opcode: b[0] & 0x0f, payload: b.slice(off, off + len) };
          this.#buf = b.slice(off + len);
          return frame;
        }
      }
      if (!(await this.#fill())) return null;
    }
  }

  /** Reads the next text frame's messages (skipping control frames); null on close. */
  async readMessages(): Promise<Msg[] | null> {
    while (true) {
      const f = await this.readFrame();
      if (f === null || f.opcode === 8) return null;
      if (f.opcode !== 1) continue;
      return new TextDecoder().decode(f.payload).split("\n").filter((l) => l.length > 0)
        .map((l) => JSON.parse(l));
    }
  }

  /** Reads the next reply, skipping events. */
  async reply(): Promise<Msg> {
    while (true) {
      const ms = await this.readMessages();
      if (ms === null) throw new Error("raw client: closed while waiting for a reply");
      const r = ms.find((m) => m.type === "ok" || m.type === "error");
      if (r) return r;
    }
  }

  /**
   * Reads until the server's close frame; returns its code (or null when the
   * stream ended without one) and how many text frames were skipped.
   */
  async readUntilClose(): Promise<{ code: number | null; frames: number }> {
    let frames = 0;
    while (true) {
      const f = await this.readFrame();
      if (f === null) return { code: null, frames };
      if (f.opcode === 8) {
        const code = f.payload.length >= 2 ? (f.payload[0] << 8) | f.payload[1] : 1005;
        return { code, frames };
      }
      frames++;
    }
  }

  /** Closes the connection (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch { /* closed */ }
  }

  /** Closes the connection. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** A masked client frame (RFC 6455 §5.2). */
function encodeFrame(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const f = new Uint8Array(head + 4 + n);
  f[0] = (fin ? 0x80 : 0) | opcode;
  if (n < 126) f[1] = 0x80 | n;
  else if (n < 65536) {
    f[1] = 0x80 | 126;
    f[2] = n >> 8;
    f[3] = n & 0xff;
  } else {
    f[1] = 0x80 | 127;
    new DataView(f.buffer).setBigUint64(2, BigInt(n));
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  f.set(mask, head);
  for (let i = 0; i < n; i++) f[head + 4 + i] = payload[i] ^ mask[i & 3];
  return f;
}

function indexOfCrlf2(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}
