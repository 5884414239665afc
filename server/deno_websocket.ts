/**
 * A server-side WebSocket (RFC 6455) over a Deno TCP or TLS connection, for
 * the Deno adapter. It reads the byte stream itself so that a frame is judged
 * by its header before its payload is read: a message announced larger than
 * `maxPayload` closes the socket with 1009 at once, and the read buffer grows
 * only with the bytes that actually arrive. `Deno.upgradeWebSocket` offers no
 * such limit (it reads any frame up to 64 MiB whole first).
 *
 * Its surface is the part of the standard `WebSocket` the adapter uses.
 */

/** The standard `readyState` values. */
const CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;

/**
 * Read buffer of a quiet socket: a command or two (every socket holds one, so it
 * is most of what an idle connection costs). A larger frame grows it with the
 * bytes that arrive.
 */
const READ_CHUNK = 512;
/** Read buffer of a busy socket: a read that filled the buffer doubles it up to this. */
const READ_BUSY = 4096;
/** A socket silent this long is pinged; silent twice as long (Bun's 120 s), it is dropped. */
export const PING_AFTER_MS = 60_000;
/** How often silent sockets are looked for. */
const SWEEP_MS = 10_000;
/**
 * Frames one fragmented message may take: empty continuation frames add no
 * bytes, so the size limit alone would let a client grow the list for good.
 */
const MAX_FRAGMENTS = 1024;
/** Time a closing socket has to flush its backlog and close frame. */
const CLOSE_FLUSH_MS = 10_000;
/** Time allowed for the peer's close frame after ours was written. */
const CLOSE_LINGER_MS = 2_000;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();
/** The last text framed by {@linkcode ServerWebSocket.send} and its frame (never written to). */
let lastText: string | undefined;
let lastFrame: Uint8Array | undefined;

/** Options of {@linkcode ServerWebSocket}. */
export interface ServerWebSocketOptions {
  /** The largest message accepted, bytes; a larger one closes with 1009. */
  maxPayload: number;
  /** Reports an error thrown by an event handler (the socket is closed 1011); stderr by default. */
  onError?: (error: unknown) => void;
  /** A socket silent this long is pinged, and dropped when silent twice as long; default 60 s. */
  pingMs?: number;
}

/** A message event: text as a string, binary as an `ArrayBuffer`. */
export interface SocketMessage {
  data: string | ArrayBuffer;
}

/** A close event. */
export interface SocketClose {
  code: number;
  reason: string;
  wasClean: boolean;
}

/** Sockets that may go silent, swept by one timer that runs only while there are any. */
const live = new Set<ServerWebSocket>();
let sweeper: ReturnType<typeof setInterval> | undefined;
/** The sweeper's period: at most half the shortest ping period among the live sockets. */
let sweepEvery = SWEEP_MS;

/** Runs the sweeper at least every `ms`. */
function sweepAtLeastEvery(ms: number): void {
  if (sweeper !== undefined && ms >= sweepEvery) return;
  clearInterval(sweeper);
  sweepEvery = Math.min(sweepEvery, ms);
  sweeper = setInterval(sweep, sweepEvery);
}

function sweep(): void {
  const now = Date.now();
  for (const s of live) s.checkIdle(now);
}

/** A server-side WebSocket on a connection whose opening handshake is done. */
export class ServerWebSocket {
  /** `CONNECTING` until {@linkcode start}, then `OPEN`, `CLOSING`, `CLOSED`. */
  readyState: number = CONNECTING;
  /** Accepted for compatibility: binary messages are always `ArrayBuffer`s. */
  binaryType = "arraybuffer";
  onopen: (() => void) | null = null;
  onmessage: ((e: SocketMessage) => void) | null = null;
  onclose: ((e: SocketClose) => void) | null = null;
  onerror: (() => void) | null = null;

  readonly #conn: Deno.Conn;
  readonly #maxPayload: number;
  readonly #onError: (error: unknown) => void;
  #buf = new Uint8Array(READ_CHUNK);
  #len = 0;
  /** The last read filled the buffer: more was waiting. */
  #full = false;
  /** A fragmented message being read: its opcode, fragments and size. */
  #frag: { opcode: number; parts: Uint8Array[]; size: number; frames: number } | null = null;
  /** Frames waiting to be written (none between writes). */
  #queue?: Uint8Array[];
  #queued = 0;
  #writing = false;
  #closeSent = false;
  #closeReceived = false;
  /** The close code and reason reported to `onclose`. */
  #code = 1006;
  #reason = "";
  #lastRead = Date.now();
  #pinged = false;
  readonly #pingMs: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Waiting for the write queue to empty. */
  #onFlushed?: (() => void)[];
  #reported = false;
  #finished = false;

  constructor(conn: Deno.Conn, options: ServerWebSocketOptions) {
    this.#conn = conn;
    this.#maxPayload = options.maxPayload;
    this.#onError = options.onError ?? ((e) => console.error(e));
    this.#pingMs = options.pingMs ?? PING_AFTER_MS;
  }

  /** Bytes queued and not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.#queued;
  }

  /**
   * Opens the socket (its opening handshake was written) and reads frames,
   * `initial` first (bytes that came with the request head), until it closes.
   */
  start(initial: Uint8Array): Promise<void> {
    if (this.readyState !== CONNECTING) return Promise.resolve();
    this.readyState = OPEN;
    live.add(this);
    sweepAtLeastEvery(Math.min(SWEEP_MS, this.#pingMs / 2));
    this.#call(() => this.onopen?.());
    if (initial.length > 0) this.#take(initial);
    return this.#run();
  }

  /** Reads frames until the connection ends, then reports the close. */
  async #run(): Promise<void> {
    let eof = false;
    try {
      while (!this.#finished && this.#parse()) {
        this.#fit();
        const n = await this.#conn.read(this.#buf.subarray(this.#len));
        if (n === null) {
          eof = true;
          break;
        }
        this.#len += n;
        this.#full = this.#len === this.#buf.length;
        this.#lastRead = Date.now();
        this.#pinged = false;
      }
      // A refused frame: its close frame is on its way; what follows is read and dropped.
      if (!eof && !this.#closeReceived && !this.#finished) await this.#drain();
    } catch {
      // Reset by the peer, or closed by a deadline: the socket is over either way.
    }
    if (this.#closeReceived && !this.#finished) {
      // The peer is done: the hub learns it now, while our close frame still leaves.
      this.#report();
      await this.#flushed();
    }
    this.#finish();
  }

  /** Runs an event handler; one that throws closes this socket (1011), never the server. */
  #call(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.#onError(e);
      this.#sendClose(1011, "internal error");
    }
  }

  /** Queues a text (string) or binary message. Ignored unless open. */
  send(data: string | Uint8Array): void {
    if (this.readyState !== OPEN) return;
    if (typeof data === "string") this.#text(data);
    else this.#frame(2, data);
  }

  /**
   * Starts the closing handshake: what is queued leaves first, then the close
   * frame; the connection ends when the peer answers, or after a deadline.
   */
  close(code = 1000, reason = ""): void {
    if (this.readyState === CONNECTING) {
      this.readyState = CLOSED;
      this.#abort();
      return;
    }
    if (this.readyState !== OPEN) return;
    this.#sendClose(code, reason);
  }

  /** Pings a socket silent for {@linkcode PING_AFTER_MS}; drops one silent for twice that. */
  checkIdle(now: number): void {
    const silent = now - this.#lastRead;
    const after = this.#pingMs;
    if (silent >= 2 * after) this.#abort();
    else if (silent >= after && !this.#pinged && this.readyState === OPEN) {
      this.#pinged = true;
      this.#frame(9, new Uint8Array(0));
    }
  }

  /** Copies `bytes` into the read buffer. */
  #take(bytes: Uint8Array): void {
    if (this.#len + bytes.length > this.#buf.length) this.#grow(this.#len + bytes.length);
    this.#buf.set(bytes, this.#len);
    this.#len += bytes.length;
  }

  /**
   * Sizes the read buffer before a read: doubled (up to {@linkcode READ_BUSY})
   * after a read that filled it, back to {@linkcode READ_CHUNK} once a read
   * leaves little to keep.
   */
  #fit(): void {
    const size = this.#buf.length;
    if (this.#full && size < READ_BUSY) this.#grow(Math.min(READ_BUSY, size * 2));
    else if (!this.#full && size > READ_CHUNK && this.#len <= READ_CHUNK / 2) {
      this.#grow(READ_CHUNK);
    }
  }

  #grow(size: number): void {
    const b = new Uint8Array(size);
    b.set(this.#buf.subarray(0, this.#len));
    this.#buf = b;
  }

  /**
   * Handles every complete frame in the buffer; false when reading should stop
   * (a protocol error: the close frame is queued and the rest is drained).
   */
  #parse(): boolean {
    const b = this.#buf;
    let off = 0;
    let ok = true;
    while (ok && !this.#closeReceived && !this.#finished) {
      const avail = this.#len - off;
      if (avail < 2) break;
      const b0 = b[off], b1 = b[off + 1];
      const fin = (b0 & 0x80) !== 0, opcode = b0 & 0x0f;
      let n = b1 & 0x7f;
      let head = 2;
      if (n === 126) {
        if (avail < 4) break;
        n = (b[off + 2] << 8) | b[off + 3];
        head = 4;
      } else if (n === 127) {
        if (avail < 10) break;
        const hi = ((b[off + 2] << 24) | (b[off + 3] << 16) | (b[off + 4] << 8) | b[off + 5]) >>> 0;
        const lo = ((b[off + 6] << 24) | (b[off + 7] << 16) | (b[off + 8] << 8) | b[off + 9]) >>> 0;
        n = hi * 2 ** 32 + lo;
        head = 10;
      }
      // The header alone decides: nothing of a refused frame's payload is kept.
      const refusal = this.#check(fin, opcode, b0 & 0x70, (b1 & 0x80) !== 0, n);
      if (refusal !== undefined) {
        this.#sendClose(refusal[0], refusal[1]);
        return false;
      }
      const total = head + 4 + n;
      if (avail < total) {
        // Make room for the frame, but only as its bytes arrive (the buffer doubles when full).
        if (off === 0 && this.#buf.length < total && this.#len === this.#buf.length) {
          this.#grow(Math.min(total, this.#buf.length * 2));
        }
        break;
      }
      const payload = b.subarray(off + head + 4, off + total);
      unmask(payload, b.subarray(off + head, off + head + 4));
      off += total;
      ok = this.#frameIn(fin, opcode, payload);
    }
    if (off > 0) {
      if (this.#len > off) b.copyWithin(0, off, this.#len);
      this.#len -= off;
    }
    return ok;
  }

  /** Why a frame with this header is refused (close code and reason), or undefined. */
  #check(
    fin: boolean,
    opcode: number,
    rsv: number,
    masked: boolean,
    n: number,
  ): [number, string] | undefined {
    if (rsv !== 0) return [1002, "reserved bits set"];
    if (!masked) return [1002, "client frames must be masked"];
    if (opcode >= 8) {
      if (opcode > 10) return [1002, "unknown opcode"];
      if (!fin || n > 125) return [1002, "control frames are short and whole"];
      return undefined;
    }
    if (opcode === 0 ? this.#frag === null : opcode > 2) {
      return [1002, opcode === 0 ? "continuation without a message" : "unknown opcode"];
    }
    if (opcode !== 0 && this.#frag !== null) return [1002, "a message inside a fragmented one"];
    if (n + (this.#frag?.size ?? 0) > this.#maxPayload) {
      return [1009, `message larger than ${this.#maxPayload} bytes`];
    }
    if (opcode === 0 && this.#frag!.frames >= MAX_FRAGMENTS) {
      return [1009, `message in more than ${MAX_FRAGMENTS} frames`];
    }
    return undefined;
  }

  /** One whole frame; false when reading should stop. */
  #frameIn(fin: boolean, opcode: number, payload: Uint8Array): boolean {
    switch (opcode) {
      case 0: {
        const f = this.#frag!;
        if (payload.length > 0) f.parts.push(payload.slice());
        f.size += payload.length;
        f.frames++;
        if (!fin) return true;
        this.#frag = null;
        return this.#message(f.opcode, concat(f.parts, f.size));
      }
      case 1:
      case 2:
        if (fin) return this.#message(opcode, payload);
        this.#frag = { opcode, parts: [payload.slice()], size: payload.length, frames: 1 };
        return true;
      case 8:
        return this.#closeIn(payload);
      case 9:
        // Answered unless the client is not reading what it is sent: its pongs would pile up.
        if (!this.#closeSent && this.#queued <= this.#maxPayload) this.#frame(10, payload.slice());
        return true;
      default:
        // A pong: the socket is alive, which reading it already recorded.
        return true;
    }
  }

  #message(opcode: number, payload: Uint8Array): boolean {
    let data: string | ArrayBuffer;
    if (opcode === 1) {
      try {
        data = utf8.decode(payload);
      } catch {
        this.#sendClose(1007, "text is not UTF-8");
        return false;
      }
    } else {
      data = payload.slice().buffer;
    }
    // After close() the peer's messages are read and dropped, as the closing handshake says.
    if (this.readyState === OPEN) this.#call(() => this.onmessage?.({ data }));
    return true;
  }

  /** The peer's close frame: answer it (unless ours went first) and stop reading. */
  #closeIn(payload: Uint8Array): boolean {
    let code = 1005, reason = "";
    if (payload.length === 1) {
      this.#sendClose(1002, "bad close frame");
      return false;
    }
    if (payload.length >= 2) {
      code = (payload[0] << 8) | payload[1];
      if (!validCloseCode(code)) {
        this.#sendClose(1002, "bad close code");
        return false;
      }
      try {
        reason = utf8.decode(payload.subarray(2));
      } catch {
        this.#sendClose(1007, "close reason is not UTF-8");
        return false;
      }
    }
    this.#closeReceived = true;
    if (!this.#closeSent) {
      this.#code = code;
      this.#reason = reason;
      this.#sendClose(code === 1005 ? 1000 : code, "");
    }
    return false;
  }

  /** Queues our close frame once; the socket is CLOSING from then on. */
  #sendClose(code: number, reason: string): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    if (this.readyState === OPEN) this.readyState = CLOSING;
    if (!this.#closeReceived) {
      this.#code = code;
      this.#reason = reason;
    }
    const r = encoder.encode(reason).subarray(0, 123);
    const p = new Uint8Array(2 + r.length);
    p[0] = code >> 8;
    p[1] = code & 0xff;
    p.set(r, 2);
    this.#frame(8, p);
    this.#deadline(CLOSE_FLUSH_MS);
  }

  /** Reads and drops what the peer still sends after a refused frame, until it closes. */
  async #drain(): Promise<void> {
    const sink = new Uint8Array(READ_CHUNK);
    this.#buf = sink;
    this.#len = 0;
    while ((await this.#conn.read(sink)) !== null) {
      // Bounded by the close deadline, which closes the connection.
    }
  }

  /** Resolves once the write queue is empty (the close deadline bounds the wait). */
  #flushed(): Promise<void> {
    if (!this.#writing && this.#queue === undefined) return Promise.resolve();
    return new Promise((resolve) => (this.#onFlushed ??= []).push(resolve));
  }

  /**
   * Frames text encoded in place, the header put before it: room for one byte
   * per character fits the JSON the server mostly sends (ASCII) exactly; text
   * that does not fit is encoded on its own and copied.
   */
  #text(text: string): void {
    // A channel's members are sent the same frame in a turn: encoded once.
    if (text === lastText) return this.#enqueue(lastFrame!);
    const room = new Uint8Array(10 + text.length);
    const r = encoder.encodeInto(text, room.subarray(10));
    if (r.read < text.length) {
      this.#frame(1, encoder.encode(text));
      return;
    }
    const n = r.written;
    const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
    const at = 10 - head;
    room[at] = 0x81;
    if (n < 126) room[at + 1] = n;
    else if (n < 65536) {
      room[at + 1] = 126;
      room[at + 2] = n >> 8;
      room[at + 3] = n & 0xff;
    } else {
      room[1] = 127;
      new DataView(room.buffer).setUint32(6, n);
    }
    lastText = text;
    lastFrame = room.subarray(at, 10 + n);
    this.#enqueue(lastFrame);
  }

  #frame(opcode: number, payload: Uint8Array): void {
    const n = payload.length;
    const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
    const f = new Uint8Array(head + n);
    f[0] = 0x80 | opcode;
    if (n < 126) f[1] = n;
    else if (n < 65536) {
      f[1] = 126;
      f[2] = n >> 8;
      f[3] = n & 0xff;
    } else {
      f[1] = 127;
      new DataView(f.buffer).setUint32(6, n);
    }
    f.set(payload, head);
    this.#enqueue(f);
  }

  #enqueue(f: Uint8Array): void {
    (this.#queue ??= []).push(f);
    this.#queued += f.length;
    if (!this.#writing) void this.#pump();
  }

  /** Writes the queue in order, everything queued so far in one write. */
  async #pump(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue !== undefined) {
        const q = this.#queue;
        this.#queue = undefined;
        const chunk = q.length === 1 ? q[0] : concat(q, q.reduce((n, c) => n + c.length, 0));
        let off = 0;
        while (off < chunk.length) off += await this.#conn.write(chunk.subarray(off));
        this.#queued -= chunk.length;
      }
    } catch {
      this.#abort();
    } finally {
      this.#writing = false;
      this.#flushDone();
    }
    if (this.#closeSent && !this.#finished) {
      // Our close frame is out: the peer answers at once or not at all.
      if (this.#closeReceived) this.#abort();
      else this.#deadline(CLOSE_LINGER_MS);
    }
  }

  /** Wakes whoever waits for the write queue to empty. */
  #flushDone(): void {
    const waiting = this.#onFlushed;
    this.#onFlushed = undefined;
    for (const f of waiting ?? []) f();
  }

  /** Ends the connection after `ms` unless it ended sooner (an earlier deadline stands). */
  #deadline(ms: number): void {
    if (this.#timer !== undefined && ms >= CLOSE_FLUSH_MS) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#abort(), ms);
  }

  /** Closes the connection now; the read loop then ends and reports the close. */
  #abort(): void {
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    // Never started, or reported and flushing: no read is pending to notice the close.
    if (this.readyState === CLOSED) this.#finish();
  }

  /** Ends the connection and reports the close (once). */
  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#timer);
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    this.#queue = undefined;
    this.#queued = 0;
    this.#flushDone();
    this.#report();
  }

  /** Reports the close to `onclose`, once; the socket is CLOSED from then on. */
  #report(): void {
    if (this.#reported) return;
    this.#reported = true;
    this.readyState = CLOSED;
    live.delete(this);
    if (live.size === 0 && sweeper !== undefined) {
      clearInterval(sweeper);
      sweeper = undefined;
      sweepEvery = SWEEP_MS;
    }
    const wasClean = this.#closeSent && this.#closeReceived;
    const e = { code: this.#code, reason: this.#reason, wasClean };
    try {
      this.onclose?.(e);
    } catch (err) {
      this.#onError(err);
    }
  }
}

/** Close codes a peer may send (RFC 6455 §7.4). */
function validCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

/** XORs `p` with the 4-byte `mask`, four bytes at a time. */
function unmask(p: Uint8Array, mask: Uint8Array): void {
  const n = p.length;
  let i = 0;
  if (n >= 16) {
    const dv = new DataView(p.buffer, p.byteOffset, n);
    const m = ((mask[0] << 24) | (mask[1] << 16) | (mask[2] << 8) | mask[3]) >>> 0;
    for (; i + 4 <= n; i += 4) dv.setUint32(i, dv.getUint32(i) ^ m);
  }
  for (; i < n; i++) p[i] ^= mask[i & 3];
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
