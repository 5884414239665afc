/**
 * The typed Signaller client: one promise per command (replies matched
 * first-in first-out), typed events, and reconnects that resume the session.
 *
 * It uses only the global `WebSocket` (or the one you inject), so the same
 * code runs in browsers, Deno and Bun, and it imports nothing but
 * `protocol/`. This module is the one to import; the others are its parts.
 *
 * @example
 * ```ts
 * import { SignallerClient, SignallerError } from "./mod.ts";
 *
 * const client = new SignallerClient("ws://localhost:3012/", { name: "alice" });
 * const me = await client.connect(); // the /descp reply: me.peer.id, me.resume, …
 * const off = client.on("pubmsg", (ev) => console.log(`${ev.from} in ${ev.channel}: ${ev.text}`));
 * client.on("reconnecting", ({ attempt, delayMs, code }) => {
 *   console.log(`closed (${code}); retry #${attempt} in ${delayMs} ms`);
 * });
 * client.on("resumed", ({ lost, rejoined, failed }) => {
 *   // Channels the session lost come back by themselves unless `rejoin: false`.
 *   console.log(`lost ${lost.length}, rejoined ${rejoined.length}`);
 *   failed.forEach((f) => console.log(`could not rejoin ${f.channel}: ${f.code}`));
 * });
 * client.on("recovered", ({ inbox, channels }) => {
 *   // Right after a resume, before its messages: false means messages may be missing.
 *   if (!inbox) console.log("private messages may be missing");
 *   for (const [c, whole] of Object.entries(channels)) if (!whole) console.log(`gap in ${c}`);
 * });
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
import type { CommandName, Since } from "../protocol/grammar.ts";
import { newId } from "../protocol/ids.ts";
import { PAGE_SIZE } from "../protocol/limits.ts";
import type { EventOf, EventType, Position, ReplyData, ServerEvent } from "../protocol/messages.ts";
import { type BackoffOptions, resolveBackoff } from "./backoff.ts";
import { type ClientState, Connection, type WebSocketConstructor } from "./connection.ts";
import { asError, SignallerError } from "./errors.ts";
import { Emitter, type RejoinFailure, type SignallerEventMap } from "./events.ts";
import { StreamPositions } from "./streams.ts";

export { backoffCeiling, backoffDelay, type BackoffOptions, DEFAULT_BACKOFF } from "./backoff.ts";
export type { ClientState, WebSocketConstructor } from "./connection.ts";
export { type ClientErrorKind, SignallerClientError, SignallerError } from "./errors.ts";
export type { ClientEvents, CloseCause, RejoinFailure, SignallerEventMap } from "./events.ts";
export type { Recovered } from "./streams.ts";
export { PAGE_SIZE };
export type { CommandName, EventOf, EventType, Position, ReplyData, ServerEvent, Since };

/** The reply to `/whois` of a peer. */
export type WhoisPeer = Extract<ReplyData<"whois">, { id: string }>;
/** The reply to `/whois` of a channel. */
export type WhoisChannel = Extract<ReplyData<"whois">, { channel: string }>;

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
  /**
   * After a reconnect that could not resume (the grace had ended, or the
   * server forgot the session: a restart in memory), join the channels the
   * session lost again, with the keys given to {@linkcode SignallerClient.join};
   * true unless given. The `resumed` event says what was rejoined.
   */
  rejoin?: boolean;
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

/**
 * A Signaller connection: typed commands, typed events, reconnect and resume.
 *
 * Commands may be issued only while the client is `open`; a command issued
 * otherwise rejects at once with a `not-connected` {@linkcode SignallerClientError},
 * and commands in flight when the socket drops reject with `closed`: nothing
 * is queued or replayed on the next connection.
 *
 * **Reconnects.** After a session was up, a close by the server or the
 * network is followed by a `reconnecting` event and, after a delay drawn
 * uniformly below a ceiling that doubles from `backoff.initialMs` up to
 * `backoff.maxMs` (full jitter, so the viewers of a restarted server do not
 * come back in waves), a new socket whose `/descp` carries the resume token:
 * within the server's grace period the peer gets its channels, operator
 * rights and away state back and nobody sees it leave (`resumed`, with the
 * channels it lost if the grace had run out). By close code:
 *
 * - 4002 (replaced: a newer session of the same peer took over) and 4001
 *   (not described: bad auth) end the client, cause `replaced` or
 *   `rejected`: another try would evict the newer session, or fail the same way.
 * - 4003 (flood) and 4008 (too slow: messages not read) reconnect and resume
 *   like any drop: the server closed for load, not for who the peer is, and
 *   keeps the session for its grace period. The commands in flight are
 *   rejected with `closed` and never sent again, so the flood is not
 *   replayed; the `reconnecting` event's `code` tells the application why.
 * - 1001 (server going away), 1006 (network) and anything else reconnect.
 *
 * A reconnect's `/descp` refused with 503 (the server's store is unreachable)
 * is tried again after the next backoff delay, and one refused with 263
 * (rate limited) after the `retryAfterMs` the server gave; each try counts
 * towards `maxRetries`. Any other refusal (e.g. 433: the grace ended and the
 * id is taken) ends the client, cause `rejected`.
 *
 * **Missed messages.** The client keeps the position (`epoch`, `seq`) of its
 * inbox (from the `/descp` reply and every `privmsg`) and of each channel it
 * is in (from the `/join` reply and every `pubmsg`), and a `/descp` with the
 * resume token carries them as `since`. The server answers which streams it
 * recovered: the client emits that as `recovered`, as the reply is read, and
 * the missed messages of those streams follow. A message whose `seq` is not
 * above its stream's position is a duplicate and is not emitted; nor are the
 * peer's own `/pubmsg`s in a replay (it never gets them live). A stream not
 * recovered is taken up at its next message, whatever its `seq`: the stream
 * may have a new epoch, and the events do not name it. One whose history
 * expired while connected starts over at `seq` 1, which is always taken;
 * its new epoch is unknown until a `/join` reply names it, so until then a
 * resume is told the channel was not recovered (the inbox's epoch comes
 * with the next `/descp` reply). Positions are kept in memory only.
 *
 * **Channels after a new session.** When the server did not know the
 * session any more (the grace had ended, or a server in memory restarted),
 * the reply carries a new resume token and no channels: the client joins
 * the channels it lost again, with the keys given to {@linkcode join}
 * (kept in memory only), unless `rejoin: false`, and emits `resumed` once
 * they are answered, with what was `rejoined` and what `failed`. A join
 * left without a reply by another drop is tried after the next reconnect.
 */
export class SignallerClient {
  #id: string;
  #name: string;
  #meta: Record<string, unknown>;
  #token: SignallerClientOptions["token"];
  #admin: string | undefined;
  #resume: string | undefined;
  #described: ReplyData<"descp"> | undefined;
  #channels = new Set<string>();
  /** The key given to `join`, by channel (undefined: joined without one); in memory only. */
  #keys = new Map<string, string | undefined>();
  /** Channels lost to a session that could not resume and not joined again yet, with keys. */
  #rejoins = new Map<string, string | undefined>();
  #rejoin: boolean;
  #positions = new StreamPositions();
  /** What the `/descp` on the socket coming up carries: its resume token and `since`. */
  #asking: { resume?: string; since?: Since } = {};
  #emitter = new Emitter<SignallerEventMap>();
  #conn: Connection;

  /** A client for the server at `url`; nothing happens until {@linkcode connect}. */
  constructor(url: string | URL, options: SignallerClientOptions) {
    this.#id = (options.id ?? newId()).toLowerCase();
    this.#name = options.name;
    this.#meta = { ...options.meta };
    this.#token = options.token;
    this.#admin = options.admin;
    this.#resume = options.resume;
    this.#rejoin = options.rejoin ?? true;
    const WS = options.WebSocket ?? globalThis.WebSocket;
    if (typeof WS !== "function") throw new TypeError("No WebSocket: pass options.WebSocket");
    this.#conn = new Connection(String(url), {
      owner: {
        token: () => typeof this.#token === "function" ? this.#token() : this.#token,
        descp: (token) => this.#nextDescp(token),
        described: (data, resumed) => this.#onDescribed(data, resumed),
        event: (ev) => this.#onEvent(ev),
      },
      emitter: this.#emitter,
      WebSocket: WS,
      reconnect: options.reconnect ?? true,
      backoff: resolveBackoff(options.backoff),
      maxRetries: options.maxRetries ?? Infinity,
      stableMs: options.stableMs ?? 5000,
      timeoutMs: options.timeoutMs ?? 15_000,
      random: options.random ?? Math.random,
    });
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
    return this.#conn.state;
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
   * (and may `connect()` again, resuming the session it had, if any).
   * Reconnects happen only after a session was up.
   */
  connect(): Promise<ReplyData<"descp">> {
    if (this.#conn.state === "open") return Promise.resolve(this.#described!);
    return this.#conn.connect();
  }

  /**
   * Closes the connection for good: no reconnect, every timer cleared,
   * commands in flight rejected. Resolves once the socket has closed.
   */
  close(code?: number, reason?: string): Promise<void> {
    return this.#conn.close(code, reason);
  }

  /**
   * Listens to events of `type`: a server event (`pubmsg`, `join`, …) or a
   * client event (`open`, `resumed`, `recovered`, `reconnecting`, `close`,
   * `event`, `invalid`). Returns a function that removes the listener. A listener
   * that throws is reported (`reportError`) and does not stop the others.
   */
  on<K extends keyof SignallerEventMap>(
    type: K,
    handler: (event: SignallerEventMap[K]) => void,
  ): () => void {
    return this.#emitter.on(type, handler);
  }

  /** Like {@linkcode on}, for the next event of `type` only. */
  once<K extends keyof SignallerEventMap>(
    type: K,
    handler: (event: SignallerEventMap[K]) => void,
  ): () => void {
    return this.#emitter.once(type, handler);
  }

  /** Removes a listener added with {@linkcode on}. */
  off<K extends keyof SignallerEventMap>(
    type: K,
    handler: (event: SignallerEventMap[K]) => void,
  ): void {
    this.#emitter.off(type, handler);
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
    const t = this.#token;
    const token = typeof t === "function" ? await t() : t;
    const data = await this.#conn.command("descp", [], {
      text: this.#descpJson(name, meta, { token }),
      onReply: (d) => {
        this.#described = d;
        this.#resume = d.resume;
        this.#setChannels(d.channels);
        this.#positions.redescribed(d);
      },
    });
    this.#name = name;
    this.#meta = { ...meta };
    return data;
  }

  /**
   * Joins (or creates, with `token` as its key) `channel`. The key is kept
   * in memory, for this channel, to join it again after a reconnect that
   * could not resume (see `rejoin`). Joining a channel the client is in
   * changes nothing on the server and tells the client the channel's stream
   * position again.
   */
  join(channel: string, token?: string): Promise<ReplyData<"join">> {
    return this.#conn.command("join", token ? [channel, token] : [channel], {
      onReply: (data) => this.#joined(data, token),
    });
  }

  /** Leaves `channel`. */
  quit(channel: string): Promise<ReplyData<"quit">> {
    // The application wants out: a rejoin still owed for it is off.
    this.#rejoins.delete(channel.toLowerCase());
    return this.#conn.command("quit", [channel], { onReply: (data) => this.#left(data.channel) });
  }

  /** Sends `text` (an SDP, a candidate, anything) to one peer; the reply carries its away message. */
  privmsg(peer: string, text: string): Promise<ReplyData<"privmsg">> {
    return this.#conn.command("privmsg", [peer], { text });
  }

  /** Sends `text` to every other member of `channel` (danmaku, chat). */
  pubmsg(channel: string, text: string): Promise<ReplyData<"pubmsg">> {
    return this.#conn.command("pubmsg", [channel], {
      text,
      onReply: (data) => this.#positions.published(channel.toLowerCase(), data.seq),
    });
  }

  /** Sends `text` to every described peer on the server (admins only). */
  broadcast(text: string): Promise<ReplyData<"broadcast">> {
    return this.#conn.command("broadcast", [], { text });
  }

  /** Describes a channel (`#…`): members (the first {@linkcode PAGE_SIZE}), operators, whether keyed. */
  whois(target: `#${string}`): Promise<WhoisChannel>;
  /** Describes a peer (by id) or a channel (`#…`). */
  whois(target: string): Promise<ReplyData<"whois">>;
  /** Describes a peer (by id) or a channel (`#…`). */
  whois(target: string): Promise<ReplyData<"whois">> {
    return this.#conn.command("whois", [target]);
  }

  /**
   * Lists a page of `channel`'s members from `offset`, in join order: at most
   * {@linkcode PAGE_SIZE} of them; the reply's `next` is the following page's offset.
   */
  peers(channel: string, offset?: number): Promise<ReplyData<"peers">> {
    return this.#conn.command(
      "peers",
      offset === undefined ? [channel] : [channel, String(offset)],
    );
  }

  /** Invites `peer` to `channel` (the one channel the client is in, when omitted). */
  invite(peer: string, channel?: string): Promise<ReplyData<"invite">> {
    return this.#conn.command("invite", channel === undefined ? [peer] : [peer, channel]);
  }

  /** Sets away with message `text`; without `text` (or with `""`) toggles away. */
  away(text?: string): Promise<ReplyData<"away">> {
    return this.#conn.command("away", [], { text });
  }

  /**
   * Kicks `peer` from `channel` (resolved by the server when omitted), with
   * an optional reason `text`. Without `channel`, a `text` whose first word
   * starts with `#` would be read as the channel: give the channel then.
   */
  kick(peer: string, channel?: string, text?: string): Promise<ReplyData<"kick">> {
    return this.#conn.command("kick", channel === undefined ? [peer] : [peer, channel], { text });
  }

  /** Bans `peer` from `channel` (resolved by the server when omitted). */
  ban(peer: string, channel?: string): Promise<ReplyData<"ban">> {
    return this.#conn.command("ban", channel === undefined ? [peer] : [peer, channel]);
  }

  /** Lifts the ban of `peer` on `channel` (resolved by the server when omitted). */
  unban(peer: string, channel?: string): Promise<ReplyData<"unban">> {
    return this.#conn.command("unban", channel === undefined ? [peer] : [peer, channel]);
  }

  // ---- the session, as the connection reports it ---------------------------

  /**
   * The `/descp` JSON of a new socket: with the resume token, if any, and
   * then `since`, the positions of the streams the client has (a resume
   * asks for what it missed).
   */
  #nextDescp(token: string | undefined): string {
    const resume = this.#resume;
    const since = resume === undefined ? undefined : this.#positions.since(this.#channels);
    this.#asking = { resume, since };
    return this.#descpJson(this.#name, this.#meta, { token, resume, since });
  }

  /** The `/descp` JSON: the meta's fields, then ours; the reserved fields are never the meta's. */
  #descpJson(
    name: string,
    meta: Record<string, unknown>,
    reserved: { token?: string; resume?: string; since?: Since },
  ): string {
    const body: Record<string, unknown> = { ...meta, id: this.#id, name };
    delete body.resume;
    delete body.token;
    delete body.admin;
    delete body.since;
    if (reserved.resume !== undefined) body.resume = reserved.resume;
    if (reserved.since !== undefined) body.since = reserved.since;
    if (reserved.token !== undefined) body.token = reserved.token;
    if (this.#admin !== undefined) body.admin = this.#admin;
    return JSON.stringify(body);
  }

  /**
   * A `/descp` succeeded on a new socket; called as the reply is read, so
   * `recovered` (and `resumed`, when nothing is to be rejoined) come before
   * any message of the new socket, the replayed ones first.
   */
  #onDescribed(data: ReplyData<"descp">, resumed: boolean): void {
    const before = this.#channels;
    const keys = new Map(this.#keys);
    const asking = this.#asking;
    this.#asking = {};
    this.#described = data;
    this.#resume = data.resume;
    this.#id = data.peer.id;
    this.#setChannels(data.channels);
    const recovered = this.#positions.described(data, asking.since);
    if (recovered) this.#emitter.emit("recovered", recovered);
    if (!resumed) {
      // Only reconnects rejoin: after connect() the application decides.
      this.#rejoins.clear();
      this.#emitter.emit("open", data);
      return;
    }
    const lost = [...before].filter((c) => !this.#channels.has(c));
    // A new resume token: the server did not know the session, and the peer is new there.
    const fresh = asking.resume === undefined || data.resume !== asking.resume;
    if (fresh && this.#rejoin) { for (const c of lost) this.#rejoins.set(c, keys.get(c)); }
    // A rejoin owed from an earlier reconnect, done though its reply was lost with the socket.
    for (const c of this.#channels) {
      if (!this.#rejoins.has(c)) continue;
      this.#keys.set(c, this.#rejoins.get(c));
      this.#rejoins.delete(c);
    }
    if (this.#rejoins.size === 0) {
      this.#emitter.emit("resumed", { data, lost, rejoined: [], failed: [] });
    } else {
      this.#rejoinLost(data, lost);
    }
  }

  /**
   * Joins the channels owed a rejoin, all at once (replies come in order),
   * then emits `resumed`. A join refused by the server is given up; one
   * without a reply (the connection dropped again) is tried after the next
   * reconnect.
   */
  async #rejoinLost(data: ReplyData<"descp">, lost: string[]): Promise<void> {
    const owed = [...this.#rejoins];
    const results = await Promise.allSettled(owed.map(([c, key]) => this.join(c, key)));
    const rejoined: string[] = [];
    const failed: RejoinFailure[] = [];
    results.forEach((r, i) => {
      const channel = owed[i][0];
      if (r.status === "fulfilled") {
        rejoined.push(channel);
        return;
      }
      const error = asError(r.reason);
      const code = error instanceof SignallerError ? error.code : 0;
      if (code !== 0) this.#rejoins.delete(channel);
      failed.push({ channel, code, error });
    });
    if (this.#conn.state === "closed") return;
    this.#emitter.emit("resumed", { data, lost, rejoined, failed });
  }

  #joined(data: ReplyData<"join">, token: string | undefined): void {
    const c = data.channel;
    this.#channels.add(c);
    // A join without a key of a channel the client is in keeps the key it was joined with.
    if (token !== undefined || !this.#keys.has(c)) this.#keys.set(c, token);
    this.#rejoins.delete(c);
    this.#positions.joined(c, data.stream);
  }

  #left(channel: string): void {
    this.#channels.delete(channel);
    this.#keys.delete(channel);
    this.#positions.left(channel);
  }

  /** The channels the server says the client is in; the others' keys and positions go. */
  #setChannels(channels: string[]): void {
    this.#channels = new Set(channels);
    for (const c of this.#keys.keys()) if (!this.#channels.has(c)) this.#keys.delete(c);
  }

  #onEvent(ev: ServerEvent): void {
    if ((ev.type === "kick" || ev.type === "ban") && ev.peer === this.#id) {
      this.#left(ev.channel);
    }
    if (ev.type === "pubmsg" || ev.type === "privmsg") {
      if (!this.#positions.accept(ev)) return;
      // A replay holds the peer's own /pubmsgs after its position (it never gets them live: its
      // position counts the events it got); they are not news to it.
      if (ev.type === "pubmsg" && ev.from === this.#id) return;
    }
    this.#emitter.emit(ev.type, ev as never);
    this.#emitter.emit("event", ev);
  }
}
