/**
 * WebRTC between two peers, signalled through a {@linkcode SignallerClient}:
 * offers, answers and ICE candidates travel in `/privmsg` as JSON, candidates
 * trickle as they are found, and the "perfect negotiation" pattern (one
 * polite and one impolite side) makes both sides converge even when they
 * start negotiating at the same moment. A connection that fails is restarted
 * with an ICE restart. The ICE servers come from the `/descp` reply.
 *
 * Works with any `RTCPeerConnection` (the global one unless injected); it
 * needs nothing but the typed client.
 *
 * @example
 * ```ts
 * import { SignallerClient } from "./mod.ts";
 * import { RtcSignaller } from "./rtc.ts";
 *
 * const client = new SignallerClient("ws://localhost:3012/", { name: "ann" });
 * await client.connect();
 * const rtc = new RtcSignaller(client, {
 *   // Someone else started a link: set it up before the offer is applied.
 *   onLink: (link) => link.pc.ondatachannel = (e) => e.channel.onmessage = (m) => console.log(m.data),
 * });
 * const link = rtc.connect("65a1f0c2e4b0a1b2c3d4e5f7");
 * const chat = link.pc.createDataChannel("chat"); // negotiation starts by itself
 * chat.onopen = () => chat.send("hello");
 * console.log("closed:", await link.closed);
 * ```
 * @module
 */
import { type SignallerClient, SignallerError } from "./mod.ts";

/**
 * Why a link closed: `local` (its `close()`), `bye` (the other side closed
 * its end), `replaced` (the other side started a new session of the same
 * link), `unreachable` (the other peer is not online: `/privmsg` got `401`),
 * `signaller` (the client closed for good).
 */
export type RtcCloseReason = "local" | "bye" | "replaced" | "unreachable" | "signaller";

/** A signal as it travels in the text of a `/privmsg`. */
export interface RtcSignal {
  /** Marks the text as a signal of this module (version 1). */
  rtc: 1;
  /** Which link between the two peers (several may exist side by side). */
  tag: string;
  /** The sender's session of this link: random, new with every `RtcLink`. */
  sid: string;
  /** The receiver's session as the sender knows it; absent before the first answer. */
  to?: string;
  /** An offer or an answer. */
  sdp?: { type: "offer" | "answer"; sdp: string };
  /** Trickled candidates, in the order they were found. */
  ice?: RTCIceCandidateInit[];
  /** The sender closed its end of the link. */
  bye?: true;
}

/** Options of {@linkcode RtcSignaller}. */
export interface RtcSignallerOptions {
  /**
   * Extra configuration of every `RTCPeerConnection`. `iceServers` defaults
   * to the ones in the client's `/descp` reply (none: host candidates only).
   */
  config?: RTCConfiguration;
  /** The `RTCPeerConnection` constructor; the global one unless given. */
  RTCPeerConnection?: typeof RTCPeerConnection;
  /**
   * Whether to take a link that `remote` starts with tag `tag` (an offer from
   * a peer with no link of that tag here); all are taken unless given.
   */
  accept?: (remote: string, tag: string) => boolean;
  /**
   * Called with every link the other side started, before its first offer
   * is applied: the place to add tracks and listen to `track` or
   * `datachannel` on `link.pc`.
   */
  onLink?: (link: RtcLink) => void;
  /**
   * How long a connection may stay `disconnected` before an ICE restart, ms;
   * 4000 unless given. A `failed` connection is restarted at once.
   */
  disconnectedMs?: number;
}

/** Options of {@linkcode RtcSignaller.connect}. */
export interface RtcConnectOptions {
  /** Which link between the two peers; `"default"` unless given. */
  tag?: string;
  /**
   * Whether this side yields when both send an offer at once. Unless given,
   * the side with the smaller peer id is polite, so the two always differ.
   */
  polite?: boolean;
}

const MAX_TAG = 64;

/**
 * Routes the signals of one client to its links: one {@linkcode RtcLink}
 * per remote peer and tag.
 */
export class RtcSignaller {
  #client: SignallerClient;
  #options: RtcSignallerOptions;
  #links = new Map<string, RtcLink>();
  #off: (() => void)[];

  /** Starts listening to the signals `client` receives. */
  constructor(client: SignallerClient, options: RtcSignallerOptions = {}) {
    this.#client = client;
    this.#options = options;
    this.#off = [
      client.on("privmsg", (ev) => this.#onPrivmsg(ev.from, ev.text)),
      client.on("close", () => {
        for (const link of [...this.#links.values()]) link.end("signaller", false);
      }),
    ];
  }

  /** The links that are open, in the order they were made. */
  get links(): RtcLink[] {
    return [...this.#links.values()];
  }

  /** The open link to `remote` with tag `tag`, if any. */
  link(remote: string, tag = "default"): RtcLink | undefined {
    return this.#links.get(key(remote.toLowerCase(), tag));
  }

  /**
   * Opens a link to `remote` (or returns the open one with the same tag).
   * Negotiation starts when the connection needs it, i.e. once a track or a
   * data channel is added to `link.pc`.
   */
  connect(remote: string, options: RtcConnectOptions = {}): RtcLink {
    const id = remote.toLowerCase();
    const tag = options.tag ?? "default";
    if (tag.length === 0 || tag.length > MAX_TAG) throw new RangeError(`Bad link tag "${tag}"`);
    return this.#links.get(key(id, tag)) ?? this.#open(id, tag, options.polite);
  }

  /** Closes every link (telling the other sides) and stops listening. */
  close(): void {
    for (const off of this.#off) off();
    for (const link of [...this.#links.values()]) link.close();
  }

  #open(remote: string, tag: string, polite?: boolean): RtcLink {
    const PC = this.#options.RTCPeerConnection ?? globalThis.RTCPeerConnection;
    if (typeof PC !== "function") throw new TypeError("No RTCPeerConnection: pass one in options");
    const iceServers = this.#client.description?.iceServers;
    const config: RTCConfiguration = { ...this.#options.config };
    if (config.iceServers === undefined && iceServers) config.iceServers = iceServers;
    const link = new RtcLink(this.#client, {
      remote,
      tag,
      polite: polite ?? this.#client.id < remote,
      pc: new PC(config),
      disconnectedMs: this.#options.disconnectedMs ?? 4000,
      onEnd: () => {
        if (this.#links.get(key(remote, tag)) === link) this.#links.delete(key(remote, tag));
      },
    });
    this.#links.set(key(remote, tag), link);
    return link;
  }

  #onPrivmsg(from: string, text: string): void {
    const signal = parseSignal(text);
    if (!signal) return;
    const existing = this.#links.get(key(from, signal.tag));
    // Signals addressed to a session of ours that is gone are stale.
    if (signal.to !== undefined && signal.to !== existing?.session) return;
    if (existing && (existing.remoteSession ?? signal.sid) === signal.sid) {
      existing.receive(signal);
      return;
    }
    // Only an offer starts a link; a new session from the other side replaces ours.
    if (signal.sdp?.type !== "offer") return;
    existing?.end("replaced", false);
    if (this.#options.accept && !this.#options.accept(from, signal.tag)) return;
    const link = this.#open(from, signal.tag);
    this.#options.onLink?.(link);
    link.receive(signal);
  }
}

interface LinkInit {
  remote: string;
  tag: string;
  polite: boolean;
  pc: RTCPeerConnection;
  disconnectedMs: number;
  onEnd: () => void;
}

type Outgoing = { sdp: NonNullable<RtcSignal["sdp"]> } | { ice: RTCIceCandidateInit[] } | {
  bye: true;
};

/**
 * One `RTCPeerConnection` with one remote peer, negotiated by the perfect
 * negotiation pattern. Made by {@linkcode RtcSignaller.connect} or, for links
 * the other side starts, handed to `onLink`.
 */
export class RtcLink {
  /** The remote peer's id. */
  readonly remote: string;
  /** Which link between the two peers. */
  readonly tag: string;
  /** Whether this side yields in an offer collision. */
  readonly polite: boolean;
  /** The connection: add tracks and data channels, listen to its events. */
  readonly pc: RTCPeerConnection;
  /** This side's session of the link. */
  readonly session: string = randomSession();
  /** Resolves with the reason once the link has closed. */
  readonly closed: Promise<RtcCloseReason>;

  #client: SignallerClient;
  #remoteSession: string | undefined;
  #onEnd: () => void;
  #resolveClosed!: (reason: RtcCloseReason) => void;
  #ended = false;
  // Perfect negotiation state.
  #makingOffer = false;
  #ignoreOffer = false;
  #answerPending = false;
  /** Incoming signals are applied one at a time, in order. */
  #inbox: Promise<void> = Promise.resolve();
  /** Outgoing signals: sent one at a time, consecutive candidates merged. */
  #outbox: Outgoing[] = [];
  #sending = false;
  #disconnectedTimer: ReturnType<typeof setTimeout> | undefined;
  #offs: (() => void)[] = [];

  /** Made by {@linkcode RtcSignaller}; not meant to be called directly. */
  constructor(client: SignallerClient, init: LinkInit) {
    this.#client = client;
    this.remote = init.remote;
    this.tag = init.tag;
    this.polite = init.polite;
    this.pc = init.pc;
    this.#onEnd = init.onEnd;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    const pc = this.pc;
    pc.addEventListener("negotiationneeded", () => void this.#negotiate());
    pc.addEventListener("icecandidate", (e) => {
      // The end-of-candidates marker (null) is not needed: ICE checks as candidates arrive.
      if (e.candidate && e.candidate.candidate) this.#post({ ice: [e.candidate.toJSON()] });
    });
    pc.addEventListener("connectionstatechange", () => this.#onState(init.disconnectedMs));
    // After a reconnect of the signaller, what was waiting to be sent goes out.
    this.#offs.push(client.on("resumed", () => void this.#flush()));
  }

  /** The remote side's session, once it has sent a signal. */
  get remoteSession(): string | undefined {
    return this.#remoteSession;
  }

  /** Whether the link has closed. */
  get isClosed(): boolean {
    return this.#ended;
  }

  /** Restarts ICE (new candidates, same tracks and channels), e.g. after a network change. */
  restart(): void {
    if (!this.#ended) this.pc.restartIce();
  }

  /** Closes the connection and tells the other side. */
  close(): void {
    this.end("local", true);
  }

  /** Handles a signal for this link (called by {@linkcode RtcSignaller}). */
  receive(signal: RtcSignal): void {
    if (this.#ended) return;
    this.#remoteSession ??= signal.sid;
    this.#inbox = this.#inbox.then(() => this.#apply(signal)).catch((e) => report(e));
  }

  /** Ends the link with `reason` (called by {@linkcode RtcSignaller}); `tell` sends a bye. */
  end(reason: RtcCloseReason, tell: boolean): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#disconnectedTimer);
    for (const off of this.#offs) off();
    if (tell && this.#remoteSession !== undefined) {
      // Best effort: the connection closes whether or not the bye gets out.
      this.#client.privmsg(this.remote, JSON.stringify(this.#wrap({ bye: true }))).catch(() => {});
    }
    this.#outbox = [];
    this.pc.close();
    this.#onEnd();
    this.#resolveClosed(reason);
  }

  async #negotiate(): Promise<void> {
    if (this.#ended) return;
    try {
      this.#makingOffer = true;
      await this.pc.setLocalDescription();
      const d = this.pc.localDescription;
      if (d && !this.#ended) this.#post({ sdp: { type: d.type as "offer", sdp: d.sdp } });
    } catch (e) {
      // A collision or a closed connection while the offer was made: the next signal sorts it out.
      if (!this.#ended) report(e);
    } finally {
      this.#makingOffer = false;
    }
  }

  async #apply(signal: RtcSignal): Promise<void> {
    if (this.#ended) return;
    if (signal.bye) {
      this.end("bye", false);
      return;
    }
    const pc = this.pc;
    if (signal.sdp) {
      const description = signal.sdp;
      // Perfect negotiation: an offer that collides with ours is dropped by the
      // impolite side; the polite side rolls its own back by applying it.
      const readyForOffer = !this.#makingOffer &&
        (pc.signalingState === "stable" || this.#answerPending);
      const collision = description.type === "offer" && !readyForOffer;
      this.#ignoreOffer = !this.polite && collision;
      if (this.#ignoreOffer) return;
      this.#answerPending = description.type === "answer";
      await pc.setRemoteDescription(description);
      this.#answerPending = false;
      if (description.type === "offer") {
        await pc.setLocalDescription();
        const d = pc.localDescription;
        if (d && !this.#ended) this.#post({ sdp: { type: d.type as "answer", sdp: d.sdp } });
      }
    }
    for (const candidate of signal.ice ?? []) {
      try {
        await pc.addIceCandidate(candidate);
      } catch (e) {
        // Candidates of an offer we ignored fail to apply; that is expected.
        if (!this.#ignoreOffer && !this.#ended) throw e;
      }
    }
  }

  #onState(disconnectedMs: number): void {
    if (this.#ended) return;
    const state = this.pc.connectionState;
    clearTimeout(this.#disconnectedTimer);
    this.#disconnectedTimer = undefined;
    if (state === "failed") {
      this.restart();
    } else if (state === "disconnected") {
      // Often a short glitch that heals by itself; restart only if it lasts.
      this.#disconnectedTimer = setTimeout(() => {
        if (this.pc.connectionState === "disconnected") this.restart();
      }, disconnectedMs);
    }
  }

  #post(item: Outgoing): void {
    this.#outbox.push(item);
    void this.#flush();
  }

  #wrap(item: Outgoing): RtcSignal {
    const signal: RtcSignal = { rtc: 1, tag: this.tag, sid: this.session, ...item };
    if (this.#remoteSession !== undefined) signal.to = this.#remoteSession;
    return signal;
  }

  async #flush(): Promise<void> {
    if (this.#sending) return;
    this.#sending = true;
    try {
      while (this.#outbox.length > 0 && !this.#ended && this.#client.state === "open") {
        // Candidates that queued up behind a send go out in one message (messages are
        // rate-limited by the server).
        const head = this.#outbox[0];
        while ("ice" in head && this.#outbox.length > 1 && "ice" in this.#outbox[1]) {
          head.ice.push(...(this.#outbox.splice(1, 1)[0] as { ice: RTCIceCandidateInit[] }).ice);
        }
        try {
          await this.#client.privmsg(this.remote, JSON.stringify(this.#wrap(head)));
          this.#outbox.shift();
        } catch (e) {
          if (e instanceof SignallerError && e.code === 263) {
            await delay(e.retryAfterMs ?? 250);
          } else if (e instanceof SignallerError && e.code === 401) {
            this.end("unreachable", false);
          } else if (e instanceof SignallerError) {
            // Any other refusal would repeat itself: drop the signal, keep the link.
            this.#outbox.shift();
            report(e);
          } else {
            // The socket dropped: the rest goes out when the client has resumed.
            return;
          }
        }
      }
    } finally {
      this.#sending = false;
    }
  }
}

/** Reads a signal from a `/privmsg` text; undefined if the text is not one. */
export function parseSignal(text: string): RtcSignal | undefined {
  // Cheap test first: most messages on a busy peer are not signals.
  if (!text.startsWith('{"rtc":1')) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const s = v as Record<string, unknown>;
  if (s.rtc !== 1 || !isShortString(s.tag) || !isShortString(s.sid)) return undefined;
  if (s.to !== undefined && !isShortString(s.to)) return undefined;
  const signal: RtcSignal = { rtc: 1, tag: s.tag, sid: s.sid };
  if (s.to !== undefined) signal.to = s.to as string;
  if (s.bye === true) signal.bye = true;
  if (s.sdp !== undefined) {
    const d = s.sdp as Record<string, unknown> | null;
    if (
      typeof d !== "object" || d === null || (d.type !== "offer" && d.type !== "answer") ||
      typeof d.sdp !== "string"
    ) return undefined;
    signal.sdp = { type: d.type, sdp: d.sdp };
  }
  if (s.ice !== undefined) {
    if (!Array.isArray(s.ice)) return undefined;
    const ice: RTCIceCandidateInit[] = [];
    for (const c of s.ice as unknown[]) {
      const o = c as Record<string, unknown> | null;
      if (typeof o !== "object" || o === null || typeof o.candidate !== "string") return undefined;
      const init: RTCIceCandidateInit = { candidate: o.candidate };
      if (typeof o.sdpMid === "string") init.sdpMid = o.sdpMid;
      if (typeof o.sdpMLineIndex === "number") init.sdpMLineIndex = o.sdpMLineIndex;
      if (typeof o.usernameFragment === "string") init.usernameFragment = o.usernameFragment;
      ice.push(init);
    }
    signal.ice = ice;
  }
  return signal;
}

function isShortString(v: unknown): v is string {
  return typeof v === "string" && v.length > 0 && v.length <= MAX_TAG;
}

function key(remote: string, tag: string): string {
  return remote + " " + tag;
}

function randomSession(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function report(e: unknown): void {
  const g = globalThis as { reportError?: (e: unknown) => void };
  if (typeof g.reportError === "function") g.reportError(e);
  else console.error(e);
}
