/**
 * The hub: the runtime-neutral core of the server. It holds the sessions of
 * this node, and runs each command through the handler of its concern:
 *
 * - `session.ts` — a socket, its peer, ordered replies
 * - `identity.ts` — `/descp`, takeover, disconnect grace, the grace sweep
 * - `channels.ts` — `/join`, `/quit`, `/whois`, `/peers`
 * - `moderation.ts` — `/invite`, `/kick`, `/ban`, `/unban`
 * - `messages.ts` — `/privmsg`, `/pubmsg`, `/broadcast`, `/away`
 * - `delivery.ts` — local members, native fan-out, the bus
 *
 * It never touches a socket or a runtime API and speaks no wire protocol:
 * front-ends (`server/frontends/`) turn frames into calls of
 * {@linkcode Hub.commands} and replies into frames; runtime adapters hand
 * them sockets. State that must outlive a socket lives in the `Store`; other
 * nodes are reached through the `Bus`.
 *
 * @example
 * ```ts
 * import { Hub } from "./mod.ts";
 * import { MemoryStore } from "../store/memory.ts";
 *
 * const hub = new Hub({ store: new MemoryStore({ maxChannels: 100, retentionMs: 60_000 }) });
 * const session = hub.open({
 *   send: (text) => console.log(text),
 *   close: () => {},
 *   bufferedAmount: 0,
 *   remoteAddress: "127.0.0.1",
 * });
 * const reply = await hub.commands.descp(session, {
 *   desc: { id: "65a1f0c2e4b0a1b2c3d4e5f6", name: "Ann", meta: {} },
 * });
 * await hub.shutdown();
 * ```
 * @module
 */
import {
  CloseCodes,
  type CommandArgs,
  type CommandName,
  MESSAGE_COMMANDS,
} from "../../protocol/mod.ts";
import { newId } from "../ids.ts";
import { type Bus, type Envelope, NoBus } from "../bus/bus.ts";
import { DEFAULTS } from "../config.ts";
import { PeerRate } from "../limits.ts";
import { type Logger, silent } from "../log.ts";
import { Metrics } from "../metrics.ts";
import { sha256 } from "../secrets.ts";
import type { HeldPeer, Store } from "../store/store.ts";
import * as channels from "./channels.ts";
import { Context, type CoreOptions, type Result } from "./context.ts";
import { Delivery, type Fanout } from "./delivery.ts";
import { encode } from "./events.ts";
import * as identity from "./identity.ts";
import * as messages from "./messages.ts";
import * as moderation from "./moderation.ts";
import { PresenceCache, presenceChanged } from "./presence.ts";
import { type Connection, Session } from "./session.ts";

export type { Connection, Peer, Translation } from "./session.ts";
export { Ordered, Session } from "./session.ts";
export type { Fanout } from "./delivery.ts";
export type { IceServer } from "./context.ts";
export { Refusal } from "./context.ts";
export type { Outbound } from "./events.ts";

/** Hub configuration; every limit defaults to the server's default (`DEFAULTS`). */
export interface HubOptions extends Partial<CoreOptions> {
  store: Store;
  /** Cross-node delivery; none for a single node. */
  bus?: Bus;
  /** This node's id (unique across the cluster). */
  node?: string;
  metrics?: Metrics;
  log?: Logger;
  now?: () => number;
  /**
   * How long a remote peer's presence is remembered for relays kept in no
   * stream, ms (0: read the store every time). Default `DEFAULTS.presenceCacheMs`.
   */
  presenceCacheMs?: number;
}

/** Every command of the core, by name: what front-ends call. */
export type Commands = {
  [C in CommandName]: (s: Session, args: CommandArgs<C>) => Result<C>;
};

/** The signalling hub. */
export class Hub {
  readonly node: string;
  readonly metrics: Metrics;
  readonly options: CoreOptions;
  readonly log: Logger;
  /** The commands; each throws a `Refusal` for an error reply. */
  readonly commands: Commands;
  readonly #ctx: Context;
  readonly #sweeper: identity.GraceSweeper;
  #closing = false;

  constructor(o: HubOptions) {
    this.node = o.node ?? newId();
    this.metrics = o.metrics ?? new Metrics();
    const graceMs = o.graceMs ?? DEFAULTS.graceMs;
    this.options = {
      graceMs,
      handshakeMs: o.handshakeMs ?? DEFAULTS.handshakeMs,
      maxFrame: o.maxFrame ?? DEFAULTS.maxFrame,
      rate: o.rate ?? DEFAULTS.rate,
      burst: o.burst ?? DEFAULTS.burst,
      presenceLimit: o.presenceLimit ?? DEFAULTS.presenceLimit,
      maxBuffered: o.maxBuffered ?? DEFAULTS.maxBuffered,
      // Often enough that a grace ends on time, rarely enough to cost nothing.
      sweepMs: o.sweepMs ?? Math.min(1000, Math.max(50, graceMs / 4)),
      version: o.version ?? "0.0.0",
      adminToken: o.adminToken,
      auth: o.auth,
      iceServers: o.iceServers,
    };
    this.log = o.log ?? silent;
    const bus = o.bus ?? new NoBus();
    const delivery = new Delivery({
      bus,
      metrics: this.metrics,
      maxBuffered: this.options.maxBuffered,
      drop: (s, code, reason) => identity.drop(this.#ctx, s, code, reason),
    });
    const now = o.now ?? Date.now;
    this.#ctx = new Context({
      node: this.node,
      options: this.options,
      store: o.store,
      bus,
      delivery,
      presence: new PresenceCache({
        ttlMs: o.presenceCacheMs ?? DEFAULTS.presenceCacheMs,
        now,
      }),
      metrics: this.metrics,
      log: this.log,
      now,
    });
    this.metrics.gauges = () => ({
      connections: delivery.sessions.size,
      peers: delivery.peers.size,
      channels: delivery.channels,
    });
    const ctx = this.#ctx;
    this.commands = {
      descp: (s, c) => identity.descp(ctx, s, c.desc),
      join: (s, c) => channels.join(ctx, s, c),
      quit: (s, c) => channels.quit(ctx, s, c),
      whois: (s, c) => channels.whois(ctx, s, c),
      peers: (s, c) => channels.peers(ctx, s, c),
      invite: (s, c) => moderation.invite(ctx, s, c),
      kick: (s, c) => moderation.kick(ctx, s, c),
      ban: (s, c) => moderation.ban(ctx, s, c),
      unban: (s, c) => moderation.unban(ctx, s, c),
      privmsg: (s, c) => messages.privmsg(ctx, s, c),
      pubmsg: (s, c) => messages.pubmsg(ctx, s, c),
      broadcast: (s, c) => messages.broadcast(ctx, s, c),
      away: (s, c) => messages.away(ctx, s, c),
    };
    // Broadcasts and presence spanning channels reach every node.
    bus.subscribe("all");
    this.#sweeper = new identity.GraceSweeper(ctx);
  }

  /**
   * A socket opened: the session it speaks through. It must be described
   * (`/descp`, or {@linkcode claim}) within the handshake time. `frontend`
   * names the front-end it speaks through, for metrics; `countsOut`: the
   * front-end counts what the socket is sent itself (it translates events).
   */
  open(conn: Connection, o: { frontend?: string; countsOut?: boolean } = {}): Session {
    const s = new Session(conn, o);
    if (this.#closing) {
      s.markGone();
      conn.close(CloseCodes.GOING_AWAY, "server shutting down");
      return s;
    }
    this.#ctx.delivery.sessions.add(s);
    s.startHandshake(
      this.options.handshakeMs,
      () => this.drop(s, CloseCodes.NOT_DESCRIBED, "no descp before the handshake timeout"),
    );
    return s;
  }

  /**
   * Sends a reply to a session now, checking the slow-consumer limit; after a
   * reply that ended a resume, the events held back meanwhile follow it.
   */
  reply(s: Session, text: string): void {
    this.#ctx.delivery.write(s, text);
    if (s.holding) this.#ctx.delivery.release(s);
  }

  /** Closes a session's socket from the server side; its peer enters the grace. */
  drop(s: Session, code: number, reason: string): void {
    identity.drop(this.#ctx, s, code, reason);
  }

  /**
   * The socket of `s` closed: its peer enters the disconnect grace, the
   * server's or `graceMs` (0 for a client that left for good: its id is free
   * at once).
   */
  closed(s: Session, o: { graceMs?: number } = {}): void {
    void identity.disconnected(this.#ctx, s, o.graceMs);
  }

  /**
   * `/privmsg` for protocols whose clients never ask for what they missed:
   * the message is kept in no stream, and an offline target is `401`.
   */
  relay(s: Session, c: CommandArgs<"privmsg">): Result<"privmsg"> {
    return messages.privmsg(this.#ctx, s, c, false);
  }

  /**
   * Describes a session whose client brings its own id and token instead of
   * `/descp` (protocols whose clients cannot carry this server's resume or
   * auth token; the front-end decides whether to serve them): takes the id
   * when new, or resumes it when `token` is the one it was first claimed with,
   * anywhere in the cluster; refuses `433` otherwise. Resolves whether a live
   * session of the id was taken over (closed with 4002).
   */
  claim(
    s: Session,
    c: { id: string; name: string; token: string },
  ): Promise<{ replaced: boolean }> {
    return identity.claim(this.#ctx, s, c);
  }

  /**
   * The per-peer rate limit for command `cmd`: 0 when allowed, else the ms to
   * wait, and `flood` when the peer keeps sending regardless (close 4003).
   */
  limit(s: Session, cmd: CommandName): { wait: number; flood: boolean } {
    const o = this.options;
    if (o.rate === 0) return NO_WAIT;
    const now = this.#ctx.now();
    s.rate ??= new PeerRate(o.rate, o.burst, now);
    const wait = s.rate.take(MESSAGE_COMMANDS.has(cmd), now);
    return wait === 0 ? NO_WAIT : { wait, flood: s.rate.rejected(now) };
  }

  /**
   * Whether a command `cmd` of a session may start before the ones ahead of
   * it have answered (its reply still sent after theirs): with message
   * streams, `/pubmsg` and `/privmsg`, whose only wait is one stream append
   * made as the command starts, on a store connection that answers in the
   * order it is asked (Redis keeps one connection's commands in order), so a
   * session's appends and their deliveries keep its command order. Every
   * other command waits for the ones ahead of it, and sees the state they left.
   */
  pipelines(cmd: CommandName | null): boolean {
    return (cmd === "pubmsg" || cmd === "privmsg") && this.#ctx.store.history > 0;
  }

  /** Hands channel fan-out to the runtime (called by its adapter before serving). */
  useFanout(fanout: Fanout): void {
    this.#ctx.delivery.useFanout(fanout);
  }

  /** An envelope from another node. */
  deliver(topic: string, env: Envelope): void {
    if (env.presence !== undefined) return this.#ctx.presence.forget(env.presence);
    this.#ctx.delivery.fromBus(
      topic,
      env,
      (s) => identity.evict(this.#ctx, s, CloseCodes.REPLACED, "replaced by a newer session"),
    );
  }

  /** Logs an unexpected failure of a front-end or adapter, and counts it in `/metrics`. */
  unexpected(where: string, error: unknown, fields?: Record<string, unknown>): void {
    this.#ctx.unexpected(where, error, fields);
  }

  /** Whether the store answers (for `/healthz`). */
  healthy(): Promise<boolean> {
    return this.#ctx.store.ping().catch(() => false);
  }

  /** Sends every peer a notice, closes every socket with 1001 and releases the peers. */
  async shutdown(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#sweeper.stop();
    const ctx = this.#ctx;
    const notice = encode({
      type: "notice",
      ts: ctx.now(),
      text: "server shutting down",
      code: CloseCodes.GOING_AWAY,
    });
    const releases: Promise<void>[] = [];
    for (const s of [...ctx.delivery.sessions]) {
      ctx.delivery.write(s, notice.text);
      s.conn.close(CloseCodes.GOING_AWAY, "server shutting down");
      releases.push(identity.disconnected(ctx, s));
    }
    await Promise.all(releases);
    await ctx.bus.close();
    await ctx.store.close();
  }

  /**
   * The peers this node holds live, as it knows them: what a store that lost
   * its state (Redis restarted empty) writes back.
   */
  held(): Promise<HeldPeer[]> {
    return Promise.all([...this.#ctx.delivery.peers.values()].map(async (s) => {
      const p: HeldPeer = {
        id: s.id!,
        name: s.peer.name,
        meta: s.peer.meta ?? {},
        admin: s.peer.admin,
        resumeHash: await sha256(s.peer.resume),
        session: s.nonce,
        away: s.peer.away,
        channels: [...s.channels],
      };
      if (s.peer.message !== undefined) p.message = s.peer.message;
      return p;
    }));
  }

  /**
   * The store put these peers into their grace on its own (their node was
   * declared dead, or this node restarted): every node forgets their presence.
   */
  parked(ids: string[]): void {
    presenceChanged(this.#ctx, ids);
  }

  /**
   * Closes as replaced (4002), without touching the store, the sessions (by
   * nonce) whose ids another session took while the store had lost them.
   */
  disown(sessions: readonly string[]): void {
    const gone = new Set(sessions);
    for (const s of [...this.#ctx.delivery.peers.values()]) {
      if (gone.has(s.nonce)) {
        identity.evict(
          this.#ctx,
          s,
          CloseCodes.REPLACED,
          "the id was taken while the store lost it",
        );
      }
    }
  }

  /**
   * Closes every described session with 1001 without touching the store: the
   * cluster already gave their peers up (their grace runs; clients resume).
   */
  closeAll(reason: string): void {
    this.#ctx.log.warn("closing every session", { reason });
    for (const s of [...this.#ctx.delivery.peers.values()]) {
      identity.evict(this.#ctx, s, CloseCodes.GOING_AWAY, reason);
    }
  }
}

const NO_WAIT = { wait: 0, flood: false } as const;
