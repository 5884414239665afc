/** Unit tests of the hub with fake connections: no sockets, no server. */
import assert from "node:assert/strict";
import { Codes, MAX_QUEUED_FRAMES as MAX_QUEUE, newChannelId, newId } from "../../protocol/mod.ts";

import type { SocketHandler } from "../../server/frontends/frontend.ts";
import { slash } from "../../server/frontends/slash.ts";
import { type Connection, Hub, type HubOptions } from "../../server/hub/mod.ts";
import { sameSecret as sameText } from "../../server/secrets.ts";
import { MemoryStore } from "../../server/store/memory.ts";
import type { Store } from "../../server/store/store.ts";

/** A connection that records what the hub sends. */
class FakeConnection implements Connection {
  frames: string[] = [];
  closedWith?: [number, string];
  bufferedAmount = 0;
  remoteAddress = "127.0.0.1";
  session!: SocketHandler;
  send(text: string): void {
    this.frames.push(text);
  }
  close(code: number, reason: string): void {
    this.closedWith ??= [code, reason];
  }
  /** Every object received, in order. */
  get messages(): Record<string, unknown>[] {
    return this.frames.flatMap((f) => f.split("\n")).map((l) => JSON.parse(l));
  }
  replies() {
    return this.messages.filter((m) => m.type === "ok" || m.type === "error");
  }
  events(type: string) {
    return this.messages.filter((m) => m.type === type);
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));
const limits = { maxChannels: 100, retentionMs: 60_000 };

function setup(o: Partial<HubOptions> = {}) {
  let now = 1_000_000;
  const store = o.store ?? new MemoryStore(limits, () => now);
  const hub = new Hub({ store, now: () => now, sweepMs: 10, ...o });
  const open = () => {
    const c = new FakeConnection();
    c.session = slash.open(hub, c, new URL("ws://localhost/"));
    return c;
  };
  /** Sends frames and waits (bounded) for their replies, or for the socket to close. */
  const say = async (c: FakeConnection, ...frames: string[]) => {
    const want = c.replies().length + frames.length;
    for (const f of frames) c.session.text(f);
    for (let i = 0; i < 5; i++) await tick();
    for (let waited = 0; waited < 5000; waited += 5) {
      if (c.replies().length >= want || c.closedWith !== undefined) break;
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const peer = async (name = "p") => {
    const c = open();
    const id = newId();
    await say(c, `/descp {"id":"${id}","name":"${name}"}`);
    const r = c.replies().at(-1)!;
    assert.equal(r.type, "ok", JSON.stringify(r));
    return { c, id, resume: (r.data as { resume: string }).resume };
  };
  return {
    hub,
    open,
    say,
    peer,
    advance: (ms: number) => (now += ms),
    [Symbol.asyncDispose]: () => hub.shutdown(),
  };
}

Deno.test("hub: a command before /descp gets 451 and the connection closes 4001", async () => {
  await using t = setup();
  const c = t.open();
  await t.say(c, `/join ${newChannelId()}`);
  assert.equal(c.replies()[0].code, Codes.ERR_NOTREGISTERED);
  assert.deepEqual(c.closedWith?.[0], 4001);
});

Deno.test("hub: no /descp within the handshake time closes 4001", async () => {
  await using t = setup({ handshakeMs: 20 });
  const c = t.open();
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(c.closedWith?.[0], 4001);
});

/** A store whose every call waits `ms`: the hub must still reply in order. */
function slowStore(inner: Store, ms: () => number): Store {
  return new Proxy(inner, {
    get(target, prop) {
      const v = Reflect.get(target, prop);
      if (typeof v !== "function") return v;
      return (...args: unknown[]) =>
        new Promise((r) => setTimeout(r, ms())).then(() => v.apply(target, args));
    },
  });
}

Deno.test("hub: replies leave in command order when the store answers out of order", async () => {
  const store = slowStore(new MemoryStore(limits), () => Math.random() * 5);
  await using t = setup({ store, rate: 0 });
  const { c } = await t.peer();
  const ch = newChannelId();
  const frames = [`/join ${ch}`];
  const expect = ["join"];
  for (let i = 0; i < 49; i++) {
    const pick = i % 5;
    frames.push(
      [`/pubmsg ${ch} m${i}`, `/whois ${ch}`, `/peers ${ch}`, "/away", `/bogus`][pick],
    );
    expect.push(["pubmsg", "whois", "peers", "away", null][pick] as string);
  }
  c.frames = [];
  for (const f of frames) c.session.text(f);
  // Every reply comes (bounded wait), then their order is checked.
  for (let waited = 0; c.replies().length < expect.length && waited < 10_000; waited += 20) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual(c.replies().map((r) => r.cmd), expect);
});

Deno.test("hub: a resume takes over silently and closes the old socket 4002", async () => {
  await using t = setup();
  const a = await t.peer("a");
  const b = await t.peer("b");
  const ch = newChannelId();
  await t.say(a.c, `/join ${ch}`);
  await t.say(b.c, `/join ${ch}`);
  b.c.frames = [];
  const a2 = t.open();
  await t.say(a2, `/descp {"id":"${a.id}","name":"a2","resume":"${a.resume}"}`);
  const r = a2.replies()[0] as { type: string; data: { channels: string[]; resume: string } };
  assert.equal(r.type, "ok");
  assert.deepEqual(r.data.channels, [ch]);
  assert.equal(r.data.resume, a.resume);
  assert.equal(a.c.closedWith?.[0], 4002);
  a.c.session.closed();
  await t.say(b.c, `/pubmsg ${ch} hi`);
  assert.equal(a2.events("pubmsg").length, 1);
  assert.deepEqual(b.c.events("quit"), []);
  assert.deepEqual(b.c.events("join"), []);
});

Deno.test("hub: an id online elsewhere gets 433 without its token", async () => {
  await using t = setup();
  const a = await t.peer();
  const c = t.open();
  await t.say(c, `/descp {"id":"${a.id}","name":"x","resume":"wrong"}`);
  assert.equal(c.replies()[0].code, Codes.ERR_NICKNAMEINUSE);
  assert.equal(c.closedWith, undefined);
});

Deno.test("hub: after the grace a dropped peer quits its channels with reason disconnect", async () => {
  await using t = setup({ graceMs: 1000 });
  const a = await t.peer();
  const b = await t.peer();
  const ch = newChannelId();
  await t.say(a.c, `/join ${ch}`);
  await t.say(b.c, `/join ${ch}`);
  b.c.session.closed();
  await t.say(a.c, `/peers ${ch}`);
  const page = a.c.replies().at(-1)!.data as { peers: { id: string; online: boolean }[] };
  assert.equal(page.peers.find((p) => p.id === b.id)?.online, false);
  t.advance(999);
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(a.c.events("quit"), []);
  t.advance(2);
  await new Promise((r) => setTimeout(r, 30));
  const quits = a.c.events("quit");
  assert.equal(quits.length, 1);
  assert.equal(quits[0].peer, b.id);
  assert.equal(quits[0].reason, "disconnect");
});

Deno.test("hub: a client that does not read is closed 4008, others keep receiving", async () => {
  await using t = setup({ maxBuffered: 1000, rate: 0 });
  const a = await t.peer();
  const slow = await t.peer();
  const fast = await t.peer();
  const ch = newChannelId();
  for (const p of [a, slow, fast]) await t.say(p.c, `/join ${ch}`);
  slow.c.bufferedAmount = 5000;
  await t.say(a.c, `/pubmsg ${ch} x`, `/pubmsg ${ch} y`);
  assert.equal(slow.c.closedWith?.[0], 4008);
  assert.equal(fast.c.events("pubmsg").length, 2);
});

Deno.test("hub: over the message rate gets 263 with retryAfterMs, and nothing is delivered", async () => {
  await using t = setup({ rate: 1, burst: 2 });
  const a = await t.peer();
  const b = await t.peer();
  const ch = newChannelId();
  await t.say(a.c, `/join ${ch}`);
  await t.say(b.c, `/join ${ch}`);
  a.c.frames = [];
  await t.say(a.c, `/pubmsg ${ch} 1`, `/pubmsg ${ch} 2`, `/pubmsg ${ch} 3`);
  const r = a.c.replies();
  assert.deepEqual(r.map((x) => x.type), ["ok", "ok", "error"]);
  assert.equal(r[2].code, Codes.RPL_TRYAGAIN);
  assert.ok((r[2].retryAfterMs as number) > 0);
  assert.deepEqual(b.c.events("pubmsg").map((e) => e.text), ["1", "2"]);
});

Deno.test("hub: more rejected commands than 10x the rate within a second closes 4003", async () => {
  await using t = setup({ rate: 1, burst: 1 });
  const a = await t.peer();
  const frames = Array.from({ length: 30 }, () => `/privmsg ${a.id} x`);
  await t.say(a.c, ...frames);
  assert.equal(a.c.closedWith?.[0], 4003);
});

Deno.test("hub: frames queued behind a slow command are bounded", async () => {
  const store = slowStore(new MemoryStore(limits), () => 50);
  await using t = setup({ store, rate: 0 });
  const c = t.open();
  c.session.text(`/descp {"id":"${newId()}","name":"x"}`);
  for (let i = 0; i <= MAX_QUEUE; i++) c.session.text("/away");
  assert.equal(c.closedWith?.[0], 4003);
});

Deno.test("hub: shutdown sends a notice and closes every socket 1001", async () => {
  const t = setup();
  const a = await t.peer();
  const idle = t.open();
  await t.hub.shutdown();
  assert.equal(a.c.events("notice").length, 1);
  assert.equal(a.c.closedWith?.[0], 1001);
  assert.equal(idle.closedWith?.[0], 1001);
});

Deno.test("hub: the admin token must match exactly", () => {
  assert.equal(sameText("s3cret", "s3cret"), true);
  for (const wrong of ["", "s3cre", "s3crets", "S3cret", "s3crex"]) {
    assert.equal(sameText(wrong, "s3cret"), false, wrong);
  }
});

Deno.test("hub: a takeover whose new socket drops mid-claim still closes the old session", async () => {
  let delay = 0;
  await using t = setup({ store: slowStore(new MemoryStore(limits), () => delay) });
  const a = await t.peer("a");
  delay = 20;
  const b = t.open();
  b.session.text(`/descp {"id":"${a.id}","name":"a2","resume":"${a.resume}"}`);
  b.session.closed();
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(a.c.closedWith?.[0], 4002, "one live session per id");
});

Deno.test("hub: a retried /join the store already applied makes the peer a member here", async () => {
  const store = new MemoryStore(limits);
  await using t = setup({ store });
  const a = await t.peer();
  const b = await t.peer();
  const ch = newChannelId();
  await t.say(a.c, `/join ${ch}`);
  // The store applied b's first /join, whose reply never came back.
  assert.equal((await store.join(b.id, ch, null) as { already: boolean }).already, false);
  await t.say(b.c, `/join ${ch}`);
  assert.equal(b.c.replies().at(-1)?.type, "ok");
  await t.say(a.c, `/pubmsg ${ch} hi`);
  assert.equal(b.c.events("pubmsg").length, 1);
});

Deno.test("hub: live messages during a resume's replay come after it, each once", async () => {
  const store = new MemoryStore({ ...limits, history: 100, historyTtlMs: 60_000 });
  // Once closed, `since` waits for the gate: a message is published while the replay is read.
  let open!: () => void;
  let gated = false;
  const gate = new Promise<void>((r) => (open = r));
  const since = store.since.bind(store);
  store.since = async (stream, from, reader) => {
    if (gated) await gate;
    return since(stream, from, reader);
  };
  await using t = setup({ store });
  const a = await t.peer("a");
  const b = await t.peer("b");
  const ch = newChannelId();
  await t.say(a.c, `/join ${ch}`);
  const position = (a.c.replies().at(-1)!.data as { stream: { epoch: string; seq: number } })
    .stream;
  await t.say(b.c, `/join ${ch}`);
  a.c.session.closed();
  await t.say(b.c, `/pubmsg ${ch} one`, `/pubmsg ${ch} two`);

  const a2 = t.open();
  gated = true;
  const since0 = { channels: { [ch]: position } };
  // Its reply waits for the gate: send without waiting for it.
  a2.session.text(
    `/descp ${JSON.stringify({ id: a.id, name: "a", resume: a.resume, since: since0 })}`,
  );
  for (let i = 0; i < 20; i++) await tick();
  assert.equal(a2.replies().length, 0, "the replay is being read");
  await t.say(b.c, `/pubmsg ${ch} three`);
  assert.equal(a2.frames.length, 0, "nothing reaches the resuming socket before its reply");
  open();
  await t.say(a2);
  await t.say(b.c, `/pubmsg ${ch} four`);
  const seen = a2.messages.map((m) => m.type === "pubmsg" ? `${m.seq}:${m.text}` : m.type);
  assert.deepEqual(seen, ["ok", "1:one", "2:two", "3:three", "4:four"]);
});

Deno.test("hub: a store call that throws gets 503, is counted, and the session keeps answering", async () => {
  const store = new MemoryStore(limits);
  const join = store.join.bind(store);
  let failures = 1;
  store.join = (id, channel, key) => {
    if (failures-- > 0) return Promise.reject(new Error("injected store failure"));
    return join(id, channel, key);
  };
  await using t = setup({ store });
  const a = await t.peer("a");
  const ch = newChannelId();
  await t.say(a.c, `/join ${ch}`, `/whois ${a.id}`, `/join ${ch}`);
  const [failed, whois, joined] = a.c.replies().slice(-3);
  assert.equal(failed.code, Codes.ERR_UNAVAILABLE);
  assert.equal(whois.type, "ok");
  assert.equal(joined.type, "ok");
  assert.equal(t.hub.metrics.unexpected.get("command"), 1);
  assert.match(t.hub.metrics.render(), /signaller_unexpected_errors_total\{where="command"\} 1/);
});

/**
 * A memory store with message streams whose appends answer only when their
 * gate is opened (or failed), as a store across the network answers later;
 * `calls` lists the store calls in the order they were made.
 */
function gatedStore() {
  const store: Store = new MemoryStore({ ...limits, history: 100 });
  const calls: string[] = [];
  const gates: { open(): void; fail(): void }[] = [];
  const publish = store.publish.bind(store);
  store.publish = (channel: string, head: string, except: string) => {
    calls.push(JSON.parse(head + "}").text);
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    gates.push({ open: resolve, fail: () => reject(new Error("injected store failure")) });
    return promise.then(() => publish(channel, head, except));
  };
  const setAway = store.setAway.bind(store);
  store.setAway = (...args: Parameters<Store["setAway"]>) => {
    calls.push("away");
    return setAway(...args);
  };
  return { store, calls, gates };
}

/** A hub on a {@linkcode gatedStore}, peers a and b in one channel, a's frames so far forgotten. */
async function gatedPair() {
  const { store, calls, gates } = gatedStore();
  const t = setup({ store, rate: 0 });
  const a = await t.peer("a");
  const b = await t.peer("b");
  const ch = newChannelId();
  for (const p of [a, b]) await t.say(p.c, `/join ${ch}`);
  a.c.frames = [];
  return { t, a, b, ch, calls, gates };
}

Deno.test("hub: a burst of /pubmsg goes to the store back to back; replies stay in command order", async () => {
  const { store, calls, gates } = gatedStore();
  await using t = setup({ store, rate: 0 });
  const a = await t.peer("a");
  const b = await t.peer("b");
  const [ch1, ch2] = [newChannelId(), newChannelId()];
  for (const p of [a, b]) await t.say(p.c, `/join ${ch1}`, `/join ${ch2}`);
  a.c.frames = [];
  for (const [ch, text] of [[ch1, "one"], [ch2, "two"], [ch1, "three"]]) {
    a.c.session.text(`/pubmsg ${ch} ${text}`);
  }
  await tick();
  assert.deepEqual(calls, ["one", "two", "three"], "each is issued before any answered");
  // Streams of different channels may answer out of order (a Redis Cluster).
  gates[1].open();
  await tick();
  assert.equal(a.c.replies().length, 0, "the second reply waits for the first");
  gates[0].open();
  gates[2].open();
  await t.say(a.c);
  const replies = a.c.replies();
  assert.deepEqual(replies.map((r) => r.type), ["ok", "ok", "ok"]);
  assert.deepEqual(replies.map((r) => (r.data as { seq: number }).seq), [1, 1, 2]);
  assert.deepEqual(b.c.events("pubmsg").map((e) => e.text), ["two", "one", "three"]);
});

Deno.test("hub: a command after pipelined messages starts once they answered, and sees them delivered", async () => {
  const g = await gatedPair();
  await using t = g.t;
  const { a, b, ch, calls, gates } = g;
  b.c.frames = [];
  for (
    const f of [`/pubmsg ${ch} one`, `/pubmsg ${ch} two`, "/away lunch", `/pubmsg ${ch} three`]
  ) {
    a.c.session.text(f);
  }
  await tick();
  assert.deepEqual(calls, ["one", "two"], "/away waits for the messages before it");
  gates[0].open();
  await tick();
  assert.deepEqual(calls, ["one", "two"]);
  gates[1].open();
  for (let i = 0; i < 10 && gates.length < 3; i++) await tick();
  assert.deepEqual(calls, ["one", "two", "away", "three"]);
  gates[2].open();
  await t.say(a.c);
  assert.deepEqual(a.c.replies().map((r) => r.cmd), ["pubmsg", "pubmsg", "away", "pubmsg"]);
  const seen = b.c.messages.map((m) => m.type === "pubmsg" ? m.text : m.type);
  assert.deepEqual(seen, ["one", "two", "away", "three"]);
});

Deno.test("hub: a store failure inside a pipelined burst fails its own command only", async () => {
  const g = await gatedPair();
  await using t = g.t;
  const { a, b, ch, gates } = g;
  for (const text of ["one", "two", "three"]) a.c.session.text(`/pubmsg ${ch} ${text}`);
  await tick();
  gates[0].open();
  gates[1].fail();
  gates[2].open();
  await t.say(a.c);
  const r = a.c.replies();
  assert.deepEqual(r.map((x) => x.type), ["ok", "error", "ok"]);
  assert.equal(r[1].code, Codes.ERR_UNAVAILABLE);
  assert.deepEqual(r.map((x) => x.cmd), ["pubmsg", "pubmsg", "pubmsg"]);
  assert.deepEqual(b.c.events("pubmsg").map((e) => [e.text, e.seq]), [["one", 1], ["three", 2]]);
  assert.equal(t.hub.metrics.unexpected.get("command"), 1);
});

Deno.test("hub: a session closed with messages in flight: they are delivered, nothing is sent to it", async () => {
  const g = await gatedPair();
  await using t = g.t;
  const { a, b, ch, gates } = g;
  for (const text of ["one", "two"]) a.c.session.text(`/pubmsg ${ch} ${text}`);
  a.c.session.text("/away");
  await tick();
  a.c.session.closed();
  gates.forEach((g) => g.open());
  await t.say(b.c);
  for (let i = 0; i < 10; i++) await tick();
  assert.equal(a.c.frames.length, 0);
  assert.deepEqual(b.c.events("pubmsg").map((e) => e.text), ["one", "two"]);
});

Deno.test("hub: messages in flight and frames waiting are bounded together", async () => {
  const { store } = gatedStore();
  await using t = setup({ store, rate: 0 });
  const a = await t.peer("a");
  const ch = newChannelId();
  await t.say(a.c, `/join ${ch}`);
  for (let i = 0; i <= MAX_QUEUE; i++) a.c.session.text(`/pubmsg ${ch} ${i}`);
  assert.equal(a.c.closedWith, undefined, "a burst of the bound is held");
  a.c.session.text(`/pubmsg ${ch} over`);
  assert.equal(a.c.closedWith?.[0], 4003);
});

Deno.test("hub: a takeover while messages are in flight: each is delivered once, the old socket gets no reply", async () => {
  const g = await gatedPair();
  await using t = g.t;
  const { a, b, ch, gates } = g;
  for (const text of ["one", "two"]) a.c.session.text(`/pubmsg ${ch} ${text}`);
  await tick();
  const a2 = t.open();
  await t.say(a2, `/descp {"id":"${a.id}","name":"a","resume":"${a.resume}"}`);
  assert.equal(a2.replies()[0].type, "ok");
  assert.equal(a.c.closedWith?.[0], 4002);
  gates.forEach((g) => g.open());
  await t.say(b.c);
  for (let i = 0; i < 10; i++) await tick();
  assert.equal(a.c.replies().length, 0);
  assert.deepEqual(b.c.events("pubmsg").map((e) => e.text), ["one", "two"]);
});
