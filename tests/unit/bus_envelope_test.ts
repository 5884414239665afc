/** Unit tests of the envelope wire format between nodes (server/bus/envelope.ts). */
import assert from "node:assert/strict";
import type { Envelope } from "../../server/bus/bus.ts";
import {
  decodeEnvelope,
  decodeEnvelopes,
  encodeBatch,
  encodeEnvelope,
} from "../../server/bus/envelope.ts";

const ORIGIN = "65a1f0c2e4b0a1b2c3d4e5f6";
const SELF = "65a1f0c2e4b0a1b2c3d4e5f7";

Deno.test("an envelope with every field decodes on another node as it was sent", () => {
  const env: Envelope = {
    text: '{"type":"kick","channel":"#c","by":"a","target":"b"}',
    except: "65a1f0c2e4b0a1b2c3d4e5f8",
    channels: ["#65a1f0c2e4b0a1b2c3d4e5f9", "#65a1f0c2e4b0a1b2c3d4e5fa"],
    drop: "b",
    replace: "session-1",
  };
  assert.deepEqual(decodeEnvelope(encodeEnvelope(ORIGIN, env), SELF), env);
});

Deno.test("the text travels verbatim after the header, newlines and all", () => {
  const text = '{"type":"pubmsg","text":"a\\nb"}\n{"type":"notice"}\nraw \u2028 🐱';
  const payload = encodeEnvelope(ORIGIN, { text, except: "x" });
  assert.equal(payload, `${ORIGIN}\n{"except":"x"}\n${text}`);
  assert.deepEqual(decodeEnvelope(payload, SELF), { text, except: "x" });
});

Deno.test("a text alone has an empty header; an empty text is kept", () => {
  assert.equal(encodeEnvelope(ORIGIN, { text: "{}" }), `${ORIGIN}\n\n{}`);
  assert.deepEqual(decodeEnvelope(`${ORIGIN}\n\n{}`, SELF), { text: "{}" });
  assert.deepEqual(decodeEnvelope(encodeEnvelope(ORIGIN, { text: "" }), SELF), { text: "" });
});

Deno.test("without a text there is no second newline and no text on decoding", () => {
  const payload = encodeEnvelope(ORIGIN, { replace: "s1" });
  assert.equal(payload, `${ORIGIN}\n{"replace":"s1"}`);
  assert.deepEqual(decodeEnvelope(payload, SELF), { replace: "s1" });
  assert.equal(encodeEnvelope(ORIGIN, {}), `${ORIGIN}\n`);
  assert.deepEqual(decodeEnvelope(`${ORIGIN}\n`, SELF), {});
});

Deno.test("a node's own envelopes decode to null", () => {
  assert.equal(decodeEnvelope(encodeEnvelope(SELF, { text: "{}" }), SELF), null);
  assert.equal(decodeEnvelope(encodeEnvelope(SELF, {}), SELF), null);
});

Deno.test("an origin that merely starts or ends like this node's id is another node", () => {
  for (const origin of [SELF + "0", SELF.slice(1), SELF.slice(0, -1)]) {
    assert.deepEqual(decodeEnvelope(encodeEnvelope(origin, { text: "{}" }), SELF), {
      text: "{}",
    }, origin);
  }
});

Deno.test("a garbled payload decodes to null", () => {
  for (const payload of ["", "no newline", `${ORIGIN}\n{not json`, `${ORIGIN}\n{"a":1\n{}`]) {
    assert.equal(decodeEnvelope(payload, SELF), null, JSON.stringify(payload));
  }
});

Deno.test("an envelope with an empty origin (a store's stream message) reaches every node", () => {
  const payload = '\n{"type":"pubmsg","seq":7,"except":"p1"}\n{"seq":7}';
  assert.deepEqual(
    encodeEnvelope("", { text: '{"seq":7}', type: "pubmsg", seq: 7, except: "p1" }),
    payload,
  );
  for (const self of [SELF, "n", "x"]) {
    assert.deepEqual(decodeEnvelope(payload, self), {
      type: "pubmsg",
      seq: 7,
      except: "p1",
      text: '{"seq":7}',
    });
  }
});

Deno.test("a batch decodes on another node as the envelopes it holds, in order", () => {
  const envs: Envelope[] = [
    { type: "privmsg", text: '{"type":"privmsg","text":"a"}' },
    { replace: "s1" },
    { text: "" },
    { text: "line\nbreak\n-\n*\n12\n", except: "x" },
    {},
    { presence: ["a", "b"] },
    { text: "🐱 \u2028 last" },
  ];
  const payload = encodeBatch(ORIGIN, envs);
  assert.deepEqual(decodeEnvelopes(payload, SELF), envs);
  assert.deepEqual(decodeEnvelopes(payload, ORIGIN), []);
  // One envelope decodes the same either way.
  const one = encodeEnvelope(ORIGIN, { text: "{}", except: "y" });
  assert.deepEqual(decodeEnvelopes(one, SELF), [{ text: "{}", except: "y" }]);
});

Deno.test("a garbled batch decodes to nothing, never to a part of it", () => {
  const payload = encodeBatch(ORIGIN, [{ text: "abc" }, { text: "defg" }]);
  for (let cut = ORIGIN.length + 2; cut < payload.length; cut++) {
    const got = decodeEnvelopes(payload.slice(0, cut), SELF);
    assert.ok(
      got === null || got.length === 0 || got.length === 1 && got[0].text === "abc",
      `cut ${cut}`,
    );
  }
  assert.equal(decodeEnvelopes(`${ORIGIN}\n*\n{}\nx\nabc`, SELF), null);
  assert.equal(decodeEnvelopes(`${ORIGIN}\n*\n[1]\n-`, SELF), null);
  assert.equal(decodeEnvelopes(`${ORIGIN}\n*\n{}\n99\nabc`, SELF), null);
  assert.equal(decodeEnvelopes("no newline", SELF), null);
});
