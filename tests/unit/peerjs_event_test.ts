/** The PeerJS front-end reads a relayed message out of the core's `privmsg` event. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { relayedText } from "../../server/frontends/peerjs.ts";

Deno.test("relayedText: the event's text, whatever it holds, with or without seq", () => {
  fc.assert(
    fc.property(fc.string(), fc.string(), fc.option(fc.nat()), (from, text, seq) => {
      const event: Record<string, unknown> = {
        type: "privmsg",
        id: "65a1f0c2e4b0a1b2c3d4e5f6",
        ts: 1,
        from: `peerjs:${from}`,
        to: `peerjs:${from},"text":"x","seq":1`,
        text,
      };
      if (seq !== null) event.seq = seq;
      assert.equal(relayedText(JSON.stringify(event)), text);
    }),
  );
  const tricky = `{"type":"OFFER","src":"a\\",\\"text\\":\\"","dst":"b","payload":",\\"seq\\":"}`;
  assert.equal(
    relayedText(
      JSON.stringify({ type: "privmsg", id: "i", ts: 1, from: "f", to: "t", text: tricky, seq: 3 }),
    ),
    tricky,
  );
});

Deno.test("relayedText: an event of another shape is read whole", () => {
  const event = JSON.stringify({ type: "privmsg", text: "hi", seq: 1, extra: "x" });
  assert.equal(relayedText(event), "hi");
});
