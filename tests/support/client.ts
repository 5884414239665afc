/**
 * The test client: a raw client over the standard `WebSocket` that validates
 * every message against the protocol's schemas and keeps replies and events
 * apart, and the helpers that make ready peers.
 *
 * @example
 * ```ts
 * import { newChannel, peer } from "./client.ts";
 *
 * await using a = await peer(url, { name: "a" });
 * await using b = await peer(url, { name: "b" });
 * await a.fail(`/pubmsg ${newChannel()} hi`, 403);
 * await a.ok(`/privmsg ${b.id} hi`);
 * assert.equal((await b.event("privmsg")).text, "hi");
 * ```
 * @module
 */
import assert from "node:assert/strict";
import {
  type Code,
  codeName,
  type CommandName,
  newId,
  ReplyData,
  ServerMessage,
} from "../../protocol/mod.ts";
import { delay, type Timer } from "./wait.ts";

/** A message from the server: a reply or an event (validated against `ServerMessage`). */
// deno-lint-ignore no-explicit-any
export type Msg = Record<string, any> & { type: string };

/** How a socket closed. */
export interface CloseInfo {
  code: number;
  reason: string;
}

/** An error reply. */
export interface ErrorMsg extends Msg {
  type: "error";
  cmd: string | null;
  code: number;
  error: string;
  message: string;
  retryAfterMs?: number;
}

// Generous: a reply late on a loaded machine is not a failure; a missing one still is.
const DEFAULT_TIMEOUT = 5000;

interface Waiter {
  match: (m: Msg) => boolean;
  resolve: (m: Msg) => void;
  reject: (e: Error) => void;
  timer: Timer;
}

/**
 * A raw test client over the standard `WebSocket`. Every text frame is split
 * on `\n`, each line JSON-parsed and validated against `ServerMessage`;
 * replies (`ok`/`error`) and events are queued apart.
 */
export class TestClient {
  /** The socket. */
  readonly ws: WebSocket;
  /** The peer id after {@linkcode describe}. */
  id = "";
  /** The peer name after {@linkcode describe}. */
  name = "";
  /** The resume token after {@linkcode describe}. */
  resume = "";
  /** Resolves when the socket closes, with the close code and reason. */
  readonly closed: Promise<CloseInfo>;
  /** Number of text frames received (several messages may share one frame). */
  frames = 0;
  /** Every message received, in order (for debugging and ordering checks). */
  readonly log: Msg[] = [];
  #replies: Msg[] = [];
  #events: Msg[] = [];
  #replyWaiters: Waiter[] = [];
  #eventWaiters: Waiter[] = [];
  #violations: string[] = [];
  #closeInfo: CloseInfo | undefined;
  #label: string;

  constructor(ws: WebSocket, label = "client") {
    this.ws = ws;
    this.#label = label;
    this.closed = new Promise<CloseInfo>((resolve) => {
      ws.addEventListener("close", (e) => {
        this.#closeInfo = { code: e.code, reason: e.reason };
        resolve(this.#closeInfo);
        const err = new Error(`${this.#label}: socket closed (${e.code} ${e.reason})`);
        for (const w of [...this.#replyWaiters, ...this.#eventWaiters]) {
          clearTimeout(w.timer);
          w.reject(err);
        }
        this.#replyWaiters = [];
        this.#eventWaiters = [];
      });
    });
    ws.addEventListener("message", (e) => this.#onFrame(e.data));
  }

  #onFrame(data: unknown): void {
    if (typeof data !== "string") {
      this.#violations.push(`binary frame from the server`);
      return;
    }
    this.frames++;
    for (const line of data.split("\n")) {
      if (line.length === 0) continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        this.#violations.push(`not JSON: ${line.slice(0, 200)}`);
        continue;
      }
      const r = ServerMessage.safeParse(value);
      if (!r.success) {
        this.#violations.push(`not a ServerMessage: ${line.slice(0, 300)}`);
        continue;
      }
      const m = value as Msg;
      this.log.push(m);
      const isReply = m.type === "ok" || m.type === "error";
      const waiters = isReply ? this.#replyWaiters : this.#eventWaiters;
      const i = waiters.findIndex((w) => w.match(m));
      if (i >= 0) {
        const [w] = waiters.splice(i, 1);
        clearTimeout(w.timer);
        w.resolve(m);
      } else (isReply ? this.#replies : this.#events).push(m);
    }
  }

  #check(): void {
    if (this.#violations.length > 0) {
      assert.fail(`${this.#label}: protocol violations:\n${this.#violations.join("\n")}`);
    }
  }

  /** Sends a frame: a string as a text frame, bytes as a binary frame. */
  send(frame: string | Uint8Array): void {
    this.ws.send(frame as string);
  }

  /** The next reply (`ok` or `error`), first-in first-out. */
  reply(timeout = DEFAULT_TIMEOUT): Promise<Msg> {
    this.#check();
    const m = this.#replies.shift();
    if (m) return Promise.resolve(m);
    return this.#wait(this.#replyWaiters, () => true, timeout, "a reply");
  }

  /** The next buffered-or-future event of `type` (matching `where`); other events stay buffered. */
  event(
    type: string,
    opts: { timeout?: number; where?: (m: Msg) => boolean } = {},
  ): Promise<Msg> {
    this.#check();
    const where = opts.where ?? (() => true);
    const match = (m: Msg) => m.type === type && where(m);
    const i = this.#events.findIndex(match);
    if (i >= 0) return Promise.resolve(this.#events.splice(i, 1)[0]);
    return this.#wait(
      this.#eventWaiters,
      match,
      opts.timeout ?? DEFAULT_TIMEOUT,
      `a ${type} event`,
    );
  }

  /**
   * The next `n` events of `type` (matching `where`), in arrival order; each
   * waits at most `timeout` ms.
   */
  async events(
    type: string,
    n: number,
    opts: { timeout?: number; where?: (m: Msg) => boolean } = {},
  ): Promise<Msg[]> {
    const out: Msg[] = [];
    for (let i = 0; i < n; i++) out.push(await this.event(type, opts));
    return out;
  }

  /** Buffered events (not yet consumed), optionally only those of `type`. */
  pending(type?: string): Msg[] {
    return this.#events.filter((e) => type === undefined || e.type === type);
  }

  /** Drops every buffered event. */
  clearEvents(): void {
    this.#events = [];
  }

  /**
   * Asserts that no event of `type` (matching `where`) arrives within `ms`
   * (0: only checks what is buffered now).
   */
  async noEvent(type: string, ms = 150, where: (m: Msg) => boolean = () => true): Promise<void> {
    if (ms > 0) await delay(ms);
    this.#check();
    const got = this.#events.filter((e) => e.type === type && where(e));
    assert.equal(got.length, 0, `${this.#label}: unexpected ${type} event: ${JSON.stringify(got)}`);
  }

  #wait(
    list: Waiter[],
    match: (m: Msg) => boolean,
    timeout: number,
    what: string,
  ): Promise<Msg> {
    if (this.#closeInfo) {
      return Promise.reject(
        new Error(
          `${this.#label}: waiting for ${what} on a closed socket (${this.#closeInfo.code} ${this.#closeInfo.reason})`,
        ),
      );
    }
    return new Promise<Msg>((resolve, reject) => {
      const w: Waiter = {
        match,
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = list.indexOf(w);
          if (i >= 0) list.splice(i, 1);
          reject(new Error(`${this.#label}: no ${what} within ${timeout} ms`));
        }, timeout),
      };
      list.push(w);
    });
  }

  /** Sends `frame` and returns its reply. */
  async cmd(frame: string, timeout = DEFAULT_TIMEOUT): Promise<Msg> {
    this.send(frame);
    return await this.reply(timeout);
  }

  /**
   * Sends `frame`, asserts an `ok` reply for its command and validates `data`
   * with `ReplyData[cmd]`; returns `data` as sent (unstripped).
   */
  async ok(frame: string, timeout = DEFAULT_TIMEOUT): Promise<Msg> {
    const m = await this.cmd(frame, timeout);
    const cmd = frame.slice(1).split(" ")[0].toLowerCase();
    return expectOk(m, cmd as CommandName, frame);
  }

  /**
   * Sends `frame` and asserts an `error` reply with `code` (and the matching
   * `error` name); `cmd` defaults to the frame's command name lowercased.
   */
  async fail(frame: string, code: Code, cmd?: string | null): Promise<ErrorMsg> {
    const m = await this.cmd(frame);
    const expectCmd = cmd !== undefined ? cmd : frame.slice(1).split(" ")[0].toLowerCase();
    return expectError(m, code, expectCmd, frame);
  }

  /** Closes the socket (if open) and waits until it is closed; rejects pending waits. */
  async close(): Promise<CloseInfo> {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      try {
        this.ws.close();
      } catch { /* closing */ }
    }
    return await this.closed;
  }

  /** Closes the socket: `await using c = await connect(url)`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Asserts `m` is an `ok` reply to `cmd` whose data fits `ReplyData[cmd]`; returns the data. */
export function expectOk(m: Msg, cmd: CommandName, what: string = cmd): Msg {
  assert.equal(m.type, "ok", `${what}: expected ok, got ${JSON.stringify(m)}`);
  assert.equal(m.cmd, cmd, `${what}: reply for the wrong command: ${JSON.stringify(m)}`);
  const schema = ReplyData[cmd];
  assert.ok(schema, `unknown command ${cmd}`);
  const r = schema.safeParse(m.data);
  assert.ok(r.success, `${what}: data does not fit ReplyData.${cmd}: ${JSON.stringify(m.data)}`);
  return m.data as Msg;
}

/** Asserts `m` is an error reply with `code`, its name, and `cmd`. */
export function expectError(m: Msg, code: Code, cmd: string | null, what = ""): ErrorMsg {
  assert.equal(m.type, "error", `${what}: expected error ${code}, got ${JSON.stringify(m)}`);
  assert.equal(m.code, code, `${what}: expected code ${code}, got ${JSON.stringify(m)}`);
  assert.equal(m.error, codeName(code), `${what}: wrong error name: ${JSON.stringify(m)}`);
  assert.equal(m.cmd, cmd, `${what}: wrong cmd in error: ${JSON.stringify(m)}`);
  assert.equal(typeof m.message, "string");
  return m as ErrorMsg;
}

/** Opens a WebSocket to `url` and waits until it is open. */
export async function connect(url: string, label = "client"): Promise<TestClient> {
  const ws = new WebSocket(url);
  const c = new TestClient(ws, label);
  await new Promise<void>((resolve, reject) => {
    const onOpen = () => {
      ws.removeEventListener("error", onError);
      resolve();
    };
    const onError = () => {
      ws.removeEventListener("open", onOpen);
      reject(new Error(`${label}: could not connect to ${url}`));
    };
    ws.addEventListener("open", onOpen, { once: true });
    ws.addEventListener("error", onError, { once: true });
  });
  return c;
}

/** Fields of a `/descp` (anything else becomes `meta`). */
export interface DescribeFields {
  id?: string;
  name?: string;
  [field: string]: unknown;
}

/**
 * Sends `/descp` with a fresh id (unless given) and a name, asserts `ok`,
 * validates the reply and records `id`, `name` and `resume` on the client.
 * Returns the reply `data`.
 */
export async function describe(c: TestClient, fields: DescribeFields = {}): Promise<Msg> {
  const body = { ...fields, id: fields.id ?? newId(), name: fields.name ?? "peer" };
  const data = await c.ok("/descp " + JSON.stringify(body));
  c.id = data.peer.id;
  c.name = data.peer.name;
  c.resume = data.resume;
  return data;
}

/** Connects and describes in one go: a ready peer. */
export async function peer(
  url: string,
  fields: DescribeFields = {},
): Promise<TestClient> {
  const c = await connect(url, fields.name ?? "peer");
  try {
    await describe(c, fields);
  } catch (e) {
    await c.close();
    throw e;
  }
  return c;
}

/** Several ready peers, named `p0`, `p1`, …; close them with {@linkcode closeAll}. */
export async function peers(url: string, n: number): Promise<TestClient[]> {
  const out: TestClient[] = [];
  try {
    for (let i = 0; i < n; i++) out.push(await peer(url, { name: `p${i}` }));
  } catch (e) {
    await closeAll(out);
    throw e;
  }
  return out;
}

/** Closes every client. */
export async function closeAll(clients: Iterable<TestClient>): Promise<void> {
  await Promise.all([...clients].map((c) => c.close()));
}

/** A group of clients closed together: `await using g = group(a, b)`. */
export function group(...clients: TestClient[]): TestClient[] & AsyncDisposable {
  const g = clients as TestClient[] & AsyncDisposable;
  g[Symbol.asyncDispose] = () => closeAll(g);
  return g;
}

/** A fresh channel id: `#` + a new ObjectId. */
export function newChannel(): string {
  return "#" + newId();
}

export { newId };
