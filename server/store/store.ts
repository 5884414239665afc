/**
 * The `Store`: everything that must outlive a socket (peers, channels,
 * memberships), behind one asynchronous interface. Each method is atomic as
 * the protocol needs it, so several server nodes sharing one store cannot
 * break an invariant (two sessions for one id, a banned member inside).
 *
 * Implementations: `memory.ts` (the default) and `redis.ts`.
 */
import type { Code, PeerEntry } from "../../protocol/mod.ts";

/** A failed store operation: the protocol error it maps to. */
export interface Fail {
  error: Code;
  /** With `263`: when the operation may succeed again, ms. */
  retryAfterMs?: number;
}

/** Whether `r` is a {@linkcode Fail}. */
export function failed<T extends object>(r: T | Fail): r is Fail {
  return "error" in r;
}

/** What `/descp` asks of the store. */
export interface Claim {
  id: string;
  name: string;
  meta: Record<string, unknown>;
  admin: boolean;
  /** SHA-256 (hex) of the resume token the client presented, if any. */
  resumeHash: string | null;
  /** SHA-256 (hex) of a fresh token, kept when the id is new. */
  freshHash: string;
  /** The node and session taking the id. */
  node: string;
  session: string;
}

/** A successful claim. */
export interface Claimed {
  /** True when the id was new and `freshHash` is now its resume hash. */
  fresh: boolean;
  /** Channels the peer is in (non-empty after a resume), in join order. */
  channels: string[];
  /** Away state carried over by a resume. */
  away: boolean;
  message?: string;
  /** The live session this claim replaced, to be closed with 4002. */
  replaced?: { node: string; session: string };
}

/** A peer as `/whois` shows it. */
export interface PeerView {
  id: string;
  name: string;
  meta: Record<string, unknown>;
  admin: boolean;
  away: boolean;
  message?: string;
  online: boolean;
  channels: { channel: string; keyed: boolean }[];
}

/** A peer's presence. */
export interface Presence {
  online: boolean;
  away: boolean;
  message?: string;
}

/** A channel as `/whois #channel` shows it. */
export interface ChannelView {
  channel: string;
  created: number;
  keyed: boolean;
  operators: string[];
  total: number;
}

/** A successful `/join`. */
export interface Joined {
  created: boolean;
  op: boolean;
  /** The peer was already a member: nothing changed. */
  already: boolean;
  total: number;
}

/** A channel a change touched, and its member count after it. */
export interface Touched {
  channel: string;
  total: number;
}

/** A peer whose grace ended: it was removed from these channels. */
export interface Expired {
  id: string;
  channels: Touched[];
}

/** Limits the store enforces inside its atomic operations. */
export interface StoreLimits {
  /** Channels per peer (`405`). */
  maxChannels: number;
  /** How long an empty channel and a pending invite are kept, ms. */
  retentionMs: number;
  /** Messages kept per stream (`--history`); 0 turns message streams off. */
  history?: number;
  /** How long a stream's history is kept after its last message, ms (`--history-ttl`). */
  historyTtlMs?: number;
  /** Bans per channel (`478`). */
  maxBans?: number;
  /** Pending invites per channel (`478`). */
  maxInvites?: number;
  /** Members per channel, 0 for no limit (`471`). */
  maxMembers?: number;
  /** Channels one peer may create per hour (`263`, with when it may again). */
  maxCreates?: number;
}

/**
 * A peer a node holds with a live session, as the node knows it: what it writes
 * back when a shared store lost its state (`RedisStore`'s `onLost`).
 */
export interface HeldPeer {
  id: string;
  name: string;
  meta: Record<string, unknown>;
  admin: boolean;
  /** SHA-256 (hex) of the peer's resume token. */
  resumeHash: string;
  session: string;
  away: boolean;
  message?: string;
  /** Its channels, in join order. */
  channels: string[];
}

/** A value, or a promise of it: the memory store answers the hot path at once. */
export type Awaitable<T> = T | Promise<T>;

/** A stream's position: its epoch and the seq of its last message (0: none yet). */
export interface Position {
  epoch: string;
  seq: number;
}

/** A message appended to a stream: its seq and its text (the JSON with `seq`). */
export interface Appended {
  seq: number;
  text: string;
}

/** A `/privmsg` stored in the target's inbox, and the target's presence. */
export interface Routed extends Appended, Presence {}

/**
 * A stream: `c:<channel>` (a channel's messages) or `p:<peer>` (a peer's
 * inbox), the same names as the bus topics its live messages travel on.
 */
export type StreamName = `c:${string}` | `p:${string}`;

/** The state store. Every method is atomic. */
export interface Store {
  /** "memory" or "redis". */
  readonly kind: string;
  /** Takes an id for a session: new, or resumed with the matching token; `433` otherwise. */
  claimPeer(claim: Claim): Promise<Claimed | Fail>;
  /** Updates name, meta and admin of a peer the session holds. */
  describePeer(
    id: string,
    session: string,
    desc: { name: string; meta: Record<string, unknown>; admin: boolean },
  ): Promise<void>;
  /**
   * The session's socket closed: the peer enters its grace until `graceUntil` (no-op if
   * replaced). Times here are on the caller's clock; a store shared by nodes whose clocks
   * may disagree counts the grace (`graceUntil - now`) on one clock of its own.
   */
  releasePeer(id: string, session: string, graceUntil: number): Promise<void>;
  /**
   * Removes every peer whose grace ended by `now` (the caller's clock, as for
   * {@linkcode releasePeer}) from its channels, once cluster-wide.
   */
  expirePeers(now: number): Promise<Expired[]>;
  /** One peer, online or in its grace; null when unknown. */
  getPeer(id: string): Promise<PeerView | null>;
  /** Just whether a peer is online and away: what relaying to it needs. */
  presence(id: string): Promise<Presence | null>;
  /** Sets away (`away` true with `message`), clears it (false), or toggles (null). */
  setAway(
    id: string,
    away: boolean | null,
    message?: string,
  ): Promise<{ away: boolean; message?: string; channels: Touched[] }>;
  /** Joins (creating the channel with `keyHash` as its key): `474`, `475`, `405`. */
  join(id: string, channel: string, keyHash: string | null): Promise<Joined | Fail>;
  /** Leaves a channel: `403`, `442`. */
  quit(id: string, channel: string): Promise<Touched | Fail>;
  /** Operator `by` removes member `target`: `403`, `482`, `441`. */
  kick(by: string, target: string, channel: string): Promise<Touched | Fail>;
  /** Operator `by` bans `target` (removing it if a member): `403`, `482`. */
  ban(
    by: string,
    target: string,
    channel: string,
  ): Promise<(Touched & { wasMember: boolean }) | Fail>;
  /** Operator `by` lifts the ban on `target`: `403`, `482`. */
  unban(by: string, target: string, channel: string): Promise<Touched | Fail>;
  /** Member `by` invites `target` to join once, key or not: `403`, `442`, `443`, `474`. */
  invite(by: string, target: string, channel: string): Promise<Touched | Fail>;
  /** The subset of `channels` where `id` is an operator. */
  operatorOf(id: string, channels: readonly string[]): Promise<string[]>;
  /** One channel, or null when it does not exist. */
  getChannel(channel: string): Promise<ChannelView | null>;
  /** A page of members in join order. */
  members(channel: string, offset: number, limit: number): Promise<PeerEntry[]>;
  /**
   * Message streams: the number of messages kept per stream, 0 when streams
   * are off (then the four methods below are never called).
   */
  readonly history: number;
  /**
   * Whether {@linkcode publish} and {@linkcode route} also deliver to every
   * node, this one included, in the same atomic step (so seq order is
   * delivery order across nodes). When false the caller delivers.
   */
  readonly delivers: boolean;
  /**
   * Appends a `/pubmsg` to the channel's stream. `head` is the event's JSON
   * without its closing brace; the stream adds `,"seq":N}`. `except` is the
   * sender, for delivery.
   */
  publish(channel: string, head: string, except: string): Awaitable<Appended>;
  /**
   * Appends a `/privmsg` to the inbox of a peer online or in its grace; null
   * (nothing stored) when the peer is gone or unknown.
   */
  route(peer: string, head: string): Awaitable<Routed | null>;
  /** A stream's position (an empty stream gets its epoch now). */
  position(stream: StreamName): Promise<Position>;
  /**
   * The messages after `from`, oldest first, for `reader`; null when they are
   * not all in history, or when `reader` is not a member of the stream's
   * channel (checked in the same atomic step as the read).
   */
  since(stream: StreamName, from: Position, reader: string): Promise<string[] | null>;
  /** Peers online on all nodes. */
  onlineCount(): Promise<number>;
  /** Whether the store is reachable. */
  ping(): Promise<boolean>;
  /** Flushes and releases connections. */
  close(): Promise<void>;
}
