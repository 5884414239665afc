/**
 * A raw test client for the JSON protocols served next to the slash protocol
 * (PeerJS, y-webrtc): a standard `WebSocket` whose every frame must be exactly
 * one JSON object, as those protocols' clients parse them.
 *
 * @example
 * ```ts
 * import { JsonWs } from "./json_ws.ts";
 *
 * await using ws = await JsonWs.open("ws://127.0.0.1:3012/peerjs?key=peerjs&id=a&token=t");
 * assert.deepEqual(await ws.next(), { type: "OPEN" });
 * ```
 * @module
 */
import assert from "node:assert/strict";
import type { CloseInfo } from "../support/client.ts";
import type { Timer } from "../support/wait.ts";

/** A JSON object received. */
// deno-lint-ignore no-explicit-any
export type Json = Record<string, any>;

const TIMEOUT = 3000;

/** A WebSocket speaking one JSON object per frame. */
export class JsonWs {
  readonly ws: WebSocket;
  /** Resolves when the socket closes. */
  readonly closed: Promise<CloseInfo>;
  #got: Json[] = [];
  #waiters: { match: (m: Json) => boolean; resolve: (m: Json) => void }[] = [];
  #violations: string[] = [];
  #isClosed = false;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) =>
      ws.addEventListener("close", (e) => {
        this.#isClosed = true;
        resolve({ code: e.code, reason: e.reason });
      })
    );
    ws.addEventListener("message", (e) => {
      let m: unknown;
      try {
        m = JSON.parse(String(e.data));
      } catch {
        this.#violations.push(`not one JSON object: ${String(e.data).slice(0, 200)}`);
        return;
      }
      if (typeof m !== "object" || m === null || Array.isArray(m)) {
        this.#violations.push(`not a JSON object: ${String(e.data).slice(0, 200)}`);
        return;
      }
      const i = this.#waiters.findIndex((w) => w.match(m as Json));
      if (i >= 0) this.#waiters.splice(i, 1)[0].resolve(m as Json);
      else this.#got.push(m as Json);
    });
  }

  /** Opens `url`; rejects when the socket does not open. */
  static async open(url: string): Promise<JsonWs> {
    const ws = new WebSocket(url);
    const c = new JsonWs(ws);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error(`cannot open ${url}`)), { once: true });
    });
    return c;
  }

  /** Whether the socket is closed. */
  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Sends one JSON object (or a raw string) as a text frame. */
  send(m: Json | string): void {
    this.ws.send(typeof m === "string" ? m : JSON.stringify(m));
  }

  /** The next message matching `match` (the oldest buffered, or the next to come), consumed. */
  next(match: (m: Json) => boolean = () => true, ms = TIMEOUT, what = "message"): Promise<Json> {
    this.#check();
    const i = this.#got.findIndex(match);
    if (i >= 0) return Promise.resolve(this.#got.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      let timer: Timer | undefined = undefined;
      const w = {
        match,
        resolve: (m: Json) => {
          clearTimeout(timer);
          resolve(m);
        },
      };
      timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new Error(`no ${what} within ${ms} ms; buffered: ${JSON.stringify(this.#got)}`));
      }, ms);
      this.#waiters.push(w);
    });
  }

  /** The next message of `type`, consumed. */
  type(type: string, ms = TIMEOUT): Promise<Json> {
    return this.next((m) => m.type === type, ms, `${type} message`);
  }

  /** Asserts that no message matching `match` arrives within `ms` (nor is buffered). */
  async none(ms: number, match: (m: Json) => boolean = () => true): Promise<void> {
    const got = await this.next(match, ms).catch(() => null);
    assert.equal(got, null, `unexpected message ${JSON.stringify(got)}`);
  }

  /** Every message received and not consumed yet. */
  get pending(): Json[] {
    return [...this.#got];
  }

  /** Resolves with how the socket closed, or rejects after `ms`. */
  async closedWithin(ms = TIMEOUT): Promise<CloseInfo> {
    let timer: Timer | undefined;
    try {
      return await Promise.race([
        this.closed,
        new Promise<never>((_, reject) =>
          timer = setTimeout(() => reject(new Error(`not closed within ${ms} ms`)), ms)
        ),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the socket (a clean close, without a code) and waits for it. */
  async close(): Promise<CloseInfo> {
    if (!this.#isClosed) this.ws.close();
    return await this.closed;
  }

  #check(): void {
    if (this.#violations.length > 0) assert.fail(this.#violations.join("\n"));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
    this.#check();
  }
}
