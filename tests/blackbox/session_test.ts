/** Identity: resume takeover (4002) and the disconnect grace (`--grace-ms 2000`). */
import assert from "node:assert/strict";
import { connect, describe, newChannel, peer } from "../support/client.ts";
import { bbtest, sharedServer } from "../support/server.ts";
import { delay, until, within } from "../support/wait.ts";

// Long enough for a loaded machine to run the in-grace checks; the waits below are bounded by it.
const GRACE = 2000;
/** The hub's sweep period for this grace (min(1000, grace / 4)): a quit may trail the grace by it. */
const SWEEP = Math.min(1000, GRACE / 4);
/** How long after the grace (and a sweep) an expected quit may still be on its way. */
const SLACK = 5000;
const server = await sharedServer({ args: ["--grace-ms", String(GRACE)] });

bbtest(
  "/descp with the resume token takes over: old socket 4002, state inherited, no events",
  async (rt) => {
    const url = server(rt).url;
    await using a = await peer(url, { name: "a" });
    await using b = await peer(url, { name: "b" });
    const ch1 = newChannel();
    const ch2 = newChannel();
    await a.ok(`/join ${ch1} k3y`);
    await a.ok(`/join ${ch2}`);
    await b.ok(`/join ${ch1} k3y`);
    await a.event("join");
    await a.ok("/away brb");
    await b.event("away");

    await using a2 = await connect(url, "a2");
    const data = await a2.ok(
      `/descp ${JSON.stringify({ id: a.id, name: "a", resume: a.resume })}`,
    );
    assert.equal(data.peer.id, a.id);
    assert.deepEqual(data.channels, [ch1, ch2], "channels inherited, in join order");
    assert.equal(data.resume, a.resume, "the resume token stays the same for the peer's life");
    const closed = await within(a.closed, 2000, "close of the replaced socket");
    assert.equal(closed.code, 4002);

    // No quit/join for the co-member: barrier with a pubmsg from the new session.
    await a2.ok(`/pubmsg ${ch1} I am back`);
    const pm = await b.event("pubmsg");
    assert.equal(pm.from, a.id);
    assert.deepEqual(b.pending(), [], "co-members see nothing of the takeover");

    // Operator rights and away state are inherited.
    const w = await b.ok(`/whois ${ch1}`);
    assert.deepEqual(w.operators, [a.id]);
    const p = await b.ok(`/peers ${ch1}`);
    const entry = p.peers.find((e: { id: string }) => e.id === a.id);
    assert.equal(entry.away, true);
    assert.equal(entry.message, "brb");
    assert.equal(entry.online, true);
    assert.equal(entry.op, true);
    const pr = await b.ok(`/privmsg ${a.id} hi`);
    assert.equal(pr.away, "brb");
    assert.equal((await a2.event("privmsg")).text, "hi");
    // The new session is a member: it receives channel traffic and may kick.
    await b.ok(`/pubmsg ${ch1} welcome back`);
    assert.equal((await a2.event("pubmsg")).text, "welcome back");
    await a2.ok(`/kick ${b.id} ${ch1}`);
    assert.equal((await b.event("kick")).by, a.id);
  },
);

bbtest("after a takeover, messages reach the new session", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url, { name: "a" });
  await using b = await peer(url, { name: "b" });
  await using a2 = await connect(url, "a2");
  await describe(a2, { id: a.id, name: "a", resume: a.resume });
  assert.equal((await within(a.closed, 5000, "close of the replaced socket")).code, 4002);
  await b.ok(`/privmsg ${a.id} to the new one`);
  assert.equal((await a2.event("privmsg")).text, "to the new one");
});

bbtest(
  "disconnect grace: online:false in /peers and /whois, /privmsg queued, id taken 433",
  async (rt) => {
    const url = server(rt).url;
    await using a = await peer(url, { name: "a" });
    await using b = await peer(url, { name: "b" });
    const ch = newChannel();
    await a.ok(`/join ${ch}`);
    await b.ok(`/join ${ch}`);
    // Taken before the close: the server starts the grace later than this.
    const t0 = Date.now();
    await a.close();

    const p = await b.ok(`/peers ${ch}`);
    assert.equal(p.total, 2);
    const entry = p.peers.find((e: { id: string }) => e.id === a.id);
    assert.ok(entry, "the peer in grace is still listed");
    assert.equal(entry.online, false);
    const w = await b.ok(`/whois ${a.id}`);
    assert.equal(w.online, false);
    assert.deepEqual(w.channels, [ch]);
    // Kept in its inbox for a resume (message streams, on by default).
    const queued = await b.ok(`/privmsg ${a.id} stale offer`);
    assert.equal(queued.queued, true);
    await using thief = await connect(url, "thief");
    await thief.fail(`/descp ${JSON.stringify({ id: a.id, name: "x" })}`, 433);
    assert.ok(Date.now() - t0 < GRACE, "checks ran within the grace (the test is too slow)");
    await b.noEvent("quit", 0);

    // After the grace: exactly one quit with reason "disconnect".
    const q = await b.event("quit", { timeout: GRACE + SWEEP + SLACK });
    assert.deepEqual(
      { channel: q.channel, peer: q.peer, reason: q.reason },
      { channel: ch, peer: a.id, reason: "disconnect" },
    );
    assert.ok(
      q.ts - t0 >= GRACE,
      `quit sent ${q.ts - t0} ms after the close: before the grace ended`,
    );
    await b.fail(`/whois ${a.id}`, 401);
    const p2 = await b.ok(`/peers ${ch}`);
    assert.equal(p2.total, 1);
    // The id is free again, with no channels and a new token.
    const again = await describe(thief, { id: a.id, name: "new owner" });
    assert.deepEqual(again.channels, []);
    assert.notEqual(again.resume, a.resume);
    await b.noEvent("quit", 100);
  },
);

bbtest("a quit after the grace reaches every channel of the peer, once each", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url, { name: "a" });
  await using b = await peer(url, { name: "b" });
  await using c = await peer(url, { name: "c" });
  const ch1 = newChannel();
  const ch2 = newChannel();
  await a.ok(`/join ${ch1}`);
  await a.ok(`/join ${ch2}`);
  await b.ok(`/join ${ch1}`);
  await c.ok(`/join ${ch2}`);
  await c.ok(`/join ${ch1}`);
  await a.close();
  const qb = await b.event("quit", { timeout: GRACE + SWEEP + SLACK });
  assert.equal(qb.channel, ch1);
  const qc1 = await c.event("quit", { timeout: SLACK, where: (m) => m.channel === ch1 });
  const qc2 = await c.event("quit", { timeout: SLACK, where: (m) => m.channel === ch2 });
  for (const q of [qb, qc1, qc2]) {
    assert.equal(q.peer, a.id);
    assert.equal(q.reason, "disconnect");
  }
  await b.noEvent("quit", 150);
  await c.noEvent("quit", 0);
});

bbtest("/descp with the resume token within the grace restores channels silently", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url, { name: "a" });
  await using b = await peer(url, { name: "b" });
  const ch = newChannel();
  await a.ok(`/join ${ch} key`);
  await b.ok(`/join ${ch} key`);
  await a.event("join");
  const tClose = Date.now();
  await a.close();
  // The server has seen the drop (a resume, not a takeover) once a is shown offline.
  await until(
    async () => (await b.ok(`/whois ${a.id}`)).online === false,
    5000,
    "a shown offline after its close",
  );
  await using a2 = await connect(url, "a2");
  const data = await describe(a2, { id: a.id, name: "a", resume: a.resume });
  assert.deepEqual(data.channels, [ch]);
  assert.equal(data.resume, a.resume);
  // Quiet period past the end of the original grace and the sweep after it: no quit, no join.
  await delay(Math.max(0, tClose + GRACE + SWEEP + 300 - Date.now()));
  await a2.ok(`/pubmsg ${ch} resumed`);
  assert.equal((await b.event("pubmsg")).from, a.id);
  assert.deepEqual(b.pending(), [], "co-members see nothing of the resume");
  const p = await b.ok(`/peers ${ch}`);
  assert.equal(p.total, 2);
  const e = p.peers.find((x: { id: string }) => x.id === a.id);
  assert.equal(e.online, true);
  assert.equal(e.op, true);
  await b.ok(`/privmsg ${a.id} hello again`);
  assert.equal((await a2.event("privmsg")).text, "hello again");
});

bbtest("/descp with a wrong resume token during the grace gets 433", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url, { name: "a" });
  await a.close();
  await using a2 = await connect(url, "a2");
  await a2.fail(`/descp ${JSON.stringify({ id: a.id, name: "a", resume: "x" + a.resume })}`, 433);
  const data = await describe(a2, { id: a.id, name: "a", resume: a.resume });
  assert.equal(data.peer.id, a.id);
});

bbtest(
  "a peer that quits all its channels and disconnects is forgotten after the grace",
  async (rt) => {
    const url = server(rt).url;
    await using a = await peer(url, { name: "a" });
    await using b = await peer(url, { name: "b" });
    const t0 = Date.now();
    await a.close();
    await b.ok(`/whois ${a.id}`);
    // A peer in no channel leaves with no event: watch /whois until it gets 401.
    await until(
      async () => (await b.cmd(`/whois ${a.id}`)).type === "error",
      GRACE + SWEEP + SLACK,
      "the peer forgotten after its grace",
    );
    assert.ok(Date.now() - t0 >= GRACE, "the peer was forgotten before its grace ended");
    await b.fail(`/whois ${a.id}`, 401);
    await using a3 = await connect(url, "a3");
    const d = await describe(a3, { id: a.id, name: "a" });
    assert.deepEqual(d.channels, []);
  },
);
