/**
 * The y-webrtc signalling protocol, as y-webrtc 10's `bin/server.js` speaks
 * it: `subscribe` and `unsubscribe` to topics (rooms), `publish` to a topic
 * (every subscriber gets the message, the sender included, with `clients`
 * added), `ping` → `pong`. The server pings every socket and closes one that
 * does not answer.
 *
 * Each socket is a peer of the core under the `y-webrtc:` prefix, with an id
 * of its own; each topic is a channel of the core under the same prefix, so
 * a publish reaches the subscribers on every node. `clients` counts the
 * subscribers on the node that delivers the message (y-webrtc's clients do
 * not read it).
 */
import { type CommandName, newId } from "../../protocol/mod.ts";
import { type Connection, type Hub, Refusal, type Translation } from "../hub/mod.ts";
import { randomToken } from "../secrets.ts";
import type { Frontend } from "./frontend.ts";
import { type Json, JsonSocket, translating } from "./json_socket.ts";

/** Options of {@linkcode yWebrtc}. */
export interface YWebrtcOptions {
  /** Ping period, ms; a socket without a pong for as long is closed. Default 30000. */
  pingMs?: number;
  /** Turned off: every socket on the path is closed at once (1008) with this reason. */
  off?: string;
}

/** Where y-webrtc sockets and topics live in the core. */
const PREFIX = "y-webrtc:";
const TYPES = new Set(["subscribe", "unsubscribe", "publish", "ping"]);

/** The y-webrtc front-end, on `/y-webrtc`. */
export function yWebrtc(options: YWebrtcOptions = {}): Frontend {
  const off = options.off;
  if (off !== undefined) {
    return {
      path: "/y-webrtc",
      open(_hub, conn) {
        conn.close(1008, off);
        return { text() {}, binary() {}, closed() {} };
      },
    };
  }
  const state = new Topics();
  return {
    path: "/y-webrtc",
    // The client parses each frame as one JSON message.
    batch: false,
    pingMs: options.pingMs ?? 30_000,
    open: (hub, conn) => new YWebrtcSocket(hub, conn, state),
  };
}

/** The subscribers of each topic on this node, and the last message translated for them. */
class Topics implements Translation {
  readonly key = "y-webrtc";
  readonly local = new Map<string, Set<YWebrtcSocket>>();
  /** A publish reaches many sockets here as one core event: it is translated once. */
  #lastEvent?: string;
  #lastText = "";

  /** What the subscribers here are sent for a core event: a publish for a `pubmsg`, else nothing. */
  translate(event: string): { text: string; type: string } | undefined {
    return event.startsWith(`{"type":"pubmsg"`)
      ? { text: this.publish(event), type: "publish" }
      : undefined;
  }

  /** The y-webrtc message for a core `pubmsg` event. */
  publish(event: string): string {
    if (event === this.#lastEvent) return this.#lastText;
    const { channel, text } = JSON.parse(event) as { channel: string; text: string };
    this.#lastEvent = event;
    this.#lastText = withClients(text, this.local.get(channel.slice(PREFIX.length))?.size ?? 0);
    return this.#lastText;
  }
}

/** `message` (a JSON object without `clients`) with `clients` added. */
function withClients(message: string, clients: number): string {
  return `${message.slice(0, -1)},"clients":${clients}}`;
}

/** One y-webrtc socket. */
class YWebrtcSocket extends JsonSocket {
  protected readonly name = "y-webrtc";
  readonly #topics: Topics;
  /** Topics this socket is subscribed to. */
  readonly #mine = new Set<string>();

  constructor(hub: Hub, conn: Connection, topics: Topics) {
    super(hub, conn);
    this.#topics = topics;
    const s = hub.open(translating(conn, (event) => this.#event(event), topics), {
      frontend: "y-webrtc",
      countsOut: true,
    });
    this.session = s;
    this.first(async () => {
      try {
        await hub.claim(s, { id: PREFIX + newId(), name: "y-webrtc", token: randomToken() });
      } catch (e) {
        if (s.gone) return;
        if (e instanceof Refusal) hub.log.warn("y-webrtc claim refused", { error: e.message });
        else hub.unexpected("y-webrtc claim", e);
        hub.drop(s, 1011, "server error");
      }
    });
  }

  /** A core event: a publish from another subscriber leaves as y-webrtc's message. */
  #event(event: string): void {
    const sent = this.#topics.translate(event);
    if (sent !== undefined) this.#send(sent.type, sent.text);
  }

  #send(type: string, text: string): void {
    this.conn.send(text);
    this.hub.metrics.countOut("y-webrtc", type);
  }

  rateAs(m: Json): CommandName | null {
    return m.type === "publish" ? "pubmsg" : m.type === "ping" ? null : "join";
  }

  run(m: Json): Promise<void> | undefined {
    const type = typeof m.type === "string" && TYPES.has(m.type) ? m.type : "other";
    this.hub.metrics.countIn("y-webrtc", type);
    switch (type) {
      case "subscribe":
        return this.#subscribe(topicsOf(m));
      case "unsubscribe":
        return this.#unsubscribe(topicsOf(m));
      case "publish":
        return this.#publish(m);
      case "ping":
        this.#send("pong", `{"type":"pong"}`);
    }
  }

  async #subscribe(topics: string[]): Promise<void> {
    const s = this.session!;
    for (const topic of topics) {
      if (this.#mine.has(topic) || s.gone) continue;
      try {
        await this.hub.commands.join(s, { channel: PREFIX + topic });
      } catch (e) {
        // Over the channel limit, or the store unreachable: not subscribed.
        this.hub.log.debug("y-webrtc subscribe refused", { topic, error: describe(e) });
        continue;
      }
      this.#mine.add(topic);
      let subscribers = this.#topics.local.get(topic);
      if (subscribers === undefined) this.#topics.local.set(topic, subscribers = new Set());
      subscribers.add(this);
    }
  }

  async #unsubscribe(topics: string[]): Promise<void> {
    for (const topic of topics) {
      if (!this.#forget(topic)) continue;
      await Promise.resolve(this.hub.commands.quit(this.session!, { channel: PREFIX + topic }))
        .catch(() => {});
    }
  }

  /** Drops `topic` from this socket's subscriptions here; false when it had none. */
  #forget(topic: string): boolean {
    if (!this.#mine.delete(topic)) return false;
    const subscribers = this.#topics.local.get(topic);
    subscribers?.delete(this);
    if (subscribers?.size === 0) this.#topics.local.delete(topic);
    return true;
  }

  #publish(m: Json): Promise<void> | undefined {
    const topic = m.topic;
    // A socket publishes to the topics it subscribed to, as y-webrtc's clients do.
    if (typeof topic !== "string" || !this.#mine.has(topic)) return;
    // Each node adds its own count of subscribers.
    delete m.clients;
    const text = JSON.stringify(m);
    const done = (): void => {
      // The sender is a subscriber too: it gets the message, as from y-webrtc's server.
      this.#send("publish", withClients(text, this.#topics.local.get(topic)?.size ?? 0));
    };
    try {
      const r = this.hub.commands.pubmsg(this.session!, { channel: PREFIX + topic, text });
      if (!(r instanceof Promise)) return void done();
      return r.then(
        done,
        (e) => this.hub.log.debug("y-webrtc publish refused", { error: describe(e) }),
      );
    } catch (e) {
      this.hub.log.debug("y-webrtc publish refused", { error: describe(e) });
    }
  }

  closed(): void {
    this.clear();
    for (const topic of [...this.#mine]) this.#forget(topic);
    // No client of this protocol resumes: its peer and subscriptions go at once.
    this.hub.closed(this.session!, { graceMs: 0 });
  }
}

/** The string topics of a subscribe or unsubscribe message (others are ignored, as upstream). */
function topicsOf(m: Json): string[] {
  return Array.isArray(m.topics) ? m.topics.filter((t) => typeof t === "string") : [];
}

function describe(e: unknown): string {
  return e instanceof Refusal ? `${e.code} ${e.message}` : String(e);
}
