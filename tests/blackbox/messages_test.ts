/** /privmsg, /broadcast, /away, verbatim text and case-insensitivity. */
import assert from "node:assert/strict";
import { assertKeys, assertObjectId, assertTs } from "../support/asserts.ts";
import { connect, describe, group, newChannel, newId, peer } from "../support/client.ts";
import { bbtest, sharedServer, startServer } from "../support/server.ts";

const server = await sharedServer();

bbtest(
  "/privmsg: the target gets { id, ts, from, to, text }; the reply { id, ts } has no away",
  async (rt) => {
    const url = server(rt).url;
    await using g = group(await peer(url), await peer(url), await peer(url));
    const [a, b, c] = g;
    const ch = newChannel();
    for (const x of g) await x.ok(`/join ${ch}`);
    const r = await a.ok(`/privmsg ${b.id} psst`);
    assertKeys(r, ["id", "ts"], "privmsg data");
    assertObjectId(r.id);
    assertTs(r.ts);
    const e = await b.event("privmsg");
    assertKeys(e, ["type", "id", "ts", "from", "to", "text", "seq"], "privmsg event");
    assert.deepEqual(
      { id: e.id, from: e.from, to: e.to, text: e.text, seq: e.seq },
      { id: r.id, from: a.id, to: b.id, text: "psst", seq: 1 },
    );
    // Nobody else, not even a co-member or the sender.
    await c.noEvent("privmsg", 50);
    await a.noEvent("privmsg", 0);
  },
);

bbtest("/privmsg to an unknown peer gets 401; malformed id 432; no text 461", async (rt) => {
  await using a = await peer(server(rt).url);
  await a.fail(`/privmsg ${newId()} hello`, 401);
  await a.fail(`/privmsg 12345 hello`, 432);
  await a.fail(`/privmsg #${newId()} hello`, 432);
  await a.fail(`/privmsg ${newId()}`, 461);
  await a.fail(`/privmsg ${a.id} `, 461);
  await a.fail(`/privmsg`, 461);
});

bbtest("/privmsg to oneself is allowed", async (rt) => {
  await using a = await peer(server(rt).url);
  const r = await a.ok(`/privmsg ${a.id} note to self`);
  const e = await a.event("privmsg");
  assert.equal(e.id, r.id);
  assert.equal(e.from, a.id);
  assert.equal(e.to, a.id);
});

bbtest(
  "text is taken verbatim: SDP with CRLF, spaces, JSON, unicode (privmsg and pubmsg)",
  async (rt) => {
    const url = server(rt).url;
    await using a = await peer(url);
    await using b = await peer(url);
    const ch = newChannel();
    await a.ok(`/join ${ch}`);
    await b.ok(`/join ${ch}`);
    await a.event("join");
    const sdp = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
      "a=group:BUNDLE 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n" +
      "a=candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host\r\n";
    const texts = [
      sdp,
      "  two leading, two trailing  ",
      "inner  double   spaces",
      " ",
      "\t tab and newline \n",
      JSON.stringify({ type: "offer", sdp, nested: { a: [1, "x y"] } }),
      "/join #not-a-command",
      "emoji \u{1F600} and accents é ü 中文",
      '{"type":"ok"}\n{"type":"error"}',
      "trailing backslash \\",
    ];
    for (const text of texts) {
      await a.ok(`/privmsg ${b.id} ${text}`);
      assert.equal((await b.event("privmsg")).text, text, `privmsg ${JSON.stringify(text)}`);
      await b.ok(`/pubmsg ${ch} ${text}`);
      assert.equal((await a.event("pubmsg")).text, text, `pubmsg ${JSON.stringify(text)}`);
    }
    // Runs of spaces separate arguments; exactly one space precedes the text.
    await a.ok(`/privmsg   ${b.id}   three spaces`);
    assert.equal((await b.event("privmsg")).text, "  three spaces");
  },
);

bbtest("commands and ids are case-insensitive; ids are reported lowercase", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url);
  await using b = await peer(url);
  const ch = newChannel();
  const j = await a.cmd(`/JOIN ${ch.toUpperCase()}`);
  assert.equal(j.type, "ok");
  assert.equal(j.cmd, "join");
  assert.equal(j.data.channel, ch);
  const jb = await b.cmd(`/Join ${ch}`);
  assert.equal(jb.data.created, false, "the same channel whatever the case");
  await a.event("join");
  const r = await a.cmd(`/PrivMsg ${b.id.toUpperCase()} Hi`);
  assert.equal(r.cmd, "privmsg");
  const e = await b.event("privmsg");
  assert.equal(e.to, b.id);
  assert.equal(e.text, "Hi");
  await b.ok(`/PUBMSG ${ch.toUpperCase()} Yo`);
  assert.equal((await a.event("pubmsg")).channel, ch);
  const w = await a.cmd(`/WHOIS ${b.id.toUpperCase()}`);
  assert.equal(w.cmd, "whois");
  assert.equal(w.data.id, b.id);
  const k = await a.cmd(`/KICK ${b.id.toUpperCase()} ${ch.toUpperCase()}`);
  assert.equal(k.cmd, "kick");
  assert.deepEqual(k.data, { channel: ch, peer: b.id });
});

bbtest(
  "/away text: away events to co-members only; /whois, /peers and /privmsg show it",
  async (rt) => {
    const url = server(rt).url;
    await using g = group(
      await peer(url, { name: "a" }),
      await peer(url, { name: "b" }),
      await peer(url, { name: "c" }),
      await peer(url, { name: "d" }),
    );
    const [a, b, c, d] = g;
    const ch1 = newChannel();
    const ch2 = newChannel();
    await a.ok(`/join ${ch1}`);
    await a.ok(`/join ${ch2}`);
    await b.ok(`/join ${ch1}`);
    await b.ok(`/join ${ch2}`); // shares two channels with a: one event
    await c.ok(`/join ${ch2}`);
    const r = await a.ok("/away  gone fishing ");
    assertKeys(r, ["away", "message"], "away data");
    assert.deepEqual(r, { away: true, message: " gone fishing " });
    for (const x of [b, c]) {
      const e = await x.event("away");
      assertKeys(e, ["type", "ts", "peer", "away", "message"], "away event");
      assert.deepEqual(
        { peer: e.peer, away: e.away, message: e.message },
        { peer: a.id, away: true, message: " gone fishing " },
      );
    }
    await b.noEvent("away", 100);
    await d.noEvent("away", 0);
    await a.noEvent("away", 0);

    const w = await d.ok(`/whois ${a.id}`);
    assert.equal(w.away, true);
    assert.equal(w.message, " gone fishing ");
    const p = await d.ok(`/peers ${ch1}`);
    const entry = p.peers.find((x: { id: string }) => x.id === a.id);
    assert.equal(entry.away, true);
    assert.equal(entry.message, " gone fishing ");
    const pm = await d.ok(`/privmsg ${a.id} are you there?`);
    assert.equal(pm.away, " gone fishing ");
    await a.event("privmsg"); // delivered all the same

    // /away alone toggles back.
    const back = await a.ok("/away");
    assert.equal(back.away, false);
    assert.equal("message" in back, false);
    for (const x of [b, c]) {
      const e = await x.event("away");
      assert.equal(e.peer, a.id);
      assert.equal(e.away, false);
      assert.equal("message" in e, false);
    }
    const w2 = await d.ok(`/whois ${a.id}`);
    assert.equal(w2.away, false);
    assert.equal("message" in w2, false);
    const pm2 = await d.ok(`/privmsg ${a.id} back?`);
    assert.equal("away" in pm2, false);
  },
);

bbtest(
  '/away with no text (or an empty one) toggles; away without a message shows "" in /privmsg',
  async (rt) => {
    const url = server(rt).url;
    await using a = await peer(url);
    await using b = await peer(url);
    const on = await a.ok("/away");
    assert.equal(on.away, true);
    const pm = await b.ok(`/privmsg ${a.id} hi`);
    assert.equal(pm.away, "");
    const w = await b.ok(`/whois ${a.id}`);
    assert.equal(w.away, true);
    const off = await a.ok("/away ");
    assert.equal(off.away, false);
    const pm2 = await b.ok(`/privmsg ${a.id} hi`);
    assert.equal("away" in pm2, false);
    // Setting a message while away replaces it; /away text never toggles off.
    await a.ok("/away first");
    const again = await a.ok("/away second");
    assert.deepEqual(again, { away: true, message: "second" });
    assert.equal((await b.ok(`/privmsg ${a.id} x`)).away, "second");
    await a.ok("/AWAY");
    assert.equal((await b.ok(`/whois ${a.id}`)).away, false);
  },
);

bbtest("/broadcast by a non-admin gets 481 and reaches no one", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url, { admin: "guess" });
  await using b = await peer(url);
  await a.fail("/broadcast hello world", 481);
  await a.fail("/broadcast", 461);
  await b.noEvent("broadcast", 50);
});

bbtest(
  "/broadcast (--admin-token): every described connection but the sender's; recipients",
  async (rt) => {
    const token = "adm-" + newId();
    await using s = await startServer({ runtime: rt, args: ["--admin-token", token] });
    await using admin = await connect(s.url, "admin");
    const d = await describe(admin, { name: "admin", admin: token });
    assert.equal(d.admin, true);
    assert.deepEqual(d.peer.meta, {}, "the admin token is not meta");
    await using notAdmin = await peer(s.url, { admin: token + "x" });
    await using plain = await peer(s.url);
    await using undescribed = await connect(s.url, "undescribed");
    const gone = await peer(s.url); // in its grace: not online
    await gone.close();
    const r = await admin.ok("/broadcast  maintenance at 5 ");
    assertKeys(r, ["id", "ts", "recipients"], "broadcast data");
    assertObjectId(r.id);
    assert.equal(r.recipients, 2);
    for (const x of [notAdmin, plain]) {
      const e = await x.event("broadcast");
      assertKeys(e, ["type", "id", "ts", "from", "text"], "broadcast event");
      assert.deepEqual(
        { id: e.id, from: e.from, text: e.text },
        { id: r.id, from: admin.id, text: " maintenance at 5 " },
      );
    }
    await admin.noEvent("broadcast", 50);
    await undescribed.noEvent("broadcast", 0);
    assert.equal(undescribed.log.length, 0);
    await notAdmin.fail("/broadcast me too", 481);
  },
);
