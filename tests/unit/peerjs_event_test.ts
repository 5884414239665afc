/**
 * The PeerJS front-end's string work: `src` added to a client's frame, a
 * relayed message read out of the core's `privmsg` event.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { relayedText, withSrc } from "../../server/frontends/peerjs.ts";

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

Deno.test("withSrc: the client's frame with src added, when it holds only type, dst, payload", () => {
  fc.assert(
    fc.property(fc.string(), fc.string(), fc.option(fc.jsonValue()), (dst, src, payload) => {
      const m: Record<string, unknown> = { type: "OFFER", dst };
      if (payload !== null) m.payload = payload;
      const raw = JSON.stringify(m);
      const out = withSrc(raw, JSON.parse(raw), src);
      assert.deepEqual(JSON.parse(out!), { ...JSON.parse(raw), src });
    }),
  );
});

Deno.test("withSrc: a frame with src or other fields, or leading space, is left to be rebuilt", () => {
  for (
    const raw of [
      `{"type":"OFFER","dst":"b","src":"forged"}`,
      `{"type":"OFFER","dst":"b","extra":1}`,
      `{"type":"OFFER","dst":"b","__proto__":{"src":"x"}}`,
      ` {"type":"OFFER","dst":"b"}`,
    ]
  ) {
    assert.equal(withSrc(raw, JSON.parse(raw), "a"), undefined, raw);
  }
});
