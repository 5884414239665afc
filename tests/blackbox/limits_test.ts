/** Limits: frame size, rate limiting (263), flood (4003), slow consumers (4008). */
import assert from "node:assert/strict";
import { connect, group, type Msg, newChannel, newId, peer } from "../support/client.ts";
import { RawClient } from "../support/raw_ws.ts";
import { bbtest, startServer } from "../support/server.ts";
import { delay, within } from "../support/wait.ts";

bbtest(
  "--max-frame 1024: 1024 bytes accepted, 1025 bytes get 417, the connection stays",
  async (rt) => {
    await using s = await startServer({ runtime: rt, args: ["--max-frame", "1024"] });
    await using a = await peer(s.url);
    await using b = await peer(s.url);
    const head = `/privmsg ${b.id} `;
    const fits = head + "x".repeat(1024 - head.length);
    assert.equal(fits.length, 1024);
    await a.ok(fits);
    assert.equal((await b.event("privmsg")).text.length, 1024 - head.length);
    const over = fits + "x";
    const m = await a.cmd(over);
    assert.equal(m.type, "error");
    assert.equal(m.code, 417);
    assert.equal(m.error, "ERR_INPUTTOOLONG");
    assert.ok(m.cmd === "privmsg" || m.cmd === null, `cmd ${m.cmd}`);
    // Bytes, not characters: 600 × "é" is 1200 bytes.
    const wide = head + "é".repeat(600);
    assert.equal((await a.cmd(wide)).code, 417);
    // An oversized garbage frame: 417 (size) outranks 421.
    assert.equal((await a.cmd("x".repeat(2000))).code, 417);
    assert.equal((await a.cmd("/nosuch " + "x".repeat(2000))).code, 417);
    await b.noEvent("privmsg", 50);
    await a.ok(`/privmsg ${b.id} still connected`);
    assert.equal((await b.event("privmsg")).text, "still connected");
  },
);

bbtest(
  "--max-frame 1024: an oversized frame before /descp gets 417 and the connection stays",
  async (rt) => {
    await using s = await startServer({ runtime: rt, args: ["--max-frame", "1024"] });
    await using a = await peer(s.url);
    const c = await connect(s.url);
    try {
      const m = await c.cmd(`/descp {"id":"${newId()}","name":"${"n".repeat(1100)}"}`);
      assert.equal(m.code, 417);
      await c.ok(`/descp ${JSON.stringify({ id: newId(), name: "ok" })}`);
    } finally {
      await c.close();
    }
    await a.ok(`/whois ${a.id}`);
  },
);

bbtest("--rate 2 --burst 4: rate limits, 263 with retryAfterMs, flood close 4003", async (rt) => {
  await using s = await startServer({ runtime: rt, args: ["--rate", "2", "--burst", "4"] });
  await using g = group(await peer(s.url, { name: "a" }), await peer(s.url, { name: "b" }));
  const [a, b] = g;

  // Messages: a burst of 4 goes through, the rest get 263 and are not delivered; 263 (rate)
  // outranks 401 (existence). Sent at once, so the bucket gets back a token (every 500 ms)
  // only if reading them took that long; the bound below allows for exactly that.
  const t0 = Date.now();
  const frames = [0, 1, 2, 3, 4, 5].map((i) => `/privmsg ${b.id} m${i}`);
  frames.push(`/privmsg ${newId()} nobody`);
  for (const f of frames) a.send(f);
  const replies: Msg[] = [];
  for (let i = 0; i < frames.length; i++) replies.push(await a.reply());
  const refilled = Math.floor((Date.now() - t0) * 2 / 1000);
  assert.deepEqual(replies.slice(0, 4).map((r) => r.type), ["ok", "ok", "ok", "ok"]);
  const passed = replies.slice(4).filter((r) => r.type === "ok" || r.code === 401);
  assert.ok(passed.length <= refilled, `${passed.length} past the burst, ${refilled} refilled`);
  const refused = replies.filter((r) => r.type === "error" && r.code !== 401);
  assert.ok(refused.length >= 3 - refilled, `only ${refused.length} refused`);
  for (const r of refused) {
    assert.equal(r.code, 263);
    assert.equal(r.error, "RPL_TRYAGAIN");
    assert.equal(r.cmd, "privmsg");
    assert.equal(typeof r.retryAfterMs, "number");
    assert.ok(r.retryAfterMs > 0 && r.retryAfterMs <= 1000, `retryAfterMs ${r.retryAfterMs}`);
  }
  const delivered = frames.slice(0, 6).filter((_, i) => replies[i].type === "ok");
  for (const f of delivered) {
    assert.equal((await b.event("privmsg")).text, f.slice(f.lastIndexOf(" ") + 1));
  }
  // (A refused one would reach b before a's next privmsg: the "later" check rules them out.)
  // Other commands are on their own, larger bucket.
  await a.ok(`/whois ${b.id}`);
  // After retryAfterMs the message goes through.
  await delay(refused.at(-1)!.retryAfterMs + 50);
  await a.ok(`/privmsg ${b.id} later`);
  assert.equal((await b.event("privmsg")).text, "later");

  // All commands: 5× the rate (10/s, burst 20). A fresh peer (its /descp took one) sending
  // 30 /whois: at least 19 pass, and more only as far as tokens came back meanwhile.
  await using c = await peer(s.url, { name: "c" });
  const t1 = Date.now();
  for (let i = 0; i < 30; i++) c.send(`/whois ${c.id}`);
  const cr = [];
  for (let i = 0; i < 30; i++) cr.push(await c.reply());
  const back = Math.floor((Date.now() - t1) * 10 / 1000);
  const okCount = cr.filter((r) => r.type === "ok").length;
  assert.ok(cr.slice(0, 19).every((r) => r.type === "ok"), "the burst passes");
  assert.ok(okCount <= 20 + back, `${okCount} of 30 passed: over the burst and ${back} refilled`);
  for (const r of cr.filter((r) => r.type !== "ok")) assert.equal(r.code, 263);
  assert.ok(okCount < 30 || back >= 10, "some /whois got 263");

  // Flood: more than 10 × rate = 20 rejected commands within a second closes with 4003.
  // 4 pass (the burst), the 21st rejection is one too many: 25 frames, 25 replies, then 4003.
  await using d = await peer(s.url, { name: "d" });
  for (let i = 0; i < 25; i++) d.send(`/privmsg ${b.id} flood ${i}`);
  const flood = await within(d.closed, 10_000, "flood close");
  assert.equal(flood.code, 4003);
  assert.equal(d.log.length, 25 + 1, "every frame got its reply before the close");
  // Nothing rejected was delivered: at most the burst of 4 reached b. What d's accepted
  // privmsgs sent b was written before d was closed, so before this barrier.
  await using e = await peer(s.url, { name: "e" }); // full buckets, unlike everyone else's
  await e.ok(`/privmsg ${b.id} barrier`);
  await b.event("privmsg", { where: (m) => m.text === "barrier" });
  const got = b.pending("privmsg").filter((m) => m.text.startsWith("flood"));
  assert.ok(got.length <= 4, `${got.length} flood messages delivered`);
  // The others are unaffected.
  await a.ok(`/whois ${b.id}`);
});

bbtest("/invite and /broadcast spend the message rate limit: 263 with retryAfterMs", async (rt) => {
  const admin = "admin-" + newId();
  await using s = await startServer({
    runtime: rt,
    args: ["--rate", "1", "--burst", "2", "--admin-token", admin],
  });
  await using g = group(
    await peer(s.url, { name: "a", admin }),
    await peer(s.url, { name: "b" }),
    await peer(s.url, { name: "c" }),
  );
  const [a, b, c] = g;
  const ch = newChannel();
  await a.ok(`/join ${ch} key`); // /join is not a message: it spends only the command bucket
  // Two message tokens: one /invite and one /broadcast pass; the next of each gets 263.
  const frames = [
    `/invite ${b.id} ${ch}`,
    "/broadcast first",
    `/invite ${c.id} ${ch}`,
    "/broadcast second",
    `/privmsg ${b.id} third`,
  ];
  for (const f of frames) a.send(f);
  const replies: Msg[] = [];
  for (let i = 0; i < frames.length; i++) replies.push(await a.reply());
  assert.deepEqual(
    replies.map((r) => [r.cmd, r.type, r.code]),
    [
      ["invite", "ok", undefined],
      ["broadcast", "ok", undefined],
      ["invite", "error", 263],
      ["broadcast", "error", 263],
      ["privmsg", "error", 263],
    ],
  );
  for (const r of replies.slice(2)) {
    assert.equal(r.error, "RPL_TRYAGAIN");
    assert.equal(typeof r.retryAfterMs, "number");
    assert.ok(r.retryAfterMs > 0 && r.retryAfterMs <= 1000, `retryAfterMs ${r.retryAfterMs}`);
  }
  assert.equal((await b.event("invite")).channel, ch);
  assert.equal((await b.event("broadcast")).text, "first");
  assert.equal((await c.event("broadcast")).text, "first");
  // The refused ones did nothing: c holds no invite (the key is still needed) ...
  await c.fail(`/join ${ch}`, 475);
  // ... and, once the bucket has a token again, the next broadcast is the very next event.
  await delay(replies[4].retryAfterMs + 50);
  await a.ok("/broadcast fourth");
  for (const x of [b, c]) {
    assert.equal((await x.event("broadcast")).text, "fourth", `${x.name}: no "second"`);
    assert.deepEqual(x.pending("invite"), [], `${x.name}: no second invite`);
  }
});

// The server reads (and drops) what a closed client still sends for a while after its close
// frame, so the close frame is not lost to a reset.
bbtest("a flooder that keeps sending still sees close 4003", async (rt) => {
  await using s = await startServer({ runtime: rt, args: ["--rate", "2", "--burst", "4"] });
  await using b = await peer(s.url);
  using d = await RawClient.connect(s.url);
  await d.sendText(`/descp ${JSON.stringify({ id: newId(), name: "d" })}`);
  assert.equal((await d.reply()).type, "ok");
  // Read while sending, as a real client does.
  const reading = within(d.readUntilClose(), 10_000, "flood close");
  try {
    for (let i = 0; i < 60; i++) await d.sendText(`/privmsg ${b.id} flood ${i}`);
  } catch { /* the server closed the connection */ }
  const flood = await reading;
  assert.equal(
    flood.code,
    4003,
    `no close frame: the connection ended after ${flood.frames} frames`,
  );
});

bbtest(
  "defaults: a burst within the rate limit does not close members that read (4008)",
  async (rt) => {
    // The whole burst of 40 pubmsgs at the 64 KiB frame limit: 2.6 MB for each member, more
    // than the 1 MiB max-buffered, yet every member reads as fast as it can.
    await using s = await startServer({ runtime: rt });
    await using g = group(await peer(s.url), await peer(s.url), await peer(s.url));
    const [sender, r1, r2] = g;
    const ch = newChannel();
    for (const x of g) await x.ok(`/join ${ch}`);
    const head = `/pubmsg ${ch} `;
    const text = "s".repeat(64 * 1024 - head.length);
    for (let i = 0; i < 40; i++) sender.send(head + text);
    for (let i = 0; i < 40; i++) assert.equal((await sender.reply()).type, "ok");
    for (const r of [r1, r2]) {
      for (let i = 0; i < 40; i++) await r.event("pubmsg", { timeout: 5000 });
      assert.equal(r.ws.readyState, WebSocket.OPEN);
    }
  },
);

bbtest("a client that stops reading is closed with 4008; the others keep receiving", async (rt) => {
  await using s = await startServer({
    runtime: rt,
    args: ["--rate", "0", "--max-buffered", "65536", "--grace-ms", "200"],
  });
  await using g = group(
    await peer(s.url, { name: "flooder" }),
    await peer(s.url, { name: "reader" }),
  );
  const [flooder, reader] = g;
  const ch = newChannel();
  await flooder.ok(`/join ${ch}`);
  await reader.ok(`/join ${ch}`);
  await flooder.event("join");

  using slow = await RawClient.connect(s.url);
  const slowId = newId();
  await slow.sendText(`/descp ${JSON.stringify({ id: slowId, name: "slow" })}`);
  assert.equal((await slow.reply()).type, "ok");
  await slow.sendText(`/join ${ch}`);
  assert.equal((await slow.reply()).type, "ok");
  await flooder.event("join");
  await reader.event("join");

  // The slow client never reads again. Flood the channel until the server gives up on it
  // (the kernel's socket buffers absorb a few MB first).
  const online = async () => {
    const w = await reader.cmd(`/whois ${slowId}`);
    return w.type === "ok" && w.data.online === true;
  };
  // Batches of 10 × 4 KiB stay under the 64 KiB limit for a client that reads.
  const text = "d".repeat(4 * 1024);
  const N = 10_000; // up to ~40 MB towards the slow client
  let sent = 0;
  let received = 0;
  for (let batch = 0; batch < N / 10; batch++) {
    for (let i = 0; i < 10; i++) flooder.send(`/pubmsg ${ch} ${sent++} ${text}`);
    for (let i = 0; i < 10; i++) {
      const r = await flooder.reply(10_000);
      assert.equal(r.type, "ok", JSON.stringify(r));
    }
    // The reader keeps up.
    while (received < sent) {
      await reader.event("pubmsg", { timeout: 10_000 });
      received++;
    }
    if (!(await online())) break;
  }
  assert.equal(await online(), false, `the slow client was not dropped after ${sent} messages`);
  assert.equal(received, sent, "the reader got every message");
  // The slow client finds the close frame 4008 at the end of its backlog.
  const { code } = await within(slow.readUntilClose(), 10_000, "end of the slow stream");
  assert.equal(code, 4008);
  // The reader is still fine.
  await flooder.ok(`/pubmsg ${ch} after`);
  assert.equal(
    (await reader.event("pubmsg", { where: (m) => m.text === "after" })).text,
    "after",
  );
});

// Frames over 16 × --max-frame are refused by the socket layer: on Bun by uWebSockets, on Deno
// by the server's own frame reader (server/deno_websocket.ts).
bbtest("a frame far over the limit is refused by the runtime: close 1009", async (rt) => {
  await using s = await startServer({ runtime: rt, args: ["--max-frame", "1024"] });
  await using a = await peer(s.url);
  a.send("/away " + "x".repeat(16 * 1024 + 1));
  assert.equal((await within(a.closed, 10_000, "close")).code, 1009);
});
