/**
 * Sessions (PROTOCOL.md, "Replies: exactly one per command, in order"): one
 * socket, the peer it speaks for once described, and the queue that keeps its
 * replies in command order while a command awaits the store.
 */
import { ChannelList } from "../channel_list.ts";
import { newId } from "../ids.ts";
import type { PeerRate } from "../limits.ts";

/** What the core needs of a socket. Adapters (and front-ends) implement it in a few lines. */
export interface Connection {
  /** Queues one text frame. Must not throw on a closed socket. */
  send(text: string): void;
  /** Closes the socket; its owner then reports the session closed. */
  close(code: number, reason: string): void;
  /** Bytes queued to the client and not yet sent. */
  readonly bufferedAmount: number;
  /** The client's address, for logs. */
  readonly remoteAddress: string;
  /**
   * Set by a front-end that translates the core's events the same way for
   * every one of its sockets: the runtime's own socket beneath this one, so
   * that a channel's events, translated once, can go through the runtime's
   * native fan-out.
   */
  readonly native?: { readonly conn: Connection; readonly translation: Translation };
}

/** A front-end's translation of the core's events, the same for all its sockets on a node. */
export interface Translation {
  /** Names the translation: one native topic per channel and translation. */
  readonly key: string;
  /** What the sockets are sent for `event`, with its type for metrics; undefined: nothing. */
  translate(event: string): { text: string; type: string } | undefined;
}

/** The peer a described session speaks for. */
export interface Peer {
  readonly id: string;
  readonly name: string;
  readonly admin: boolean;
  /** The meta of its last `/descp` (written back should the store lose it). */
  readonly meta?: Record<string, unknown>;
  /** The resume token handed to this session. */
  readonly resume: string;
  away: boolean;
  message?: string;
}

/** An event held for a session while its resume replays what it missed. */
export interface Held {
  text: string;
  /** The stream and seq of a stream message (to drop what the replay already sent). */
  stream?: string;
  seq?: number;
}

/** One socket of the core: its peer once described, its memberships and limits. */
export class Session {
  readonly conn: Connection;
  /** The front-end the socket speaks through (a metrics label). */
  readonly frontend: string;
  /** The front-end counts what this socket is sent (it translates the core's events). */
  readonly countsOut: boolean;
  /** Identifies this socket's claim on the id across the cluster. */
  readonly nonce: string = newId();
  /** Channels the peer is in, as this node knows them. */
  readonly channels: ChannelList = new ChannelList();
  /** Rate limits, created with the first limited command. */
  rate?: PeerRate;
  #peer?: Peer;
  #gone = false;
  #replaced = false;
  #handshake?: ReturnType<typeof setTimeout>;
  #held?: Held[];
  #heldBytes = 0;
  /** Which hold is current, so a late safety release never ends a newer one. */
  #holds = 0;

  constructor(conn: Connection, o: { frontend?: string; countsOut?: boolean } = {}) {
    this.conn = conn;
    this.frontend = o.frontend ?? "";
    this.countsOut = o.countsOut ?? false;
  }

  /** The peer id, once `/descp` succeeded. */
  get id(): string | null {
    return this.#peer?.id ?? null;
  }

  /** The described peer; only for sessions past `/descp`. */
  get peer(): Peer {
    return this.#peer!;
  }

  /** The socket closed (or is closing): deliver nothing more. */
  get gone(): boolean {
    return this.#gone;
  }

  /** Taken over or given up by the cluster: closing must not release the peer. */
  get replaced(): boolean {
    return this.#replaced;
  }

  /** Whether events are held back (a resume is replaying missed messages). */
  get holding(): boolean {
    return this.#held !== undefined;
  }

  /** Holds events back until {@linkcode release}; returns which hold this is. */
  hold(): number {
    if (this.#held === undefined) {
      this.#held = [];
      this.#heldBytes = 0;
      this.#holds++;
    }
    return this.#holds;
  }

  /** Which hold is current: 0 when not holding. */
  get holdId(): number {
    return this.#held === undefined ? 0 : this.#holds;
  }

  /** Adds an event to those held back; returns the bytes (UTF-16 units) held in all. */
  keep(event: Held): number {
    this.#held!.push(event);
    return this.#heldBytes += event.text.length;
  }

  /** Puts `events` before every event held back (a replay comes before live events). */
  prepend(events: Held[]): void {
    this.#held!.unshift(...events);
  }

  /** Ends the hold: the events held back, in order. */
  release(): Held[] {
    const held = this.#held ?? [];
    this.#held = undefined;
    return held;
  }

  /** Marks the socket closed; false when it already was. */
  markGone(): boolean {
    if (this.#gone) return false;
    this.#gone = true;
    clearTimeout(this.#handshake);
    return true;
  }

  /** Marks the session as no longer holding its peer. */
  markReplaced(): void {
    this.#replaced = true;
  }

  /** Calls `expired` unless the session is described within `ms`. */
  startHandshake(ms: number, expired: () => void): void {
    this.#handshake = setTimeout(() => this.#peer === undefined && expired(), ms);
  }

  /** The session now speaks for `peer`. */
  describe(peer: Peer): void {
    clearTimeout(this.#handshake);
    this.#handshake = undefined;
    this.#peer = peer;
  }
}

/**
 * Runs items one at a time in arrival order: an item whose handler returns a
 * promise holds back the ones behind it until it settles, fulfilled or not.
 *
 * Items that `overlaps` accepts may run back to back instead: while such an
 * item is pending, the next one starts if `overlaps` accepts it too, and its
 * handler is given `after`, a promise that settles once every pending item
 * before it has — it must send its result only then (so results leave in
 * arrival order) and return a promise that settles no earlier. Any other
 * item waits until every pending item before it has settled.
 */
export class Ordered<T> {
  readonly #run: (item: T, after?: Promise<void>) => Promise<void> | undefined;
  readonly #max: number;
  readonly #overlaps?: (item: T) => boolean;
  /** Items waiting (allocated when first needed). */
  #queue?: T[];
  /** An item that does not overlap is pending. */
  #busy = false;
  /** Overlapping items pending, and what settles once the last of them has. */
  #open = 0;
  #tail?: Promise<void>;

  /**
   * `run` handles one item; at most `max` items are held (pending or waiting)
   * behind the first pending one.
   */
  constructor(
    run: (item: T, after?: Promise<void>) => Promise<void> | undefined,
    max: number,
    overlaps?: (item: T) => boolean,
  ) {
    this.#run = run;
    this.#max = max;
    this.#overlaps = overlaps;
  }

  /** Runs or queues `item`; false when too many are held (nothing is queued). */
  push(item: T): boolean {
    const waiting = this.#queue?.length ?? 0;
    if (waiting === 0 && !this.#busy && this.#ready(item)) {
      this.#step(item);
      return true;
    }
    if (waiting + this.#open + (this.#busy ? 1 : 0) > this.#max) return false;
    (this.#queue ??= []).push(item);
    return true;
  }

  /** Forgets every waiting item. */
  clear(): void {
    this.#queue = undefined;
  }

  #step(item: T): void {
    const after = this.#open > 0 ? this.#tail : undefined;
    const pending = this.#run(item, after);
    if (pending === undefined) return;
    // A rejected handler must not leave the queue busy for good.
    if (after === undefined && this.#overlaps?.(item) !== true) {
      this.#busy = true;
      const next = () => {
        this.#busy = false;
        this.#drain();
      };
      pending.then(next, next);
      return;
    }
    this.#open++;
    const settled = () => {
      if (--this.#open > 0) return;
      this.#tail = undefined;
      this.#drain();
    };
    this.#tail = pending.then(settled, settled);
  }

  /**
   * Whether `item` may start now that nothing busy is ahead of it: no
   * overlapping item is pending, or it overlaps too and the bound allows it.
   */
  #ready(item: T): boolean {
    return this.#open === 0 || (this.#open <= this.#max && this.#overlaps!(item));
  }

  /** Runs what waited, in order, as far as it may. */
  #drain(): void {
    const q = this.#queue;
    while (q !== undefined && q.length > 0 && !this.#busy && this.#ready(q[0])) {
      this.#step(q.shift()!);
    }
  }
}
