/** Operators: /kick, /ban, /unban; and /invite. Optional channel resolution. */
import assert from "node:assert/strict";
import { assertKeys, assertTs } from "../support/asserts.ts";
import { group, newChannel, newId, peer, type TestClient } from "../support/client.ts";
import { bbtest, sharedServer } from "../support/server.ts";

const server = await sharedServer();

/** `n` peers in one fresh channel created by the first (the operator). */
async function room(url: string, n: number, key?: string) {
  const g = group();
  const ch = newChannel();
  try {
    for (let i = 0; i < n; i++) {
      const p = await peer(url, { name: `p${i}` });
      g.push(p);
      await p.ok(`/join ${ch}${key ? " " + key : ""}`);
    }
    // Drain the join events so tests start clean.
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) await g[i].event("join");
    }
  } catch (e) {
    await g[Symbol.asyncDispose]();
    throw e;
  }
  return { g, ch };
}

/** Sends a pubmsg from `from` and waits until each of `to` got it: later checks see everything before. */
async function barrier(from: TestClient, ch: string, to: TestClient[]): Promise<void> {
  const text = "barrier " + newId();
  await from.ok(`/pubmsg ${ch} ${text}`);
  for (const t of to) await t.event("pubmsg", { where: (m) => m.text === text });
}

bbtest(
  "/kick: kick event to every member, the kicked included; no quit; nothing more for it",
  async (rt) => {
    const { g, ch } = await room(server(rt).url, 3);
    await using _ = g;
    const [op, b, c] = g;
    const r = await op.ok(`/kick ${b.id} ${ch} bye  now `);
    assertKeys(r, ["channel", "peer"], "kick data");
    assert.deepEqual(r, { channel: ch, peer: b.id });
    for (const x of [op, b, c]) {
      const e = await x.event("kick");
      assertKeys(e, ["type", "ts", "channel", "peer", "by", "text"], "kick event");
      assertTs(e.ts);
      assert.deepEqual(
        { channel: e.channel, peer: e.peer, by: e.by, text: e.text },
        { channel: ch, peer: b.id, by: op.id, text: "bye  now " },
      );
    }
    await barrier(op, ch, [c]);
    for (const x of [op, b, c]) await x.noEvent("quit", 0);
    await b.noEvent("pubmsg", 50);
    const p = await c.ok(`/peers ${ch}`);
    assert.deepEqual(p.peers.map((e: { id: string }) => e.id), [op.id, c.id]);
    await b.fail(`/pubmsg ${ch} am I in?`, 404);
    // A kick is no ban: the peer may come back.
    await b.ok(`/join ${ch}`);
  },
);

bbtest("/kick without text: the event has no text field", async (rt) => {
  const { g, ch } = await room(server(rt).url, 2);
  await using _ = g;
  const [op, b] = g;
  await op.ok(`/kick ${b.id} ${ch}`);
  const e = await b.event("kick");
  assert.equal("text" in e, false);
  assertKeys(e, ["type", "ts", "channel", "peer", "by"], "kick event");
});

bbtest("/kick by a non-operator gets 482 and changes nothing", async (rt) => {
  const { g, ch } = await room(server(rt).url, 3);
  await using _ = g;
  const [op, b, c] = g;
  await b.fail(`/kick ${c.id} ${ch}`, 482);
  await b.fail(`/kick ${op.id} ${ch}`, 482);
  await b.fail(`/kick ${c.id}`, 482); // resolution: b is op nowhere
  assert.equal((await op.ok(`/peers ${ch}`)).total, 3);
  await c.noEvent("kick", 50);
});

bbtest("/kick of oneself gets 482; of a non-member 441; of an unknown id 401", async (rt) => {
  const url = server(rt).url;
  const { g, ch } = await room(url, 2);
  await using _ = g;
  const [op] = g;
  await using outsider = await peer(url);
  await op.fail(`/kick ${op.id} ${ch}`, 482);
  await op.fail(`/kick ${outsider.id} ${ch}`, 441);
  await op.fail(`/kick ${newId()} ${ch}`, 401);
  await op.fail(`/kick ${g[1].id} ${newChannel()}`, 403);
  await op.fail(`/kick ${g[1].id} #nothex some text`, 432);
  await op.fail(`/kick nothex ${ch}`, 432);
  await op.fail(`/kick`, 461);
  assert.equal((await op.ok(`/peers ${ch}`)).total, 2);
});

bbtest(
  "/kick resolves the channel: where the sender is op and the target a member; several → 461",
  async (rt) => {
    const url = server(rt).url;
    await using g = group(await peer(url, { name: "op" }), await peer(url, { name: "t" }));
    const [op, t] = g;
    const ch1 = newChannel();
    const ch2 = newChannel();
    await op.ok(`/join ${ch1}`);
    await op.ok(`/join ${ch2}`);
    await t.ok(`/join ${ch1}`);
    // Only ch1 fits (t is not in ch2). Text after the peer id is the kick text.
    const r = await op.ok(`/kick ${t.id} go away`);
    assert.equal(r.channel, ch1);
    const e = await t.event("kick");
    assert.equal(e.channel, ch1);
    assert.equal(e.text, "go away");
    // None fits: 441.
    await op.fail(`/kick ${t.id}`, 441);
    // Two fit: 461, channel required.
    await t.ok(`/join ${ch1}`);
    await t.ok(`/join ${ch2}`);
    await op.fail(`/kick ${t.id}`, 461);
    await op.fail(`/kick ${t.id} some reason`, 461);
    assert.equal((await op.ok(`/peers ${ch2}`)).total, 2);
    await op.ok(`/kick ${t.id} ${ch2}`);
  },
);

bbtest(
  "no channel given and the sender in none: /invite 442, /kick /ban /unban 482",
  async (rt) => {
    const url = server(rt).url;
    await using a = await peer(url);
    await using b = await peer(url);
    await b.ok(`/join ${newChannel()}`);
    await a.fail(`/invite ${b.id}`, 442);
    // No channel where the sender is operator: the privilege error.
    await a.fail(`/kick ${b.id}`, 482);
    await a.fail(`/ban ${b.id}`, 482);
    await a.fail(`/unban ${b.id}`, 482);
    await b.noEvent("invite", 50);
  },
);

bbtest(
  "/ban of a member: ban event to all, the banned included; removed without quit; 474 on join",
  async (rt) => {
    const { g, ch } = await room(server(rt).url, 3, "k");
    await using _ = g;
    const [op, b, c] = g;
    const r = await op.ok(`/ban ${b.id} ${ch}`);
    assertKeys(r, ["channel", "peer"], "ban data");
    assert.deepEqual(r, { channel: ch, peer: b.id });
    for (const x of [op, b, c]) {
      const e = await x.event("ban");
      assertKeys(e, ["type", "ts", "channel", "peer", "by"], "ban event");
      assert.deepEqual(
        { channel: e.channel, peer: e.peer, by: e.by },
        { channel: ch, peer: b.id, by: op.id },
      );
    }
    await barrier(op, ch, [c]);
    for (const x of [op, b, c]) await x.noEvent("quit", 0);
    await b.noEvent("pubmsg", 50);
    assert.equal((await op.ok(`/peers ${ch}`)).total, 2);
    // Bans win over keys and invites.
    await b.fail(`/join ${ch} k`, 474);
    await b.fail(`/join ${ch}`, 474);
    await op.fail(`/invite ${b.id} ${ch}`, 474);
    await b.noEvent("invite", 50);
    // Unban lifts it.
    const u = await op.ok(`/unban ${b.id} ${ch}`);
    assertKeys(u, ["channel", "peer"], "unban data");
    assert.deepEqual(u, { channel: ch, peer: b.id });
    await b.fail(`/join ${ch}`, 475);
    await b.ok(`/join ${ch} k`);
  },
);

bbtest(
  "/ban of a non-member online peer: members and the banned peer get the event",
  async (rt) => {
    const url = server(rt).url;
    const { g, ch } = await room(url, 2);
    await using _ = g;
    const [op, b] = g;
    await using out = await peer(url);
    await op.ok(`/ban ${out.id} ${ch}`);
    for (const x of [op, b, out]) {
      const e = await x.event("ban");
      assert.equal(e.peer, out.id);
      assert.equal(e.channel, ch);
    }
    await out.fail(`/join ${ch}`, 474);
    assert.equal((await op.ok(`/peers ${ch}`)).total, 2);
  },
);

bbtest("/ban and /unban accept ids that are offline or unknown", async (rt) => {
  const url = server(rt).url;
  const { g, ch } = await room(url, 2);
  await using _ = g;
  const [op, b] = g;
  const ghost = newId();
  assert.deepEqual(await op.ok(`/ban ${ghost} ${ch}`), { channel: ch, peer: ghost });
  const e = await b.event("ban");
  assert.equal(e.peer, ghost);
  // The ban holds when the id later comes online.
  await using late = await peer(url, { id: ghost });
  await late.fail(`/join ${ch}`, 474);
  assert.deepEqual(await op.ok(`/unban ${ghost} ${ch}`), { channel: ch, peer: ghost });
  await late.ok(`/join ${ch}`);
  // Unban of an id that was never banned: still ok (nothing to lift).
  await op.ok(`/unban ${newId()} ${ch}`);
});

bbtest(
  "/ban and /unban by a non-operator get 482; of oneself 482; unknown channel 403",
  async (rt) => {
    const { g, ch } = await room(server(rt).url, 3);
    await using _ = g;
    const [op, b, c] = g;
    await b.fail(`/ban ${c.id} ${ch}`, 482);
    await b.fail(`/unban ${c.id} ${ch}`, 482);
    await b.fail(`/ban ${c.id}`, 482);
    await op.fail(`/ban ${op.id} ${ch}`, 482);
    await op.fail(`/ban ${b.id} ${newChannel()}`, 403);
    await op.fail(`/unban ${b.id} ${newChannel()}`, 403);
    await op.fail(`/ban ${b.id} ${ch} extra`, 461);
    await op.fail(`/ban ${b.id} #zz`, 432);
    await op.fail(`/ban`, 461);
    await op.fail(`/unban`, 461);
    await c.noEvent("ban", 50);
    assert.equal((await op.ok(`/peers ${ch}`)).total, 3);
  },
);

bbtest("/ban resolves the channel where the sender is op; several → 461", async (rt) => {
  const url = server(rt).url;
  await using g = group(await peer(url), await peer(url), await peer(url));
  const [op, t, other] = g;
  const ch1 = newChannel();
  await op.ok(`/join ${ch1}`);
  const theirs = newChannel();
  await other.ok(`/join ${theirs}`);
  await op.ok(`/join ${theirs}`); // member, not op
  // One channel where op is operator: ch1, even though t is in none.
  assert.deepEqual(await op.ok(`/ban ${t.id}`), { channel: ch1, peer: t.id });
  assert.deepEqual(await op.ok(`/unban ${t.id}`), { channel: ch1, peer: t.id });
  const ch2 = newChannel();
  await op.ok(`/join ${ch2}`);
  await op.fail(`/ban ${t.id}`, 461);
  await op.fail(`/unban ${t.id}`, 461);
  await t.ok(`/join ${ch1}`);
  await t.ok(`/join ${ch2}`);
  // Nothing half-done: still a member of both.
  const w = await t.ok(`/whois ${t.id}`);
  assert.deepEqual([...w.channels].sort(), [ch1, ch2].sort());
});

bbtest(
  "/invite: the invited peer gets invite { channel, from }, no one else; joins once without the key",
  async (rt) => {
    const url = server(rt).url;
    const { g, ch } = await room(url, 2, "k3y");
    await using _ = g;
    const [a, b] = g;
    await using t = await peer(url, { name: "guest" });
    await using bystander = await peer(url);
    const r = await b.ok(`/invite ${t.id} ${ch}`); // any member may invite
    assertKeys(r, ["channel", "peer"], "invite data");
    assert.deepEqual(r, { channel: ch, peer: t.id });
    const e = await t.event("invite");
    assertKeys(e, ["type", "ts", "channel", "from"], "invite event");
    assert.deepEqual({ channel: e.channel, from: e.from }, { channel: ch, from: b.id });
    await a.noEvent("invite", 50);
    await b.noEvent("invite", 0);
    await bystander.noEvent("invite", 0);
    const j = await t.ok(`/join ${ch}`);
    assert.equal(j.total, 3);
    await t.ok(`/quit ${ch}`);
    // Once: the invite is used up.
    await t.fail(`/join ${ch}`, 475);
    await t.ok(`/join ${ch} k3y`);
  },
);

bbtest(
  "/invite of a member gets 443; by a non-member 442; of an unknown or offline id 401",
  async (rt) => {
    const url = server(rt).url;
    const { g, ch } = await room(url, 2);
    await using _ = g;
    const [a, b] = g;
    await using out = await peer(url);
    await a.fail(`/invite ${b.id} ${ch}`, 443);
    await out.fail(`/invite ${a.id} ${ch}`, 442);
    await a.fail(`/invite ${newId()} ${ch}`, 401);
    await a.fail(`/invite ${out.id} ${newChannel()}`, 403);
    await a.fail(`/invite ${out.id} #nothex`, 432);
    await a.fail(`/invite ${out.id} ${ch} extra`, 461);
    // A peer in its disconnect grace is not online: 401.
    const gone = await peer(url);
    await gone.close();
    await a.fail(`/invite ${gone.id} ${ch}`, 401);
    await out.noEvent("invite", 50);
  },
);

bbtest("/invite resolves the channel the sender is in; several → 461", async (rt) => {
  const url = server(rt).url;
  await using g = group(await peer(url), await peer(url), await peer(url));
  const [a, t, other] = g;
  const ch1 = newChannel();
  await a.ok(`/join ${ch1}`);
  assert.deepEqual(await a.ok(`/invite ${t.id}`), { channel: ch1, peer: t.id });
  assert.equal((await t.event("invite")).channel, ch1);
  const ch2 = newChannel();
  await other.ok(`/join ${ch2}`);
  await a.ok(`/join ${ch2}`); // not op there: invite needs membership only
  await a.fail(`/invite ${t.id}`, 461);
  await t.noEvent("invite", 50);
  await a.ok(`/invite ${t.id} ${ch2}`);
});

bbtest(
  "an invite lets the target join a keyed channel; a ban drops the pending invite",
  async (rt) => {
    const url = server(rt).url;
    const { g, ch } = await room(url, 1, "k");
    await using _ = g;
    const [op] = g;
    await using t = await peer(url);
    await op.ok(`/invite ${t.id} ${ch}`);
    await t.event("invite");
    await op.ok(`/ban ${t.id} ${ch}`);
    await op.ok(`/unban ${t.id} ${ch}`);
    await t.fail(`/join ${ch}`, 475);
  },
);
