/** `/descp`: the first command, its reply, its errors, re-description and identity. */
import assert from "node:assert/strict";
import { assertKeys } from "../support/asserts.ts";
import { closeAll, connect, describe, group, newChannel, newId, peer } from "../support/client.ts";
import { bbtest, sharedServer, startServer } from "../support/server.ts";
import { delay, within } from "../support/wait.ts";

const server = await sharedServer();

bbtest("/descp succeeds with { peer, resume, admin, channels, server }", async (rt) => {
  await using c = await connect(server(rt).url);
  const id = newId();
  const data = await describe(c, { id, name: "Alice", color: "red", n: 3, nested: { a: [1] } });
  const allowed = ["peer", "resume", "admin", "channels", "server", "iceServers", "inbox"];
  for (const k of Object.keys(data)) assert.ok(allowed.includes(k), `unexpected field ${k}`);
  assertKeys(data.peer, ["id", "name", "meta"], "peer");
  assert.equal(data.peer.id, id);
  assert.equal(data.peer.name, "Alice");
  assert.deepEqual(data.peer.meta, { color: "red", n: 3, nested: { a: [1] } });
  assert.equal(data.admin, false);
  assert.equal(typeof data.inbox.epoch, "string", "streams are on by default");
  assert.equal(data.inbox.seq, 0, "a new peer's inbox is empty");
  assert.deepEqual(data.channels, []);
  assert.equal(typeof data.resume, "string");
  // At least 128 bits of randomness: no encoding packs that into fewer than 16 characters.
  assert.ok(data.resume.length >= 16, `resume token too short: ${data.resume}`);
  assert.ok(data.server.name.length > 0 && data.server.version.length > 0);
  assert.ok(data.server.node.length > 0);
});

bbtest("/descp gives every peer a different resume token", async (rt) => {
  await using g = group(await peer(server(rt).url), await peer(server(rt).url));
  assert.notEqual(g[0].resume, g[1].resume);
});

/** The bytes a resume token encodes: hex or base64(url), the encodings an opaque token uses. */
function tokenBytes(token: string): Uint8Array {
  if (/^(?:[0-9a-f]{2})+$/i.test(token)) {
    return Uint8Array.from(token.match(/../g)!, (h) => parseInt(h, 16));
  }
  assert.match(token, /^[A-Za-z0-9+/_-]+={0,2}$/, `resume token in an unknown encoding: ${token}`);
  const b64 = token.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  const bin = atob(b64 + "=".repeat((4 - b64.length % 4) % 4));
  return Uint8Array.from(bin, (ch) => ch.charCodeAt(0));
}

bbtest("resume tokens carry at least 128 random bits", async (rt) => {
  const N = 40;
  const tokens: string[] = [];
  for (let i = 0; i < N; i += 8) {
    const batch = await Promise.all(Array.from({ length: 8 }, () => peer(server(rt).url)));
    tokens.push(...batch.map((c) => c.resume));
    await closeAll(batch);
  }
  assert.equal(new Set(tokens).size, N, "every token is different");
  const bytes = tokens.map(tokenBytes);
  const len = Math.min(...bytes.map((b) => b.length));
  assert.ok(len >= 16, `a token decodes to ${len} bytes: fewer than 128 bits`);
  // Random bytes differ somewhere among 40 tokens in every position (a fixed byte, a
  // counter's high bytes or a timestamp would not), and so does nearly every bit.
  let varyingBits = 0;
  for (let i = 0; i < len; i++) {
    const seen = new Set(bytes.map((b) => b[i]));
    assert.ok(seen.size > 1, `byte ${i} of the token is the same in all ${N} tokens`);
    for (let bit = 0; bit < 8; bit++) {
      if (new Set(bytes.map((b) => (b[i] >> bit) & 1)).size > 1) varyingBits++;
    }
  }
  assert.ok(varyingBits >= 128, `only ${varyingBits} bits vary across ${N} tokens`);
});

for (
  const frame of [
    () => `/join ${newChannel()}`,
    () => `/privmsg ${newId()} hello`,
    () => `/whois ${newId()}`,
    () => `/away gone`,
    () => `/quit ${newChannel()}`,
  ]
) {
  const sample = frame().split(" ")[0];
  bbtest(`${sample} before /descp gets 451 and the server closes with 4001`, async (rt) => {
    await using c = await connect(server(rt).url);
    await c.fail(frame(), 451);
    const { code } = await within(c.closed, 5000, "close 4001 after 451");
    assert.equal(code, 4001);
  });
}

bbtest("frames that are no command before /descp get 421 and the connection stays", async (rt) => {
  await using c = await connect(server(rt).url);
  await c.fail("hello", 421, null);
  await c.fail("/nosuchcommand x", 421, null);
  c.send(new Uint8Array([47, 106, 111, 105, 110])); // "/join" as a binary frame
  const m = await c.reply();
  assert.equal(m.type, "error");
  assert.equal(m.code, 421);
  assert.equal(m.cmd, null);
  await describe(c);
  assert.equal(c.ws.readyState, WebSocket.OPEN);
});

bbtest("a failed /descp gets its error and may be retried", async (rt) => {
  await using c = await connect(server(rt).url);
  const id = newId();
  await c.fail("/descp {not json", 432);
  await c.fail("/descp [1,2]", 432);
  await c.fail('/descp "a string"', 432);
  await c.fail(`/descp ${JSON.stringify({ id })}`, 432); // name missing
  await c.fail(`/descp ${JSON.stringify({ id, name: "" })}`, 432); // name empty
  await c.fail(`/descp ${JSON.stringify({ id, name: 42 })}`, 432); // name not a string
  await c.fail(`/descp ${JSON.stringify({ id: "xyz", name: "a" })}`, 432); // malformed id
  await c.fail(`/descp ${JSON.stringify({ name: "a" })}`, 432); // id missing
  await c.fail(`/descp ${JSON.stringify({ id: id + "0", name: "a" })}`, 432); // 25 digits
  await c.fail("/descp", 461);
  const data = await describe(c, { id, name: "finally" });
  assert.equal(data.peer.id, id);
  assert.equal(c.ws.readyState, WebSocket.OPEN);
});

bbtest("/descp name: 64 code points accepted, 65 gets 417", async (rt) => {
  await using c = await connect(server(rt).url);
  const emoji = "\u{1F600}"; // two UTF-16 units, one code point
  await c.fail(`/descp ${JSON.stringify({ id: newId(), name: emoji.repeat(65) })}`, 417);
  await c.fail(`/descp ${JSON.stringify({ id: newId(), name: "x".repeat(65) })}`, 417);
  const data = await describe(c, { name: emoji.repeat(64) });
  assert.equal(data.peer.name, emoji.repeat(64));
});

bbtest("/descp meta over 4 KiB of JSON gets 417", async (rt) => {
  await using c = await connect(server(rt).url);
  await c.fail(`/descp ${JSON.stringify({ id: newId(), name: "a", blob: "x".repeat(4200) })}`, 417);
  const data = await describe(c, { blob: "y".repeat(3000) });
  assert.equal(data.peer.meta.blob, "y".repeat(3000));
});

bbtest("417 (size) outranks 432 (syntax) in /descp", async (rt) => {
  await using c = await connect(server(rt).url);
  await c.fail(`/descp ${JSON.stringify({ id: "bad", name: "x".repeat(65) })}`, 417);
});

bbtest("reserved descp fields (resume, token, admin) are never stored in meta", async (rt) => {
  const url = server(rt).url;
  await using a = await connect(url);
  const data = await describe(a, { name: "a", admin: "not-the-token", token: "tok", keep: 1 });
  assert.deepEqual(data.peer.meta, { keep: 1 });
  assert.equal(data.admin, false);
  await using b = await peer(url);
  const w = await b.ok(`/whois ${a.id}`);
  assert.deepEqual(w.meta, { keep: 1 });
  assert.ok(!JSON.stringify(w).includes("not-the-token"));
  assert.ok(!JSON.stringify(w).includes(a.resume));
});

bbtest("__proto__ and constructor keys in /descp are plain meta data", async (rt) => {
  const url = server(rt).url;
  await using a = await connect(url);
  const id = newId();
  const raw = `{"id":"${id}","name":"evil","__proto__":{"polluted":true},` +
    `"constructor":{"prototype":{"polluted":true}},"toString":"x"}`;
  const data = (await a.ok(`/descp ${raw}`)).peer;
  assert.ok(Object.hasOwn(data.meta, "__proto__"), "__proto__ kept as an own key");
  assert.deepEqual(data.meta["__proto__"], { polluted: true });
  assert.deepEqual(data.meta.constructor, { prototype: { polluted: true } });
  assert.equal(data.meta.toString, "x");
  // The server still works, for this peer and for others.
  await using b = await peer(url);
  const w = await b.ok(`/whois ${id}`);
  assert.ok(Object.hasOwn(w.meta, "__proto__"));
  assert.deepEqual(w.meta.constructor, { prototype: { polluted: true } });
  const ch = newChannel();
  await a.ok(`/join ${ch}`);
  const j = await b.ok(`/join ${ch}`);
  assert.equal(j.total, 2);
  for (const m of j.members) assert.equal(m.polluted, undefined);
  await b.ok(`/pubmsg ${ch} still alive`);
  assert.equal((await a.event("pubmsg")).text, "still alive");
});

bbtest(
  "a second /descp with the same id updates name and meta, co-members get no event",
  async (rt) => {
    const url = server(rt).url;
    await using a = await peer(url, { name: "before", v: 1 });
    await using b = await peer(url, { name: "b" });
    const ch = newChannel();
    await a.ok(`/join ${ch}`);
    await b.ok(`/join ${ch}`);
    await a.event("join");
    const again = await a.ok(`/descp ${JSON.stringify({ id: a.id, name: "after", v: 2 })}`);
    assert.equal(again.peer.name, "after");
    assert.deepEqual(again.peer.meta, { v: 2 });
    assert.equal(again.resume, a.resume, "the resume token stays the same for the peer's life");
    assert.deepEqual(again.channels, [ch]);
    // Barrier: anything the re-description sent to b arrives before this pubmsg.
    await a.ok(`/pubmsg ${ch} sync`);
    await b.event("pubmsg");
    assert.deepEqual(b.pending(), [], "no event for a re-description");
    const w = await b.ok(`/whois ${a.id}`);
    assert.equal(w.name, "after");
    assert.deepEqual(w.meta, { v: 2 });
    const p = await b.ok(`/peers ${ch}`);
    assert.equal(p.peers.find((e: { id: string }) => e.id === a.id)?.name, "after");
  },
);

bbtest("a second /descp with a different id gets 462 and the peer keeps its id", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url);
  const other = newId();
  await a.fail(`/descp ${JSON.stringify({ id: other, name: "x" })}`, 462);
  const w = await a.ok(`/whois ${a.id}`);
  assert.equal(w.online, true);
  await a.fail(`/whois ${other}`, 401);
});

bbtest("/descp with an id that is online gets 433, the first session is untouched", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url, { name: "first" });
  await using b = await connect(url);
  await b.fail(`/descp ${JSON.stringify({ id: a.id, name: "thief" })}`, 433);
  await b.fail(`/descp ${JSON.stringify({ id: a.id.toUpperCase(), name: "thief" })}`, 433);
  await b.fail(`/descp ${JSON.stringify({ id: a.id, name: "thief", resume: "wrong" })}`, 433);
  // A failed descp may be retried with another id.
  await describe(b);
  const w = await b.ok(`/whois ${a.id}`);
  assert.equal(w.name, "first");
  await a.ok(`/privmsg ${b.id} still here`);
  assert.equal((await b.event("privmsg")).from, a.id);
});

bbtest("/descp with an uppercase id is reported lowercase", async (rt) => {
  await using c = await connect(server(rt).url);
  const id = newId();
  const data = await c.ok(`/descp ${JSON.stringify({ id: id.toUpperCase(), name: "Up" })}`);
  assert.equal(data.peer.id, id);
  await using d = await peer(server(rt).url);
  const w = await d.ok(`/whois ${id.toUpperCase()}`);
  assert.equal(w.id, id);
});

bbtest("/DESCP is case-insensitive", async (rt) => {
  await using c = await connect(server(rt).url);
  const id = newId();
  const m = await c.cmd(`/DeScP ${JSON.stringify({ id, name: "x" })}`);
  assert.equal(m.type, "ok");
  assert.equal(m.cmd, "descp");
});

bbtest("no /descp within --handshake-ms closes with 4001; a described peer stays", async (rt) => {
  const HANDSHAKE = 300;
  await using s = await startServer({ runtime: rt, args: ["--handshake-ms", String(HANDSHAKE)] });
  // Taken before connecting: the server starts each socket's timer later than this.
  const t0 = Date.now();
  await using idle = await connect(s.url, "idle");
  await using failed = await connect(s.url, "failed");
  await using described = await connect(s.url, "described");
  const tDescribed = Date.now();
  await describe(described);
  // A failed descp does not stop the handshake timer.
  await failed.fail("/descp {bad", 432);
  const r = await within(Promise.all([idle.closed, failed.closed]), 10_000, "close of both");
  assert.equal(r[0].code, 4001);
  assert.equal(r[1].code, 4001);
  assert.ok(Date.now() - t0 >= HANDSHAKE, "closed before the handshake time");
  // Quiet period: past the described socket's own deadline, with room to spare, it is open.
  await delay(Math.max(0, tDescribed + HANDSHAKE + 300 - Date.now()));
  assert.equal(described.ws.readyState, WebSocket.OPEN);
  await described.ok(`/whois ${described.id}`);
});
