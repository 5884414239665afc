/**
 * The hub: sessions, channels, routing and permissions for every command.
 *
 * It never touches a socket or a runtime API: adapters hand it a
 * {@linkcode Connection} and feed it frames; state that must outlive a socket
 * lives in the {@linkcode Store}; other nodes are reached through the
 * {@linkcode Bus}. Replies leave in command order per connection even when the
 * store is asynchronous: each session queues its frames while a command awaits.
 */
import {
  CloseCodes,
  type Code,
  type CodeName,
  codeName,
  Codes,
  type Command,
  type CommandName,
  COMMANDS,
  type Description,
  type EventOf,
  type EventType,
  newId,
  parseCommand,
  type PeerEntry,
  type ReplyData,
} from "../protocol/mod.ts";
import { byteLength } from "../protocol/grammar.ts";
import { type Bus, type Envelope, NoBus } from "./bus.ts";
import { FloodMeter, TokenBucket } from "./limits.ts";
import { type Logger, silent } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { type Fail, failed, type Store } from "./store/store.ts";

/** What the hub needs of a socket. Adapters implement it in a few lines. */
export interface Connection {
  /** Queues one text frame. Must not throw on a closed socket. */
  send(text: string): void;
  /** Closes the socket; the adapter then calls {@linkcode Session.closed}. */
  close(code: number, reason: string): void;
  /** Bytes queued to the client and not yet sent. */
  readonly bufferedAmount: number;
  /** The client's address, for logs. */
  readonly remoteAddress: string;
}

/**
 * A runtime's native topic fan-out (Bun's `publish`). The hub still knows who
 * is where; the runtime only sends. Without one, the hub sends to each member.
 */
export interface Fanout {
  subscribe(conn: Connection, topic: string): void;
  unsubscribe(conn: Connection, topic: string): void;
  /** Sends `text` to every subscriber of `topic` but `except`; true when one is backed up. */
  publish(topic: string, text: string, except?: Connection): boolean;
}

/** An ICE server handed out in the `descp` reply. */
export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

/** Hub configuration; every limit has the protocol's default. */
export interface HubOptions {
  store: Store;
  /** Cross-node delivery; none for a single node. */
  bus?: Bus;
  /** This node's id (unique across the cluster). */
  node?: string;
  /** The admin token (`descp` field `admin`). */
  adminToken?: string;
  /** Verifies a signed token for `id`; null when invalid. Unset: ids are self-asserted. */
  auth?: (token: string | undefined, id: string) => Promise<{ admin: boolean } | null>;
  /** ICE servers for a peer, when configured. */
  iceServers?: (id: string) => Promise<IceServer[]>;
  graceMs?: number;
  handshakeMs?: number;
  maxFrame?: number;
  /** Messages a second per peer; 0 turns rate limiting off. */
  rate?: number;
  burst?: number;
  presenceLimit?: number;
  maxBuffered?: number;
  /** How often to look for peers whose grace ended. */
  sweepMs?: number;
  version?: string;
  metrics?: Metrics;
  log?: Logger;
  now?: () => number;
}

/** Replies of `/peers` and `/whois #channel` hold at most this many members. */
export const PAGE = 500;
/** Frames a session may queue behind a slow command before it counts as a flood. */
export const MAX_QUEUE = 256;

/** An error reply raised inside a handler. */
class Refusal {
  constructor(readonly code: Code, readonly message: string) {}
}

function refuse(code: Code, message: string): never {
  throw new Refusal(code, message);
}

const MESSAGE_COMMANDS = new Set<string>(["privmsg", "pubmsg", "broadcast", "invite"]);
const KNOWN = new Set<string>(COMMANDS);
const encoder = new TextEncoder();

/** One socket: its peer once described, its memberships, limits and command queue. */
export class Session {
  /** The peer id, once `/descp` succeeded. */
  id: string | null = null;
  name = "";
  admin = false;
  away = false;
  message?: string;
  /** Channels the peer is in, as this node knows them. */
  readonly channels = new Set<string>();
  /** Identifies this socket's claim on the id across the cluster. */
  readonly nonce = newId();
  resume = "";
  /** The socket closed (or is closing): deliver nothing more. */
  gone = false;
  /** Taken over by a newer session: closing must not release the peer. */
  replaced = false;
  readonly conn: Connection;
  readonly #hub: Hub;
  /** Frames waiting behind a command that awaits the store (allocated when first needed). */
  #queue?: (string | null)[];
  #busy = false;
  handshake?: ReturnType<typeof setTimeout>;
  /** Close after the current reply is sent. */
  closeAfterReply?: [number, string];
  messages?: TokenBucket;
  commands?: TokenBucket;
  flood?: FloodMeter;

  constructor(hub: Hub, conn: Connection) {
    this.#hub = hub;
    this.conn = conn;
  }

  /** A text frame arrived. */
  receive(frame: string): void {
    this.#enqueue(frame);
  }

  /** A binary frame arrived: a protocol error (421), replied in order. */
  receiveBinary(): void {
    this.#enqueue(null);
  }

  /** The socket closed. */
  closed(): void {
    this.#hub.disconnected(this);
  }

  #enqueue(frame: string | null): void {
    if (this.gone) return;
    if (!this.#busy) return this.#step(frame);
    this.#queue ??= [];
    if (this.#queue.length >= MAX_QUEUE) return this.#hub.drop(this, CloseCodes.FLOOD, "flood");
    this.#queue.push(frame);
  }

  #step(frame: string | null): void {
    const pending = this.#hub.run(this, frame);
    if (pending === undefined) return;
    this.#busy = true;
    pending.then(() => {
      this.#busy = false;
      const q = this.#queue;
      while (!this.#busy && q !== undefined && q.length > 0 && !this.gone) this.#step(q.shift()!);
    });
  }
}

type Result<C extends CommandName> = ReplyData<C> | Promise<ReplyData<C>>;
type Handlers = { [C in CommandName]: (s: Session, c: Command & { cmd: C }) => Result<C> };

/** The signalling hub. */
export class Hub {
  readonly node: string;
  readonly metrics: Metrics;
  readonly #store: Store;
  readonly #bus: Bus;
  readonly #o: Required<Omit<HubOptions, "bus" | "auth" | "iceServers" | "adminToken" | "store">>;
  readonly #auth?: HubOptions["auth"];
  readonly #ice?: HubOptions["iceServers"];
  readonly #adminToken?: string;
  readonly #log: Logger;
  /** Live described sessions on this node, by peer id. */
  readonly #peers = new Map<string, Session>();
  /** Local members of each channel. */
  readonly #local = new Map<string, Set<Session>>();
  /** Every open socket. */
  readonly #sessions = new Set<Session>();
  readonly #handlers: Handlers;
  #fanout?: Fanout;
  #sweeper?: ReturnType<typeof setInterval>;
  #sweeping = false;
  #closing = false;

  constructor(options: HubOptions) {
    this.#store = options.store;
    this.#bus = options.bus ?? new NoBus();
    this.#auth = options.auth;
    this.#ice = options.iceServers;
    this.#adminToken = options.adminToken;
    this.node = options.node ?? newId();
    this.#o = {
      node: this.node,
      graceMs: options.graceMs ?? 30_000,
      handshakeMs: options.handshakeMs ?? 10_000,
      maxFrame: options.maxFrame ?? 65_536,
      rate: options.rate ?? 20,
      burst: options.burst ?? 40,
      presenceLimit: options.presenceLimit ?? 1000,
      maxBuffered: options.maxBuffered ?? 1_048_576,
      sweepMs: options.sweepMs ?? Math.min(1000, Math.max(50, (options.graceMs ?? 30_000) / 4)),
      version: options.version ?? "0.0.0",
      metrics: options.metrics ?? new Metrics(),
      log: options.log ?? silent,
      now: options.now ?? Date.now,
    };
    this.metrics = this.#o.metrics;
    this.#log = this.#o.log;
    this.metrics.gauges = () => ({
      connections: this.#sessions.size,
      peers: this.#peers.size,
      channels: this.#local.size,
    });
    this.#handlers = {
      descp: (s, c) => this.#descp(s, c.desc),
      join: (s, c) => this.#join(s, c),
      quit: (s, c) => this.#quit(s, c.channel),
      privmsg: (s, c) => this.#privmsg(s, c),
      pubmsg: (s, c) => this.#pubmsg(s, c),
      broadcast: (s, c) => this.#broadcast(s, c.text),
      whois: (s, c) => this.#whois(s, c),
      peers: (s, c) => this.#peersPage(s, c),
      invite: (s, c) => this.#invite(s, c),
      away: (s, c) => this.#away(s, c.text),
      kick: (s, c) => this.#kick(s, c),
      ban: (s, c) => this.#ban(s, c),
      unban: (s, c) => this.#unban(s, c),
    };
    // Broadcasts and presence spanning channels reach every node.
    this.#bus.subscribe("all");
    this.#sweeper = setInterval(() => this.#sweep(), this.#o.sweepMs);
  }

  /** A socket opened. The adapter feeds the returned session its frames. */
  connect(conn: Connection): Session {
    const s = new Session(this, conn);
    if (this.#closing) {
      conn.close(CloseCodes.GOING_AWAY, "server shutting down");
      s.gone = true;
      return s;
    }
    this.#sessions.add(s);
    s.handshake = setTimeout(() => {
      if (s.id === null) {
        this.drop(s, CloseCodes.NOT_DESCRIBED, "no descp before the handshake timeout");
      }
    }, this.#o.handshakeMs);
    return s;
  }

  /** Hands channel fan-out to the runtime (called by its adapter before serving). */
  useFanout(fanout: Fanout): void {
    this.#fanout = fanout;
  }

  /** Closes a session's socket from the server side. */
  drop(s: Session, code: number, reason: string): void {
    if (s.gone) return;
    this.#log.debug("close", { code, reason, peer: s.id, remote: s.conn.remoteAddress });
    s.conn.close(code, reason);
    this.disconnected(s);
  }

  /** The socket of `s` closed: its peer enters the disconnect grace. */
  disconnected(s: Session): void {
    if (s.gone) return;
    s.gone = true;
    clearTimeout(s.handshake);
    this.#sessions.delete(s);
    if (s.id === null || s.replaced) return;
    this.#forget(s);
    this.#timed(this.#store.releasePeer(s.id, s.nonce, this.#o.now() + this.#o.graceMs))
      .catch((e) => this.#log.error("release failed", { peer: s.id, error: String(e) }));
  }

  /**
   * Runs one frame to its reply. Returns a promise only when the command had
   * to wait (for the store); the session then queues what follows.
   */
  run(s: Session, frame: string | null): Promise<void> | undefined {
    const now = this.#o.now();
    if (frame === null) {
      return this.#error(s, null, Codes.ERR_UNKNOWNCOMMAND, "Binary frames are not commands");
    }
    if (
      frame.length > this.#o.maxFrame ||
      (frame.length * 3 > this.#o.maxFrame && byteLength(frame) > this.#o.maxFrame)
    ) {
      return this.#error(
        s,
        commandOf(frame),
        Codes.ERR_INPUTTOOLONG,
        `Frame is larger than ${this.#o.maxFrame} bytes`,
      );
    }
    const parsed = parseCommand(frame);
    if (!parsed.ok) {
      return this.#error(s, parsed.error.cmd, parsed.error.code, parsed.error.message);
    }
    const c = parsed.command;
    this.metrics.count(this.metrics.messagesIn, c.cmd);
    if (s.id === null && c.cmd !== "descp") {
      s.closeAfterReply = [CloseCodes.NOT_DESCRIBED, "descp must come first"];
      return this.#error(s, c.cmd, Codes.ERR_NOTREGISTERED, "Describe yourself with /descp first");
    }
    if (this.#o.rate > 0) {
      const wait = this.#limit(s, c.cmd, now);
      if (wait > 0) {
        if (s.flood!.reject(now)) s.closeAfterReply = [CloseCodes.FLOOD, "flood"];
        return this.#error(s, c.cmd, Codes.RPL_TRYAGAIN, `Rate limited: retry in ${wait} ms`, wait);
      }
    }
    let out: Result<CommandName>;
    try {
      const handler = this.#handlers[c.cmd] as (s: Session, c: Command) => Result<CommandName>;
      out = handler(s, c);
    } catch (e) {
      this.#fail(s, c.cmd, e);
      return;
    }
    if (out instanceof Promise) {
      return out.then((data) => this.#ok(s, c.cmd, data), (e) => this.#fail(s, c.cmd, e));
    }
    this.#ok(s, c.cmd, out);
  }

  /** Sends every peer a notice, closes every socket with 1001 and releases the peers. */
  async shutdown(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearInterval(this.#sweeper);
    const notice = this.#event("notice", {
      text: "server shutting down",
      code: CloseCodes.GOING_AWAY,
    });
    const releases: Promise<void>[] = [];
    for (const s of [...this.#sessions]) {
      this.#send(s, notice);
      s.conn.close(CloseCodes.GOING_AWAY, "server shutting down");
      s.gone = true;
      clearTimeout(s.handshake);
      if (s.id !== null && !s.replaced) {
        releases.push(
          this.#store.releasePeer(s.id, s.nonce, this.#o.now() + this.#o.graceMs).catch(() => {}),
        );
      }
    }
    this.#sessions.clear();
    await Promise.all(releases);
    await this.#bus.close();
    await this.#store.close();
  }

  /**
   * Closes every described session with 1001 without touching the store: the
   * cluster already gave their peers up (their grace runs; clients resume).
   */
  closeAll(reason: string): void {
    this.#log.warn("closing every session", { reason });
    for (const s of [...this.#peers.values()]) {
      s.replaced = true;
      this.#forget(s);
      this.drop(s, CloseCodes.GOING_AWAY, reason);
    }
  }

  /** Whether the store answers (for `/healthz`). */
  healthy(): Promise<boolean> {
    return this.#store.ping().catch(() => false);
  }

  /** An envelope from another node. */
  deliver(topic: string, env: Envelope): void {
    const kind = topic[0];
    const rest = topic.slice(2);
    if (kind === "c") return this.#deliverChannel(rest, env.text, env.except, env.drop);
    if (kind === "p") {
      const s = this.#peers.get(rest);
      if (s === undefined) return;
      if (env.replace !== undefined) {
        if (s.nonce === env.replace) this.#replace(s);
      } else if (env.text !== undefined) this.#send(s, env.text);
      return;
    }
    if (env.text === undefined) return;
    if (env.channels !== undefined) this.#deliverChannels(env.channels, env.text, env.except);
    else for (const s of this.#peers.values()) if (s.id !== env.except) this.#send(s, env.text);
  }

  // ---- replies ---------------------------------------------------------------

  #ok(s: Session, cmd: CommandName, data: unknown): void {
    this.#send(s, `{"type":"ok","cmd":"${cmd}","data":${JSON.stringify(data)}}`);
    this.#afterReply(s);
  }

  #error(
    s: Session,
    cmd: string | null,
    code: Code,
    message: string,
    retryAfterMs?: number,
  ): undefined {
    this.metrics.count(this.metrics.errors, code);
    const reply: Record<string, unknown> = {
      type: "error",
      cmd,
      code,
      error: codeName(code) satisfies CodeName,
      message,
    };
    if (retryAfterMs !== undefined) reply.retryAfterMs = retryAfterMs;
    this.#send(s, JSON.stringify(reply));
    this.#afterReply(s);
    return undefined;
  }

  #fail(s: Session, cmd: CommandName, e: unknown): void {
    if (e instanceof Refusal) return void this.#error(s, cmd, e.code, e.message);
    this.#log.error("command failed", { cmd, peer: s.id, error: String(e) });
    this.#error(
      s,
      cmd,
      Codes.ERR_UNAVAILABLE,
      "The server could not complete this command; try again",
    );
  }

  #afterReply(s: Session): void {
    if (s.closeAfterReply !== undefined) this.drop(s, ...s.closeAfterReply);
  }

  #limit(s: Session, cmd: string, now: number): number {
    const rate = this.#o.rate, burst = this.#o.burst;
    s.commands ??= new TokenBucket(rate * 5, burst * 5, now);
    s.messages ??= new TokenBucket(rate, burst, now);
    s.flood ??= new FloodMeter(rate * 10);
    const wait = s.commands.take(now);
    if (wait > 0 || !MESSAGE_COMMANDS.has(cmd)) return wait;
    return s.messages.take(now);
  }

  // ---- delivery --------------------------------------------------------------

  /** Serializes an event once, for every recipient. */
  #event<T extends EventType>(type: T, fields: Omit<EventOf<T>, "type" | "ts">): string {
    return JSON.stringify({ type, ts: this.#o.now(), ...fields });
  }

  #send(s: Session, text: string): void {
    if (s.gone) return;
    s.conn.send(text);
    this.#checkBuffered(s);
  }

  #checkBuffered(s: Session): void {
    if (s.conn.bufferedAmount > this.#o.maxBuffered) {
      this.drop(s, CloseCodes.TOO_SLOW, "too slow: messages not read");
    }
  }

  /** To every member of `channel` on every node, but `except`; `drop` leaves with it. */
  #toChannel(channel: string, text: string, except?: string, drop?: string): void {
    this.#deliverChannel(channel, text, except, drop);
    const env: Envelope = { text };
    if (except !== undefined) env.except = except;
    if (drop !== undefined) env.drop = drop;
    this.#bus.publish("c:" + channel, env);
  }

  #deliverChannel(channel: string, text: string | undefined, except?: string, drop?: string): void {
    const members = this.#local.get(channel);
    if (members !== undefined && text !== undefined) {
      const t0 = performance.now();
      let n = 0;
      if (this.#fanout !== undefined) {
        const sender = except === undefined ? undefined : this.#peers.get(except);
        const skip = sender !== undefined && members.has(sender);
        n = members.size - (skip ? 1 : 0);
        if (this.#fanout.publish("c:" + channel, text, skip ? sender.conn : undefined)) {
          // Someone is backed up: find who is over the limit.
          for (const s of members) this.#checkBuffered(s);
        }
      } else {
        for (const s of members) {
          if (s.id === except) continue;
          this.#send(s, text);
          n++;
        }
      }
      this.metrics.fanout.observe(performance.now() - t0);
      this.metrics.count(this.metrics.messagesOut, typeOf(text), n);
    }
    if (drop !== undefined) {
      const s = this.#peers.get(drop);
      if (s !== undefined) this.#leaveLocal(s, channel);
    }
  }

  /** To the local members of several channels, each once. */
  #deliverChannels(channels: string[], text: string, except?: string): void {
    const seen = new Set<Session>();
    for (const c of channels) {
      for (const s of this.#local.get(c) ?? []) {
        if (s.id === except || seen.has(s)) continue;
        seen.add(s);
        this.#send(s, text);
      }
    }
    this.metrics.count(this.metrics.messagesOut, typeOf(text), seen.size);
  }

  /** To one peer, wherever it is connected. */
  #toPeer(id: string, text: string): void {
    const s = this.#peers.get(id);
    if (s !== undefined) {
      this.#send(s, text);
      this.metrics.count(this.metrics.messagesOut, typeOf(text));
    } else this.#bus.publish("p:" + id, { text });
  }

  #joinLocal(s: Session, channel: string): void {
    if (s.gone) return;
    s.channels.add(channel);
    let members = this.#local.get(channel);
    if (members === undefined) {
      members = new Set();
      this.#local.set(channel, members);
      this.#bus.subscribe("c:" + channel);
    }
    members.add(s);
    this.#fanout?.subscribe(s.conn, "c:" + channel);
  }

  #leaveLocal(s: Session, channel: string): void {
    s.channels.delete(channel);
    if (!s.gone) this.#fanout?.unsubscribe(s.conn, "c:" + channel);
    const members = this.#local.get(channel);
    if (members === undefined || !members.delete(s) || members.size > 0) return;
    this.#local.delete(channel);
    this.#bus.unsubscribe("c:" + channel);
  }

  /** Removes a session from the local indexes (its peer stays in the store). */
  #forget(s: Session): void {
    for (const c of [...s.channels]) this.#leaveLocal(s, c);
    if (this.#peers.get(s.id!) === s) {
      this.#peers.delete(s.id!);
      this.#bus.unsubscribe("p:" + s.id);
    }
  }

  /** A newer session took the peer over: close this one with 4002, silently. */
  #replace(s: Session): void {
    s.replaced = true;
    this.#forget(s);
    this.drop(s, CloseCodes.REPLACED, "replaced by a newer session");
  }

  /** Quits peers whose grace ended, once for the whole cluster. */
  async #sweep(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      for (const gone of await this.#timed(this.#store.expirePeers(this.#o.now()))) {
        // A session still open here was given up by the cluster (this node stalled).
        const stale = this.#peers.get(gone.id);
        if (stale !== undefined) {
          stale.replaced = true;
          this.#forget(stale);
          this.drop(stale, CloseCodes.GOING_AWAY, "session expired");
        }
        for (const t of gone.channels) {
          if (t.total + 1 > this.#o.presenceLimit) continue;
          this.#toChannel(
            t.channel,
            this.#event("quit", { channel: t.channel, peer: gone.id, reason: "disconnect" }),
          );
        }
      }
    } catch (e) {
      this.#log.warn("sweep failed", { error: String(e) });
    } finally {
      this.#sweeping = false;
    }
  }

  /** Awaits a store call, recording its latency. */
  async #timed<T>(p: Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await p;
    } finally {
      this.metrics.store.observe(performance.now() - t0);
    }
  }

  /** Awaits a store operation; its failure becomes the error reply. */
  async #must<T extends object>(p: Promise<T | Fail>, about: About): Promise<T> {
    const r = await this.#timed(p);
    if (failed(r)) refuse(r.error, explain(r.error, about));
    return r;
  }

  // ---- commands --------------------------------------------------------------

  async #descp(s: Session, d: Description): Promise<ReplyData<"descp">> {
    let admin = this.#adminToken !== undefined && d.admin !== undefined &&
      sameText(d.admin, this.#adminToken);
    if (s.id !== null) {
      if (d.id !== s.id) refuse(Codes.ERR_ALREADYREGISTERED, `Already described as ${s.id}`);
      s.admin ||= admin;
      await this.#timed(
        this.#store.describePeer(s.id, s.nonce, { name: d.name, meta: d.meta, admin: s.admin }),
      );
      s.name = d.name;
      return this.#described(s, d);
    }
    if (this.#auth !== undefined) {
      const claims = await this.#auth(d.token, d.id);
      if (claims === null) {
        s.closeAfterReply = [CloseCodes.NOT_DESCRIBED, "invalid token"];
        refuse(Codes.ERR_ERRONEUSNICKNAME, "token is missing, invalid or not for this id");
      }
      admin ||= claims.admin;
    }
    const fresh = randomToken();
    const claimed = await this.#must(
      this.#store.claimPeer({
        id: d.id,
        name: d.name,
        meta: d.meta,
        admin,
        resumeHash: d.resume === undefined ? null : await sha256(d.resume),
        freshHash: await sha256(fresh),
        node: this.node,
        session: s.nonce,
      }),
      { peer: d.id },
    );
    // The claim holds the id now: any other session of it is over, here or elsewhere.
    const old = this.#peers.get(d.id);
    if (claimed.replaced !== undefined && old?.nonce !== claimed.replaced.session) {
      this.#bus.publish("p:" + d.id, { replace: claimed.replaced.session });
    }
    if (s.gone) {
      // The socket closed while the claim was in flight: the peer starts its grace now.
      if (old !== undefined) this.#replace(old);
      await this.#store.releasePeer(d.id, s.nonce, this.#o.now() + this.#o.graceMs);
      refuse(Codes.ERR_UNAVAILABLE, "closed");
    }
    clearTimeout(s.handshake);
    s.handshake = undefined;
    Object.assign(s, {
      id: d.id,
      name: d.name,
      admin,
      away: claimed.away,
      message: claimed.message,
    });
    s.resume = claimed.fresh ? fresh : d.resume!;
    // The new session is in place before the old one leaves: no subscription lapses.
    this.#peers.set(d.id, s);
    this.#bus.subscribe("p:" + d.id);
    for (const c of claimed.channels) this.#joinLocal(s, c);
    if (old !== undefined) this.#replace(old);
    return this.#described(s, d);
  }

  async #described(s: Session, d: Description): Promise<ReplyData<"descp">> {
    const data: ReplyData<"descp"> = {
      peer: { id: s.id!, name: d.name, meta: d.meta },
      resume: s.resume,
      admin: s.admin,
      channels: [...s.channels],
      server: { name: "signaller", version: this.#o.version, node: this.node },
    };
    if (this.#ice !== undefined) data.iceServers = await this.#ice(s.id!);
    return data;
  }

  async #join(s: Session, c: { channel: string; token?: string }): Promise<ReplyData<"join">> {
    this.#needBus();
    const id = s.id!;
    const keyHash = c.token === undefined ? null : await sha256(c.channel + "\n" + c.token);
    const r = await this.#must(
      this.#store.join(id, c.channel, keyHash),
      { channel: c.channel },
    );
    // Also when `already`: a retried /join whose first reply was lost must be a member here too.
    this.#joinLocal(s, c.channel);
    if (!r.already) {
      if (r.total <= this.#o.presenceLimit) {
        this.#toChannel(
          c.channel,
          this.#event("join", { channel: c.channel, peer: { id, name: s.name } }),
          id,
        );
      }
    }
    const members = await this.#timed(this.#store.members(c.channel, 0, PAGE));
    return { channel: c.channel, created: r.created, op: r.op, total: r.total, members };
  }

  async #quit(s: Session, channel: string): Promise<ReplyData<"quit">> {
    this.#needBus();
    const r = await this.#timed(this.#store.quit(s.id!, channel));
    // Not a member in the store (a retried /quit, a kick elsewhere): not one here either.
    this.#leaveLocal(s, channel);
    if (failed(r)) refuse(r.error, explain(r.error, { channel }));
    if (r.total + 1 <= this.#o.presenceLimit) {
      this.#toChannel(
        channel,
        this.#event("quit", { channel, peer: s.id!, reason: "quit" }),
        s.id!,
      );
    }
    return { channel };
  }

  #privmsg(s: Session, c: { peer: string; text: string }): Result<"privmsg"> {
    const id = newId(), ts = this.#o.now();
    const text = JSON.stringify({ type: "privmsg", id, ts, from: s.id, to: c.peer, text: c.text });
    const reply = (away: boolean, message?: string): ReplyData<"privmsg"> =>
      away ? { id, ts, away: message ?? "" } : { id, ts };
    const target = this.#peers.get(c.peer);
    if (target !== undefined) {
      this.#toPeer(c.peer, text);
      return reply(target.away, target.message);
    }
    return this.#timed(this.#store.presence(c.peer)).then((p) => {
      if (p === null || !p.online) refuse(Codes.ERR_NOSUCHNICK, `No such peer online: ${c.peer}`);
      this.#needBus();
      this.#toPeer(c.peer, text);
      return reply(p.away, p.message);
    });
  }

  #pubmsg(s: Session, c: { channel: string; text: string }): Result<"pubmsg"> {
    if (s.channels.has(c.channel)) {
      this.#needBus();
      const id = newId(), ts = this.#o.now();
      const text = JSON.stringify({
        type: "pubmsg",
        id,
        ts,
        from: s.id,
        channel: c.channel,
        text: c.text,
      });
      this.#toChannel(c.channel, text, s.id!);
      return { id, ts };
    }
    return this.#timed(this.#store.getChannel(c.channel)).then((ch) =>
      ch === null
        ? refuse(Codes.ERR_NOSUCHCHANNEL, `No such channel ${c.channel}`)
        : refuse(Codes.ERR_CANNOTSENDTOCHAN, `Cannot send to ${c.channel}: not a member`)
    );
  }

  async #broadcast(s: Session, text: string): Promise<ReplyData<"broadcast">> {
    this.#needBus();
    if (!s.admin) refuse(Codes.ERR_NOPRIVILEGES, "Only server admins may broadcast");
    const online = await this.#timed(this.#store.onlineCount());
    const id = newId(), ts = this.#o.now();
    const event = JSON.stringify({ type: "broadcast", id, ts, from: s.id, text });
    this.deliver("all", { text: event, except: s.id! });
    this.#bus.publish("all", { text: event, except: s.id! });
    return { id, ts, recipients: Math.max(0, online - 1) };
  }

  async #whois(s: Session, c: { peer?: string; channel?: string }): Promise<ReplyData<"whois">> {
    if (c.channel !== undefined) {
      const ch = await this.#visibleChannel(s, c.channel);
      const members = await this.#timed(this.#store.members(c.channel, 0, PAGE));
      return {
        channel: ch.channel,
        members,
        operators: ch.operators,
        keyed: ch.keyed,
        created: ch.created,
        total: ch.total,
      };
    }
    const p = await this.#timed(this.#store.getPeer(c.peer!));
    if (p === null) refuse(Codes.ERR_NOSUCHNICK, `No such peer: ${c.peer}`);
    const data: ReplyData<"whois"> = {
      id: p.id,
      name: p.name,
      meta: p.meta,
      away: p.away,
      online: p.online,
      channels: p.channels.filter((x) => !x.keyed || s.channels.has(x.channel)).map((x) =>
        x.channel
      ),
    };
    if (p.message !== undefined) data.message = p.message;
    return data;
  }

  async #peersPage(
    s: Session,
    c: { channel: string; offset: number },
  ): Promise<ReplyData<"peers">> {
    const ch = await this.#visibleChannel(s, c.channel);
    const peers: PeerEntry[] = c.offset < ch.total
      ? await this.#timed(this.#store.members(c.channel, c.offset, PAGE))
      : [];
    const data: ReplyData<"peers"> = {
      channel: c.channel,
      total: ch.total,
      offset: c.offset,
      peers,
    };
    if (c.offset + peers.length < ch.total) data.next = c.offset + peers.length;
    return data;
  }

  /** A channel the asker may look into: `403` unknown, `442` keyed and not a member. */
  async #visibleChannel(s: Session, channel: string) {
    const ch = await this.#timed(this.#store.getChannel(channel));
    if (ch === null) refuse(Codes.ERR_NOSUCHCHANNEL, `No such channel ${channel}`);
    if (ch.keyed && !s.channels.has(channel)) {
      refuse(Codes.ERR_NOTONCHANNEL, `${channel} is keyed: members only`);
    }
    return ch;
  }

  async #invite(s: Session, c: { peer: string; channel?: string }): Promise<ReplyData<"invite">> {
    this.#needBus();
    // In the protocol's order: 461 (several channels fit), 401, then 442 (none fits).
    const fits = c.channel === undefined ? [...s.channels] : [c.channel];
    if (fits.length > 1) refuse(Codes.ERR_NEEDMOREPARAMS, "channel required: several channels fit");
    if (!(this.#peers.has(c.peer) || (await this.#timed(this.#store.presence(c.peer)))?.online)) {
      refuse(Codes.ERR_NOSUCHNICK, `No such peer online: ${c.peer}`);
    }
    const channel = this.#only(fits, Codes.ERR_NOTONCHANNEL, "You are on no channel");
    await this.#must(
      this.#store.invite(s.id!, c.peer, channel),
      { channel, peer: c.peer },
    );
    this.#toPeer(c.peer, this.#event("invite", { channel, from: s.id! }));
    return { channel, peer: c.peer };
  }

  async #away(s: Session, text?: string): Promise<ReplyData<"away">> {
    this.#needBus();
    const r = await this.#timed(this.#store.setAway(s.id!, text === undefined ? null : true, text));
    s.away = r.away;
    s.message = r.message;
    const channels = r.channels.filter((t) => t.total <= this.#o.presenceLimit).map((t) =>
      t.channel
    );
    if (channels.length > 0) {
      const fields: Omit<EventOf<"away">, "type" | "ts"> = { peer: s.id!, away: r.away };
      if (r.message !== undefined) fields.message = r.message;
      const event = this.#event("away", fields);
      this.#deliverChannels(channels, event, s.id!);
      this.#bus.publish("all", { text: event, channels, except: s.id! });
    }
    return r.message === undefined ? { away: r.away } : { away: r.away, message: r.message };
  }

  async #kick(
    s: Session,
    c: { peer: string; channel?: string; text?: string },
  ): Promise<ReplyData<"kick">> {
    this.#needBus();
    const target = await this.#timed(this.#store.getPeer(c.peer));
    if (target === null) refuse(Codes.ERR_NOSUCHNICK, `No such peer: ${c.peer}`);
    let channel = c.channel;
    if (channel === undefined) {
      const targetIn = new Set(target.channels.map((x) => x.channel));
      channel = this.#only(
        (await this.#opChannels(s)).filter((x) => targetIn.has(x)),
        Codes.ERR_USERNOTINCHANNEL,
        `${c.peer} is on none of your channels`,
      );
    }
    await this.#must(
      this.#store.kick(s.id!, c.peer, channel),
      { channel, peer: c.peer },
    );
    const fields: Omit<EventOf<"kick">, "type" | "ts"> = { channel, peer: c.peer, by: s.id! };
    if (c.text !== undefined) fields.text = c.text;
    this.#toChannel(channel, this.#event("kick", fields), undefined, c.peer);
    return { channel, peer: c.peer };
  }

  async #ban(s: Session, c: { peer: string; channel?: string }): Promise<ReplyData<"ban">> {
    this.#needBus();
    const channel = c.channel ??
      this.#only(await this.#opChannels(s), Codes.ERR_CHANOPRIVSNEEDED, "You are operator nowhere");
    const r = await this.#must(
      this.#store.ban(s.id!, c.peer, channel),
      { channel, peer: c.peer },
    );
    const event = this.#event("ban", { channel, peer: c.peer, by: s.id! });
    if (r.wasMember) this.#toChannel(channel, event, undefined, c.peer);
    else {
      this.#toChannel(channel, event);
      this.#toPeer(c.peer, event);
    }
    return { channel, peer: c.peer };
  }

  async #unban(s: Session, c: { peer: string; channel?: string }): Promise<ReplyData<"unban">> {
    const channel = c.channel ??
      this.#only(await this.#opChannels(s), Codes.ERR_CHANOPRIVSNEEDED, "You are operator nowhere");
    await this.#must(
      this.#store.unban(s.id!, c.peer, channel),
      { channel, peer: c.peer },
    );
    return { channel, peer: c.peer };
  }

  /** This command's events must reach the other nodes: fail rather than half-deliver. */
  #needBus(): void {
    if (!this.#bus.up) refuse(Codes.ERR_UNAVAILABLE, "The cluster is unreachable; try again");
  }

  /** The sender's channels where it is operator; `482` when none. */
  async #opChannels(s: Session): Promise<string[]> {
    const ops = await this.#timed(this.#store.operatorOf(s.id!, [...s.channels]));
    if (ops.length === 0) {
      refuse(Codes.ERR_CHANOPRIVSNEEDED, "You are operator on none of your channels");
    }
    return ops;
  }

  /** The one candidate: `none` when there is none, `461` when several fit. */
  #only(candidates: string[], none: Code, message: string): string {
    if (candidates.length === 0) refuse(none, message);
    if (candidates.length > 1) {
      refuse(Codes.ERR_NEEDMOREPARAMS, "channel required: several channels fit");
    }
    return candidates[0];
  }
}

/** What a failed store operation was about. */
interface About {
  channel?: string;
  peer?: string;
}

/** The human message of an error a store operation returned. */
function explain(code: Code, { channel, peer }: About): string {
  switch (code) {
    case Codes.ERR_NOSUCHCHANNEL:
      return `No such channel ${channel}`;
    case Codes.ERR_TOOMANYCHANNELS:
      return `Cannot join ${channel}: too many channels`;
    case Codes.ERR_NICKNAMEINUSE:
      return `${peer} is in use; resume it with its token`;
    case Codes.ERR_USERNOTINCHANNEL:
      return `${peer} is not on ${channel}`;
    case Codes.ERR_NOTONCHANNEL:
      return `You are not on ${channel}`;
    case Codes.ERR_USERONCHANNEL:
      return `${peer} is already on ${channel}`;
    case Codes.ERR_BANNEDFROMCHAN:
      return peer === undefined
        ? `You are banned from ${channel}`
        : `${peer} is banned from ${channel}`;
    case Codes.ERR_BADCHANNELKEY:
      return `Cannot join ${channel}: wrong token`;
    case Codes.ERR_CHANOPRIVSNEEDED:
      return `You are not an operator of ${channel}, or the target is yourself`;
    default:
      return codeName(code);
  }
}

/** The command a frame names, lowercase, or null: for replies to frames that do not parse. */
function commandOf(frame: string): string | null {
  if (frame[0] !== "/") return null;
  const m = /^\/([A-Za-z]{1,16})(?: |$)/.exec(frame.slice(0, 18));
  const name = m?.[1].toLowerCase();
  return name !== undefined && KNOWN.has(name) ? name : null;
}

/** The `type` of a serialized event (it is always the first field). */
function typeOf(text: string): string {
  return text.slice(9, text.indexOf('"', 9));
}

/** SHA-256 of a string, as hex. */
export async function sha256(s: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(s)));
  // One flat string: a `+=` loop would keep 32 pieces alive per stored hash (a rope).
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A resume token: 192 random bits, base64url. */
function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
}

/** Compares `given` with the secret `expected` in time that depends on neither's content. */
export function sameText(given: string, expected: string): boolean {
  const x = encoder.encode(given), y = encoder.encode(expected);
  let diff = x.length ^ y.length;
  for (let i = 0; i < y.length; i++) diff |= (x[i] ?? 0) ^ y[i];
  return diff === 0;
}
