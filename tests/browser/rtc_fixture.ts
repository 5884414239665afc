/**
 * Loaded into a blank page by `rtc_test.ts`: `client/rtc.ts` and the typed
 * client, driven from the test through `globalThis.fx`. Every data channel
 * the page sees (its own or the other side's) is recorded, and incoming
 * signals can be held back so both sides are made to offer at the same time.
 */
import { SignallerClient } from "../../client/mod.ts";
import { type RtcLink, RtcSignaller } from "../../client/rtc.ts";

/** What the test can see and do in the page. */
export interface Fixture {
  id: string;
  /** Messages received on any data channel, in order. */
  received: string[];
  /** Offers this page sent, and offers it received while it had an offer of its own out. */
  offersSent: number;
  collisions: number;
  /** Links closed, with their reason. */
  closedReasons: string[];
  init(url: string, name: string): Promise<string>;
  /** Holds back (or releases) the signals the page receives. */
  hold(on: boolean): void;
  connect(remote: string): void;
  /** Whether a data channel of the current link is open. */
  open(): boolean;
  send(text: string): void;
  state(): string;
  ufrag(): string;
  restartIce(): void;
  /** Closes the current link (the other side gets a bye). */
  closeLink(): void;
}

let client: SignallerClient;
let rtc: RtcSignaller;
let link: RtcLink | undefined;
let channels: RTCDataChannel[] = [];
let held: { from: string; text: string }[] | undefined;
const listeners = new Set<(e: { from: string; text: string }) => void>();

function watch(l: RtcLink): void {
  link = l;
  channels = [];
  l.pc.addEventListener("datachannel", (e) => track(e.channel));
  l.closed.then((reason) => fx.closedReasons.push(reason));
}

function track(ch: RTCDataChannel): void {
  channels.push(ch);
  ch.addEventListener("message", (e) => fx.received.push(String(e.data)));
}

const fx: Fixture = {
  id: "",
  received: [],
  offersSent: 0,
  collisions: 0,
  closedReasons: [],
  async init(url, name) {
    client = new SignallerClient(url, { name });
    await client.connect();
    // The signaller listens to a view of the client whose privmsg events can be held.
    client.on("privmsg", (e) => {
      if (held) held.push(e);
      else for (const l of listeners) l(e);
    });
    const view = new Proxy(client, {
      get(target, prop) {
        if (prop === "on") {
          return (type: string, h: (e: unknown) => void) => {
            if (type !== "privmsg") return target.on(type as "close", h);
            const l = h as (e: { from: string; text: string }) => void;
            listeners.add(l);
            return () => listeners.delete(l);
          };
        }
        if (prop === "privmsg") {
          return (peer: string, text: string) => {
            if (text.includes('"type":"offer"')) fx.offersSent++;
            return target.privmsg(peer, text);
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    // Count the offers that arrive while this side has one of its own out: glare. (Before
    // the signaller's own listener, which changes the state.)
    listeners.add(({ text }) => {
      if (text.includes('"type":"offer"') && link?.pc.signalingState === "have-local-offer") {
        fx.collisions++;
      }
    });
    rtc = new RtcSignaller(view, { onLink: watch });
    fx.id = client.id;
    return client.id;
  },
  hold(on) {
    if (on) {
      held ??= [];
      return;
    }
    const queue = held ?? [];
    held = undefined;
    for (const e of queue) for (const l of listeners) l(e);
  },
  connect(remote) {
    watch(rtc.connect(remote));
    track(link!.pc.createDataChannel("chat"));
  },
  open: () => channels.some((c) => c.readyState === "open"),
  send(text) {
    // Our own channel when we made one, else the other side's.
    const ch = channels.find((c) => c.readyState === "open");
    if (!ch) throw new Error("no open data channel");
    ch.send(text);
  },
  state: () => link ? `${link.pc.connectionState}/${link.pc.signalingState}` : "none",
  ufrag: () => link?.pc.localDescription?.sdp.match(/a=ice-ufrag:(\S+)/)?.[1] ?? "",
  restartIce: () => link!.restart(),
  closeLink: () => link!.close(),
};

(globalThis as unknown as { fx: Fixture }).fx = fx;
