/**
 * The PeerJS server protocol, as peerjs-server 1.0 speaks it and the `peerjs`
 * 1.5 client expects it: the client opens `/peerjs?key=K&id=ID&token=T`, gets
 * `OPEN`, and sends `OFFER`, `ANSWER`, `CANDIDATE` and `LEAVE` messages to
 * `dst`, which gets them with `src` set to the sender's id. Messages to an id
 * not connected wait for it for the expire time, then the sender gets
 * `EXPIRE`. `HEARTBEAT`s keep the socket alive.
 *
 * PeerJS ids are free strings; in the core they live under the `peerjs:`
 * prefix, which no id of the slash protocol (an ObjectId) can have. The token
 * is the id's resume token, so the id is held cluster-wide: another token
 * gets `ID-TAKEN` on any node, the same token takes the id over. A client
 * that closes its socket (a page reload, `peer.destroy()`) frees its id at
 * once, as peerjs-server does; a connection lost without a close keeps the id
 * for its token through the server's grace.
 */
import { Codes, type CommandName } from "../../protocol/mod.ts";
import type { Hub, Session } from "../hub/mod.ts";
import { Refusal } from "../hub/mod.ts";
import type { Connection } from "../hub/mod.ts";
import type { Frontend } from "./frontend.ts";
import { type Json, JsonSocket, translating } from "./json_socket.ts";

/** Options of {@linkcode peerjs}. */
export interface PeerjsOptions {
  /** The `key` clients must give. Default `"peerjs"`. */
  key?: string;
  /** Whether `GET /KEY/peers` lists the connected ids. Default false. */
  discovery?: boolean;
  /** How long a message waits for its target to connect, ms. Default 5000. */
  expireMs?: number;
  /** A socket that sends nothing for this long is closed, ms. Default 90000. */
  aliveMs?: number;
  /** `Origin`s that CORS lets read the HTTP routes; default: any. */
  allowOrigin?: string[];
  /**
   * Turned off: every socket on the path gets `ERROR` with this text and is
   * closed, so a PeerJS client says why; the HTTP routes are not served.
   */
  off?: string;
}

/** Where PeerJS ids live in the core. */
const PREFIX = "peerjs:";
/** The messages relayed to `dst`. */
const RELAYED = new Set(["OFFER", "ANSWER", "CANDIDATE", "LEAVE", "EXPIRE"]);
/** Messages to a `dst` not connected wait for it, except these (as peerjs-server). */
const NOT_QUEUED = new Set(["LEAVE", "EXPIRE"]);
/** Messages waiting for one target, at most. */
const MAX_WAITING = 256;

const Errors = {
  INVALID_KEY: "Invalid key provided",
  INVALID_WS_PARAMETERS: "No id, token, or key supplied to websocket server",
} as const;

/** The PeerJS front-end, on `/peerjs`, with its HTTP routes `/KEY/id` and `/KEY/peers`. */
export function peerjs(options: PeerjsOptions = {}): Frontend {
  const state = new PeerjsState({
    key: options.key ?? "peerjs",
    discovery: options.discovery ?? false,
    expireMs: options.expireMs ?? 5000,
    aliveMs: options.aliveMs ?? 90_000,
    allowOrigin: options.allowOrigin,
  });
  const off = options.off;
  if (off !== undefined) {
    return {
      path: "/peerjs",
      open(_hub, conn) {
        conn.send(JSON.stringify({ type: "ERROR", payload: { msg: off } }));
        conn.close(1008, off);
        return { text() {}, binary() {}, closed() {} };
      },
    };
  }
  return {
    path: "/peerjs",
    // The client parses each frame as one JSON message.
    batch: false,
    open: (hub, conn, url) => new PeerjsSocket(hub, conn, url, state),
    http: (req, url) => state.http(req, url),
  };
}

/** A message waiting for its target. */
interface Waiting {
  /** The sender's session: the message leaves as if sent by it, whatever became of it. */
  from: Session;
  src: string;
  text: string;
}

/** What the front-end knows across its sockets on this node. */
class PeerjsState {
  readonly o: Required<Omit<PeerjsOptions, "allowOrigin" | "off">> & { allowOrigin?: string[] };
  /** Ids connected here, for discovery. */
  readonly local = new Map<string, PeerjsSocket>();
  /** Messages waiting for their target, by target id, with when the first one began to wait. */
  readonly #waiting = new Map<string, { since: number; messages: Waiting[] }>();
  #hub?: Hub;
  #timer?: ReturnType<typeof setInterval>;

  constructor(o: PeerjsState["o"]) {
    this.o = o;
  }

  /** Whether messages for `dst` are waiting here (new ones queue behind them). */
  waits(dst: string): boolean {
    return this.#waiting.has(dst);
  }

  /** Queues a message for `dst`, which is not connected (yet). */
  wait(hub: Hub, dst: string, m: Waiting): void {
    this.#hub = hub;
    let w = this.#waiting.get(dst);
    if (w === undefined) this.#waiting.set(dst, w = { since: Date.now(), messages: [] });
    if (w.messages.length < MAX_WAITING) w.messages.push(m);
    // Retries reach a target that connects on another node; expiry tells the senders.
    this.#timer ??= setInterval(() => this.#tick(), Math.min(250, this.o.expireMs / 4));
  }

  /** Tries to deliver what waits for `dst`, in order; stops at the first that cannot go yet. */
  async flush(dst: string): Promise<void> {
    const w = this.#waiting.get(dst);
    const hub = this.#hub;
    if (w === undefined || hub === undefined) return;
    while (w.messages.length > 0) {
      const m = w.messages[0];
      if (!(await relay(hub, m.from, dst, m.text))) return;
      w.messages.shift();
    }
    if (this.#waiting.get(dst) === w) this.#waiting.delete(dst);
  }

  #tick(): void {
    const now = Date.now();
    for (const [dst, w] of this.#waiting) {
      if (now - w.since < this.o.expireMs) {
        void this.flush(dst);
        continue;
      }
      // Expired: each sender hears it once, as from peerjs-server.
      this.#waiting.delete(dst);
      const told = new Set<string>();
      for (const m of w.messages) {
        if (told.has(m.src)) continue;
        told.add(m.src);
        const expire = JSON.stringify({ type: "EXPIRE", src: dst, dst: m.src });
        void relay(this.#hub!, m.from, m.src, expire);
      }
    }
    if (this.#waiting.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** `GET /KEY/id`, `GET /KEY/peers`, and their CORS preflights. */
  http(req: Request, url: URL): Response | undefined {
    const base = `/${this.o.key}/`;
    if (!url.pathname.startsWith(base)) return undefined;
    const route = url.pathname.slice(base.length);
    if (route !== "id" && route !== "peers") return undefined;
    const headers = cors(req, this.o.allowOrigin);
    if (req.method === "OPTIONS") {
      headers.set("access-control-allow-methods", "GET,HEAD,PUT,PATCH,POST,DELETE");
      const asked = req.headers.get("access-control-request-headers");
      if (asked !== null) {
        headers.set("access-control-allow-headers", asked);
        headers.append("vary", "Access-Control-Request-Headers");
      }
      return new Response(null, { status: 204, headers });
    }
    if (req.method !== "GET" && req.method !== "HEAD") return undefined;
    if (route === "id") {
      headers.set("content-type", "text/html; charset=utf-8");
      return new Response(crypto.randomUUID(), { headers });
    }
    if (!this.o.discovery) {
      headers.set("content-type", "text/plain; charset=utf-8");
      return new Response("Unauthorized", { status: 401, headers });
    }
    headers.set("content-type", "application/json; charset=utf-8");
    return new Response(JSON.stringify([...this.local.keys()]), { headers });
  }
}

/** The CORS headers peerjs-server's `cors({ origin: true })` sends: the origin reflected. */
function cors(req: Request, allowed: string[] | undefined): Headers {
  const headers = new Headers({ vary: "Origin" });
  const origin = req.headers.get("origin");
  if (origin !== null && (allowed === undefined || allowed.includes(origin))) {
    headers.set("access-control-allow-origin", origin);
  }
  return headers;
}

/**
 * Sends `text` to PeerJS id `dst` as `from`, wherever `dst` is connected,
 * kept in no stream (PeerJS clients never ask for what they missed):
 * false when `dst` is not connected (the message may wait for it). At once
 * when `dst` is connected here, else once the store said where it is.
 */
function relay(hub: Hub, from: Session, dst: string, text: string): boolean | Promise<boolean> {
  relaying = text;
  try {
    const r = hub.relay(from, { peer: PREFIX + dst, text });
    return r instanceof Promise ? r.then(() => true, delivered) : true;
  } catch (e) {
    return delivered(e);
  } finally {
    relaying = undefined;
  }
}

/**
 * The PeerJS message being relayed, while the core delivers it within the
 * same call to a target on this node: the target's socket sends it as it is
 * instead of reading it back out of the core's event. (The core delivers
 * nothing else meanwhile; what it delivers later, or from the bus, is read.)
 */
let relaying: string | undefined;

/** Whether a refused relay is over (true) or its target is not connected (false). */
function delivered(e: unknown): boolean {
  // Any other refusal (the store or the cluster unreachable): lost, as a lost frame would be.
  return !(e instanceof Refusal && e.code === Codes.ERR_NOSUCHNICK);
}

/**
 * The `text` of a core `privmsg` event: only its string is parsed. The event's
 * fields are scalars with `text` after `from` and `to` and only `seq` after it
 * (PROTOCOL.md, "Events"); inside a JSON string a quote is always escaped, so
 * `,"text":` and `,"seq":` can only be the event's own keys.
 */
export function relayedText(event: string): string {
  const start = event.indexOf(`,"text":`) + 8;
  const seq = event.lastIndexOf(`,"seq":`);
  const end = seq > start ? seq : event.length - 1;
  try {
    return JSON.parse(event.slice(start, end)) as string;
  } catch {
    // Not the shape this expects (fields added after `text`): the whole event, then.
    return (JSON.parse(event) as { text: string }).text;
  }
}

/**
 * The client's own frame with `src` added, when it holds nothing but `type`,
 * `dst` and `payload` (as the peerjs client sends them): the payload is not
 * serialized again. Undefined for anything else (then rebuilt, as
 * peerjs-server does, dropping other fields and any `src` of the client's).
 */
export function withSrc(raw: string, m: Json, src: string): string | undefined {
  for (const k in m) if (k !== "type" && k !== "dst" && k !== "payload") return undefined;
  const end = raw.lastIndexOf("}");
  if (raw.charCodeAt(0) !== 123 || end < 0) return undefined;
  return `${raw.slice(0, end)},"src":${JSON.stringify(src)}${raw.slice(end)}`;
}

/** One PeerJS socket. */
class PeerjsSocket extends JsonSocket {
  protected readonly name = "peerjs";
  readonly #state: PeerjsState;
  /** The PeerJS id, once the socket holds it. */
  #id?: string;
  #lastSeen = Date.now();
  #alive?: ReturnType<typeof setTimeout>;

  constructor(hub: Hub, conn: Connection, url: URL, state: PeerjsState) {
    super(hub, conn);
    this.#state = state;
    const q = url.searchParams;
    const id = q.get("id"), token = q.get("token"), key = q.get("key");
    if (!id || !token || !key) this.#refuse("ERROR", Errors.INVALID_WS_PARAMETERS);
    else if (key !== state.o.key) this.#refuse("ERROR", Errors.INVALID_KEY);
    else this.#open(id, token);
  }

  #open(id: string, token: string): void {
    this.session = this.hub.open(translating(this.conn, (event) => this.#event(event)), {
      frontend: "peerjs",
      countsOut: true,
    });
    this.first(() => this.#claim(id, token));
  }

  /** Refuses the socket before it has a session, as peerjs-server does. */
  #refuse(type: string, msg: string): void {
    this.#send(type, JSON.stringify({ type, payload: { msg } }));
    this.conn.close(1000, msg);
  }

  #send(type: string, text: string): void {
    this.conn.send(text);
    this.hub.metrics.countOut("peerjs", type);
  }

  async #claim(id: string, token: string): Promise<void> {
    const s = this.session!;
    let replaced: boolean;
    try {
      ({ replaced } = await this.hub.claim(s, { id: PREFIX + id, name: id, token }));
    } catch (e) {
      if (s.gone) return;
      if (e instanceof Refusal && e.code === Codes.ERR_NICKNAMEINUSE) {
        this.#send(
          "ID-TAKEN",
          JSON.stringify({ type: "ID-TAKEN", payload: { msg: "ID is taken" } }),
        );
        this.hub.drop(s, 1000, "ID is taken");
      } else {
        if (e instanceof Refusal) {
          this.hub.log.warn("peerjs claim refused", { id, error: e.message });
        } else this.hub.unexpected("peerjs claim", e, { id });
        this.#send("ERROR", JSON.stringify({ type: "ERROR", payload: { msg: "Server error" } }));
        this.hub.drop(s, 1011, "server error");
      }
      return;
    }
    this.#id = id;
    this.#state.local.set(id, this);
    // Taking over a live socket with the same token is silent, as in peerjs-server.
    if (!replaced) this.#send("OPEN", `{"type":"OPEN"}`);
    this.#watch();
    // Messages that waited here for this id leave now, after OPEN.
    await this.#state.flush(id);
  }

  /** Closes the socket once it has been silent for the alive time. */
  #watch(): void {
    const left = this.#state.o.aliveMs - (Date.now() - this.#lastSeen);
    if (left > 0) {
      this.#alive = setTimeout(() => this.#watch(), left);
      return;
    }
    this.hub.drop(this.session!, 1000, "no heartbeat");
  }

  /** A core event for this socket: a relayed message's text is the PeerJS message itself. */
  #event(event: string): void {
    if (!event.startsWith(`{"type":"privmsg"`)) return;
    const text = relaying ?? relayedText(event);
    this.conn.send(text);
    // A relayed message has `type` first, as the peerjs client writes it: `{"type":"OFFER",…`.
    const type = text.startsWith(`{"type":"`) ? text.slice(9, text.indexOf(`"`, 9)) : "";
    this.hub.metrics.countOut("peerjs", RELAYED.has(type) ? type : "other");
  }

  rateAs(m: Json): CommandName | null {
    return m.type === "HEARTBEAT" ? null : "privmsg";
  }

  run(m: Json, raw: string): Promise<void> | undefined {
    this.#lastSeen = Date.now();
    const type = typeof m.type === "string" && (RELAYED.has(m.type) || m.type === "HEARTBEAT")
      ? m.type
      : "other";
    this.hub.metrics.countIn("peerjs", type);
    const src = this.#id;
    if (src === undefined || !RELAYED.has(type) || typeof m.dst !== "string") return;
    const dst = m.dst;
    // `src` is the sender's id, whatever the client wrote.
    const text = withSrc(raw, m, src) ?? JSON.stringify({ type, src, dst, payload: m.payload });
    const from = this.session!;
    if (this.#state.waits(dst)) {
      // Behind the messages already waiting for it: order holds.
      if (!NOT_QUEUED.has(type)) this.#state.wait(this.hub, dst, { from, src, text });
      return;
    }
    const wait = (sent: boolean) => {
      if (!sent && !NOT_QUEUED.has(type)) this.#state.wait(this.hub, dst, { from, src, text });
    };
    const sent = relay(this.hub, from, dst, text);
    if (typeof sent === "boolean") return void wait(sent);
    return sent.then(wait);
  }

  closed(code?: number): void {
    clearTimeout(this.#alive);
    this.clear();
    if (this.#id !== undefined && this.#state.local.get(this.#id) === this) {
      this.#state.local.delete(this.#id);
    }
    if (this.session === undefined) return;
    // A client that closed its socket left: its id is free at once, as in peerjs-server.
    // A lost connection keeps the id for its token through the grace.
    const left = code !== undefined && code !== 1006;
    this.hub.closed(this.session, left ? { graceMs: 0 } : {});
  }
}
