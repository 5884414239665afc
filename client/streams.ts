/**
 * Where the typed client is in each message stream (PROTOCOL.md, "Message
 * streams and recovery"): its inbox and every channel it is in. The
 * positions make the `since` of a resume, and drop a message the client has
 * already emitted.
 *
 * A position comes from the server's word (the `/join` reply's `stream`, the
 * `/descp` reply's `inbox`) and moves with every message event. A stream the
 * server did not recover is **open**: the next message is taken as it comes
 * and sets the position, whatever its seq, because the stream may have a new
 * epoch whose seqs start again at 1 (its history expired, or the server lost
 * it) — the events do not say.
 */
import type { Since } from "../protocol/grammar.ts";
import type { EventOf, Position, ReplyData } from "../protocol/messages.ts";

/** Which streams a resume got back whole, by the client's `recovered` event. */
export interface Recovered {
  /** The inbox (`privmsg`s to the peer): true when every message missed was replayed. */
  inbox: boolean;
  /** Each channel asked for: true when every message missed was replayed. */
  channels: Record<string, boolean>;
}

interface Track {
  epoch: string;
  /** The seq of the last message the client has: those up to it are duplicates. */
  seq: number;
  /** The next message sets `seq` whatever it is (the stream was not recovered). */
  open: boolean;
}

/** The positions of one client's streams. */
export class StreamPositions {
  #inbox: Track | undefined;
  #channels = new Map<string, Track>();

  /**
   * The `since` of a resume: the inbox and each of `channels` the client has
   * a position for; undefined when it has none (streams off).
   */
  since(channels: Iterable<string>): Since | undefined {
    const since: Since = {};
    if (this.#inbox) since.inbox = position(this.#inbox);
    for (const c of channels) {
      const t = this.#channels.get(c);
      if (t) (since.channels ??= {})[c] = position(t);
    }
    return since.inbox || since.channels ? since : undefined;
  }

  /**
   * After a `/descp` reply on a new socket, whose `/descp` asked for
   * `asked` (if anything): streams recovered keep their position (their
   * replay follows the reply); the others are open, the inbox at the
   * reply's position. Channels not in the reply are forgotten. Returns what
   * was recovered of what was asked.
   */
  described(data: ReplyData<"descp">, asked: Since | undefined): Recovered | undefined {
    const got = data.recovered ?? {};
    const inboxBack = asked?.inbox !== undefined && got.inbox === true && this.#inbox;
    if (!data.inbox) this.#inbox = undefined;
    else if (!inboxBack) this.#inbox = { ...data.inbox, open: true };
    const now = new Set(data.channels);
    for (const [c, t] of this.#channels) {
      if (!now.has(c)) this.#channels.delete(c);
      else if (asked?.channels?.[c] === undefined || got.channels?.[c] !== true) t.open = true;
    }
    if (asked === undefined) return undefined;
    const channels: Record<string, boolean> = {};
    for (const c of Object.keys(asked.channels ?? {})) channels[c] = got.channels?.[c] === true;
    return { inbox: asked.inbox !== undefined && got.inbox === true, channels };
  }

  /**
   * After a later `/descp` on the same socket: the inbox as the reply says,
   * if it says (a session's streams do not change with its name).
   */
  redescribed(data: ReplyData<"descp">): void {
    if (data.inbox) this.#inbox = settle(this.#inbox, data.inbox);
  }

  /** After a `/join` reply: the channel's stream as the reply says (none: streams are off). */
  joined(channel: string, stream: Position | undefined): void {
    if (stream) this.#channels.set(channel, settle(this.#channels.get(channel), stream));
    else this.#channels.delete(channel);
  }

  /** The client is no longer in `channel`. */
  left(channel: string): void {
    this.#channels.delete(channel);
  }

  /**
   * After the client's own `/pubmsg` to `channel` got `seq`: a 1 below the
   * position means the stream started over (its history had expired), and
   * the messages of others come next in it. The sender gets no event of its
   * own message, so this is the only place it can tell.
   */
  published(channel: string, seq: number | undefined): void {
    const t = this.#channels.get(channel);
    if (seq === 1 && t && !t.open && t.seq >= 1) t.seq = 1;
  }

  /**
   * Whether a message event is new, moving its stream's position: false for
   * a duplicate (seq not above the position). A seq of 1 is new whatever the
   * position: the stream started over with a new epoch. Events of a stream
   * the client has no position for (streams off, a channel before its
   * `/join` reply) are always new.
   */
  accept(event: EventOf<"pubmsg"> | EventOf<"privmsg">): boolean {
    if (event.seq === undefined) return true;
    const t = event.type === "privmsg" ? this.#inbox : this.#channels.get(event.channel);
    if (!t) return true;
    if (t.open || event.seq > t.seq || event.seq === 1) {
      // After a restart the epoch is unknown until the server names it (a join reply, a
      // /descp reply): the stale one stays, so the next resume is told "not recovered".
      t.seq = event.seq;
      t.open = false;
      return true;
    }
    return false;
  }
}

function position(t: Track): Position {
  return { epoch: t.epoch, seq: t.seq };
}

/**
 * A stream's track after the server named its position `p`: within the same
 * epoch the client may already be past it (messages read before the reply);
 * otherwise the server's word is all there is.
 */
function settle(t: Track | undefined, p: Position): Track {
  const same = t !== undefined && t.epoch === p.epoch && !t.open;
  return { epoch: p.epoch, seq: same ? Math.max(t.seq, p.seq) : p.seq, open: false };
}
