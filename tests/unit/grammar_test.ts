import assert from "node:assert/strict";
import { ObjectId } from "bson";
import fc from "fast-check";
import {
  Codes,
  COMMANDS,
  formatCommand,
  isChannelId,
  isPeerId,
  newChannelId,
  newId,
  parseCommand,
  parseDescription,
} from "../../protocol/mod.ts";

const P = "65a1f0c2e4b0a1b2c3d4e5f6";
const C = "#65a1f0c2e4b0a1b2c3d4e5f7";

function ok(frame: string) {
  const r = parseCommand(frame);
  if (!r.ok) assert.fail(`${frame} → ${JSON.stringify(r.error)}`);
  return r.command;
}

function err(frame: string, code: number, cmd: string | null) {
  const r = parseCommand(frame);
  assert.equal(r.ok, false, `${frame} should not parse`);
  if (r.ok) return;
  assert.equal(r.error.code, code, `${frame}: ${r.error.message}`);
  assert.equal(r.error.cmd, cmd);
}

Deno.test("ids: newId makes BSON ObjectIds of the current time, unique", () => {
  const ids = Array.from({ length: 1000 }, () => newId());
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids.slice(0, 10)) {
    const oid = new ObjectId(id);
    assert.equal(oid.toHexString(), id);
    assert.ok(Math.abs(oid.getTimestamp().getTime() - Date.now()) < 5000);
  }
});

Deno.test("ids: newId and newChannelId make valid lowercase ids", () => {
  assert.ok(isPeerId(newId()));
  assert.ok(isChannelId(newChannelId()));
  assert.match(newId(), /^[0-9a-f]{24}$/);
  assert.ok(!isPeerId(P + "0"));
  assert.ok(!isPeerId("zz" + P.slice(2)));
  assert.ok(!isChannelId(P));
  assert.ok(!isChannelId("#" + P.slice(1)));
});

Deno.test("a frame without / gets 421 with cmd null", () => {
  err("join #x", Codes.ERR_UNKNOWNCOMMAND, null);
  err("", Codes.ERR_UNKNOWNCOMMAND, null);
  err(" /join " + C, Codes.ERR_UNKNOWNCOMMAND, null);
});

Deno.test("an unknown command gets 421 with cmd null", () => {
  err("/nick bob", Codes.ERR_UNKNOWNCOMMAND, null);
  err("/", Codes.ERR_UNKNOWNCOMMAND, null);
  err("/join2 " + C, Codes.ERR_UNKNOWNCOMMAND, null);
  err("/jo-in " + C, Codes.ERR_UNKNOWNCOMMAND, null);
});

Deno.test("command names are case-insensitive and ids are reported lowercase", () => {
  assert.deepEqual(ok("/JOIN " + C.toUpperCase().replace("#", "#")), { cmd: "join", channel: C });
  assert.deepEqual(ok("/PrivMsg " + P.toUpperCase() + " hi"), {
    cmd: "privmsg",
    peer: P,
    text: "hi",
  });
});

Deno.test("/join: channel, optional token, 461 on extra or missing, 432 malformed, 417 long key", () => {
  assert.deepEqual(ok(`/join ${C}`), { cmd: "join", channel: C });
  assert.deepEqual(ok(`/join   ${C}   s3cret  `), { cmd: "join", channel: C, token: "s3cret" });
  err("/join", Codes.ERR_NEEDMOREPARAMS, "join");
  err(`/join ${C} a b`, Codes.ERR_NEEDMOREPARAMS, "join");
  err("/join #nothex", Codes.ERR_ERRONEUSNICKNAME, "join");
  err(`/join ${P}`, Codes.ERR_ERRONEUSNICKNAME, "join");
  assert.deepEqual(ok(`/join ${C} ${"k".repeat(128)}`), {
    cmd: "join",
    channel: C,
    token: "k".repeat(128),
  });
  err(`/join ${C} ${"k".repeat(129)}`, Codes.ERR_INPUTTOOLONG, "join");
});

Deno.test("/quit and /whois take one argument", () => {
  assert.deepEqual(ok(`/quit ${C}`), { cmd: "quit", channel: C });
  err("/quit", Codes.ERR_NEEDMOREPARAMS, "quit");
  err(`/quit ${C} x`, Codes.ERR_NEEDMOREPARAMS, "quit");
  assert.deepEqual(ok(`/whois ${P}`), { cmd: "whois", peer: P });
  assert.deepEqual(ok(`/whois ${C}`), { cmd: "whois", channel: C });
  err("/whois", Codes.ERR_NEEDMOREPARAMS, "whois");
  err("/whois bob", Codes.ERR_ERRONEUSNICKNAME, "whois");
  err("/whois #bob", Codes.ERR_ERRONEUSNICKNAME, "whois");
  err(`/whois ${P} ${C}`, Codes.ERR_NEEDMOREPARAMS, "whois");
});

Deno.test("text is taken verbatim after exactly one space", () => {
  const sdp = "v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\ns=-\r\n";
  assert.deepEqual(ok(`/privmsg ${P} ${sdp}`), { cmd: "privmsg", peer: P, text: sdp });
  assert.deepEqual(ok(`/pubmsg ${C}   two  spaces  `), {
    cmd: "pubmsg",
    channel: C,
    text: "  two  spaces  ",
  });
  assert.deepEqual(ok(`/privmsg ${P} {"a": [1, 2]}`), {
    cmd: "privmsg",
    peer: P,
    text: '{"a": [1, 2]}',
  });
  assert.deepEqual(ok("/broadcast  hi"), { cmd: "broadcast", text: " hi" });
  err(`/privmsg ${P}`, Codes.ERR_NEEDMOREPARAMS, "privmsg");
  err(`/privmsg ${P} `, Codes.ERR_NEEDMOREPARAMS, "privmsg");
  err(`/pubmsg ${C}`, Codes.ERR_NEEDMOREPARAMS, "pubmsg");
  err("/broadcast", Codes.ERR_NEEDMOREPARAMS, "broadcast");
  err("/privmsg bob hi", Codes.ERR_ERRONEUSNICKNAME, "privmsg");
});

Deno.test("/away: no text toggles, text sets", () => {
  assert.deepEqual(ok("/away"), { cmd: "away" });
  assert.deepEqual(ok("/away "), { cmd: "away" });
  assert.deepEqual(ok("/away gone  fishing"), { cmd: "away", text: "gone  fishing" });
});

Deno.test("/peers: optional non-negative offset", () => {
  assert.deepEqual(ok(`/peers ${C}`), { cmd: "peers", channel: C, offset: 0 });
  assert.deepEqual(ok(`/peers ${C} 500`), { cmd: "peers", channel: C, offset: 500 });
  err(`/peers ${C} -1`, Codes.ERR_NEEDMOREPARAMS, "peers");
  err(`/peers ${C} x`, Codes.ERR_NEEDMOREPARAMS, "peers");
  err(`/peers ${C} 1 2`, Codes.ERR_NEEDMOREPARAMS, "peers");
});

Deno.test("/invite, /ban, /unban: peer and optional channel", () => {
  for (const cmd of ["invite", "ban", "unban"] as const) {
    assert.deepEqual(ok(`/${cmd} ${P}`), { cmd, peer: P });
    assert.deepEqual(ok(`/${cmd} ${P} ${C}`), { cmd, peer: P, channel: C });
    err(`/${cmd}`, Codes.ERR_NEEDMOREPARAMS, cmd);
    err(`/${cmd} ${P} ${C} x`, Codes.ERR_NEEDMOREPARAMS, cmd);
    err(`/${cmd} ${P} nochannel`, Codes.ERR_NEEDMOREPARAMS, cmd);
    err(`/${cmd} ${P} #bad`, Codes.ERR_ERRONEUSNICKNAME, cmd);
  }
});

Deno.test("/kick: peer, optional channel, optional verbatim text", () => {
  assert.deepEqual(ok(`/kick ${P}`), { cmd: "kick", peer: P });
  assert.deepEqual(ok(`/kick ${P} ${C}`), { cmd: "kick", peer: P, channel: C });
  assert.deepEqual(ok(`/kick ${P} ${C} spam  spam`), {
    cmd: "kick",
    peer: P,
    channel: C,
    text: "spam  spam",
  });
  assert.deepEqual(ok(`/kick ${P} no spam`), { cmd: "kick", peer: P, text: "no spam" });
  err(`/kick ${P} #bad reason`, Codes.ERR_ERRONEUSNICKNAME, "kick");
});

Deno.test("/descp: id and name required, reserved fields split off, meta kept", () => {
  const c = ok(
    `/descp {"id":"${P.toUpperCase()}","name":"Ann","resume":"r","token":"t","admin":"a","x":1}`,
  );
  assert.deepEqual(c, {
    cmd: "descp",
    desc: { id: P, name: "Ann", meta: { x: 1 }, resume: "r", token: "t", admin: "a" },
  });
  err("/descp", Codes.ERR_NEEDMOREPARAMS, "descp");
  err("/descp {", Codes.ERR_ERRONEUSNICKNAME, "descp");
  err("/descp []", Codes.ERR_ERRONEUSNICKNAME, "descp");
  err('/descp "x"', Codes.ERR_ERRONEUSNICKNAME, "descp");
  err(`/descp {"name":"a"}`, Codes.ERR_ERRONEUSNICKNAME, "descp");
  err(`/descp {"id":"${P}"}`, Codes.ERR_ERRONEUSNICKNAME, "descp");
  err(`/descp {"id":"${P}","name":""}`, Codes.ERR_ERRONEUSNICKNAME, "descp");
  err(`/descp {"id":"${P}","name":5}`, Codes.ERR_ERRONEUSNICKNAME, "descp");
  err(`/descp {"id":"${P}","name":"a","resume":5}`, Codes.ERR_ERRONEUSNICKNAME, "descp");
});

Deno.test("/descp: name counts code points; over 64 or meta over 4 KiB gets 417, before 432", () => {
  const emoji = "😀".repeat(64);
  assert.equal(parseDescription(JSON.stringify({ id: P, name: emoji })).name, emoji);
  err(`/descp ${JSON.stringify({ id: P, name: "a".repeat(65) })}`, Codes.ERR_INPUTTOOLONG, "descp");
  err(
    `/descp ${JSON.stringify({ id: P, name: "a", pad: "x".repeat(4100) })}`,
    Codes.ERR_INPUTTOOLONG,
    "descp",
  );
  err(
    `/descp ${JSON.stringify({ id: "bad", name: "a".repeat(65) })}`,
    Codes.ERR_INPUTTOOLONG,
    "descp",
  );
});

Deno.test("/descp: __proto__ and constructor keys are plain data", () => {
  const d = parseDescription(
    `{"id":"${P}","name":"a","__proto__":{"polluted":1},"constructor":"c"}`,
  );
  assert.equal(Object.getPrototypeOf(d.meta), Object.prototype);
  assert.deepEqual(Object.keys(d.meta).sort(), ["__proto__", "constructor"]);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(JSON.stringify(d.meta), '{"__proto__":{"polluted":1},"constructor":"c"}');
});

Deno.test("formatCommand round-trips through parseCommand", () => {
  fc.assert(
    fc.property(fc.string({ minLength: 1 }), (text) => {
      const c = ok(formatCommand("privmsg", [P], text));
      assert.deepEqual(c, { cmd: "privmsg", peer: P, text });
    }),
  );
  assert.equal(formatCommand("join", [C, "k"]), `/join ${C} k`);
});

Deno.test("parseCommand never throws, whatever the frame", () => {
  const names = fc.constantFrom(...COMMANDS, "JOIN", "nope", "");
  const frame = fc.oneof(
    fc.string(),
    fc.tuple(names, fc.string()).map(([n, rest]) => `/${n} ${rest}`),
    fc.tuple(names, fc.array(fc.constantFrom(P, C, " ", "#", "{", "}", "x", "\r\n"))).map((
      [n, parts],
    ) => `/${n} ${parts.join("")}`),
  );
  fc.assert(
    fc.property(frame, (f) => {
      const r = parseCommand(f);
      assert.equal(typeof r.ok, "boolean");
    }),
    { numRuns: 2000 },
  );
});

Deno.test("within a frame 417 beats 461 beats 432", () => {
  err("/quit #bad extra", Codes.ERR_NEEDMOREPARAMS, "quit");
  err("/privmsg nothex", Codes.ERR_NEEDMOREPARAMS, "privmsg");
  err("/kick nothex #bad x", Codes.ERR_ERRONEUSNICKNAME, "kick");
  err(`/peers #bad 0 x`, Codes.ERR_NEEDMOREPARAMS, "peers");
  err(`/join #bad ${"k".repeat(129)}`, Codes.ERR_INPUTTOOLONG, "join");
  err(`/join #bad ${"k".repeat(129)} extra`, Codes.ERR_INPUTTOOLONG, "join");
  err(`/ban nothex nochannel`, Codes.ERR_NEEDMOREPARAMS, "ban");
});

Deno.test("a channel key counts Unicode code points: 128 emoji fit, 129 get 417", () => {
  const C2 = "#65a1f0c2e4b0a1b2c3d4e5f8";
  assert.deepEqual(ok(`/join ${C2} ${"😀".repeat(128)}`), {
    cmd: "join",
    channel: C2,
    token: "😀".repeat(128),
  });
  err(`/join ${C2} ${"😀".repeat(129)}`, Codes.ERR_INPUTTOOLONG, "join");
});
