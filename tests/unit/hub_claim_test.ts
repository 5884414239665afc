/**
 * Unit tests of the hub's hooks for front-ends whose clients bring their own
 * id and token: `claim`, `closed` with a grace of its own, and messages
 * counted by front-end. Fake connections, no server.
 */
import assert from "node:assert/strict";
import { Codes } from "../../protocol/mod.ts";
import {
  type Connection,
  Hub,
  Refusal,
  type Session,
  type Translation,
} from "../../server/hub/mod.ts";
import { MemoryStore } from "../../server/store/memory.ts";

/** A connection that records what the hub sends. */
class FakeConnection implements Connection {
  frames: string[] = [];
  closedWith?: [number, string];
  bufferedAmount = 0;
  remoteAddress = "127.0.0.1";
  send(text: string): void {
    this.frames.push(text);
  }
  close(code: number, reason: string): void {
    this.closedWith ??= [code, reason];
  }
}

function setup() {
  let now = 1_000_000;
  const store = new MemoryStore({ maxChannels: 100, retentionMs: 60_000 }, () => now);
  // A long sweep period: the tests show what happens before the periodic sweep.
  const hub = new Hub({ store, now: () => now, graceMs: 30_000, sweepMs: 60_000 });
  const open = (frontend = "test") => {
    const conn = new FakeConnection();
    return { conn, s: hub.open(conn, { frontend }) };
  };
  return {
    hub,
    open,
    advance: (ms: number) => (now += ms),
    [Symbol.asyncDispose]: () => hub.shutdown(),
  };
}

/** The refusal code of a claim that must fail. */
async function refused(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    if (e instanceof Refusal) return e.code;
    throw e;
  }
  assert.fail("the claim succeeded");
}

Deno.test("hub.claim: a new id is taken with the client's own token", async () => {
  await using t = setup();
  const a = t.open();
  assert.deepEqual(await t.hub.claim(a.s, { id: "x:ann", name: "ann", token: "t1" }), {
    replaced: false,
  });
  assert.equal(a.s.id, "x:ann");
  const b = t.open();
  assert.equal(await refused(t.hub.claim(b.s, { id: "x:ann", name: "ann", token: "t2" })), 433);
  assert.equal(b.s.id, null);
});

Deno.test("hub.claim: the same token takes a live session over (4002), and says so", async () => {
  await using t = setup();
  const a = t.open();
  await t.hub.claim(a.s, { id: "x:ann", name: "ann", token: "t1" });
  const b = t.open();
  assert.deepEqual(await t.hub.claim(b.s, { id: "x:ann", name: "ann", token: "t1" }), {
    replaced: true,
  });
  assert.equal(a.conn.closedWith?.[0], 4002);
  assert.equal(b.conn.closedWith, undefined);
});

Deno.test("hub.claim: the token resumes an id in its grace, which no other token gets", async () => {
  await using t = setup();
  const a = t.open();
  await t.hub.claim(a.s, { id: "x:ann", name: "ann", token: "t1" });
  t.hub.closed(a.s);
  await Promise.resolve();
  const other = t.open();
  assert.equal(await refused(t.hub.claim(other.s, { id: "x:ann", name: "a", token: "t2" })), 433);
  const back = t.open();
  assert.deepEqual(await t.hub.claim(back.s, { id: "x:ann", name: "ann", token: "t1" }), {
    replaced: false,
  });
});

Deno.test("hub.closed with graceMs 0: the id is free at once, before any sweep", async () => {
  await using t = setup();
  const a = t.open();
  await t.hub.claim(a.s, { id: "x:ann", name: "ann", token: "t1" });
  t.hub.closed(a.s, { graceMs: 0 });
  await Promise.resolve();
  const b = t.open();
  assert.deepEqual(await t.hub.claim(b.s, { id: "x:ann", name: "ann", token: "t2" }), {
    replaced: false,
  });
  assert.equal(b.s.id, "x:ann");
});

Deno.test("hub: an id whose grace ended is free before the periodic sweep", async () => {
  await using t = setup();
  const a = t.open();
  await t.hub.claim(a.s, { id: "x:ann", name: "ann", token: "t1" });
  t.hub.closed(a.s);
  await Promise.resolve();
  t.advance(30_001);
  const b = t.open();
  await t.hub.claim(b.s, { id: "x:ann", name: "ann", token: "t2" });
  assert.equal(b.s.id, "x:ann");
});

Deno.test("hub.claim: a described session cannot claim again (462)", async () => {
  await using t = setup();
  const a = t.open();
  await t.hub.claim(a.s, { id: "x:ann", name: "ann", token: "t1" });
  assert.equal(
    await refused(t.hub.claim(a.s, { id: "x:bob", name: "bob", token: "t1" })),
    Codes.ERR_ALREADYREGISTERED,
  );
});

Deno.test("hub: messages out are counted by the recipient's front-end", async () => {
  await using t = setup();
  const a = t.open("one"), b = t.open("two");
  await t.hub.claim(a.s, { id: "x:a", name: "a", token: "t" });
  await t.hub.claim(b.s, { id: "x:b", name: "b", token: "t" });
  const privmsg = (from: Session, to: string) =>
    t.hub.commands.privmsg(from, { peer: to, text: "hi" });
  await privmsg(a.s, "x:b");
  await privmsg(a.s, "x:b");
  await privmsg(b.s, "x:a");
  assert.equal(t.hub.metrics.messagesOut.get("two")?.get("privmsg"), 2);
  assert.equal(t.hub.metrics.messagesOut.get("one")?.get("privmsg"), 1);
  // A front-end that translates the core's events counts what it sends itself.
  const c = { conn: new FakeConnection(), s: undefined as unknown as Session };
  c.s = t.hub.open(c.conn, { frontend: "three", countsOut: true });
  await t.hub.claim(c.s, { id: "x:c", name: "c", token: "t" });
  await privmsg(a.s, "x:c");
  assert.equal(c.conn.frames.length, 1);
  assert.equal(t.hub.metrics.messagesOut.get("three"), undefined);
  assert.match(
    t.hub.metrics.render(),
    /^signaller_messages_out_total\{frontend="two",type="privmsg"\} 2$/m,
  );
});

Deno.test("hub: channel events of translating sockets go through the native fan-out, translated once", async () => {
  await using t = setup();
  const published: { topic: string; text: string; except?: Connection }[] = [];
  const subscribed = new Map<Connection, Set<string>>();
  t.hub.useFanout({
    accepts: (conn) => conn instanceof FakeConnection,
    subscribe: (conn, topic) =>
      void subscribed.set(conn, (subscribed.get(conn) ?? new Set()).add(topic)),
    unsubscribe: (conn, topic) => void subscribed.get(conn)?.delete(topic),
    publish: (topic, text, except) => (published.push({ topic, text, except }), false),
  });
  let translated = 0;
  const translation: Translation = {
    key: "tr",
    translate: (event) => {
      translated++;
      const e = JSON.parse(event);
      return e.type === "pubmsg" ? { text: `T(${e.text})`, type: "said" } : undefined;
    },
  };
  const open = () => {
    const raw = new FakeConnection();
    const wrapper: Connection = {
      send: () => {},
      close: (code, reason) => raw.close(code, reason),
      bufferedAmount: 0,
      remoteAddress: raw.remoteAddress,
      native: { conn: raw, translation },
    };
    return { raw, s: t.hub.open(wrapper, { frontend: "tr", countsOut: true }) };
  };
  const [a, b, c] = [open(), open(), open()];
  for (const [i, x] of [a, b, c].entries()) {
    await t.hub.claim(x.s, { id: `x:${i}`, name: "n", token: "t" });
    await t.hub.commands.join(x.s, { channel: "x:room" });
  }
  assert.deepEqual([...subscribed.get(b.raw)!], ["c:x:room\ntr"]);
  translated = 0;
  await t.hub.commands.pubmsg(a.s, { channel: "x:room", text: "hi" });
  assert.equal(translated, 1);
  const last = published.at(-1)!;
  assert.deepEqual([last.topic, last.text], ["c:x:room\ntr", "T(hi)"]);
  assert.equal(last.except, a.raw, "the sender's own socket is skipped");
  assert.equal(t.hub.metrics.messagesOut.get("tr")?.get("said"), 2);
  // A socket that closed is no longer counted (the runtime drops its subscriptions itself).
  t.hub.closed(b.s, { graceMs: 0 });
  await t.hub.commands.pubmsg(a.s, { channel: "x:room", text: "again" });
  assert.equal(t.hub.metrics.messagesOut.get("tr")?.get("said"), 3);
  // One that leaves the channel leaves the topic.
  await t.hub.commands.quit(c.s, { channel: "x:room" });
  assert.deepEqual([...subscribed.get(c.raw)!], []);
});

Deno.test("hub.relay: a message kept in no stream; a peer in its grace is 401", async () => {
  const now = 1_000_000;
  const store = new MemoryStore(
    { maxChannels: 100, retentionMs: 60_000, history: 10, historyTtlMs: 60_000 },
    () => now,
  );
  const hub = new Hub({ store, now: () => now, graceMs: 30_000, sweepMs: 60_000 });
  try {
    const a = hub.open(new FakeConnection()), bConn = new FakeConnection();
    const b = hub.open(bConn);
    await hub.claim(a, { id: "x:a", name: "a", token: "t" });
    await hub.claim(b, { id: "x:b", name: "b", token: "t" });
    await hub.relay(a, { peer: "x:b", text: "hi" });
    assert.equal(JSON.parse(bConn.frames[0]).text, "hi");
    assert.equal("seq" in JSON.parse(bConn.frames[0]), false, "kept in no stream");
    hub.closed(b);
    await Promise.resolve();
    assert.equal(
      await refused(Promise.resolve().then(() => hub.relay(a, { peer: "x:b", text: "x" }))),
      401,
    );
  } finally {
    await hub.shutdown();
  }
});
