/**
 * The test page's script for y-webrtc: the unchanged `yjs` and `y-webrtc`
 * clients, driven from the test through `globalThis.yw`.
 */
import { WebrtcProvider } from "y-webrtc";
import * as Y from "yjs";

let doc: Y.Doc | undefined;
let provider: WebrtcProvider | undefined;

const yw = {
  /** Joins `room` through the signalling server at `signaling`, with no STUN server. */
  join(room: string, signaling: string): void {
    doc = new Y.Doc();
    provider = new WebrtcProvider(room, doc, {
      signaling: [signaling],
      // Only this machine's own candidates: no STUN server is reached.
      peerOpts: { config: { iceServers: [] } },
    });
  },
  /** Inserts `s` at the end of the shared text. */
  type(s: string): void {
    const text = doc!.getText("t");
    text.insert(text.length, s);
  },
  /** The shared text. */
  text(): string {
    return doc!.getText("t").toString();
  },
  /** How many peers this page has a WebRTC connection with. */
  peers(): number {
    let n = 0;
    provider?.room?.webrtcConns.forEach((c) => n += c.connected ? 1 : 0);
    return n;
  },
  leave(): void {
    provider?.destroy();
    doc?.destroy();
  },
};
Object.assign(globalThis, { yw });
