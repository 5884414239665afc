/**
 * Message events are written field by field (`server/hub/events.ts`): the
 * bytes must be those `JSON.stringify` of the event gives, whatever the
 * strings a client chose hold.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { head, message } from "../../server/hub/events.ts";
import { newId } from "../../server/ids.ts";

Deno.test("head and message: the bytes of JSON.stringify, for privmsg and pubmsg", () => {
  fc.assert(
    fc.property(
      fc.string({ unit: "binary" }),
      fc.string({ unit: "binary" }),
      fc.nat(),
      (text, peer, ts) => {
        const id = newId();
        // PeerJS ids are free strings: `from` and `to` may hold anything.
        const pm = { type: "privmsg" as const, id, ts, from: `peerjs:${peer}`, to: peer, text };
        assert.equal(head(pm) + "}", JSON.stringify(pm));
        assert.deepEqual(message(pm), { type: "privmsg", text: JSON.stringify(pm) });
        const channel = "#" + newId();
        const cm = { type: "pubmsg" as const, id, ts, from: newId(), channel, text };
        assert.equal(head(cm) + "}", JSON.stringify(cm));
        // y-webrtc topics are free strings: so are the channels they map to.
        const topic = { ...cm, channel: `y-webrtc:${peer}` };
        assert.equal(head(topic) + "}", JSON.stringify(topic));
      },
    ),
  );
  const lone = {
    type: "privmsg" as const,
    id: newId(),
    ts: 1,
    from: "a",
    to: "b",
    text: '\ud800"\n',
  };
  assert.equal(head(lone) + "}", JSON.stringify(lone));
});
