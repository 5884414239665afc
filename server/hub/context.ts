/**
 * What a command handler is given: the store (timed), delivery, the bus's
 * state, the resolved options and the clock — never the whole hub. Handlers
 * refuse a command by throwing a {@linkcode Refusal}, which becomes the error
 * reply; any other throw is an unexpected failure (503).
 */
import {
  type Code,
  codeName,
  Codes,
  type CommandName,
  type ReplyData,
} from "../../protocol/mod.ts";
import type { Bus } from "../bus/bus.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics.ts";
import { type Awaitable, type Fail, failed, type Store } from "../store/store.ts";
import type { Delivery } from "./delivery.ts";
import type { PresenceCache } from "./presence.ts";

/** An ICE server handed out in the `descp` reply. */
export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

/** The core's options, resolved (see `HubOptions` for each one's meaning). */
export interface CoreOptions {
  graceMs: number;
  handshakeMs: number;
  maxFrame: number;
  rate: number;
  burst: number;
  presenceLimit: number;
  maxBuffered: number;
  sweepMs: number;
  version: string;
  adminToken?: string;
  auth?: (token: string | undefined, id: string) => Promise<{ admin: boolean } | null>;
  iceServers?: (id: string) => Promise<IceServer[]>;
}

/** What a handler returns: its reply data, at once or once the store answered. */
export type Result<C extends CommandName> = ReplyData<C> | Promise<ReplyData<C>>;

/** An error reply raised inside a handler; `close`: close the socket after it is sent. */
export class Refusal {
  constructor(
    readonly code: Code,
    readonly message: string,
    readonly close?: { code: number; reason: string },
    /** With `263`: when to retry, ms. */
    readonly retryAfterMs?: number,
  ) {}
}

/** Refuses the command being handled with `code` (and closes the socket after, with `close`). */
export function refuse(
  code: Code,
  message: string,
  close?: { code: number; reason: string },
): never {
  throw new Refusal(code, message, close);
}

/** What a failed store operation was about, for its error message. */
export interface About {
  channel?: string;
  peer?: string;
}

/** The narrow view of the core every handler works with. */
export class Context {
  readonly node: string;
  readonly options: CoreOptions;
  readonly store: Store;
  readonly bus: Bus;
  readonly delivery: Delivery;
  /** Remote peers known online, for relays kept in no stream. */
  readonly presence: PresenceCache;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly now: () => number;

  constructor(
    parts: Omit<Context, "timed" | "then" | "must" | "needBus" | "showsPresence" | "unexpected">,
  ) {
    this.node = parts.node;
    this.options = parts.options;
    this.store = parts.store;
    this.bus = parts.bus;
    this.delivery = parts.delivery;
    this.presence = parts.presence;
    this.metrics = parts.metrics;
    this.log = parts.log;
    this.now = parts.now;
  }

  /** Awaits a store call, recording its latency. */
  async timed<T>(p: Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await p;
    } finally {
      this.metrics.store.observe(performance.now() - t0);
    }
  }

  /**
   * Applies `f` to a store answer that may be at hand (the memory store on
   * the hot path) or on its way (timed then): no promise when none is needed.
   */
  then<T, R>(v: Awaitable<T>, f: (t: T) => R): R | Promise<R> {
    return v instanceof Promise ? this.timed(v).then(f) : f(v);
  }

  /** Awaits a store operation; its failure becomes the error reply. */
  async must<T extends object>(p: Promise<T | Fail>, about: About): Promise<T> {
    const r = await this.timed(p);
    if (failed(r)) throw new Refusal(r.error, explain(r.error, about), undefined, r.retryAfterMs);
    return r;
  }

  /** Logs an unexpected failure with its context and counts it in `/metrics`. */
  unexpected(where: string, error: unknown, fields: Record<string, unknown> = {}): void {
    this.metrics.count(this.metrics.unexpected, where);
    this.log.error(`unexpected failure: ${where}`, { ...fields, error: describe(error) });
  }

  /** A command whose events must reach the other nodes fails rather than half-delivers. */
  needBus(): void {
    if (!this.bus.up) refuse(Codes.ERR_UNAVAILABLE, "The cluster is unreachable; try again");
  }

  /**
   * Whether presence events (join, quit, away) go to a channel of `members`
   * members, the peer concerned counted (PROTOCOL.md, "Big channels").
   */
  showsPresence(members: number): boolean {
    return members <= this.options.presenceLimit;
  }
}

/** An error as a log field: its stack when it has one. */
export function describe(error: unknown): string {
  return error instanceof Error ? error.stack ?? String(error) : String(error);
}

/** The human message of an error a store operation returned. */
export function explain(code: Code, { channel, peer }: About): string {
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
    case Codes.ERR_CHANNELISFULL:
      return `Cannot join ${channel}: the channel is full`;
    case Codes.ERR_BANLISTFULL:
      return `The list of ${channel} is full`;
    case Codes.RPL_TRYAGAIN:
      return `Cannot create ${channel}: too many channels created; retry later`;
    case Codes.ERR_CHANOPRIVSNEEDED:
      return `You are not an operator of ${channel}, or the target is yourself`;
    default:
      return codeName(code);
  }
}
