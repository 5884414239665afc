/**
 * What the front-ends of foreign JSON protocols (PeerJS, y-webrtc) share: a
 * socket whose frames run one at a time in arrival order, checked against the
 * server's frame size and rate limits, and whose core events are translated
 * into the protocol's own messages before they leave.
 *
 * These protocols have no error replies, so a limit shows differently than in
 * the slash protocol: a frame over the size limit closes the socket with 1009;
 * a frame over the rate waits until the rate allows it (its followers wait
 * behind it), and a socket that keeps flooding is closed with 4003.
 */
import { byteLength, CloseCodes, type CommandName, MAX_QUEUED_FRAMES } from "../../protocol/mod.ts";
import { type Connection, type Hub, Ordered, type Session, type Translation } from "../hub/mod.ts";
import type { SocketHandler } from "./frontend.ts";

/** A JSON object from the network: only its fields, no prototype tricks. */
export type Json = Record<string, unknown>;

/** Parses a frame that must hold one JSON object; null when it does not. */
export function parseObject(frame: string): Json | null {
  try {
    const v: unknown = JSON.parse(frame);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v as Json : null;
  } catch {
    return null;
  }
}

/**
 * A `Connection` for the core that hands each core event (one JSON object,
 * see PROTOCOL.md "Events") to `translate`, which writes what the protocol
 * makes of it on `conn`, if anything. With `channels`, the translation of
 * channel events the same for every socket of the front-end: the core may
 * publish them, translated once, through the runtime's native fan-out.
 */
export function translating(
  conn: Connection,
  translate: (event: string) => void,
  channels?: Translation,
): Connection {
  return {
    send: translate,
    native: channels === undefined ? undefined : { conn, translation: channels },
    close: (code, reason) => conn.close(code, reason),
    get bufferedAmount() {
      return conn.bufferedAmount;
    },
    remoteAddress: conn.remoteAddress,
  };
}

/** What a protocol socket does with a frame that passed the limits. */
export interface FrameRunner {
  /**
   * The command the frame counts as for the rate limit, or null when it
   * counts for nothing (a keep-alive).
   */
  rateAs(frame: Json): CommandName | null;
  /**
   * Handles one frame, parsed (`raw`: as it came); a promise holds back the
   * frames behind it until it settles.
   */
  run(frame: Json, raw: string): Promise<void> | undefined;
}

/** One socket of a JSON protocol: ordered frames, size and rate limits. */
export abstract class JsonSocket implements SocketHandler, FrameRunner {
  protected readonly hub: Hub;
  protected readonly conn: Connection;
  /** The core's session of this socket; undefined when the socket was refused at once. */
  protected session?: Session;
  readonly #frames: Ordered<string>;
  #first?: () => Promise<void>;

  constructor(hub: Hub, conn: Connection) {
    this.hub = hub;
    this.conn = conn;
    this.#frames = new Ordered((frame) => this.#step(frame), MAX_QUEUED_FRAMES);
  }

  /** The front-end's name, for logs and metrics. */
  protected abstract readonly name: string;
  abstract rateAs(frame: Json): CommandName | null;
  abstract run(frame: Json, raw: string): Promise<void> | undefined;
  abstract closed(code?: number): void;

  /** Runs `first` before any frame (claiming the socket's identity, say). */
  protected first(first: () => Promise<void>): void {
    this.#first = first;
    // A placeholder frame: #step runs `first` in its place, and the frames behind it wait.
    this.#frames.push("");
  }

  text(frame: string): void {
    // A socket refused at once has no session: what it still sends is not read.
    if (this.session === undefined || this.gone) return;
    const max = this.hub.options.maxFrame;
    // Most frames are far below the limit in UTF-16 units times 3: no need to count bytes.
    if (frame.length > max || (frame.length * 3 > max && byteLength(frame) > max)) {
      return this.#drop(CloseCodes.TOO_LARGE, `frame larger than ${max} bytes`);
    }
    if (!this.#frames.push(frame)) this.#drop(CloseCodes.FLOOD, "flood");
  }

  /** These protocols speak text only: a binary frame is ignored, as their servers do. */
  binary(): void {}

  /** The socket is closed or closing: nothing more is run or sent. */
  protected get gone(): boolean {
    return this.session?.gone ?? false;
  }

  /** Forgets the frames still waiting. */
  protected clear(): void {
    this.#frames.clear();
  }

  #drop(code: number, reason: string): void {
    this.#frames.clear();
    if (this.session !== undefined) this.hub.drop(this.session, code, reason);
    else this.conn.close(code, reason);
  }

  #step(frame: string): Promise<void> | undefined {
    try {
      const r = this.#next(frame);
      return r?.catch((e) => this.#failed(e));
    } catch (e) {
      this.#failed(e);
    }
  }

  #next(frame: string): Promise<void> | undefined {
    if (this.#first !== undefined) {
      const first = this.#first;
      this.#first = undefined;
      return first();
    }
    if (this.gone) return;
    const json = parseObject(frame);
    // Not a JSON object: ignored, as the protocols' own servers do.
    if (json === null) return;
    return this.#limited(json, frame);
  }

  /** A frame's handling failed unexpectedly: logged and counted, the socket goes on. */
  #failed(e: unknown): void {
    this.hub.unexpected(this.name, e, { peer: this.session?.id });
  }

  /** Runs `json` once the rate allows it. */
  #limited(json: Json, raw: string): Promise<void> | undefined {
    const s = this.session;
    const cmd = this.rateAs(json);
    if (s === undefined || s.id === null || cmd === null) return this.run(json, raw);
    const { wait, flood } = this.hub.limit(s, cmd);
    if (wait === 0) return this.run(json, raw);
    if (flood) return void this.#drop(CloseCodes.FLOOD, "flood");
    this.hub.metrics.count(this.hub.metrics.errors, 263);
    return new Promise<void>((resolve) => setTimeout(resolve, wait)).then(() =>
      this.gone ? undefined : this.#limited(json, raw)
    );
  }
}
