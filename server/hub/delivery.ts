/**
 * Delivery: who is connected here and in which channels, and how an event
 * reaches them — the runtime's native topic fan-out where the socket allows
 * it, a send per socket otherwise, and the bus for the members on other nodes.
 * Every send checks the slow-consumer limit (close 4008).
 *
 * A channel's untranslated events of one turn leave together: at the end of
 * the turn, after the per-socket batches (`batch.ts`), each run of events
 * from the same sender is one native publish of one newline-separated frame.
 * So that every socket still gets its events in the order they were made,
 * everything waiting is flushed first whenever a socket that waits for such
 * an event is sent something directly, a socket joins or leaves a topic with
 * events waiting, an event of another channel came in between, or an event
 * is published at once (translated). With one sender per turn that is one
 * frame per turn; with many it is at worst one publish per event.
 */
import { CloseCodes } from "../../protocol/mod.ts";
import { flushAfter, flushBatches } from "../batch.ts";
import { type Bus, channelTopic, type Envelope, peerTopic } from "../bus/bus.ts";
import type { Metrics } from "../metrics.ts";
import type { Outbound } from "./events.ts";
import type { Connection, Session, Translation } from "./session.ts";

/** How long {@linkcode Delivery.listening} waits for the bus, ms. */
const LISTEN_TIMEOUT_MS = 5_000;

/**
 * A runtime's native topic fan-out (Bun's `publish`). The core still knows
 * who is where; the runtime only sends, and only to sockets it `accepts`
 * (its own, not a front-end's translating wrapper).
 */
export interface Fanout {
  /** Whether `conn` is one of the runtime's own sockets. */
  accepts(conn: Connection): boolean;
  subscribe(conn: Connection, topic: string): void;
  unsubscribe(conn: Connection, topic: string): void;
  /**
   * Sends `text` (one frame: of an untranslated topic, several events
   * newline-separated) to every subscriber of `topic` but `except`; true when
   * one is backed up.
   */
  publish(topic: string, text: string, except?: Connection): boolean;
}

/** A channel's untranslated events of this turn, waiting for one native publish per sender. */
interface Waiting {
  readonly topic: string;
  /** Runs of consecutive events with the same sender skipped, each one frame, in order. */
  readonly runs: Run[];
}

interface Run {
  /** The sender's socket, which the publish skips. */
  readonly except?: Connection;
  readonly sender?: Session;
  readonly texts: string[];
}

/** The local members of one channel. */
interface Members {
  readonly all: Set<Session>;
  /** With a native fan-out: members it cannot reach, sent to one by one. */
  direct?: Set<Session>;
  /** With a native fan-out: its topics for the channel (one per translation), by name. */
  topics?: Map<string, NativeTopic>;
}

/** The members a native topic reaches: the events' translation, if any, and counts by front-end. */
interface NativeTopic {
  readonly translation?: Translation;
  readonly counts: Map<string, number>;
}

/** How the native fan-out reaches a session: the runtime's socket, and the translation if any. */
interface Route {
  readonly conn: Connection;
  readonly translation?: Translation;
}

/** The native topic of `channel` for sockets reached through `route`. */
function topicOf(channel: string, route: Route): string {
  return route.translation === undefined
    ? channelTopic(channel)
    : channelTopic(channel) + "\n" + route.translation.key;
}

/** What delivery needs from the rest of the core. */
export interface DeliveryOptions {
  bus: Bus;
  metrics: Metrics;
  /** Bytes queued to one client before it is closed 4008. */
  maxBuffered: number;
  /** Closes a session from the server side (slow consumers). */
  drop(s: Session, code: number, reason: string): void;
}

/** Who is local where, and the ways to reach them. */
export class Delivery {
  /** Every open socket. */
  readonly sessions: Set<Session> = new Set();
  /** Live described sessions on this node, by peer id. */
  readonly peers: Map<string, Session> = new Map();
  readonly #local = new Map<string, Members>();
  readonly #o: DeliveryOptions;
  #fanout?: Fanout;
  /** Untranslated channel events waiting for the end of the turn, by channel. */
  #waiting = new Map<string, Waiting>();
  /** The channel of the last event waiting. */
  #last?: string;

  constructor(options: DeliveryOptions) {
    this.#o = options;
  }

  /** Channels with a member here. */
  get channels(): number {
    return this.#local.size;
  }

  /** Hands channel fan-out to the runtime (before the first socket opens). */
  useFanout(fanout: Fanout): void {
    this.#fanout = fanout;
  }

  // ---- who is where ------------------------------------------------------------

  /** `s` now holds its peer on this node: deliveries to the id reach it. */
  bind(s: Session): void {
    this.peers.set(s.id!, s);
    this.#o.bus.subscribe(peerTopic(s.id!));
  }

  /**
   * Resolves once the bus delivers here what is published to `s`'s peer and
   * to `channels` (those it is a member of here): a stream read after it
   * misses nothing published meanwhile. Gives up waiting after `timeoutMs`
   * (the bus is down): false then, and what was published meanwhile may be
   * neither read nor delivered.
   */
  listening(
    s: Session,
    channels: Iterable<string>,
    timeoutMs = LISTEN_TIMEOUT_MS,
  ): Promise<boolean> {
    const topics: string[] = [];
    if (this.peers.get(s.id!) === s) topics.push(peerTopic(s.id!));
    for (const c of channels) if (s.channels.has(c)) topics.push(channelTopic(c));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<false>((resolve) =>
      timer = setTimeout(() => resolve(false), timeoutMs)
    );
    const active = Promise.all(topics.map((t) => this.#o.bus.subscribe(t))).then(() => true);
    return Promise.race([active, timeout]).finally(() => clearTimeout(timer));
  }

  /** Removes a session from the local indexes (its peer stays in the store). */
  forget(s: Session): void {
    for (const c of [...s.channels]) this.leaveLocal(s, c);
    if (this.peers.get(s.id!) === s) {
      this.peers.delete(s.id!);
      this.#o.bus.unsubscribe(peerTopic(s.id!));
    }
  }

  /** `s` is a member of `channel` here (sent to one by one while it holds events back). */
  joinLocal(s: Session, channel: string): void {
    // A joiner gets no event made before it joined.
    if (this.#waiting.has(channel)) flushBatches();
    if (s.gone) return;
    s.channels.add(channel);
    let members = this.#local.get(channel);
    if (members === undefined) {
      members = { all: new Set() };
      this.#local.set(channel, members);
      this.#o.bus.subscribe(channelTopic(channel));
    }
    members.all.add(s);
    if (this.#fanout === undefined) return;
    const route = s.holding ? undefined : this.#route(s);
    if (route !== undefined) this.#subscribe(members, channel, s, route);
    else (members.direct ??= new Set()).add(s);
  }

  /** How the native fan-out can reach `s`, if it can. */
  #route(s: Session): Route | undefined {
    const native = s.conn.native;
    if (native !== undefined) return this.#fanout!.accepts(native.conn) ? native : undefined;
    return this.#fanout!.accepts(s.conn) ? { conn: s.conn } : undefined;
  }

  #subscribe(members: Members, channel: string, s: Session, route: Route): void {
    const topic = topicOf(channel, route);
    this.#fanout!.subscribe(route.conn, topic);
    members.topics ??= new Map();
    let t = members.topics.get(topic);
    if (t === undefined) {
      members.topics.set(topic, t = { translation: route.translation, counts: new Map() });
    }
    t.counts.set(s.frontend, (t.counts.get(s.frontend) ?? 0) + 1);
  }

  /** `s` is no longer a member of `channel` here. */
  leaveLocal(s: Session, channel: string): void {
    // A leaver (a kicked peer) gets every event made before it left.
    if (!s.gone && this.#waiting.has(channel)) flushBatches();
    s.channels.delete(channel);
    const members = this.#local.get(channel);
    if (members === undefined || !members.all.delete(s)) return;
    const route = this.#fanout === undefined || members.direct?.delete(s) === true
      ? undefined
      : this.#route(s);
    if (route !== undefined) {
      const topic = topicOf(channel, route);
      const t = members.topics?.get(topic);
      const n = (t?.counts.get(s.frontend) ?? 0) - 1;
      if (n > 0) t!.counts.set(s.frontend, n);
      else t?.counts.delete(s.frontend);
      if (t?.counts.size === 0) members.topics!.delete(topic);
      if (!s.gone) this.#fanout!.unsubscribe(route.conn, topic);
    }
    if (members.all.size > 0) return;
    this.#local.delete(channel);
    this.#o.bus.unsubscribe(channelTopic(channel));
  }

  // ---- sending -------------------------------------------------------------------

  /** One frame to one socket now (a reply, a replay), even while it holds events back. */
  write(s: Session, text: string): void {
    // Events made before this text, waiting for the native fan-out, leave first.
    if (this.#waiting.size > 0 && this.#awaits(s)) flushBatches();
    if (s.gone) return;
    s.conn.send(text);
    this.#checkBuffered(s);
  }

  /** Whether an event waiting for the native fan-out is bound for `s`. */
  #awaits(s: Session): boolean {
    for (const channel of s.channels) {
      const w = this.#waiting.get(channel);
      if (w === undefined || (w.runs.length === 1 && w.runs[0].sender === s)) continue;
      // Several runs have several senders: `s` is a recipient of one of them, if subscribed.
      if (this.#local.get(channel)?.direct?.has(s) !== true) return true;
    }
    return false;
  }

  /** One event to one socket, held back while it holds events; `stream`/`seq` of a message. */
  send(s: Session, text: string, stream?: string, seq?: number): void {
    if (!s.holding) return this.write(s, text);
    // Held back too much: the client would not have read it in time either.
    if (s.keep(seq === undefined ? { text } : { text, stream, seq }) > this.#o.maxBuffered) {
      this.#o.drop(s, CloseCodes.TOO_SLOW, "too slow: too much held back during a resume");
    }
  }

  /**
   * Ends the hold of `s`: writes what was held, each stream message once (one
   * whose seq is not above the last written for its stream is a duplicate of
   * the replay), and hands its channels back to the native fan-out.
   */
  release(s: Session): void {
    const last = new Map<string, number>();
    for (const h of s.release()) {
      if (h.stream !== undefined) {
        if (h.seq! <= (last.get(h.stream) ?? -1)) continue;
        last.set(h.stream, h.seq!);
      }
      this.write(s, h.text);
    }
    const route = this.#fanout === undefined ? undefined : this.#route(s);
    if (route === undefined) return;
    // Events made before it was subscribed again reached it through the hold.
    if (this.#waiting.size > 0) flushBatches();
    if (s.gone) return;
    for (const channel of s.channels) {
      const members = this.#local.get(channel);
      if (members?.direct?.delete(s)) this.#subscribe(members, channel, s, route);
    }
  }

  /** To one peer, wherever it is connected. */
  toPeer(id: string, out: Outbound): void {
    const s = this.peers.get(id);
    if (s !== undefined) {
      // The stream's name only matters to a session holding events back.
      this.send(s, out.text, s.holding ? peerTopic(id) : undefined, out.seq);
      if (!s.countsOut) this.#o.metrics.countOut(s.frontend, out.type);
    } else this.#o.bus.publish(peerTopic(id), { type: out.type, text: out.text });
  }

  /** To every member of `channel` on every node, but `except`; `drop` leaves with it. */
  toChannel(channel: string, out: Outbound, except?: string, drop?: string): void {
    this.#inChannel(channel, out, except, drop);
    const env: Envelope = { type: out.type, text: out.text };
    if (out.seq !== undefined) env.seq = out.seq;
    if (except !== undefined) env.except = except;
    if (drop !== undefined) env.drop = drop;
    this.#o.bus.publish(channelTopic(channel), env);
  }

  /** To the members of several channels on every node, each once, but `except`. */
  toChannels(channels: string[], out: Outbound, except: string): void {
    this.#inChannels(channels, out, except);
    this.#o.bus.publish("all", { type: out.type, text: out.text, channels, except });
  }

  /** To every described peer on every node, but `except`. */
  toAll(out: Outbound, except: string): void {
    this.#toAllHere(out, except);
    this.#o.bus.publish("all", { type: out.type, text: out.text, except });
  }

  /**
   * An envelope from another node, on a topic this node subscribed to.
   * `replaced` closes a local session taken over elsewhere.
   */
  fromBus(topic: string, env: Envelope, replaced: (s: Session) => void): void {
    const kind = topic[0];
    const rest = topic.slice(2);
    const out: Outbound | undefined = env.text === undefined
      ? undefined
      : { type: env.type ?? "notice", text: env.text, seq: env.seq };
    if (kind === "c") return this.#inChannel(rest, out, env.except, env.drop);
    if (kind === "p") {
      const s = this.peers.get(rest);
      if (s === undefined) return;
      if (env.replace !== undefined) {
        if (s.nonce === env.replace) replaced(s);
      } else if (out !== undefined) this.toPeer(rest, out);
      return;
    }
    if (out === undefined) return;
    if (env.channels !== undefined) this.#inChannels(env.channels, out, env.except);
    else this.#toAllHere(out, env.except);
  }

  #inChannel(channel: string, out: Outbound | undefined, except?: string, drop?: string): void {
    const members = this.#local.get(channel);
    if (members !== undefined && out !== undefined) {
      const t0 = performance.now();
      if (this.#fanout === undefined) this.#each(members.all, out, except, channelTopic(channel));
      else this.#native(channel, members, out, except);
      this.#o.metrics.fanout.observe(performance.now() - t0);
    }
    if (drop !== undefined) {
      const s = this.peers.get(drop);
      if (s !== undefined) this.leaveLocal(s, channel);
    }
  }

  /** Sends to each of `members` but `except`, counting them by front-end. */
  #each(members: Iterable<Session>, out: Outbound, except?: string, stream?: string): void {
    // Counted in runs of one front-end: usually a single run, one metrics update.
    let frontend = "", run = 0;
    for (const s of members) {
      if (s.id === except) continue;
      this.send(s, out.text, stream, out.seq);
      if (s.countsOut) continue;
      if (s.frontend !== frontend) {
        if (run > 0) this.#o.metrics.countOut(frontend, out.type, run);
        frontend = s.frontend;
        run = 0;
      }
      run++;
    }
    if (run > 0) this.#o.metrics.countOut(frontend, out.type, run);
  }

  /**
   * One native publish per topic of the channel (the runtime's own sockets,
   * and the sockets of each translating front-end with the event translated
   * once), a send each for the others.
   */
  #native(channel: string, members: Members, out: Outbound, except?: string): void {
    const sender = except === undefined ? undefined : this.peers.get(except);
    if (members.direct !== undefined) {
      this.#each(members.direct, out, except, channelTopic(channel));
    }
    // The sender, when a native topic reaches it: that topic's publish skips its socket.
    const from = sender !== undefined && members.all.has(sender) &&
        members.direct?.has(sender) !== true
      ? this.#route(sender)
      : undefined;
    let backedUp = false;
    for (const [topic, t] of members.topics ?? []) {
      const skip = from !== undefined && from.translation === t.translation;
      let size = 0;
      for (const n of t.counts.values()) size += n;
      if (size - (skip ? 1 : 0) <= 0) continue;
      const except = skip ? from.conn : undefined;
      let sent: { text: string; type: string } | undefined;
      if (t.translation === undefined) {
        sent = { text: out.text, type: out.type };
        this.#wait(channel, topic, out.text, skip ? { except, sender } : {});
      } else {
        // Translated: one message per frame, published now, after everything made before it.
        sent = t.translation.translate(out.text);
        if (sent === undefined) continue;
        flushBatches();
        if (this.#fanout!.publish(topic, sent.text, except)) backedUp = true;
      }
      for (const [frontend, n] of t.counts) {
        const k = skip && sender!.frontend === frontend ? n - 1 : n;
        if (k > 0) this.#o.metrics.countOut(frontend, sent.type, k);
      }
    }
    // Someone is backed up: find who is over the limit.
    if (backedUp) { for (const s of members.all) this.#checkBuffered(s); }
  }

  /** Adds an event to those of `channel` waiting for the end of the turn. */
  #wait(channel: string, topic: string, text: string, from: Omit<Run, "texts">): void {
    let w = this.#waiting.get(channel);
    // Channels leave in the order they were first waited on: an event of an earlier
    // one after an event of a later one must not overtake it (a peer may be in both).
    if (w !== undefined && this.#last !== channel) {
      flushBatches();
      w = undefined;
    }
    this.#last = channel;
    if (w === undefined) {
      if (this.#waiting.size === 0) flushAfter(this.#publishWaiting);
      this.#waiting.set(channel, w = { topic, runs: [] });
    }
    const last = w.runs.at(-1);
    if (last !== undefined && last.sender === from.sender) last.texts.push(text);
    else w.runs.push({ ...from, texts: [text] });
  }

  /** Publishes the events waiting, one frame per run, then looks for slow consumers. */
  readonly #publishWaiting = (): void => {
    // Taken first: a flush that runs meanwhile (a slow consumer closed) finds nothing twice.
    const waiting = this.#waiting;
    this.#waiting = new Map();
    // Not timed as fan-out: each of these events was, when it was handed over.
    for (const [channel, w] of waiting) {
      let backedUp = false;
      for (const run of w.runs) {
        const frame = run.texts.length === 1 ? run.texts[0] : run.texts.join("\n");
        if (this.#fanout!.publish(w.topic, frame, run.except)) backedUp = true;
      }
      if (!backedUp) continue;
      for (const s of this.#local.get(channel)?.all ?? []) this.#checkBuffered(s);
    }
  };

  #inChannels(channels: string[], out: Outbound, except?: string): void {
    const seen = new Set<Session>();
    for (const c of channels) {
      for (const s of this.#local.get(c)?.all ?? []) {
        if (s.id === except || seen.has(s)) continue;
        seen.add(s);
      }
    }
    this.#each(seen, out);
  }

  #toAllHere(out: Outbound, except?: string): void {
    this.#each(this.peers.values(), out, except);
  }

  #checkBuffered(s: Session): void {
    if (s.conn.bufferedAmount > this.#o.maxBuffered) {
      this.#o.drop(s, CloseCodes.TOO_SLOW, "too slow: messages not read");
    }
  }
}
