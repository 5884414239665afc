/**
 * The typed Signaller client: one promise per command (replies matched
 * first-in first-out), typed events, and reconnects that resume the session.
 *
 * It uses only the global `WebSocket` (or the one you inject), so the same
 * code runs in browsers, Deno and Bun, and it imports nothing but
 * `protocol/`.
 *
 * @example
 * ```ts
 * import { SignallerClient, SignallerError } from "./mod.ts";
 *
 * const client = new SignallerClient("ws://localhost:3012/", { name: "alice" });
 * const me = await client.connect(); // the /descp reply: me.peer.id, me.resume, …
 * const off = client.on("pubmsg", (ev) => console.log(`${ev.from} in ${ev.channel}: ${ev.text}`));
 * client.on("reconnecting", ({ attempt, delayMs }) => console.log(`retry #${attempt} in ${delayMs} ms`));
 *
 * const room = await client.join("#65a1f0c2e4b0a1b2c3d4e5f6");
 * console.log(`${room.total} viewers`);
 * await client.pubmsg(room.channel, "hello");
 * try {
 *   await client.privmsg("65a1f0c2e4b0a1b2c3d4e5f7", "v=0\r\n…");
 * } catch (e) {
 *   if (e instanceof SignallerError && e.code === 401) console.log("peer is offline");
 * }
 * off();
 * await client.close();
 * ```
 * @module
 */
import { CloseCodes } from "../protocol/codes.ts";
import { type CommandName, formatCommand } from "../protocol/grammar.ts";
import { newId } from "../protocol/ids.ts";
import {
  type ErrorReply,
  type EventOf,
  type EventType,
  parseServerFrame,
  ReplyData,
  type ServerEvent,
} from "../protocol/messages.ts";
import { backoffDelay, type BackoffOptions, resolveBackoff } from "./backoff.ts";

export { backoffCeiling, backoffDelay, type BackoffOptions, DEFAULT_BACKOFF } from "./backoff.ts";
export type { CommandName, EventOf, EventType, ReplyData, ServerEvent };

/** The reply to `/whois` of a peer. */
export type WhoisPeer = Extract<ReplyData<"whois">, { id: string }>;
/** The reply to `/whois` of a channel. */
export type WhoisChannel = Extract<ReplyData<"whois">, { channel: string }>;

/** A constructor of WebSockets, e.g. the global `WebSocket` (the default). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocket;

/** Options of {@linkcode SignallerClient}. */
export interface SignallerClientOptions {
  /** The peer id, 24 hex digits; a fresh BSON ObjectId when omitted. */
  id?: string;
  /** The peer's display name, 1–64 characters. */
  name: string;
  /** Free fields of the description, shown to other peers (≤ 4 KiB as JSON). */
  meta?: Record<string, unknown>;
  /**
   * The signed auth token (a JWT whose `sub` is the id) for servers that
   * require one; a function is called before every `/descp`, so an expiring
   * token can be refreshed for each reconnect.
   */
  token?: string | (() => string | Promise<string>);
  /** The server's admin token, to be a server admin. */
  admin?: string;
  /** A resume token from an earlier session, e.g. kept across a page reload. */
  resume?: string;
  /** Reconnect and resume after an unexpected close; true unless given. */
  reconnect?: boolean;
  /** Reconnect delays; 500 ms doubling up to 30 s, with full jitter, unless given. */
  backoff?: Partial<BackoffOptions>;
  /** Reconnect attempts in a row before giving up; unlimited unless given. */
  maxRetries?: number;
  /** A session that lasted this long resets the backoff, ms; 5000 unless given. */
  stableMs?: number;
  /** Time allowed to open the socket and get the `/descp` reply, ms; 15000 unless given. */
  timeoutMs?: number;
  /** The WebSocket constructor; the global `WebSocket` unless given. */
  WebSocket?: WebSocketConstructor;
  /** The random source of the backoff jitter, in [0, 1); `Math.random` unless given. */
  random?: () => number;
}

/** Where the client is in its life. */
export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/**
 * Why the client closed for good: `user` (`close()`), `replaced` (4002: a
 * newer session of the same peer took over), `rejected` (4001, or a `/descp`
 * refused), `failed` (the first connection did not come up), `retries`
 * (`maxRetries` reconnects failed), `disconnected` (`reconnect: false`).
 */
export type CloseCause = "user" | "replaced" | "rejected" | "failed" | "retries" | "disconnected";

/** Events of the client itself, next to the server's. */
export interface ClientEvents {
  /** The first `/descp` succeeded. */
  open: ReplyData<"descp">;
  /** A reconnect resumed the session; `lost` lists channels that did not survive it. */
  resumed: { data: ReplyData<"descp">; lost: string[] };
  /** The connection dropped; a reconnect is scheduled in `delayMs`. */
  reconnecting: { attempt: number; delayMs: number; code: number; reason: string };
  /** The client closed for good and will not reconnect (`cause` says why). */
  close: { code: number; reason: string; cause: CloseCause; error?: Error };
  /** Any event from the server, whatever its type. */
  event: ServerEvent;
  /** A line from the server that is not a valid message; it was ignored. */
  invalid: { line: string; reason: string };
}

/** Every event {@linkcode SignallerClient.on} accepts, with its payload type. */
export type SignallerEventMap = { [T in EventType]: EventOf<T> } & ClientEvents;

/** An error reply from the server, as a rejected command promise. */
export class SignallerError extends Error {
  /** The numeric code, e.g. `475`: branch on this. */
  readonly code: number;
  /** The code's name, e.g. `"ERR_BADCHANNELKEY"`. */
  readonly error: string;
  /** The command the error answers. */
  readonly cmd: CommandName;
  /** With code 263: when to retry, ms. */
  readonly retryAfterMs?: number;

  /** Wraps the error reply `reply` to command `cmd`. */
  constructor(reply: ErrorReply, cmd: CommandName) {
    super(reply.message);
    this.name = "SignallerError";
    this.code = reply.code;
    this.error = reply.error;
    this.cmd = cmd;
    if (reply.retryAfterMs !== undefined) this.retryAfterMs = reply.retryAfterMs;
  }
}

/**
 * Why a command failed on the client's side: `not-connected` (called while
 * not open; nothing was sent), `closed` (the connection dropped before the
 * reply), `timeout` (no connection in time), `invalid-reply` (the reply did
 * not match its schema).
 */
export type ClientErrorKind = "not-connected" | "closed" | "timeout" | "invalid-reply";

/** A command or connection that failed on the client's side, not by an error reply. */
export class SignallerClientError extends Error {
  /** What went wrong. */
  readonly kind: ClientErrorKind;
  /** With `closed`: the WebSocket close code. */
  readonly closeCode?: number;
  /** With `closed`: the WebSocket close reason. */
  readonly closeReason?: string;

  /** A client-side failure of kind `kind`. */
  constructor(kind: ClientErrorKind, message: string, close?: { code: number; reason: string }) {
    super(message);
    this.name = "SignallerClientError";
    this.kind = kind;
    if (close) {
      this.closeCode = close.code;
      this.closeReason = close.reason;
    }
  }
}

interface Pending {
  cmd: CommandName;
  resolve(data: unknown): void;
  reject(error: Error): void;
}

interface Waiter {
  resolve(data: ReplyData<"descp">): void;
  reject(error: Error): void;
}

type Handler = (event: never) => void;
type Schema = { safeParse(v: unknown): { success: true; data: unknown } | { success: false } };

const OPEN = 1;
/** Close codes the client uses on its own sockets. */
const NORMAL = 1000;
const CLIENT_GAVE_UP = 4000;

/**
 * A Signaller connection: typed commands, typed events, reconnect and resume.
 *
 * Commands may be issued only while the client is `open`; a command issued
 * otherwise rejects at once with a `not-connected` {@linkcode SignallerClientError},
 * and commands in flight when the socket drops reject with `closed`: nothing
 * is queued or replayed on the next connection.
 */
export class SignallerClient {
  #url: string;
  #id: string;
  #name: string;
  #meta: Record<string, unknown>;
  #token: SignallerClientOptions["token"];
  #admin: string | undefined;
  #resume: string | undefined;
  #reconnect: boolean;
  #backoff: Required<BackoffOptions>;
  #maxRetries: number;
  #stableMs: number;
  #timeoutMs: number;
  #WebSocket: WebSocketConstructor;
  #random: () => number;

  #state: ClientState = "idle";
  #ws: WebSocket | undefined;
  /** Bumped by every attempt and by `close()`, so a stale async step can tell. */
  #gen = 0;
  #pending: Pending[] = [];
  #waiters: Waiter[] = [];
  #closeWaiters: (() => void)[] = [];
  #handlers = new Map<string, Set<Handler>>();
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #attemptTimer: ReturnType<typeof setTimeout> | undefined;
  #attempts = 0;
  #openedAt = 0;
  #described: ReplyData<"descp"> | undefined;
  #channels = new Set<string>();
  #timedOut = false;
  /** Sockets let go of but not yet closed: `close()` waits for them too. */
  #closing = new Set<WebSocket>();

  /** A client for the server at `url`; nothing happens until {@linkcode connect}. */
  constructor(url: string | URL, options: SignallerClientOptions) {
    this.#url = String(url);
    this.#id = (options.id ?? newId()).toLowerCase();
    this.#name = options.name;
    this.#meta = { ...options.meta };
    this.#token = options.token;
    this.#admin = options.admin;
    this.#resume = options.resume;
    this.#reconnect = options.reconnect ?? true;
    this.#backoff = resolveBackoff(options.backoff);
    this.#maxRetries = options.maxRetries ?? Infinity;
    this.#stableMs = options.stableMs ?? 5000;
    this.#timeoutMs = options.timeoutMs ?? 15_000;
    const WS = options.WebSocket ?? globalThis.WebSocket;
    if (typeof WS !== "function") throw new TypeError("No WebSocket: pass options.WebSocket");
    this.#WebSocket = WS;
    this.#random = options.random ?? Math.random;
  }

  /** The peer id, lowercase. */
  get id(): string {
    return this.#id;
  }

  /** The peer's display name, as last described. */
  get name(): string {
    return this.#name;
  }

  /** Where the client is: `idle`, `connecting`, `open`, `reconnecting` or `closed`. */
  get state(): ClientState {
    return this.#state;
  }

  /** The session's resume token (from the last `/descp` reply), e.g. to keep across a reload. */
  get resumeToken(): string | undefined {
    return this.#resume;
  }

  /** The last `/descp` reply, or undefined before the first. */
  get description(): ReplyData<"descp"> | undefined {
    return this.#described;
  }

  /** The channels the client is in, as far as its replies and events tell. */
  get channels(): string[] {
    return [...this.#channels];
  }

  /**
   * Opens the socket and describes the peer (`/descp`); resolves with the
   * reply. While already open it resolves with the current description;
   * while (re)connecting, when that finishes. The first connection is not
   * retried: if it fails the promise rejects and the client is `closed`
   * (and may `connect()` again). Reconnects happen only after a session was up.
   */
  connect(): Promise<ReplyData<"descp">> {
    if (this.#state === "open") return Promise.resolve(this.#described!);
    const p = new Promise<ReplyData<"descp">>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
    });
    if (this.#state === "idle" || this.#state === "closed") {
      this.#state = "connecting";
      this.#attempts = 0;
      this.#attempt();
    }
    return p;
  }

  /**
   * Closes the connection for good: no reconnect, every timer cleared,
   * commands in flight rejected. Resolves once the socket has closed.
   */
  close(code: number = NORMAL, reason = ""): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#closeWaiters.push(resolve));
    if (this.#ws) this.#detach(this.#ws, code, reason, "Closed by the client");
    if (this.#state !== "closed" && this.#state !== "idle") this.#finish("user", code, reason);
    this.#resolveCloseWaiters();
    return closed;
  }

  /**
   * Listens to events of `type`: a server event (`pubmsg`, `join`, …) or a
   * client event (`open`, `resumed`, `reconnecting`, `close`, `event`,
   * `invalid`). Returns a function that removes the listener.
   */
  on<K extends keyof SignallerEventMap>(
    type: K,
    handler: (event: SignallerEventMap[K]) => void,
  ): () => void {
    let set = this.#handlers.get(type);
    if (!set) this.#handlers.set(type, set = new Set());
    set.add(handler as Handler);
    return () => this.off(type, handler);
  }

  /** Like {@linkcode on}, for the next event of `type` only. */
  once<K extends keyof SignallerEventMap>(
    type: K,
    handler: (event: SignallerEventMap[K]) => void,
  ): () => void {
    const off = this.on(type, (event) => {
      off();
      handler(event);
    });
    return off;
  }

  /** Removes a listener added with {@linkcode on}. */
  off<K extends keyof SignallerEventMap>(
    type: K,
    handler: (event: SignallerEventMap[K]) => void,
  ): void {
    this.#handlers.get(type)?.delete(handler as Handler);
  }

  /**
   * Updates the peer's `name` and `meta` with a later `/descp` (same id);
   * co-members get no event. Later reconnects describe the peer this way.
   */
  async describe(
    update: { name?: string; meta?: Record<string, unknown> } = {},
  ): Promise<ReplyData<"descp">> {
    const name = update.name ?? this.#name;
    const meta = update.meta ?? this.#meta;
    const token = await this.#resolveToken();
    const data = await this.#command("descp", [], this.#descpJson(name, meta, token, undefined));
    this.#name = name;
    this.#meta = { ...meta };
    this.#described = data;
    this.#resume = data.resume;
    this.#channels = new Set(data.channels);
    return data;
  }

  /** Joins (or creates, with `token` as its key) `channel`. */
  async join(channel: string, token?: string): Promise<ReplyData<"join">> {
    const data = await this.#command("join", token ? [channel, token] : [channel]);
    this.#channels.add(data.channel);
    return data;
  }

  /** Leaves `channel`. */
  async quit(channel: string): Promise<ReplyData<"quit">> {
    const data = await this.#command("quit", [channel]);
    this.#channels.delete(data.channel);
    return data;
  }

  /** Sends `text` (an SDP, a candidate, anything) to one peer; the reply carries its away message. */
  privmsg(peer: string, text: string): Promise<ReplyData<"privmsg">> {
    return this.#command("privmsg", [peer], text);
  }

  /** Sends `text` to every other member of `channel` (danmaku, chat). */
  pubmsg(channel: string, text: string): Promise<ReplyData<"pubmsg">> {
    return this.#command("pubmsg", [channel], text);
  }

  /** Sends `text` to every described peer on the server (admins only). */
  broadcast(text: string): Promise<ReplyData<"broadcast">> {
    return this.#command("broadcast", [], text);
  }

  /** Describes a channel (`#…`): members, operators, whether keyed. */
  whois(target: `#${string}`): Promise<WhoisChannel>;
  /** Describes a peer (by id) or a channel (`#…`). */
  whois(target: string): Promise<ReplyData<"whois">>;
  /** Describes a peer (by id) or a channel (`#…`). */
  whois(target: string): Promise<ReplyData<"whois">> {
    return this.#command("whois", [target]);
  }

  /** Lists a page (at most 500, in join order) of `channel`'s members from `offset`. */
  peers(channel: string, offset?: number): Promise<ReplyData<"peers">> {
    return this.#command("peers", offset === undefined ? [channel] : [channel, String(offset)]);
  }

  /** Invites `peer` to `channel` (the one channel the client is in, when omitted). */
  invite(peer: string, channel?: string): Promise<ReplyData<"invite">> {
    return this.#command("invite", channel === undefined ? [peer] : [peer, channel]);
  }

  /** Sets away with message `text`; without `text` (or with `""`) toggles away. */
  away(text?: string): Promise<ReplyData<"away">> {
    return this.#command("away", [], text);
  }

  /**
   * Kicks `peer` from `channel` (resolved by the server when omitted), with
   * an optional reason `text`. Without `channel`, a `text` whose first word
   * starts with `#` would be read as the channel: give the channel then.
   */
  kick(peer: string, channel?: string, text?: string): Promise<ReplyData<"kick">> {
    return this.#command("kick", channel === undefined ? [peer] : [peer, channel], text);
  }

  /** Bans `peer` from `channel` (resolved by the server when omitted). */
  ban(peer: string, channel?: string): Promise<ReplyData<"ban">> {
    return this.#command("ban", channel === undefined ? [peer] : [peer, channel]);
  }

  /** Lifts the ban of `peer` on `channel` (resolved by the server when omitted). */
  unban(peer: string, channel?: string): Promise<ReplyData<"unban">> {
    return this.#command("unban", channel === undefined ? [peer] : [peer, channel]);
  }

  // ---- commands and replies -------------------------------------------------

  #command<C extends CommandName>(
    cmd: C,
    words: readonly string[],
    text?: string,
  ): Promise<ReplyData<C>> {
    const ws = this.#ws;
    if (this.#state !== "open" || !ws || ws.readyState !== OPEN) {
      return Promise.reject(
        new SignallerClientError("not-connected", `Cannot /${cmd}: the client is ${this.#state}`),
      );
    }
    return this.#send(ws, cmd, formatCommand(cmd, words, text)) as Promise<ReplyData<C>>;
  }

  #send(ws: WebSocket, cmd: CommandName, frame: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const entry: Pending = { cmd, resolve, reject };
      this.#pending.push(entry);
      try {
        ws.send(frame);
      } catch (e) {
        const i = this.#pending.lastIndexOf(entry);
        if (i >= 0) this.#pending.splice(i, 1);
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  }

  #onFrame(ws: WebSocket, data: unknown): void {
    if (typeof data !== "string") {
      this.#emit("invalid", { line: "", reason: "binary frame" });
      return;
    }
    for (const line of data.split("\n")) {
      // A listener may have closed the client in the middle of a batch: the rest is not ours.
      if (ws !== this.#ws) break;
      if (line.length === 0) continue;
      const msg = parseServerFrame(line)[0];
      if (!msg) {
        this.#onInvalid(line);
      } else if (msg.type === "ok") {
        this.#onOk(msg.cmd, msg.data, line);
      } else if (msg.type === "error") {
        const p = this.#pending.shift();
        if (p) p.reject(new SignallerError(msg, p.cmd));
        else this.#emit("invalid", { line, reason: "reply without a command" });
      } else {
        this.#onEvent(msg);
      }
    }
  }

  #onOk(cmd: string, data: unknown, line: string): void {
    const p = this.#pending.shift();
    if (!p) {
      this.#emit("invalid", { line, reason: "reply without a command" });
      return;
    }
    if (cmd !== p.cmd) {
      p.reject(
        new SignallerClientError("invalid-reply", `Reply to /${cmd} where /${p.cmd} was due`),
      );
      return;
    }
    const r = (ReplyData[p.cmd] as Schema).safeParse(data);
    if (r.success) p.resolve(r.data);
    else p.reject(new SignallerClientError("invalid-reply", `Malformed reply to /${p.cmd}`));
  }

  /** A line that failed validation: if it still looks like a reply, it answers the next command. */
  #onInvalid(line: string): void {
    let type: unknown;
    try {
      type = (JSON.parse(line) as { type?: unknown } | null)?.type;
    } catch {
      // Not JSON at all.
    }
    if (type === "ok" || type === "error") {
      // Keep the FIFO in step: this reply, however malformed, is the head's.
      const p = this.#pending.shift();
      p?.reject(new SignallerClientError("invalid-reply", `Malformed reply to /${p.cmd}`));
    }
    this.#emit("invalid", { line, reason: "not a valid server message" });
  }

  #onEvent(ev: ServerEvent): void {
    if ((ev.type === "kick" || ev.type === "ban") && ev.peer === this.#id) {
      this.#channels.delete(ev.channel);
    }
    this.#emit(ev.type, ev as never);
    this.#emit("event", ev);
  }

  #emit<K extends keyof SignallerEventMap>(type: K, event: SignallerEventMap[K]): void {
    const set = this.#handlers.get(type);
    if (!set) return;
    for (const h of [...set]) {
      try {
        (h as (event: SignallerEventMap[K]) => void)(event);
      } catch (e) {
        // A listener's bug must not break the client's frame loop; surface it anyway.
        report(e);
      }
    }
  }

  #failPending(error: Error): void {
    const pending = this.#pending;
    this.#pending = [];
    for (const p of pending) p.reject(error);
  }

  // ---- connection life ----------------------------------------------------

  async #resolveToken(): Promise<string | undefined> {
    const t = this.#token;
    return typeof t === "function" ? await t() : t;
  }

  #descpJson(
    name: string,
    meta: Record<string, unknown>,
    token: string | undefined,
    resume: string | undefined,
  ): string {
    const body: Record<string, unknown> = { ...meta, id: this.#id, name };
    // Reserved fields are always ours, never the meta's.
    delete body.resume;
    delete body.token;
    delete body.admin;
    if (resume !== undefined) body.resume = resume;
    if (token !== undefined) body.token = token;
    if (this.#admin !== undefined) body.admin = this.#admin;
    return JSON.stringify(body);
  }

  /** One connection attempt: token (when it comes from a function), socket, `/descp`. */
  #attempt(): void {
    const gen = ++this.#gen;
    const t = this.#token;
    if (typeof t !== "function") {
      this.#open(t);
      return;
    }
    Promise.resolve().then(t).then(
      (token) => {
        if (gen === this.#gen) this.#open(token);
      },
      (e) => {
        if (gen === this.#gen) this.#attemptFailed(0, "token provider failed", asError(e));
      },
    );
  }

  #open(token: string | undefined): void {
    let ws: WebSocket;
    try {
      ws = new this.#WebSocket(this.#url);
    } catch (e) {
      // A malformed URL: no retry can fix it.
      this.#finish("failed", 0, "", asError(e));
      return;
    }
    this.#ws = ws;
    this.#attemptTimer = setTimeout(() => {
      this.#attemptTimer = undefined;
      if (ws !== this.#ws) return;
      this.#timedOut = true;
      ws.close(CLIENT_GAVE_UP, "timeout");
    }, this.#timeoutMs);
    ws.onopen = () => {
      if (ws !== this.#ws) return;
      const resume = this.#resume;
      this.#send(
        ws,
        "descp",
        formatCommand("descp", [], this.#descpJson(this.#name, this.#meta, token, resume)),
      )
        .then(
          (data) => this.#onDescribed(ws, data as ReplyData<"descp">),
          (e) => this.#onDescpFailed(ws, asError(e)),
        );
    };
    ws.onmessage = (ev) => {
      if (ws === this.#ws) this.#onFrame(ws, ev.data);
    };
    ws.onclose = (ev) => this.#onClose(ws, ev.code, ev.reason);
    // An error is always followed by a close event, which does the work.
    ws.onerror = () => {};
  }

  #onDescribed(ws: WebSocket, data: ReplyData<"descp">): void {
    if (ws !== this.#ws) return;
    this.#clearAttemptTimer();
    const resumed = this.#state === "reconnecting";
    const before = new Set(this.#channels);
    this.#state = "open";
    this.#openedAt = Date.now();
    this.#described = data;
    this.#resume = data.resume;
    this.#id = data.peer.id;
    this.#channels = new Set(data.channels);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.resolve(data);
    if (resumed) {
      const lost = [...before].filter((c) => !this.#channels.has(c));
      this.#emit("resumed", { data, lost });
    } else {
      this.#emit("open", data);
    }
  }

  #onDescpFailed(ws: WebSocket, error: Error): void {
    // A drop rejects the descp too; the close handler deals with that.
    if (ws !== this.#ws || error instanceof SignallerClientError) return;
    const retriable = error instanceof SignallerError && (error.code === 503 || error.code === 263);
    if (retriable && this.#state === "reconnecting") {
      this.#detach(ws, CLIENT_GAVE_UP, "descp failed");
      this.#attemptFailed(0, error.message, error);
      return;
    }
    this.#detach(ws, NORMAL, "descp refused");
    this.#finish(this.#state === "connecting" ? "failed" : "rejected", 0, error.message, error);
  }

  /** Stops listening to `ws` and closes it; its close event is no longer ours. */
  #detach(ws: WebSocket, code: number, reason: string, why = reason): void {
    this.#ws = undefined;
    this.#clearAttemptTimer();
    ws.onopen = ws.onmessage = ws.onerror = null;
    this.#closing.add(ws);
    ws.onclose = () => {
      this.#closing.delete(ws);
      this.#resolveCloseWaiters();
    };
    this.#failPending(new SignallerClientError("closed", why, { code, reason }));
    try {
      ws.close(code, reason);
    } catch {
      // An invalid code or reason from the caller: close plainly rather than not at all.
      ws.close();
    }
  }

  #onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.#ws) return;
    this.#ws = undefined;
    this.#clearAttemptTimer();
    const timedOut = this.#timedOut;
    this.#timedOut = false;
    const error = timedOut
      ? new SignallerClientError("timeout", `No connection within ${this.#timeoutMs} ms`)
      : new SignallerClientError(
        "closed",
        `Connection closed (${code}${reason ? ` ${reason}` : ""})`,
        {
          code,
          reason,
        },
      );
    this.#failPending(error);
    if (this.#state === "connecting") {
      this.#finish("failed", code, reason, error);
    } else if (code === CloseCodes.REPLACED) {
      this.#finish("replaced", code, reason, error);
    } else if (code === CloseCodes.NOT_DESCRIBED) {
      // Bad auth or not described: the same /descp would fail again.
      this.#finish("rejected", code, reason, error);
    } else if (!this.#reconnect) {
      this.#finish("disconnected", code, reason, error);
    } else {
      if (this.#state === "open" && Date.now() - this.#openedAt >= this.#stableMs) {
        this.#attempts = 0;
      }
      this.#attemptFailed(code, reason, error);
    }
    this.#resolveCloseWaiters();
  }

  /** Schedules the next reconnect, or gives up after `maxRetries`. */
  #attemptFailed(code: number, reason: string, error: Error): void {
    if (this.#state === "connecting") {
      this.#finish("failed", code, reason, error);
      return;
    }
    if (this.#attempts >= this.#maxRetries) {
      this.#finish("retries", code, reason, error);
      return;
    }
    const delayMs = backoffDelay(this.#attempts, this.#backoff, this.#random);
    this.#attempts++;
    this.#state = "reconnecting";
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#attempt();
    }, delayMs);
    this.#emit("reconnecting", { attempt: this.#attempts, delayMs, code, reason });
  }

  /** The client is closed for good: reject whoever waits, tell the listeners. */
  #finish(cause: CloseCause, code: number, reason: string, error?: Error): void {
    this.#gen++;
    this.#clearTimers();
    this.#state = "closed";
    const waiters = this.#waiters;
    this.#waiters = [];
    const why = error ?? new SignallerClientError("closed", `Client closed (${cause})`);
    for (const w of waiters) w.reject(why);
    const detail: ClientEvents["close"] = { code, reason, cause };
    if (error) detail.error = error;
    this.#emit("close", detail);
  }

  #resolveCloseWaiters(): void {
    if (this.#ws || this.#closing.size > 0) return;
    const waiters = this.#closeWaiters;
    this.#closeWaiters = [];
    for (const w of waiters) w();
  }

  #clearAttemptTimer(): void {
    if (this.#attemptTimer !== undefined) clearTimeout(this.#attemptTimer);
    this.#attemptTimer = undefined;
  }

  #clearTimers(): void {
    this.#clearAttemptTimer();
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

function report(e: unknown): void {
  const g = globalThis as { reportError?: (e: unknown) => void };
  if (typeof g.reportError === "function") g.reportError(e);
  else {queueMicrotask(() => {
      throw e;
    });}
}
