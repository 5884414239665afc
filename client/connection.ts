/**
 * The typed client's connection: one socket at a time, a `/descp` first on
 * each, and what a close means (PROTOCOL.md, "Close codes") — stop for good,
 * or reconnect after a capped exponential backoff with full jitter and take
 * the session back with its resume token.
 *
 * States: `idle` → `connecting` → `open` ⇄ `reconnecting`, and `closed` from
 * any of them (from which `connect()` starts over). The first connection is
 * not retried: a server that cannot be reached, or refuses the peer, is
 * better reported at once than hidden behind retries.
 */
import { CloseCodes, Codes } from "../protocol/codes.ts";
import { type CommandName, formatCommand } from "../protocol/grammar.ts";
import type { ReplyData, ServerEvent } from "../protocol/messages.ts";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import { asError, SignallerClientError, SignallerError } from "./errors.ts";
import type { ClientEvents, CloseCause, Emitter, SignallerEventMap } from "./events.ts";
import { type FrameSink, ReplyQueue } from "./replies.ts";

/** A constructor of WebSockets, e.g. the global `WebSocket` (the default). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocket;

/** Where the client is in its life. */
export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** What a {@linkcode Connection} asks of the client that owns it. */
export interface ConnectionOwner {
  /** The signed auth token for the next `/descp`, if the server requires one. */
  token(): string | undefined | Promise<string | undefined>;
  /** The JSON of the next `/descp`, with `token`; it carries the resume token, if any. */
  descp(token: string | undefined): string;
  /** A `/descp` succeeded on a new socket; `resumed` when that socket replaced a dropped one. */
  described(data: ReplyData<"descp">, resumed: boolean): void;
  /** An event from the server. */
  event(event: ServerEvent): void;
}

/** Options of {@linkcode Connection.command}. */
export interface CommandOptions<C extends CommandName> {
  /** The command's free text, after its words. */
  text?: string;
  /**
   * Called with the reply's data as soon as it is read, before the events
   * behind it in the same frame; the promise settles later.
   */
  onReply?: (data: ReplyData<C>) => void;
}

/** Options of {@linkcode Connection}, all required: the client fills in the defaults. */
export interface ConnectionOptions {
  /** The client that owns the connection. */
  owner: ConnectionOwner;
  /** Where `reconnecting`, `close` and `invalid` are emitted. */
  emitter: Emitter<SignallerEventMap>;
  /** The WebSocket constructor. */
  WebSocket: WebSocketConstructor;
  /** Reconnect after a drop (else close with cause `disconnected`). */
  reconnect: boolean;
  /** Reconnect delays. */
  backoff: Required<BackoffOptions>;
  /** Reconnect attempts in a row before giving up. */
  maxRetries: number;
  /** A session that lasted this long resets the backoff, ms. */
  stableMs: number;
  /** Time allowed to open the socket and get the `/descp` reply, ms. */
  timeoutMs: number;
  /** The random source of the backoff jitter, in [0, 1). */
  random: () => number;
}

interface Waiter {
  resolve(data: ReplyData<"descp">): void;
  reject(error: Error): void;
}

/** `WebSocket.OPEN`, without needing the global in scope. */
const OPEN = 1;
/** Close codes the client uses on its own sockets; the server reads any code as a drop. */
const NORMAL = 1000;
const CLIENT_GAVE_UP = 4000;

/**
 * What a close by the server means for the client, by code. Only two codes
 * end it; every other close is a drop the session survives for the server's
 * grace period, so the client reconnects and resumes.
 */
function afterClose(code: number): "replaced" | "rejected" | "reconnect" {
  switch (code) {
    case CloseCodes.REPLACED:
      // A newer session of the same peer took over with the resume token: taking it back would
      // start two clients evicting each other for ever.
      return "replaced";
    case CloseCodes.NOT_DESCRIBED:
      // Bad auth or no /descp in time: the same /descp would fail the same way.
      return "rejected";
    case CloseCodes.FLOOD:
    case CloseCodes.TOO_SLOW:
      // Closes for load, not identity: the server keeps the session for its grace period like
      // after any drop. The backoff keeps the client from hammering the server, and nothing is
      // replayed (commands in flight were rejected), so the reconnect does not resume the flood.
      return "reconnect";
    default:
      // Shutdown (1001), a frame too large (1009), a network failure (1006): the same.
      return "reconnect";
  }
}

/**
 * One peer's connection to the server, across sockets: opens them, sends
 * `/descp` first on each, matches replies to commands, and decides after a
 * close whether to reconnect (see the client's documentation).
 */
export class Connection {
  #url: string;
  #o: ConnectionOptions;
  #state: ClientState = "idle";
  #ws: WebSocket | undefined;
  /** Bumped by every attempt and by the end, so a stale asynchronous step can tell. */
  #gen = 0;
  #replies = new ReplyQueue();
  #waiters: Waiter[] = [];
  #closeWaiters: (() => void)[] = [];
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #attemptTimer: ReturnType<typeof setTimeout> | undefined;
  /** Reconnect attempts in a row: the backoff's exponent. */
  #attempts = 0;
  #openedAt = 0;
  #timedOut = false;
  /** Sockets let go of but not yet closed: `close()` waits for them too. */
  #closing = new Set<WebSocket>();

  /** A connection to `url`; nothing happens until {@linkcode connect}. */
  constructor(url: string, options: ConnectionOptions) {
    this.#url = url;
    this.#o = options;
  }

  /** Where the connection is. */
  get state(): ClientState {
    return this.#state;
  }

  /**
   * Resolves with the `/descp` reply of the next socket that comes up:
   * starts a first connection when `idle` or `closed`, and otherwise waits
   * for the one under way. Not for an `open` connection (the client answers
   * that itself).
   */
  connect(): Promise<ReplyData<"descp">> {
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
   * Closes for good with `code` and `reason`: no reconnect, every timer
   * cleared, commands in flight rejected. Resolves once the socket has closed.
   */
  close(code: number = NORMAL, reason = ""): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#closeWaiters.push(resolve));
    if (this.#ws) this.#detach(this.#ws, code, reason, "Closed by the client");
    if (this.#state !== "closed" && this.#state !== "idle") this.#finish("user", code, reason);
    this.#resolveCloseWaiters();
    return closed;
  }

  /**
   * Sends command `cmd` and resolves with its reply's data; rejects at once
   * with `not-connected` unless the connection is `open`: nothing is queued.
   */
  command<C extends CommandName>(
    cmd: C,
    words: readonly string[],
    options: CommandOptions<C> = {},
  ): Promise<ReplyData<C>> {
    const ws = this.#ws;
    if (this.#state !== "open" || !ws || ws.readyState !== OPEN) {
      return Promise.reject(
        new SignallerClientError("not-connected", `Cannot /${cmd}: the client is ${this.#state}`),
      );
    }
    const frame = formatCommand(cmd, words, options.text);
    return this.#replies.send(cmd, () => ws.send(frame), {
      onReply: options.onReply as ((data: unknown) => void) | undefined,
    }) as Promise<ReplyData<C>>;
  }

  // ---- one attempt ----------------------------------------------------------

  /** One connection attempt: the token (when it comes from a function), the socket, `/descp`. */
  #attempt(): void {
    const gen = ++this.#gen;
    let token: ReturnType<ConnectionOwner["token"]>;
    try {
      token = this.#o.owner.token();
    } catch (e) {
      this.#attemptFailed(0, "token provider failed", asError(e));
      return;
    }
    if (!(token instanceof Promise)) {
      this.#open(token);
      return;
    }
    token.then(
      (t) => {
        if (gen === this.#gen) this.#open(t);
      },
      (e) => {
        if (gen === this.#gen) this.#attemptFailed(0, "token provider failed", asError(e));
      },
    );
  }

  #open(token: string | undefined): void {
    let ws: WebSocket;
    try {
      ws = new this.#o.WebSocket(this.#url);
    } catch (e) {
      // A malformed URL: no retry can fix it.
      this.#finish("failed", 0, "", asError(e));
      return;
    }
    this.#ws = ws;
    const sink: FrameSink = {
      event: (ev) => this.#o.owner.event(ev),
      invalid: (line, reason) => this.#o.emitter.emit("invalid", { line, reason }),
      current: () => ws === this.#ws,
    };
    ws.onopen = () => {
      if (ws !== this.#ws) return;
      const frame = formatCommand("descp", [], this.#o.owner.descp(token));
      // The reply is handled as it is read: the replayed messages right behind it in the same
      // frame must meet the client's state of the new session.
      this.#replies.send("descp", () => ws.send(frame), {
        onReply: (data) => this.#onDescribed(ws, data as ReplyData<"descp">),
      }).catch((e) => this.#onDescpFailed(ws, asError(e)));
    };
    ws.onmessage = (ev) => {
      if (ws === this.#ws) this.#replies.read(ev.data, sink);
    };
    ws.onclose = (ev) => this.#onClose(ws, ev.code, ev.reason);
    // An error is always followed by a close event, which does the work.
    ws.onerror = () => {};
    // Only now, with the handlers in place: a runtime may run pending tasks inside a first
    // setTimeout (Deno loads its timers lazily), and a socket's open must not slip through.
    this.#attemptTimer = setTimeout(() => {
      this.#attemptTimer = undefined;
      if (ws !== this.#ws) return;
      this.#timedOut = true;
      ws.close(CLIENT_GAVE_UP, "timeout");
    }, this.#o.timeoutMs);
  }

  #onDescribed(ws: WebSocket, data: ReplyData<"descp">): void {
    if (ws !== this.#ws) return;
    this.#clearAttemptTimer();
    const resumed = this.#state === "reconnecting";
    this.#state = "open";
    this.#openedAt = Date.now();
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.resolve(data);
    this.#o.owner.described(data, resumed);
  }

  #onDescpFailed(ws: WebSocket, error: Error): void {
    if (ws !== this.#ws) return;
    // The socket dropped before the reply: the close handler decides.
    if (error instanceof SignallerClientError && error.kind === "closed") return;
    if (!(error instanceof SignallerError)) {
      // A malformed reply: another try may meet a sane server (or node).
      this.#detach(ws, CLIENT_GAVE_UP, "invalid descp reply");
      this.#attemptFailed(0, error.message, error);
      return;
    }
    const delayMs = this.#state === "reconnecting" ? this.#refusalDelay(error) : undefined;
    if (delayMs !== undefined) {
      this.#detach(ws, CLIENT_GAVE_UP, "descp refused");
      this.#attemptFailed(0, error.message, error, delayMs);
      return;
    }
    this.#detach(ws, NORMAL, "descp refused");
    this.#finish(this.#state === "connecting" ? "failed" : "rejected", 0, error.message, error);
  }

  /**
   * The wait before another try at a reconnect whose `/descp` was refused
   * with `error`, or undefined when no retry can help (433: the id is taken,
   * 432: bad auth, …). Refusals for load are retried: 503 (the server's store
   * is unreachable: back off as after a drop) and 263 (rate limited: the
   * server says when).
   */
  #refusalDelay(error: SignallerError): number | undefined {
    const backoff = () => backoffDelay(this.#attempts, this.#o.backoff, this.#o.random);
    switch (error.code) {
      case Codes.ERR_UNAVAILABLE:
        return backoff();
      case Codes.RPL_TRYAGAIN:
        return error.retryAfterMs ?? backoff();
      default:
        return undefined;
    }
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
    this.#replies.failAll(new SignallerClientError("closed", why, { code, reason }));
    try {
      ws.close(code, reason);
    } catch {
      // An invalid code or reason from the caller: close plainly rather than not at all.
      ws.close();
    }
  }

  // ---- after a close ----------------------------------------------------------

  #onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.#ws) return;
    this.#ws = undefined;
    this.#clearAttemptTimer();
    const timedOut = this.#timedOut;
    this.#timedOut = false;
    const error = timedOut
      ? new SignallerClientError("timeout", `No connection within ${this.#o.timeoutMs} ms`)
      : new SignallerClientError(
        "closed",
        `Connection closed (${code}${reason ? ` ${reason}` : ""})`,
        { code, reason },
      );
    this.#replies.failAll(error);
    const verdict = afterClose(code);
    if (this.#state === "connecting") {
      this.#finish("failed", code, reason, error);
    } else if (verdict !== "reconnect") {
      this.#finish(verdict, code, reason, error);
    } else if (!this.#o.reconnect) {
      this.#finish("disconnected", code, reason, error);
    } else {
      if (this.#state === "open" && Date.now() - this.#openedAt >= this.#o.stableMs) {
        this.#attempts = 0;
      }
      this.#attemptFailed(code, reason, error);
    }
    this.#resolveCloseWaiters();
  }

  /**
   * Schedules the next reconnect after `delayMs` (by default the backoff's),
   * or gives up after `maxRetries`; a first connection is never retried.
   */
  #attemptFailed(code: number, reason: string, error: Error, delayMs?: number): void {
    if (this.#state === "connecting") {
      this.#finish("failed", code, reason, error);
      return;
    }
    if (this.#attempts >= this.#o.maxRetries) {
      this.#finish("retries", code, reason, error);
      return;
    }
    const delay = delayMs ?? backoffDelay(this.#attempts, this.#o.backoff, this.#o.random);
    this.#attempts++;
    this.#state = "reconnecting";
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#attempt();
    }, delay);
    this.#o.emitter.emit("reconnecting", { attempt: this.#attempts, delayMs: delay, code, reason });
  }

  /** The connection is closed for good: reject whoever waits, tell the listeners. */
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
    this.#o.emitter.emit("close", detail);
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
