/**
 * The stream's way from the broadcaster to every viewer, peer to peer.
 *
 * - {@linkcode Feeder}: sends the stream to children (the broadcaster its
 *   camera, a viewer the tracks it receives), one link per child, tag `media`.
 *   A new source or a new parent only swaps the tracks (`replaceTrack`): no
 *   renegotiation, and the children's children never notice.
 * - {@linkcode Receiver}: a viewer's link to its parent; asks the coordinator
 *   for a parent, takes the stream only from the one assigned, and asks again
 *   when that parent goes away or the link does not come up.
 * - {@linkcode Coordinator}: the broadcaster keeps the {@linkcode RelayTree}
 *   and tells viewers whom to feed and whom to take the stream from.
 *
 * All of it runs over `/privmsg` through the signaller: no server-side media.
 */
import { type SignallerClient, SignallerError } from "../mod.ts";
import type { RtcLink, RtcSignaller } from "../rtc.ts";
import type { RelayMessage } from "./messages.ts";
import { RelayTree } from "./tree.ts";

/** The tag of the links that carry the stream. */
export const MEDIA = "media";

/** Sends `text` to `peer`, waiting out rate limits; false if it could not be delivered. */
export async function send(client: SignallerClient, peer: string, text: string): Promise<boolean> {
  for (let attempt = 0; attempt < 8; attempt++) {
    try {
      await client.privmsg(peer, text);
      return true;
    } catch (e) {
      if (!(e instanceof SignallerError) || e.code !== 263) return false;
      await new Promise((r) => setTimeout(r, e.retryAfterMs ?? 250));
    }
  }
  return false;
}

function relayText(msg: RelayMessage): string {
  return JSON.stringify(msg);
}

interface Fed {
  link: RtcLink;
  video: RTCRtpSender;
  audio: RTCRtpSender;
}

/** Sends the current tracks to every child. */
export class Feeder {
  #rtc: RtcSignaller;
  #children = new Map<string, Fed>();
  #video: MediaStreamTrack | null = null;
  #audio: MediaStreamTrack | null = null;
  #onChange: () => void;

  /** A feeder opening its links through `rtc`; `onChange` hears of every child added or gone. */
  constructor(rtc: RtcSignaller, onChange: () => void = () => {}) {
    this.#rtc = rtc;
    this.#onChange = onChange;
  }

  /** The children fed now. */
  get children(): string[] {
    return [...this.#children.keys()];
  }

  /** Starts sending to `child` (again, if its link is not up). */
  feed(child: string): void {
    const fed = this.#children.get(child);
    if (fed && !fed.link.isClosed && fed.link.pc.connectionState !== "failed") return;
    fed?.link.close();
    const link = this.#rtc.connect(child, { tag: MEDIA });
    const video = link.pc.addTransceiver(this.#video ?? "video", { direction: "sendonly" });
    const audio = link.pc.addTransceiver(this.#audio ?? "audio", { direction: "sendonly" });
    const entry = { link, video: video.sender, audio: audio.sender };
    this.#children.set(child, entry);
    link.closed.then(() => {
      if (this.#children.get(child) === entry) {
        this.#children.delete(child);
        this.#onChange();
      }
    });
    this.#onChange();
  }

  /** Stops sending to `child`. */
  drop(child: string): void {
    this.#children.get(child)?.link.close();
  }

  /** Sends `video` and `audio` (either may be null: nothing) to every child from now on. */
  setTracks(video: MediaStreamTrack | null, audio: MediaStreamTrack | null): void {
    this.#video = video;
    this.#audio = audio;
    for (const { video: v, audio: a } of this.#children.values()) {
      v.replaceTrack(video).catch(() => {});
      a.replaceTrack(audio).catch(() => {});
    }
  }

  /** Stops sending to everyone. */
  close(): void {
    for (const { link } of this.#children.values()) link.close();
  }
}

/** What a viewer's {@linkcode Receiver} reports. */
export interface ReceiverEvents {
  /** The stream from the parent, each time it gains a track (undefined: none any more). */
  stream(stream: MediaStream | undefined): void;
  /** Where the stream comes from now. */
  route(parent: string | undefined, depth: number | undefined, live: boolean): void;
  /** The link to the parent went up or down. */
  connected(up: boolean): void;
}

/** How long a viewer waits for its parent's link to come up before asking again, ms. */
const PARENT_TIMEOUT_MS = 6000;

/** A viewer's side: one parent, assigned by the coordinator. */
export class Receiver {
  #client: SignallerClient;
  #host: string | undefined;
  #events: ReceiverEvents;
  #parent: string | undefined;
  #depth: number | undefined;
  #live = false;
  #link: RtcLink | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  /** A receiver asking `host` (the broadcaster) for a parent once {@linkcode want} is called. */
  constructor(client: SignallerClient, events: ReceiverEvents) {
    this.#client = client;
    this.#events = events;
  }

  /** The assigned parent. */
  get parent(): string | undefined {
    return this.#parent;
  }

  /** Whether the stream is live, as the broadcaster last said. */
  get live(): boolean {
    return this.#live;
  }

  /** Sets the broadcaster to ask. */
  set host(id: string | undefined) {
    this.#host = id;
  }

  /** Whether to take a link that `remote` starts: only the stream from the assigned parent. */
  accept(remote: string, tag: string): boolean {
    return !this.#closed && tag === MEDIA && remote === this.#parent;
  }

  /** Sets up a link from the parent (see `RtcSignallerOptions.onLink`). */
  onLink(link: RtcLink): void {
    if (link.tag !== MEDIA || link.remote !== this.#parent) return;
    if (this.#link !== link) this.#link?.close();
    this.#link = link;
    const stream = new MediaStream();
    link.pc.addEventListener("track", (e) => {
      stream.addTrack(e.track);
      // Told once per track: the video and the audio each go on to this viewer's children.
      this.#events.stream(stream);
    });
    link.pc.addEventListener("connectionstatechange", () => this.#watch());
    link.closed.then((reason) => {
      if (this.#link !== link) return;
      this.#link = undefined;
      this.#events.connected(false);
      // The parent stopped feeding us (it left, or was moved): ask at once.
      if (reason === "bye" || reason === "unreachable") this.want(link.remote);
      else this.#watch();
    });
    this.#watch();
  }

  /** Asks the broadcaster for a parent; `lost` names one that went away. */
  want(lost?: string): void {
    if (this.#closed || !this.#host) return;
    const msg: RelayMessage = lost ? { relay: "want", lost } : { relay: "want" };
    void send(this.#client, this.#host, relayText(msg));
    this.#arm();
  }

  /** Tells the broadcaster the stream plays here: this viewer can feed others. */
  playing(): void {
    if (this.#host && !this.#closed) {
      void send(this.#client, this.#host, relayText({ relay: "playing" }));
    }
  }

  /** Handles a relay message from `from`; only the broadcaster's count. */
  onMessage(from: string, msg: RelayMessage): void {
    if (from !== this.#host || msg.relay !== "parent" || this.#closed) return;
    this.#depth = msg.depth;
    this.#live = msg.live;
    if (msg.parent !== this.#parent) {
      this.#parent = msg.parent;
      // The old parent may still be feeding us: let it go.
      if (this.#link && this.#link.remote !== msg.parent) {
        const old = this.#link;
        this.#link = undefined;
        old.close();
        this.#events.connected(false);
      }
    }
    this.#events.route(this.#parent, this.#depth, this.#live);
    this.#watch();
  }

  /** The broadcaster went live or off air. */
  setLive(live: boolean): void {
    this.#live = live;
    this.#events.route(this.#parent, this.#depth, live);
  }

  /** `peer` left the stream; if it was our parent, the coordinator will move us (or we ask). */
  onLeave(peer: string): void {
    if (peer === this.#parent) this.#watch();
  }

  /** Stops receiving. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#link?.close();
  }

  #watch(): void {
    const up = this.#link?.pc.connectionState === "connected";
    this.#events.connected(up);
    if (up) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    } else {
      this.#arm();
    }
  }

  /** Asks again if no parent's link is up in a while (the coordinator may have missed a loss). */
  #arm(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#link?.pc.connectionState === "connected") return;
      this.want(this.#parent);
    }, PARENT_TIMEOUT_MS);
  }
}

/** How long a parent that a child reported lost gets no new children, ms. */
const SUSPECT_MS = 10_000;

/** The broadcaster's side: keeps the tree and tells viewers where to attach. */
export class Coordinator {
  /** The tree, for display. */
  readonly tree: RelayTree;
  #client: SignallerClient;
  #feeder: Feeder;
  #live = false;
  #suspects = new Map<string, number>();
  #retry: ReturnType<typeof setTimeout> | undefined;
  #onChange: () => void;

  /** A coordinator for the broadcaster `client`, feeding its own children with `feeder`. */
  constructor(
    client: SignallerClient,
    feeder: Feeder,
    options: { fanout: number; onChange?: () => void },
  ) {
    this.#client = client;
    this.#feeder = feeder;
    this.tree = new RelayTree(client.id, options.fanout);
    this.#onChange = options.onChange ?? (() => {});
  }

  /** Whether the broadcaster is live (told to every viewer as they attach). */
  set live(live: boolean) {
    this.#live = live;
  }

  /** Handles a relay message from viewer `from`. */
  onMessage(from: string, msg: RelayMessage): void {
    const tree = this.tree;
    if (msg.relay === "want") {
      const parent = tree.parentOf(from);
      if (parent !== undefined && msg.lost !== parent) {
        // Attached, and not to the one it lost (an old loss, or a repeated ask):
        // repeat the assignment, which is idempotent on both ends.
        this.#tell({ child: from, parent, depth: tree.depthOf(from) ?? 1 });
        return;
      }
      if (msg.lost !== undefined && msg.lost !== tree.root) {
        // It may be leaving: no new children for it for a while. A page that crashed sends
        // no quit until its disconnect grace ends: if it is offline, it is gone now.
        this.#suspects.set(msg.lost, Date.now() + SUSPECT_MS);
        void this.#probe(msg.lost);
      }
      tree.want(from);
      this.#assign();
    } else if (msg.relay === "playing") {
      if (!tree.has(from)) return;
      tree.setPlaying(from, true);
      this.#assign();
    }
  }

  /** `peer` left the stream (quit, kick, ban): its children are moved. */
  onLeave(peer: string): void {
    this.#suspects.delete(peer);
    if (!this.tree.has(peer)) return;
    this.tree.remove(peer);
    this.#feeder.drop(peer);
    this.#assign();
  }

  async #probe(peer: string): Promise<void> {
    let online = false;
    try {
      const info = await this.#client.whois(peer);
      online = "online" in info && info.online;
    } catch (e) {
      // 401: no such peer any more. Any other failure proves nothing.
      if (!(e instanceof SignallerError && e.code === 401)) return;
    }
    if (!online) this.onLeave(peer);
  }

  #assign(): void {
    const now = Date.now();
    for (const [id, until] of this.#suspects) if (until <= now) this.#suspects.delete(id);
    for (const a of this.tree.assign((id) => this.#suspects.has(id))) this.#tell(a);
    this.#onChange();
    // Once the suspects are cleared, viewers still waiting may go under them.
    if (this.#suspects.size > 0 && this.#retry === undefined) {
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        this.#assign();
      }, SUSPECT_MS);
    }
  }

  #tell(a: { child: string; parent: string; depth: number }): void {
    const client = this.#client;
    // The child hears of its parent before the parent's offer can reach it.
    const told = send(
      client,
      a.child,
      relayText({ relay: "parent", parent: a.parent, depth: a.depth, live: this.#live }),
    );
    if (a.parent === this.tree.root) {
      void told.then(() => this.#feeder.feed(a.child));
    } else {
      void told.then(() => send(client, a.parent, relayText({ relay: "feed", child: a.child })));
    }
  }
}
