/**
 * The test page's script for PeerJS: the unchanged `peerjs` client, driven
 * from the test through `globalThis.pj`.
 */
import { type DataConnection, Peer, type PeerOptions } from "peerjs";

let peer: Peer | undefined;
const conns = new Map<string, DataConnection>();
const received: unknown[] = [];
const errors: string[] = [];
let disconnects = 0;

function track(c: DataConnection): void {
  conns.set(c.peer, c);
  c.on("data", (d) => received.push(d));
}

/** Resolves with `open:<id>` on the peer's next `open`, or `error:<type>` on its next error. */
function opened(p: Peer): Promise<string> {
  return new Promise((resolve) => {
    p.once("open", (id) => resolve(`open:${id}`));
    p.once("error", (e) => resolve(`error:${e.type}`));
  });
}

const pj = {
  /** Creates the page's peer as `new Peer(id, { host, port, path: "/" , key })` would. */
  start(id: string, options: PeerOptions): Promise<string> {
    // Only this machine's own candidates: no STUN server is reached.
    peer = new Peer(id, { ...options, config: { iceServers: [] } });
    peer.on("connection", track);
    peer.on("error", (e) => errors.push(e.type));
    peer.on("disconnected", () => disconnects++);
    return opened(peer);
  },
  /** Opens a DataConnection to `target`: `open`, or `error:<type>` from the peer. */
  connect(target: string): Promise<string> {
    const c = peer!.connect(target, { reliable: true });
    track(c);
    return new Promise((resolve) => {
      c.on("open", () => resolve("open"));
      peer!.once("error", (e) => resolve(`error:${e.type}`));
    });
  },
  /** Whether a DataConnection with `target` is open. */
  isOpen(target: string): boolean {
    return conns.get(target)?.open === true;
  },
  send(target: string, data: unknown): void {
    conns.get(target)!.send(data);
  },
  received(): unknown[] {
    return [...received];
  },
  errors(): string[] {
    return [...errors];
  },
  /** How often the peer lost its server connection. */
  disconnects(): number {
    return disconnects;
  },
  /** Reconnects to the server with the same id and token, after a lost connection. */
  reconnect(): Promise<string> {
    const p = opened(peer!);
    peer!.reconnect();
    return p;
  },
  destroy(): void {
    peer?.destroy();
  },
};
Object.assign(globalThis, { pj });
