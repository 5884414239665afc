/** The command grammar: garbage frames, argument errors, error priority, reply order. */
import assert from "node:assert/strict";
import { connect, group, newChannel, newId, peer } from "../support/client.ts";
import { bbtest, sharedServer, startServer } from "../support/server.ts";
import { within } from "../support/wait.ts";

const server = await sharedServer();

bbtest("garbage frames get 421 with cmd null and the connection stays", async (rt) => {
  await using a = await peer(server(rt).url);
  for (
    const frame of ["", "hello", "join #x", " /join", "/", "/ ", "/nosuch", "/join2 x", "/jo-in"]
  ) {
    await a.fail(frame, 421, null);
  }
  a.send(new TextEncoder().encode("/whois " + a.id)); // binary frame
  const m = await a.reply();
  assert.equal(m.type, "error");
  assert.equal(m.code, 421);
  assert.equal(m.cmd, null);
  a.send(new Uint8Array([0xff, 0x00, 0x13]));
  assert.equal((await a.reply()).code, 421);
  await a.ok(`/whois ${a.id}`);
});

bbtest("a frame over the default 64 KiB limit gets 417 and the connection stays", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url);
  await using b = await peer(url);
  const big = `/privmsg ${b.id} ` + "x".repeat(70 * 1024);
  const m = await a.cmd(big);
  assert.equal(m.type, "error");
  assert.equal(m.code, 417);
  assert.ok(m.cmd === "privmsg" || m.cmd === null, `cmd ${m.cmd}`);
  await b.noEvent("privmsg", 50);
  // An SDP-sized message (~60 KiB) fits.
  const sdp = "a=candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host\r\n".repeat(1000);
  await a.ok(`/privmsg ${b.id} ${sdp}`);
  assert.equal((await b.event("privmsg")).text, sdp);
});

bbtest("missing arguments get 461", async (rt) => {
  await using a = await peer(server(rt).url);
  const id = newId();
  const ch = newChannel();
  for (
    const frame of [
      "/join",
      "/quit",
      "/privmsg",
      `/privmsg ${id}`,
      "/pubmsg",
      `/pubmsg ${ch}`,
      "/broadcast",
      "/whois",
      "/peers",
      "/invite",
      "/kick",
      "/ban",
      "/unban",
      "/descp",
    ]
  ) {
    await a.fail(frame, 461);
  }
});

bbtest("extra arguments get 461 and change nothing", async (rt) => {
  await using a = await peer(server(rt).url);
  const ch = newChannel();
  await a.ok(`/join ${ch}`);
  const other = newId();
  for (
    const frame of [
      `/join ${newChannel()} key extra`,
      `/quit ${ch} extra`,
      `/whois ${a.id} extra`,
      `/whois ${ch} extra`,
      `/peers ${ch} 0 extra`,
      `/invite ${other} ${ch} extra`,
      `/ban ${other} ${ch} extra`,
      `/unban ${other} ${ch} extra`,
    ]
  ) {
    await a.fail(frame, 461);
  }
  const w = await a.ok(`/whois ${a.id}`);
  assert.deepEqual(w.channels, [ch]);
});

bbtest("malformed peer ids and channels get 432", async (rt) => {
  await using a = await peer(server(rt).url);
  const id = newId();
  for (
    const frame of [
      `/join #${id.slice(1)}`,
      `/join ${id}`,
      `/join #${id.slice(0, 23)}g`,
      `/quit #`,
      `/privmsg ${id.slice(1)} hi`,
      `/privmsg ${id}0 hi`,
      `/privmsg x${id.slice(1)} hi`,
      `/pubmsg ${id} hi`,
      `/whois #abc`,
      `/whois abc`,
      `/peers ${id}`,
      `/invite ${id.toUpperCase().replace(/./, "G")}`,
      `/kick ${id} #${id}x`,
      `/ban ${id} #zzz`,
      `/unban #${id}`,
    ]
  ) {
    await a.fail(frame, 432);
  }
});

bbtest("error priority: 403 beats 442/404, 401 beats 482, 474 beats 475", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url);
  await using b = await peer(url);
  // Unknown channel (existence) before membership.
  await a.fail(`/pubmsg ${newChannel()} x`, 403);
  await a.fail(`/quit ${newChannel()}`, 403);
  await a.fail(`/invite ${b.id} ${newChannel()}`, 403);
  // Unknown peer before privilege: a non-operator kicking an unknown id.
  const ch = newChannel();
  await b.ok(`/join ${ch}`);
  await a.ok(`/join ${ch}`);
  await a.fail(`/kick ${newId()} ${ch}`, 401);
  // Ban before key.
  const keyed = newChannel();
  await b.ok(`/join ${keyed} k`);
  await b.ok(`/ban ${a.id} ${keyed}`);
  await a.fail(`/join ${keyed} wrong`, 474);
  // Membership before ban: a non-member inviting a banned peer.
  await using c = await peer(url);
  await c.fail(`/invite ${a.id} ${keyed}`, 442);
});

bbtest("error priority: 461 beats 432 (syntax order within a frame)", async (rt) => {
  await using a = await peer(server(rt).url);
  // Both a malformed argument and a missing/extra one: 461 wins.
  await a.fail(`/quit #bad extra`, 461);
  await a.fail(`/privmsg nothex`, 461);
  await a.fail(`/whois nothex extra`, 461);
});

bbtest("error priority: 417 beats 432 (a key too long on a malformed channel)", async (rt) => {
  await using a = await peer(server(rt).url);
  await a.fail(`/join #bad ${"k".repeat(129)}`, 417);
});

bbtest("error priority before /descp: 421 and 461/432 come before 451", async (rt) => {
  const url = server(rt).url;
  await using c = await connect(url);
  await c.fail("/nosuch", 421, null);
  // (Whether a syntax error before /descp also closes is not specified: fresh sockets.)
  await using c461 = await connect(url);
  await c461.fail("/join", 461);
  await using c432 = await connect(url);
  await c432.fail("/join #bad", 432);
  await c.fail(`/join ${newChannel()}`, 451);
  assert.equal((await within(c.closed, 5000, "close 4001 after 451")).code, 4001);
});

bbtest(
  "50 mixed commands sent without waiting: one reply each, in order, with the right cmd",
  async (rt) => {
    const url = server(rt).url;
    await using g = group(await peer(url), await peer(url));
    const [a, b] = g;
    const ch = newChannel();
    const frames: [string, string | null][] = [];
    const add = (frame: string, cmd: string | null) => frames.push([frame, cmd]);
    add(`/join ${ch}`, "join");
    for (let i = 0; i < 7; i++) {
      add(`/pubmsg ${ch} m${i}`, "pubmsg");
      add(`/whois ${a.id}`, "whois");
      add(`/privmsg ${b.id} p${i}`, "privmsg");
      add(`/peers ${ch}`, "peers");
      add(`/nosuch ${i}`, null);
      add(`/privmsg ${newId()} lost`, "privmsg"); // 401
      add(`/away ${i % 2 ? "" : "brb"}`, "away");
    }
    add(`/quit ${ch}`, "quit");
    assert.equal(frames.length, 51);
    for (const [f] of frames) a.send(f);
    const replies = [];
    for (let i = 0; i < frames.length; i++) replies.push(await a.reply());
    for (let i = 0; i < frames.length; i++) {
      assert.equal(replies[i].cmd, frames[i][1], `reply ${i} to ${frames[i][0]}`);
    }
    // Spot checks: the right reply for the right frame.
    assert.equal(replies[0].type, "ok");
    for (let i = 0; i < 7; i++) {
      const base = 1 + i * 7;
      assert.equal(replies[base + 1].data.id, a.id);
      assert.equal(replies[base + 4].code, 421);
      assert.equal(replies[base + 5].code, 401);
      assert.equal(replies[base + 6].data.away, i % 2 === 0 ? true : false);
    }
    // The privmsgs arrive in order.
    for (let i = 0; i < 7; i++) assert.equal((await b.event("privmsg")).text, `p${i}`);
    assert.equal(replies[50].data.channel, ch);
  },
);

bbtest(
  "error priority: 401 beats 442 (/invite of an unknown peer by a peer in no channel)",
  async (rt) => {
    await using a = await peer(server(rt).url);
    await a.fail(`/invite ${newId()}`, 401);
  },
);

bbtest("error priority: 475 beats 405, 263 beats 403", async (rt) => {
  await using s = await startServer({
    runtime: rt,
    args: ["--max-channels", "1", "--rate", "1", "--burst", "1"],
  });
  await using a = await peer(s.url);
  await using b = await peer(s.url);
  const keyed = newChannel();
  await a.ok(`/join ${keyed} k`);
  await b.ok(`/join ${newChannel()}`); // b is at its channel limit
  await b.fail(`/join ${keyed} wrong`, 475); // key before channel limit
  await b.fail(`/join ${keyed} k`, 405);
  await b.fail(`/pubmsg ${newChannel()} x`, 403); // spends the one message token
  await b.fail(`/pubmsg ${newChannel()} x`, 263); // rate before existence
});

bbtest("runs of U+0020 separate arguments: /join, /whois, /invite, /kick", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url);
  await using b = await peer(url);
  const ch = newChannel();
  const j = await a.ok(`/join    ${ch}     k3y`);
  assert.equal(j.channel, ch);
  await b.fail(`/join ${ch}`, 475);
  await b.ok(`/join  ${ch}  k3y`); // the key is "k3y": the spaces around it are separators
  await a.event("join");
  assert.equal((await a.ok(`/whois   ${b.id}`)).id, b.id);
  assert.equal((await a.ok(`/whois ${ch}   `)).channel, ch, "trailing spaces are no argument");
  await a.fail(`/invite  ${b.id}   ${ch}`, 443); // both arguments read: b is a member
  await a.ok(`/kick   ${b.id}   ${ch} off  you go`);
  const k = await b.event("kick");
  assert.equal(k.text, "off  you go", "one space before the text, the text verbatim");
});

bbtest("a tab is no separator: it belongs to the word it touches", async (rt) => {
  const url = server(rt).url;
  await using a = await peer(url);
  await using b = await peer(url);
  // After the command name: no known command.
  await a.fail(`/whois\t${b.id}`, 421, null);
  // Inside the arguments: the word with the tab is a malformed id or channel.
  await a.fail(`/whois ${b.id}\t`, 432);
  await a.fail(`/join ${newChannel()}\tkey`, 432);
  await a.fail(`/invite ${b.id}\t${newChannel()}`, 432);
  // A peer id glued to the text by a tab leaves no text: 461 outranks 432.
  await a.fail(`/privmsg ${b.id}\thello`, 461);
  await b.noEvent("privmsg", 0);
  // A tab inside a key is part of the key (were it a separator, "two" would be an extra
  // argument: 461).
  const ch = newChannel();
  await a.ok(`/join ${ch} one\ttwo`);
  await b.fail(`/join ${ch} one`, 475);
  await b.fail(`/join ${ch} two`, 475);
  await b.ok(`/join ${ch} one\ttwo`);
  // And a tab right after the single space before the text is text.
  await a.event("join");
  await b.ok(`/pubmsg ${ch} \tindented`);
  assert.equal((await a.event("pubmsg")).text, "\tindented");
  assert.deepEqual((await a.ok(`/whois ${a.id}`)).channels, [ch], "nothing else was joined");
});

bbtest("error priority: 401 beats 474 (/invite of a banned id that is not online)", async (rt) => {
  const url = server(rt).url;
  await using op = await peer(url, { name: "op" });
  await using banned = await peer(url, { name: "banned" });
  const ch = newChannel();
  await op.ok(`/join ${ch}`);
  const offline = newId();
  await op.ok(`/ban ${offline} ${ch}`);
  await op.ok(`/ban ${banned.id} ${ch}`);
  await op.fail(`/invite ${offline} ${ch}`, 401); // existence first
  await op.fail(`/invite ${banned.id} ${ch}`, 474); // online: the ban applies
});

bbtest("error priority: 263 (rate) beats 481, 442 and 404", async (rt) => {
  await using s = await startServer({ runtime: rt, args: ["--rate", "1", "--burst", "1"] });
  await using owner = await peer(s.url, { name: "owner" });
  const ch = newChannel();
  await owner.ok(`/join ${ch}`);
  // Each peer spends its one message token on a command that fails for its own reason,
  // then repeats it with the bucket empty: the rate limit is checked first.
  const cases: [string, 481 | 442 | 404][] = [
    ["/broadcast hello", 481], // not an admin
    [`/invite ${owner.id} ${ch}`, 442], // not a member of the channel
    [`/pubmsg ${ch} hello`, 404], // not a member of the channel
  ];
  for (const [frame, code] of cases) {
    await using p = await peer(s.url);
    p.send(frame);
    p.send(frame);
    const first = await p.reply();
    const second = await p.reply();
    assert.equal(first.code, code, `${frame}: ${JSON.stringify(first)}`);
    assert.equal(second.code, 263, `${frame} again: ${JSON.stringify(second)}`);
    assert.equal(typeof second.retryAfterMs, "number");
  }
  await owner.noEvent("invite", 0);
  await owner.noEvent("pubmsg", 0);
});
