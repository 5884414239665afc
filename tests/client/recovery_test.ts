/**
 * What the typed client gets back after a reconnect, against the real
 * server: the messages it missed (PROTOCOL.md, "Message streams and
 * recovery": positions, `since`, `recovered`, each message once) and, when
 * the session could not be resumed, its channels (joined again with their
 * keys). Drops are made with a TCP relay cut in the middle.
 */
import assert from "node:assert/strict";
import type { EventOf, SignallerClient, Since } from "../../client/mod.ts";
import { SignallerError } from "../../client/mod.ts";
import {
  chan,
  collect,
  makeClient,
  next,
  rejection,
  startServer,
  TcpProxy,
  test,
  type Tracked,
  WAIT_MS,
  within,
} from "./support.ts";

const GRACE_MS = 5000;

/** Rate limiting off: a burst of messages from one peer is the point of these tests. */
const server = await startServer({ args: ["--rate", "0", "--grace-ms", String(GRACE_MS)] });

type Message = EventOf<"pubmsg"> | EventOf<"privmsg">;

/** Every `pubmsg` and `privmsg` the client's listeners get, by type, in order. */
function messages(client: SignallerClient): { pub: Message[]; priv: Message[] } {
  return { pub: collect(client, "pubmsg"), priv: collect(client, "privmsg") };
}

/** The `since` of the `n`th `/descp` the tracked client sent. */
function sinceOf(t: Tracked, n: number): Since | undefined {
  return t.descps()[n].since as Since | undefined;
}

/** `n` consecutive numbers from `first`. */
function range(first: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => first + i);
}

test("a drop in the middle of a burst of pubmsgs and privmsgs: after the resume every message reaches the listeners once, in seq order, and one recovered event says all came back", async () => {
  await using proxy = new TcpProxy(server.port);
  const alice = makeClient(proxy.url, { name: "Alice" });
  const a = alice.client;
  const b = makeClient(server.url, { name: "Bob" }).client;
  try {
    const me = await a.connect();
    await b.connect();
    const channel = chan();
    const joined = await a.join(channel);
    await b.join(channel);
    assert.deepEqual([me.inbox?.seq, joined.stream?.seq], [0, 0]);
    const got = messages(a);
    const recovered = collect(a, "recovered");
    const resumed = collect(a, "resumed");
    const seenAtRecovered: number[] = [];
    a.on("recovered", () => seenAtRecovered.push(got.pub.length + got.priv.length));
    // Alice's link fails at her 10th message, and stays down while Bob goes on.
    let heard = 0;
    a.on("event", (e) => {
      if ((e.type !== "pubmsg" && e.type !== "privmsg") || ++heard !== 10) return;
      proxy.refuse = true;
      proxy.cut();
    });
    const dropped = next(a, "reconnecting");
    const PER_PHASE = 15;
    let i = 0;
    const burst = () =>
      range(0, PER_PHASE).flatMap(() => {
        const n = i++;
        return [b.pubmsg(channel, `c${n}`), b.privmsg(a.id, `d${n}`)];
      });
    // Phase 1, all at once: the drop comes in the middle of it.
    await Promise.all(burst());
    await within(dropped, WAIT_MS, "Alice's drop");
    // What was in flight when the link failed is lost; the rest of a frame read is not.
    const seenAtDrop = { pub: got.pub.length, priv: got.priv.length };
    // Phase 2 while Alice is away; phase 3 while she comes back and catches up.
    await Promise.all(burst());
    proxy.refuse = false;
    const back = next(a, "resumed");
    await Promise.all(burst());
    await within(back, WAIT_MS, "resumed");
    // One message more on each stream: once it is in, every message before it is.
    const lastPub = next(a, "pubmsg", (e) => e.text === "end");
    const lastPriv = next(a, "privmsg", (e) => e.text === "end");
    await b.pubmsg(channel, "end");
    await b.privmsg(a.id, "end");
    await within(Promise.all([lastPub, lastPriv]), WAIT_MS, "the last messages");

    const total = 3 * PER_PHASE;
    assert.ok(seenAtDrop.pub + seenAtDrop.priv >= 10, "cut mid-burst");
    assert.deepEqual(got.pub.map((e) => e.text), [...range(0, total).map((n) => `c${n}`), "end"]);
    assert.deepEqual(got.priv.map((e) => e.text), [...range(0, total).map((n) => `d${n}`), "end"]);
    assert.deepEqual(got.pub.map((e) => e.seq), range(1, total + 1));
    assert.deepEqual(got.priv.map((e) => e.seq), range(1, total + 1));
    assert.deepEqual(recovered, [{ inbox: true, channels: { [channel]: true } }]);
    assert.deepEqual(
      seenAtRecovered,
      [seenAtDrop.pub + seenAtDrop.priv],
      "recovered comes before the replay",
    );
    assert.equal(resumed.length, 1);
    assert.deepEqual([resumed[0].lost, resumed[0].rejoined, resumed[0].failed], [[], [], []]);
    // The resume asked from the last message Alice's listeners had got.
    const descps = alice.descps();
    assert.equal(descps.length, 2);
    assert.deepEqual(sinceOf(alice, 1), {
      inbox: { epoch: me.inbox!.epoch, seq: seenAtDrop.priv },
      channels: { [channel]: { epoch: joined.stream!.epoch, seq: seenAtDrop.pub } },
    });
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test("the peer's own /pubmsgs in a replay are not emitted: it never gets them live", async () => {
  await using proxy = new TcpProxy(server.port);
  const alice = makeClient(proxy.url, { name: "Alice" });
  const a = alice.client;
  const b = makeClient(server.url, { name: "Bob" }).client;
  try {
    await a.connect();
    await b.connect();
    const channel = chan();
    await a.join(channel);
    await b.join(channel);
    const got = messages(a);
    const theirs = next(a, "pubmsg");
    assert.equal((await b.pubmsg(channel, "theirs 1")).seq, 1);
    await within(theirs, WAIT_MS, "Bob's first pubmsg");
    assert.equal((await a.pubmsg(channel, "mine")).seq, 2);
    const dropped = next(a, "reconnecting");
    proxy.refuse = true;
    proxy.cut();
    await within(dropped, WAIT_MS, "Alice's drop");
    assert.equal((await b.pubmsg(channel, "theirs 2")).seq, 3);
    const recovered = next(a, "recovered");
    const caughtUp = next(a, "pubmsg", (e) => e.text === "theirs 2");
    proxy.refuse = false;
    assert.deepEqual(await within(recovered, WAIT_MS, "recovered"), {
      inbox: true,
      channels: { [channel]: true },
    });
    await within(caughtUp, WAIT_MS, "the replay");
    // The replay was seqs 2 (Alice's) and 3: the next resume asks from 3.
    assert.deepEqual(sinceOf(alice, 1)?.channels?.[channel]?.seq, 1);
    const again = next(a, "resumed");
    proxy.cut();
    await within(again, WAIT_MS, "the second resume");
    assert.deepEqual(sinceOf(alice, 2)?.channels?.[channel]?.seq, 3);
    assert.deepEqual(got.pub.map((e) => [e.text, e.seq]), [["theirs 1", 1], ["theirs 2", 3]]);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test("a stream that started over while connected (its history expired, seqs from 1 again) is still delivered; the next resume reports it not recovered, until a /join names its epoch", async () => {
  const TTL_MS = 300;
  await using s = await startServer({
    args: ["--history-ttl", String(TTL_MS), "--grace-ms", String(GRACE_MS)],
  });
  await using proxy = new TcpProxy(s.port);
  const alice = makeClient(proxy.url, { name: "Alice" });
  const a = alice.client;
  const b = makeClient(s.url, { name: "Bob" }).client;
  try {
    await a.connect();
    await b.connect();
    const channel = chan();
    const joined = await a.join(channel);
    await b.join(channel);
    const got = messages(a);
    const heard = (text: string) => next(a, "pubmsg", (e) => e.text === text);
    const first = heard("b2");
    await b.pubmsg(channel, "b1");
    await b.pubmsg(channel, "b2");
    await within(first, WAIT_MS, "b2");
    // Nothing happens when a history expires: waiting out its time-to-live is all there is.
    await new Promise((r) => setTimeout(r, 2 * TTL_MS));
    const later = heard("b3");
    assert.equal((await b.pubmsg(channel, "b3")).seq, 1, "the stream started over");
    await within(later, WAIT_MS, "b3, seq 1");
    // Again, and this time Alice's own message is the first of the new epoch.
    await new Promise((r) => setTimeout(r, 2 * TTL_MS));
    assert.equal((await a.pubmsg(channel, "a1")).seq, 1);
    const b4 = heard("b4");
    assert.equal((await b.pubmsg(channel, "b4")).seq, 2);
    await within(b4, WAIT_MS, "b4, seq 2");
    assert.deepEqual(got.pub.map((e) => [e.text, e.seq]), [
      ["b1", 1],
      ["b2", 2],
      ["b3", 1],
      ["b4", 2],
    ]);
    // The client knows no epoch but the first: the resume is told the channel was not recovered.
    const recovered = collect(a, "recovered");
    let resumed = next(a, "resumed");
    proxy.cut();
    await within(resumed, WAIT_MS, "resumed");
    assert.deepEqual(sinceOf(alice, 1)?.channels, {
      [channel]: { epoch: joined.stream!.epoch, seq: 2 },
    });
    assert.deepEqual(recovered, [{ inbox: true, channels: { [channel]: false } }]);
    const b5 = heard("b5");
    await b.pubmsg(channel, "b5");
    assert.equal((await within(b5, WAIT_MS, "b5")).seq, 3, "taken up at the next message");
    // A /join of a channel the client is in names the epoch; the next resume recovers it.
    const rejoined = await a.join(channel);
    assert.notEqual(rejoined.stream!.epoch, joined.stream!.epoch);
    resumed = next(a, "resumed");
    proxy.cut();
    await within(resumed, WAIT_MS, "the second resume");
    assert.deepEqual(sinceOf(alice, 2)?.channels, {
      [channel]: { epoch: rejoined.stream!.epoch, seq: 3 },
    });
    assert.deepEqual(recovered.at(-1), { inbox: true, channels: { [channel]: true } });
    assert.equal(got.pub.length, 5);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test("a server restarted in memory: the client comes back as a new peer, rejoins its channels with their keys, and resumed says which it rejoined and which failed", async () => {
  await using s1 = await startServer({ args: ["--grace-ms", String(GRACE_MS)] });
  await using proxy = new TcpProxy(s1.port);
  const alice = makeClient(proxy.url, { name: "Alice" });
  const a = alice.client;
  try {
    const first = await a.connect();
    const open = chan(), keyed = chan(), taken = chan();
    await a.join(open);
    await a.join(keyed, "k3y");
    await a.join(taken, "mine");
    // A join without a key of a channel it is in keeps the key it joined with.
    await a.join(keyed);
    const recovered = collect(a, "recovered");
    const resumed = next(a, "resumed");
    const dropped = next(a, "reconnecting");
    await s1.kill();
    await within(dropped, WAIT_MS, "the drop");
    await using s2 = await startServer({ args: ["--grace-ms", String(GRACE_MS)] });
    // Before Alice is back, Bob makes one of her channels his, with another key.
    const b = makeClient(s2.url, { name: "Bob" }).client;
    try {
      await b.connect();
      await b.join(taken, "his");
      proxy.target = s2.port;
      const r = await within(resumed, WAIT_MS, "resumed");
      assert.notEqual(r.data.resume, first.resume, "a new peer");
      assert.deepEqual(r.data.channels, []);
      assert.deepEqual(r.lost.sort(), [open, keyed, taken].sort());
      assert.deepEqual(r.rejoined.sort(), [open, keyed].sort());
      assert.equal(r.failed.length, 1);
      assert.equal(r.failed[0].channel, taken);
      assert.equal(r.failed[0].code, 475);
      assert.ok(r.failed[0].error instanceof SignallerError);
      assert.deepEqual(a.channels.sort(), [open, keyed].sort());
      // Asked for its streams first, and told none came back: before resumed.
      assert.deepEqual(recovered, [{
        inbox: false,
        channels: { [open]: false, [keyed]: false, [taken]: false },
      }]);
      // The rejoined channel has its key again (Alice created it anew on this server).
      const w = await b.whois(open);
      assert.deepEqual(w.members.map((m) => m.id), [a.id]);
      const e = await rejection(b.join(keyed), "Bob's /join without the key");
      assert.ok(e instanceof SignallerError && e.code === 475, String(e));
      assert.equal((await b.join(keyed, "k3y")).total, 2);
      // Positions come from the new server's join replies: the next drop recovers everything.
      const heard = next(a, "pubmsg");
      await b.pubmsg(keyed, "hello again");
      assert.equal((await within(heard, WAIT_MS, "a pubmsg")).seq, 1);
      const again = next(a, "resumed");
      proxy.cut();
      const r2 = await within(again, WAIT_MS, "the second resume");
      assert.deepEqual([r2.lost, r2.rejoined, r2.failed], [[], [], []]);
      assert.deepEqual(recovered.at(-1), {
        inbox: true,
        channels: { [open]: true, [keyed]: true },
      });
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
});

test("rejoin: false: after a server restart in memory the client stays out of its channels and says so", async () => {
  await using s1 = await startServer({ args: ["--grace-ms", String(GRACE_MS)] });
  await using proxy = new TcpProxy(s1.port);
  const alice = makeClient(proxy.url, { name: "Alice", rejoin: false });
  const a = alice.client;
  try {
    await a.connect();
    const open = chan(), keyed = chan();
    await a.join(open);
    await a.join(keyed, "k3y");
    const resumed = next(a, "resumed");
    const dropped = next(a, "reconnecting");
    await s1.kill();
    await within(dropped, WAIT_MS, "the drop");
    await using s2 = await startServer({ args: ["--grace-ms", String(GRACE_MS)] });
    proxy.target = s2.port;
    const r = await within(resumed, WAIT_MS, "resumed");
    assert.deepEqual(r.lost.sort(), [open, keyed].sort());
    assert.deepEqual([r.rejoined, r.failed], [[], []]);
    assert.deepEqual(a.channels, []);
    assert.deepEqual(alice.sockets.at(-1)!.sent.map((f) => f.split(" ")[0]), ["/descp"]);
    // The channels are gone from the new server: nobody joined them.
    const b = makeClient(s2.url, { name: "Bob" }).client;
    try {
      await b.connect();
      const e = await rejection(b.whois(open), "/whois of the channel");
      assert.ok(e instanceof SignallerError && e.code === 403, String(e));
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
});
