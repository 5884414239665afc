/** Channels: /join, /quit, /pubmsg, /whois, /peers, keys, operators, retention, limits. */
import assert from "node:assert/strict";
import { assertKeys, assertObjectId, assertTs } from "../support/asserts.ts";
import { group, newChannel, newId, peer } from "../support/client.ts";
import { bbtest, sharedServer, startServer } from "../support/server.ts";
import { delay, until } from "../support/wait.ts";

const server = await sharedServer();

bbtest("/join of a new channel creates it: created, op, total 1, members [self]", async (rt) => {
  await using a = await peer(server(rt).url, { name: "creator" });
  const ch = newChannel();
  const j = await a.ok(`/join ${ch}`);
  assertKeys(j, ["channel", "created", "op", "total", "members", "stream"], "join data");
  assert.equal(j.stream.seq, 0, "a new channel's stream is empty");
  assert.equal(j.channel, ch);
  assert.equal(j.created, true);
  assert.equal(j.op, true);
  assert.equal(j.total, 1);
  assert.deepEqual(j.members, [
    { id: a.id, name: "creator", op: true, away: false, online: true },
  ]);
});

bbtest("/join of an existing channel: not created, not op, members in join order", async (rt) => {
  const url = server(rt).url;
  await using g = group(
    await peer(url, { name: "a" }),
    await peer(url, { name: "b" }),
    await peer(url, { name: "c" }),
  );
  const [a, b, c] = g;
  const ch = newChannel();
  await a.ok(`/join ${ch}`);
  const jb = await b.ok(`/join ${ch}`);
  assert.equal(jb.created, false);
  assert.equal(jb.op, false);
  assert.equal(jb.total, 2);
  const jc = await c.ok(`/join ${ch}`);
  assert.equal(jc.total, 3);
  assert.deepEqual(jc.members, [
    { id: a.id, name: "a", op: true, away: false, online: true },
    { id: b.id, name: "b", op: false, away: false, online: true },
    { id: c.id, name: "c", op: false, away: false, online: true },
  ]);
});

bbtest("join event goes to every member but the joiner, with peer { id, name }", async (rt) => {
  const url = server(rt).url;
  await using g = group(
    await peer(url, { name: "a" }),
    await peer(url, { name: "b" }),
    await peer(url, { name: "c" }),
    await peer(url, { name: "outsider" }),
  );
  const [a, b, c, out] = g;
  const ch = newChannel();
  await a.ok(`/join ${ch}`);
  await b.ok(`/join ${ch}`);
  const e1 = await a.event("join");
  assertKeys(e1, ["type", "ts", "channel", "peer"], "join event");
  assertTs(e1.ts);
  assert.equal(e1.channel, ch);
  assert.deepEqual(e1.peer, { id: b.id, name: "b" });
  await c.ok(`/join ${ch}`);
  assert.deepEqual((await a.event("join")).peer, { id: c.id, name: "c" });
  assert.deepEqual((await b.event("join")).peer, { id: c.id, name: "c" });
  // Barrier, then: the joiners got no join for themselves, the outsider nothing.
  await a.ok(`/pubmsg ${ch} sync`);
  await b.event("pubmsg");
  await c.event("pubmsg");
  await b.noEvent("join", 0);
  await c.noEvent("join", 0);
  await out.noEvent("join", 0);
  assert.deepEqual(out.pending(), []);
});

bbtest("joining a channel you are in is a success with no event", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url);
  await using b = await peer(url);
  const ch = newChannel();
  await a.ok(`/join ${ch} secret`);
  await b.ok(`/join ${ch} secret`);
  await a.event("join");
  const again = await b.ok(`/join ${ch}`); // no key needed: already a member
  assert.equal(again.created, false);
  assert.equal(again.total, 2);
  const again2 = await a.ok(`/join ${ch} secret`);
  assert.equal(again2.op, true);
  await b.ok(`/pubmsg ${ch} sync`);
  await a.event("pubmsg");
  await a.noEvent("join", 0);
  await b.noEvent("join", 0);
});

bbtest("/join with a wrong or missing key gets 475; the right key joins", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url);
  await using b = await peer(url);
  const ch = newChannel();
  const j = await a.ok(`/join ${ch} s3cret`);
  assert.equal(j.created, true);
  await b.fail(`/join ${ch}`, 475);
  await b.fail(`/join ${ch} wrong`, 475);
  await b.fail(`/join ${ch} S3CRET`, 475);
  await b.fail(`/join ${ch} s3cre`, 475);
  // Nothing changed: a still alone, no join event.
  const p = await a.ok(`/peers ${ch}`);
  assert.equal(p.total, 1);
  await a.noEvent("join", 0);
  const jb = await b.ok(`/join ${ch} s3cret`);
  assert.equal(jb.total, 2);
  assert.equal((await a.event("join")).peer.id, b.id);
});

bbtest("a channel key of 128 characters is accepted, 129 gets 417", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url);
  await using b = await peer(url);
  await a.fail(`/join ${newChannel()} ${"k".repeat(129)}`, 417);
  const ch = newChannel();
  await a.ok(`/join ${ch} ${"k".repeat(128)}`);
  await b.fail(`/join ${ch} ${"k".repeat(127)}`, 475);
  await b.ok(`/join ${ch} ${"k".repeat(128)}`);
});

bbtest("/join with an extra argument gets 461 and joins nothing", async (rt) => {
  await using a = await peer(server(rt).url);
  const ch = newChannel();
  await a.fail(`/join ${ch} key extra`, 461);
  await a.fail(`/whois ${ch}`, 403);
});

bbtest("/join of a malformed channel gets 432", async (rt) => {
  await using a = await peer(server(rt).url);
  await a.fail(`/join #xyz`, 432);
  await a.fail(`/join ${newId()}`, 432); // a peer id is not a channel
  await a.fail(`/join #${newId()}0`, 432);
  await a.fail(`/join`, 461);
});

bbtest("/quit replies { channel }; remaining members get quit reason quit", async (rt) => {
  const url = server(rt).url;
  await using g = group(await peer(url), await peer(url), await peer(url));
  const [a, b, c] = g;
  const ch = newChannel();
  await a.ok(`/join ${ch}`);
  await b.ok(`/join ${ch}`);
  await c.ok(`/join ${ch}`);
  const q = await b.ok(`/quit ${ch}`);
  assertKeys(q, ["channel"], "quit data");
  assert.equal(q.channel, ch);
  for (const x of [a, c]) {
    const e = await x.event("quit");
    assertKeys(e, ["type", "ts", "channel", "peer", "reason"], "quit event");
    assert.deepEqual(
      { channel: e.channel, peer: e.peer, reason: e.reason },
      { channel: ch, peer: b.id, reason: "quit" },
    );
  }
  // The quitter gets no quit event and no more channel traffic.
  await a.ok(`/pubmsg ${ch} after`);
  await c.event("pubmsg");
  await b.noEvent("quit", 0);
  await b.noEvent("pubmsg", 50);
  const p = await a.ok(`/peers ${ch}`);
  assert.deepEqual(p.peers.map((e: { id: string }) => e.id), [a.id, c.id]);
  await b.fail(`/pubmsg ${ch} not a member`, 404);
});

bbtest("/quit of a channel you are not in gets 442; of an unknown channel 403", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url);
  await using b = await peer(url);
  const ch = newChannel();
  await a.ok(`/join ${ch}`);
  await b.fail(`/quit ${ch}`, 442);
  await b.fail(`/quit ${newChannel()}`, 403);
  await b.fail(`/quit ${ch} extra`, 461);
  await a.noEvent("quit", 0);
});

bbtest("operator rights are held by id and survive /quit while the channel exists", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url);
  await using b = await peer(url);
  const ch = newChannel();
  await a.ok(`/join ${ch}`);
  await b.ok(`/join ${ch}`);
  await a.ok(`/quit ${ch}`);
  const w = await b.ok(`/whois ${ch}`);
  assert.deepEqual(w.operators, [a.id]);
  const j = await a.ok(`/join ${ch}`);
  assert.equal(j.op, true);
  assert.equal(j.created, false);
  await a.ok(`/kick ${b.id} ${ch}`);
});

bbtest("/pubmsg reaches every member but the sender; reply id matches the event", async (rt) => {
  const url = server(rt).url;
  await using g = group(
    await peer(url, { name: "a" }),
    await peer(url, { name: "b" }),
    await peer(url, { name: "c" }),
    await peer(url, { name: "outsider" }),
  );
  const [a, b, c, out] = g;
  const ch = newChannel();
  for (const x of [a, b, c]) await x.ok(`/join ${ch}`);
  const r = await a.ok(`/pubmsg ${ch} hello channel`);
  assertKeys(r, ["id", "ts", "seq"], "pubmsg data");
  assert.equal(r.seq, 1, "the channel's first message");
  assertObjectId(r.id);
  assertTs(r.ts);
  for (const x of [b, c]) {
    const e = await x.event("pubmsg");
    assertKeys(e, ["type", "id", "ts", "from", "channel", "text", "seq"], "pubmsg event");
    assert.deepEqual(
      { id: e.id, from: e.from, channel: e.channel, text: e.text, seq: e.seq },
      { id: r.id, from: a.id, channel: ch, text: "hello channel", seq: 1 },
    );
  }
  const r2 = await b.ok(`/pubmsg ${ch} second`);
  assert.notEqual(r2.id, r.id, "message ids are unique");
  assert.equal((await a.event("pubmsg")).text, "second");
  await c.event("pubmsg");
  await a.noEvent("pubmsg", 50, (m) => m.text === "hello channel");
  await out.noEvent("pubmsg", 0);
});

bbtest("/pubmsg by a non-member gets 404; to an unknown channel 403; no text 461", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url);
  await using b = await peer(url);
  const ch = newChannel();
  await a.ok(`/join ${ch}`);
  await b.fail(`/pubmsg ${ch} let me in`, 404);
  await b.fail(`/pubmsg ${newChannel()} nobody`, 403);
  await a.fail(`/pubmsg ${ch}`, 461);
  await a.fail(`/pubmsg ${ch} `, 461);
  await a.noEvent("pubmsg", 50);
});

bbtest("/whois #channel: members, operators, keyed, created — never the key", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url, { name: "a" });
  await using b = await peer(url, { name: "b" });
  const ch = newChannel();
  const key = "key-" + newId();
  const before = Date.now();
  await a.ok(`/join ${ch} ${key}`);
  await b.ok(`/join ${ch} ${key}`);
  const w = await b.ok(`/whois ${ch}`);
  for (const k of Object.keys(w)) {
    assert.ok(["channel", "members", "operators", "keyed", "created", "total"].includes(k), k);
  }
  assert.equal(w.channel, ch);
  assert.equal(w.keyed, true);
  assert.deepEqual(w.operators, [a.id]);
  assert.deepEqual(w.members, [
    { id: a.id, name: "a", op: true, away: false, online: true },
    { id: b.id, name: "b", op: false, away: false, online: true },
  ]);
  assert.ok(w.created >= before - 1000 && w.created <= Date.now() + 1000, "created is a ms ts");
  assert.ok(!JSON.stringify(w).includes(key), "the key is never shown");
  const open = newChannel();
  await a.ok(`/join ${open}`);
  assert.equal((await b.ok(`/whois ${open}`)).keyed, false);
});

bbtest("a keyed channel: /whois and /peers are for members only (442)", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url);
  await using b = await peer(url);
  const ch = newChannel();
  await a.ok(`/join ${ch} k`);
  await b.fail(`/whois ${ch}`, 442);
  await b.fail(`/peers ${ch}`, 442);
  // An unkeyed channel is visible to anyone described.
  const open = newChannel();
  await a.ok(`/join ${open}`);
  await b.ok(`/whois ${open}`);
  assert.equal((await b.ok(`/peers ${open}`)).total, 1);
});

bbtest("/whois of an unknown channel gets 403, of an unknown peer 401", async (rt) => {
  await using a = await peer(server(rt).url);
  await a.fail(`/whois ${newChannel()}`, 403);
  await a.fail(`/whois ${newId()}`, 401);
  await a.fail(`/peers ${newChannel()}`, 403);
  await a.fail(`/whois`, 461);
  await a.fail(`/whois #nothex`, 432);
  await a.fail(`/whois nothex`, 432);
});

bbtest(
  "/whois peer: { id, name, meta, away, online, channels } shows keyed channels only to members",
  async (rt) => {
    const url = server(rt).url;
    await using a = await peer(url, { name: "a", role: "streamer" });
    await using b = await peer(url, { name: "b" });
    await using c = await peer(url, { name: "c" });
    const open = newChannel();
    const keyed = newChannel();
    const keyed2 = newChannel();
    await a.ok(`/join ${open}`);
    await a.ok(`/join ${keyed} k`);
    await a.ok(`/join ${keyed2} k2`);
    await b.ok(`/join ${keyed} k`);
    const wb = await b.ok(`/whois ${a.id}`);
    assertKeys(wb, ["id", "name", "meta", "away", "online", "channels"], "whois peer");
    assert.deepEqual(wb.meta, { role: "streamer" });
    assert.equal(wb.away, false);
    assert.equal(wb.online, true);
    assert.deepEqual([...wb.channels].sort(), [open, keyed].sort());
    const wc = await c.ok(`/whois ${a.id}`);
    assert.deepEqual(wc.channels, [open]);
    const wa = await a.ok(`/whois ${a.id}`);
    assert.deepEqual([...wa.channels].sort(), [open, keyed, keyed2].sort());
  },
);

bbtest(
  "/peers: { channel, total, offset, peers } in join order, no next on the last page",
  async (rt) => {
    const url = server(rt).url;
    await using g = group(await peer(url, { name: "a" }), await peer(url, { name: "b" }));
    const [a, b] = g;
    const ch = newChannel();
    await a.ok(`/join ${ch}`);
    await b.ok(`/join ${ch}`);
    const p = await b.ok(`/peers ${ch}`);
    assertKeys(p, ["channel", "total", "offset", "peers"], "peers data");
    assert.equal(p.channel, ch);
    assert.equal(p.total, 2);
    assert.equal(p.offset, 0);
    assert.deepEqual(p.peers, [
      { id: a.id, name: "a", op: true, away: false, online: true },
      { id: b.id, name: "b", op: false, away: false, online: true },
    ]);
    const p1 = await b.ok(`/peers ${ch} 1`);
    assert.equal(p1.offset, 1);
    assert.equal(p1.total, 2);
    assert.deepEqual(p1.peers.map((e: { id: string }) => e.id), [b.id]);
    assert.equal(p1.next, undefined);
    const p9 = await b.ok(`/peers ${ch} 9`);
    assert.deepEqual(p9.peers, []);
    assert.equal(p9.next, undefined);
  },
);

bbtest("/peers with a bad offset gets 461", async (rt) => {
  await using a = await peer(server(rt).url);
  const ch = newChannel();
  await a.ok(`/join ${ch}`);
  await a.fail(`/peers ${ch} -1`, 461);
  await a.fail(`/peers ${ch} abc`, 461);
  await a.fail(`/peers ${ch} 1.5`, 461);
  await a.fail(`/peers ${ch} 0 1`, 461);
  await a.fail(`/peers`, 461);
});

// --- a server with short retention and a small channel limit -------------------

// Long enough for the checks made within it on a loaded machine, short enough to wait out.
const RETENTION = 1000;

bbtest("retention and channel limit (--retention-ms 1000 --max-channels 3)", async (rt) => {
  await using s = await startServer({
    runtime: rt,
    args: ["--retention-ms", String(RETENTION), "--max-channels", "3"],
  });
  await using g = group(await peer(s.url, { name: "a" }), await peer(s.url, { name: "b" }));
  const [a, b] = g;

  // An empty channel keeps its key and operators until the retention ends.
  const ch = newChannel();
  await a.ok(`/join ${ch} k`);
  await a.ok(`/quit ${ch}`);
  await b.fail(`/join ${ch}`, 475);
  const open = newChannel();
  await a.ok(`/join ${open}`);
  await a.ok(`/quit ${open}`);
  const w = await b.ok(`/whois ${open}`);
  assert.deepEqual(w.members, []);
  assert.deepEqual(w.operators, [a.id]);
  // Forgotten once the retention ends (and a periodic sweep, every second, has run):
  // /whois gets 403, the key is no longer required, the joiner creates it anew.
  await until(
    async () => (await b.cmd(`/whois ${ch}`)).code === 403,
    RETENTION + 5000,
    "the empty channel forgotten",
  );
  await b.fail(`/whois ${ch}`, 403);
  await b.fail(`/whois ${open}`, 403);
  const j = await b.ok(`/join ${ch}`);
  assert.equal(j.created, true);
  assert.equal(j.op, true);
  const ja = await a.ok(`/join ${open}`);
  assert.equal(ja.created, true);

  // Channel limit: b is in 1 channel; 2 more fit, the 4th gets 405.
  const c2 = newChannel();
  const c3 = newChannel();
  await b.ok(`/join ${c2}`);
  await b.ok(`/join ${c3}`);
  const c4 = newChannel();
  await b.fail(`/join ${c4}`, 405);
  await b.fail(`/whois ${c4}`, 403); // nothing half-done: not created
  await b.ok(`/join ${c3}`); // already a member: still fine
  // 475 outranks 405.
  const keyed = newChannel();
  await a.ok(`/join ${keyed} right`);
  await b.fail(`/join ${keyed} wrong`, 475);
  // 474 outranks 475 and 405.
  await a.ok(`/ban ${b.id} ${keyed}`);
  await b.fail(`/join ${keyed} wrong`, 474);
  await b.fail(`/join ${keyed} right`, 474);
  // After a quit there is room again.
  await b.ok(`/quit ${c2}`);
  await b.ok(`/join ${c4}`);

  // A pending invite expires with the retention time.
  await using t = await peer(s.url, { name: "t" });
  const invited = Date.now();
  await a.ok(`/invite ${t.id} ${keyed}`);
  await t.event("invite");
  await delay(invited + RETENTION + 200 - Date.now()); // an invite lapses when the retention ends
  await t.fail(`/join ${keyed}`, 475);
  await t.ok(`/join ${keyed} right`);
});
