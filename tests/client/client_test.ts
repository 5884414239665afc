/**
 * The typed client against the real server on a free port: commands and
 * their replies, events, and what the client does when its connection drops
 * or the server closes it. Drops are made with a TCP relay cut in the middle
 * ({@linkcode TcpProxy}), as a network fails.
 */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { type ClientEvents, SignallerClientError, SignallerError } from "../../client/mod.ts";
import { newChannelId, newId } from "../../protocol/ids.ts";
import {
  chan,
  collect,
  deadPort,
  makeClient,
  next,
  rejection,
  startServer,
  TcpProxy,
  test,
  WAIT_MS,
  within,
} from "./support.ts";

const ADMIN_TOKEN = "client-test-admin";
const AUTH_SECRET = "client-test-secret";
const GRACE_MS = 1000;

/** One server for the tests that need no flags of their own; they use fresh ids and channels. */
const server = await startServer({
  args: ["--grace-ms", String(GRACE_MS), "--admin-token", ADMIN_TOKEN],
});

/** A signed auth token for peer `sub`. */
function jwt(sub: string, secret = AUTH_SECRET): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(sub)
    .setExpirationTime("1h").sign(new TextEncoder().encode(secret));
}

/** A server that requires auth tokens signed with {@linkcode AUTH_SECRET}. */
function authServer() {
  return startServer({
    args: [
      "--auth-secret",
      AUTH_SECRET,
      "--admin-token",
      ADMIN_TOKEN,
      "--grace-ms",
      String(GRACE_MS),
    ],
  });
}

// ---- describing the peer -------------------------------------------------------

test("connect() describes the peer and resolves with the typed /descp reply: idle → connecting → open → closed", async () => {
  const id = newId();
  const { client, sockets } = makeClient(server.url, {
    id: id.toUpperCase(),
    name: "Alice",
    meta: { color: "red" },
  });
  assert.equal(client.id, id, "ids are lowercase");
  assert.equal(client.state, "idle");
  const opened = next(client, "open");
  const connecting = client.connect();
  assert.equal(client.state, "connecting");
  const me = await within(connecting, WAIT_MS, "connect()");
  try {
    assert.equal(me.peer.id, id);
    assert.equal(me.peer.name, "Alice");
    assert.deepEqual(me.peer.meta, { color: "red" });
    assert.equal(typeof me.resume, "string");
    assert.ok(me.resume.length >= 16);
    assert.equal(me.admin, false);
    assert.deepEqual(me.channels, []);
    assert.equal(typeof me.server.version, "string");
    assert.equal(client.state, "open");
    assert.equal(client.resumeToken, me.resume);
    assert.deepEqual(client.description, me);
    assert.deepEqual(await within(opened, WAIT_MS, "the open event"), me);
    assert.equal(await client.connect(), me, "connect() while open resolves at once");
    assert.equal(sockets.length, 1);
  } finally {
    await client.close();
  }
  assert.equal(client.state, "closed");
  assert.equal(sockets[0].readyState, WebSocket.CLOSED, "close() resolves once the socket closed");
});

test("/descp carries options.token (asked for before every /descp) and options.admin; the meta cannot set resume, since, token or admin", async () => {
  await using s = await authServer();
  await using proxy = new TcpProxy(s.port);
  const id = newId();
  const tokens: string[] = [];
  const ann = makeClient(proxy.url, {
    id,
    name: "Ann",
    meta: {
      color: "red",
      resume: "from-meta",
      since: "from-meta",
      token: "from-meta",
      admin: ADMIN_TOKEN,
    },
    token: async () => {
      tokens.push(await jwt(id));
      return tokens[tokens.length - 1];
    },
  });
  const a = ann.client;
  const me = await a.connect();
  try {
    assert.deepEqual(me.peer.meta, { color: "red" });
    assert.equal(me.admin, false, "the meta's admin field is not the admin option");
    assert.equal(tokens.length, 1);
    assert.deepEqual(ann.descps(), [{ color: "red", id, name: "Ann", token: tokens[0] }]);
    // A reconnect asks for a token again (an expiring one can be refreshed) and resumes.
    const resumed = next(a, "resumed");
    proxy.cut();
    await within(resumed, WAIT_MS, "resumed");
    assert.equal(tokens.length, 2);
    assert.deepEqual(ann.descps()[1], {
      color: "red",
      id,
      name: "Ann",
      token: tokens[1],
      resume: me.resume,
      since: { inbox: me.inbox },
    });
  } finally {
    await a.close();
  }
  const rootId = newId();
  const root = makeClient(s.url, {
    id: rootId,
    name: "Root",
    admin: ADMIN_TOKEN,
    token: await jwt(rootId),
  });
  try {
    assert.equal((await root.client.connect()).admin, true);
    assert.equal(root.descps()[0].admin, ADMIN_TOKEN);
  } finally {
    await root.client.close();
  }
});

test("describe() updates name and meta with no event for co-members, and a reconnect describes the peer that way", async () => {
  await using proxy = new TcpProxy(server.port);
  const alice = makeClient(proxy.url, { name: "peer" });
  const a = alice.client;
  const b = makeClient(server.url, { name: "Bob" }).client;
  try {
    const first = await a.connect();
    await b.connect();
    const channel = chan();
    const joined = await a.join(channel);
    await b.join(channel);
    const seenByB = collect(b, "event");
    const d = await a.describe({ name: "Alice", meta: { color: "red" } });
    assert.equal(d.peer.name, "Alice");
    assert.deepEqual(d.peer.meta, { color: "red" });
    assert.equal(a.name, "Alice");
    assert.deepEqual(a.description, d);
    assert.deepEqual(a.channels, [channel]);
    const w = await b.whois(a.id);
    assert.ok("name" in w && w.name === "Alice");
    assert.deepEqual(w.meta, { color: "red" });
    assert.deepEqual(seenByB, []);
    const resumed = next(a, "resumed");
    proxy.cut();
    const r = await within(resumed, WAIT_MS, "resumed");
    assert.deepEqual(alice.descps().at(-1), {
      color: "red",
      id: a.id,
      name: "Alice",
      resume: first.resume,
      since: { inbox: first.inbox, channels: { [channel]: joined.stream } },
    });
    assert.equal(r.data.peer.name, "Alice");
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

// ---- commands, replies and events ----------------------------------------------

test("commands while not open reject at once with not-connected and send nothing", async () => {
  const { client, sockets } = makeClient(server.url);
  const e1 = await rejection(client.join(chan()), "a /join before connect()");
  assert.ok(e1 instanceof SignallerClientError && e1.kind === "not-connected", String(e1));
  const connecting = client.connect();
  const e2 = await rejection(client.pubmsg(chan(), "early"), "a /pubmsg while connecting");
  assert.ok(e2 instanceof SignallerClientError && e2.kind === "not-connected", String(e2));
  // Had /pubmsg been sent before /descp, the server would have closed the socket (4001).
  await connecting;
  assert.equal(client.state, "open");
  await client.close();
  const e3 = await rejection(client.away(), "an /away after close()");
  assert.ok(e3 instanceof SignallerClientError && e3.kind === "not-connected", String(e3));
  assert.equal(sockets.length, 1);
  assert.deepEqual(sockets[0].sent.map((f) => f.split(" ")[0]), ["/descp"]);
});

test("/join and /pubmsg between two clients deliver typed events", async () => {
  const a = makeClient(server.url, { name: "Alice" }).client;
  const b = makeClient(server.url, { name: "Bob" }).client;
  try {
    await a.connect();
    await b.connect();
    const channel = chan();
    const ja = await a.join(channel);
    assert.equal(ja.created, true);
    assert.equal(ja.op, true);
    assert.equal(ja.total, 1);
    const joined = next(a, "join");
    const jb = await b.join(channel);
    assert.equal(jb.created, false);
    assert.equal(jb.op, false);
    assert.equal(jb.total, 2);
    assert.deepEqual(jb.members.map((m) => m.id).sort(), [a.id, b.id].sort());
    const join = await within(joined, WAIT_MS, "a's join event");
    assert.equal(join.channel, channel);
    assert.deepEqual(join.peer, { id: b.id, name: "Bob" });
    assert.equal(typeof join.ts, "number");
    const published = next(b, "pubmsg");
    const sent = await a.pubmsg(channel, "  hello, world \r\n");
    assert.match(sent.id, /^[0-9a-f]{24}$/);
    const pub = await within(published, WAIT_MS, "b's pubmsg event");
    assert.deepEqual([pub.id, pub.from, pub.channel, pub.text], [
      sent.id,
      a.id,
      channel,
      "  hello, world \r\n",
    ]);
    const direct = next(a, "privmsg");
    await b.privmsg(a.id, "offer");
    const dm = await within(direct, WAIT_MS, "a's privmsg event");
    assert.deepEqual([dm.from, dm.to, dm.text], [b.id, a.id, "offer"]);
    const w = await a.whois(channel);
    assert.deepEqual(w.operators, [a.id]);
    assert.equal(w.keyed, false);
    const page = await a.peers(channel);
    assert.deepEqual([page.total, page.offset, page.next], [2, 0, undefined]);
    const q = await b.quit(channel);
    assert.equal(q.channel, channel);
    assert.deepEqual(b.channels, []);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test("error replies reject with SignallerError (475 wrong key, 401 unknown peer, 442, 482, 481)", async () => {
  const a = makeClient(server.url).client;
  const b = makeClient(server.url).client;
  try {
    await a.connect();
    await b.connect();
    const channel = chan();
    await a.join(channel, "s3cret");
    const cases: [Promise<unknown>, number, string, string][] = [
      [b.join(channel, "wrong"), 475, "ERR_BADCHANNELKEY", "join"],
      [b.join(channel), 475, "ERR_BADCHANNELKEY", "join"],
      [b.privmsg(newId(), "hi"), 401, "ERR_NOSUCHNICK", "privmsg"],
      [b.quit(channel), 442, "ERR_NOTONCHANNEL", "quit"],
      [b.kick(a.id, channel), 482, "ERR_CHANOPRIVSNEEDED", "kick"],
      [b.broadcast("everyone"), 481, "ERR_NOPRIVILEGES", "broadcast"],
    ];
    for (const [p, code, error, cmd] of cases) {
      const e = await rejection(p, `/${cmd}`);
      assert.ok(e instanceof SignallerError, `${cmd}: ${e}`);
      assert.equal(e.code, code, `${cmd}: ${e.message}`);
      assert.equal(e.error, error);
      assert.equal(e.cmd, cmd);
      assert.ok(e.message.length > 0);
    }
    // The connection stays usable after errors.
    assert.equal((await b.join(channel, "s3cret")).total, 2);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test("kick, ban and invite events are typed and keep client.channels right", async () => {
  const a = makeClient(server.url, { name: "Alice" }).client;
  const b = makeClient(server.url, { name: "Bob" }).client;
  try {
    await a.connect();
    await b.connect();
    const channel = chan();
    await a.join(channel, "key");
    const invited = next(b, "invite");
    assert.deepEqual(await a.invite(b.id, channel), { channel, peer: b.id });
    const invite = await within(invited, WAIT_MS, "b's invite event");
    assert.deepEqual([invite.channel, invite.from], [channel, a.id]);
    await b.join(channel); // the invite stands in for the key
    assert.deepEqual(b.channels, [channel]);
    const kicked = next(b, "kick");
    assert.deepEqual(await a.kick(b.id, channel, "#not a channel, a reason"), {
      channel,
      peer: b.id,
    });
    const kick = await within(kicked, WAIT_MS, "b's kick event");
    assert.deepEqual(
      [kick.channel, kick.peer, kick.by, kick.text],
      [channel, b.id, a.id, "#not a channel, a reason"],
    );
    assert.deepEqual(b.channels, []);
    await b.join(channel, "key");
    const banned = next(b, "ban");
    await a.ban(b.id);
    const ban = await within(banned, WAIT_MS, "b's ban event");
    assert.deepEqual([ban.channel, ban.peer, ban.by], [channel, b.id, a.id]);
    assert.deepEqual(b.channels, []);
    const e = await rejection(b.join(channel, "key"), "a banned /join");
    assert.ok(e instanceof SignallerError && e.code === 474, String(e));
    await a.unban(b.id, channel);
    assert.equal((await b.join(channel, "key")).channel, channel);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test("the server's broadcast reaches every client as a typed event", async () => {
  const a = makeClient(server.url, { name: "Alice" }).client;
  const root = makeClient(server.url, { name: "Root", admin: ADMIN_TOKEN }).client;
  try {
    await a.connect();
    assert.equal((await root.connect()).admin, true);
    const got = next(a, "broadcast", (e) => e.from === root.id);
    const b = await root.broadcast("maintenance at noon");
    assert.ok(b.recipients >= 1);
    const ev = await within(got, WAIT_MS, "the broadcast event");
    assert.deepEqual([ev.from, ev.text, ev.id], [root.id, "maintenance at noon", b.id]);
  } finally {
    await Promise.all([a.close(), root.close()]);
  }
});

test("a rate-limited command rejects with 263 and retryAfterMs", async () => {
  await using s = await startServer({ args: ["--rate", "1", "--burst", "2"] });
  const a = makeClient(s.url).client;
  try {
    await a.connect();
    const channel = chan();
    await a.join(channel);
    const results = await Promise.allSettled(
      Array.from({ length: 4 }, (_, i) => a.pubmsg(channel, `m${i}`)),
    );
    assert.deepEqual(results.map((r) => r.status), [
      "fulfilled",
      "fulfilled",
      "rejected",
      "rejected",
    ]);
    const e = (results[2] as PromiseRejectedResult).reason;
    assert.ok(e instanceof SignallerError, String(e));
    assert.equal(e.code, 263);
    assert.equal(e.error, "RPL_TRYAGAIN");
    assert.equal(e.cmd, "pubmsg");
    assert.ok(typeof e.retryAfterMs === "number" && e.retryAfterMs > 0, `${e.retryAfterMs}`);
  } finally {
    await a.close();
  }
});

test("replies are matched first-in first-out: 30 concurrent commands, with events interleaved", async () => {
  const a = makeClient(server.url, { name: "Alice" }).client;
  const b = makeClient(server.url, { name: "Bob" }).client;
  try {
    await a.connect();
    await b.connect();
    const room = chan();
    await a.join(room);
    await b.join(room);
    const channels = Array.from({ length: 5 }, () => newChannelId());
    const unknown = newId();
    const heard: string[] = [];
    const lastHeard = next(a, "pubmsg", (e) => e.text === "b9");
    a.on("pubmsg", (e) => heard.push(e.text));
    // Bob talks while Alice's commands are in flight: his pubmsgs reach her between her replies.
    const talk = Array.from({ length: 10 }, (_, i) => b.pubmsg(room, `b${i}`));
    type Check = [Promise<unknown>, (v: unknown) => void];
    const checks: Check[] = [];
    const ok = <T>(p: Promise<T>, check: (v: T) => void) => checks.push([p, (v) => check(v as T)]);
    const fails = (p: Promise<unknown>, code: number, cmd: string) =>
      checks.push([p.then(() => "resolved", (e) => e), (e) => {
        assert.ok(e instanceof SignallerError, String(e));
        assert.equal(e.code, code);
        assert.equal(e.cmd, cmd);
      }]);
    for (let i = 0; i < 5; i++) {
      const ch = channels[i];
      ok(a.join(ch), (r) => assert.equal(r.channel, ch));
      ok(a.pubmsg(ch, `m${i}`), (r) => assert.match(r.id, /^[0-9a-f]{24}$/));
      fails(a.privmsg(unknown, `p${i}`), 401, "privmsg");
      ok(a.whois(b.id), (r) => assert.ok("id" in r && r.id === b.id));
      ok(a.peers(ch), (r) => {
        assert.equal(r.channel, ch);
        assert.equal(r.offset, 0);
      });
      ok(a.privmsg(b.id, `d${i}`), (r) => assert.equal(typeof r.ts, "number"));
    }
    assert.equal(checks.length, 30);
    const values = await Promise.all(checks.map(([p]) => p));
    values.forEach((v, i) => checks[i][1](v));
    await Promise.all(talk);
    await within(lastHeard, WAIT_MS, "Bob's last pubmsg");
    assert.deepEqual(heard, Array.from({ length: 10 }, (_, i) => `b${i}`));
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test("a throwing listener does not break the client; the error is reported", async () => {
  const a = makeClient(server.url).client;
  const b = makeClient(server.url).client;
  const reported: unknown[] = [];
  const onError = (e: ErrorEvent) => {
    e.preventDefault();
    reported.push(e.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    await a.connect();
    await b.connect();
    const room = chan();
    await a.join(room);
    await b.join(room);
    const got: string[] = [];
    a.on("pubmsg", () => {
      throw new Error("listener bug");
    });
    const off = a.on("pubmsg", (ev) => got.push(ev.text));
    const second = next(a, "pubmsg", (e) => e.text === "two");
    await b.pubmsg(room, "one");
    await b.pubmsg(room, "two");
    await within(second, WAIT_MS, "the second pubmsg");
    off();
    const third = next(a, "pubmsg", (e) => e.text === "three");
    await b.pubmsg(room, "three");
    await within(third, WAIT_MS, "the third pubmsg");
    assert.deepEqual(got, ["one", "two"]);
    assert.equal(reported.length, 3);
    assert.ok(reported.every((e) => e instanceof Error && e.message === "listener bug"));
    assert.equal(a.state, "open");
    assert.equal((await a.whois(room)).members.length, 2, "the client still works");
  } finally {
    globalThis.removeEventListener("error", onError);
    await Promise.all([a.close(), b.close()]);
  }
});

// ---- drops, reconnects and resumes -------------------------------------------

test("a network drop rejects the commands in flight, reconnects after the backoff and resumes with the token; nothing is replayed, co-members see no quit/join", async () => {
  await using proxyA = new TcpProxy(server.port);
  await using proxyC = new TcpProxy(server.port);
  const alice = makeClient(proxyA.url, { name: "Alice" });
  const a = alice.client;
  const b = makeClient(server.url, { name: "Bob" }).client;
  const c = makeClient(proxyC.url, { name: "Carol", reconnect: false }).client;
  try {
    const first = await a.connect();
    await b.connect();
    await c.connect();
    const channel = chan();
    const keyed = chan();
    await a.join(channel);
    await b.join(channel);
    await c.join(channel);
    await a.join(keyed, "k");
    await a.away("brb");
    const seenByB = collect(b, "event");
    const reconnecting = collect(a, "reconnecting");
    const resumed = next(a, "resumed");
    const inFlight = a.whois(b.id);
    proxyA.cut();
    const e = await rejection(inFlight, "the /whois in flight");
    assert.ok(e instanceof SignallerClientError && e.kind === "closed", String(e));
    const r = await within(resumed, WAIT_MS, "resumed");
    // Half (the jitter is 0.5) of the first ceiling, 50 ms.
    assert.deepEqual(reconnecting.map((x) => [x.attempt, x.delayMs]), [[1, 25]]);
    assert.equal(alice.sockets.length, 2);
    assert.equal(alice.sockets[1].sent.length, 1, "the new socket carried its /descp only");
    assert.equal(alice.descps()[1].resume, first.resume);
    assert.equal(r.data.resume, first.resume, "the resume token stays the same");
    assert.deepEqual(r.data.channels.sort(), [channel, keyed].sort());
    assert.deepEqual(r.lost, []);
    assert.deepEqual(a.channels.sort(), [channel, keyed].sort());
    assert.equal(a.state, "open");
    // Operator rights and away state survived.
    assert.ok((await b.whois(channel)).operators.includes(a.id));
    const me = await b.whois(a.id);
    assert.ok("away" in me && me.away === true && me.message === "brb");
    assert.equal(me.online, true);
    // Still receiving.
    const heard = next(a, "pubmsg");
    await b.pubmsg(channel, "still there?");
    assert.equal((await within(heard, WAIT_MS, "a pubmsg after the resume")).text, "still there?");
    // Carol drops now and does not come back: her quit comes when her grace ends, later than
    // Alice's would have. Bob saw no quit nor join of Alice.
    const carolQuit = next(b, "quit", (q) => q.peer === c.id);
    proxyC.cut();
    const q = await within(carolQuit, GRACE_MS + WAIT_MS, "Carol's quit");
    assert.equal(q.reason, "disconnect");
    assert.deepEqual(
      seenByB.filter((e) =>
        (e.type === "quit" && e.peer === a.id) || (e.type === "join" && e.peer.id === a.id)
      ),
      [],
    );
    assert.equal((await b.whois(channel)).members.length, 2);
  } finally {
    await Promise.all([a.close(), b.close(), c.close()]);
  }
});

test("after the grace period a reconnect starts a fresh session and reports the lost channels and streams; rejoin: false joins nothing", async () => {
  await using proxy = new TcpProxy(server.port);
  const alice = makeClient(proxy.url, { name: "Alice", rejoin: false });
  const a = alice.client;
  const b = makeClient(server.url, { name: "Bob" }).client;
  try {
    const first = await a.connect();
    await b.connect();
    const channel = chan();
    await a.join(channel);
    await b.join(channel);
    // The server is out of reach until Alice's grace has ended (Bob sees her quit).
    const quit = next(b, "quit", (q) => q.peer === a.id);
    const resumed = next(a, "resumed");
    const recovered = collect(a, "recovered");
    proxy.refuse = true;
    proxy.cut();
    assert.equal((await within(quit, GRACE_MS + WAIT_MS, "Alice's quit")).reason, "disconnect");
    proxy.refuse = false;
    const r = await within(resumed, WAIT_MS, "resumed");
    assert.deepEqual(r.data.channels, []);
    assert.deepEqual(r.lost, [channel]);
    assert.deepEqual([r.rejoined, r.failed], [[], []]);
    assert.deepEqual(a.channels, []);
    // It asked for its streams; the server, for which the peer is new, recovered none.
    assert.deepEqual(recovered, [{ inbox: false, channels: { [channel]: false } }]);
    assert.notEqual(r.data.resume, first.resume);
    assert.equal(a.resumeToken, r.data.resume);
    assert.equal(alice.descps().at(-1)?.resume, first.resume, "it did try to resume");
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test("a reconnect refused with 433 (the grace ended and another session took the id) closes for good: rejected", async () => {
  await using proxy = new TcpProxy(server.port);
  const alice = makeClient(proxy.url, { name: "Alice" });
  const a = alice.client;
  const b = makeClient(server.url, { name: "Bob" }).client;
  const intruder = makeClient(server.url, { id: a.id, name: "Mallory" }).client;
  try {
    await a.connect();
    await b.connect();
    const channel = chan();
    await a.join(channel);
    await b.join(channel);
    const quit = next(b, "quit", (q) => q.peer === a.id);
    const closed = next(a, "close");
    proxy.refuse = true;
    proxy.cut();
    await within(quit, GRACE_MS + WAIT_MS, "Alice's quit");
    await intruder.connect();
    proxy.refuse = false;
    const c = await within(closed, WAIT_MS, "the close event");
    assert.equal(c.cause, "rejected");
    assert.ok(c.error instanceof SignallerError && c.error.code === 433, String(c.error));
    assert.equal(a.state, "closed");
    assert.equal(alice.descps().at(-1)?.resume, a.resumeToken, "the refused try was a resume");
    // The intruder keeps the id.
    assert.equal(intruder.state, "open");
  } finally {
    await Promise.all([a.close(), b.close(), intruder.close()]);
  }
});

test("a client replaced by another session with its token (4002) does not fight back", async () => {
  const first = makeClient(server.url, { name: "Alice" });
  const a = first.client;
  const me = await a.connect();
  const a2 = makeClient(server.url, { id: a.id, name: "Alice", resume: me.resume }).client;
  try {
    const channel = chan();
    await a.join(channel);
    const closed = next(a, "close");
    let reconnecting = 0;
    a.on("reconnecting", () => reconnecting++);
    const taken = await a2.connect();
    assert.deepEqual(taken.channels, [channel]);
    const c = await within(closed, WAIT_MS, "close 4002");
    assert.equal(c.code, 4002);
    assert.equal(c.cause, "replaced");
    assert.equal(a.state, "closed");
    // A reconnect would have been announced when the close was handled.
    assert.equal(reconnecting, 0);
    assert.equal(first.sockets.length, 1);
    assert.equal(a2.state, "open");
    assert.deepEqual((await a2.whois(channel)).members.map((m) => m.id), [a.id]);
  } finally {
    await Promise.all([a.close(), a2.close()]);
  }
});

test("a reconnect whose auth token the server refuses (432, then close 4001) closes for good: rejected", async () => {
  await using s = await authServer();
  await using proxy = new TcpProxy(s.port);
  const id = newId();
  let secret = AUTH_SECRET;
  const alice = makeClient(proxy.url, { id, name: "Alice", token: () => jwt(id, secret) });
  const a = alice.client;
  try {
    await a.connect();
    const reconnecting = collect(a, "reconnecting");
    const closed = next(a, "close");
    secret = "not-the-server-secret";
    proxy.cut();
    const c = await within(closed, WAIT_MS, "the close event");
    assert.equal(c.cause, "rejected");
    assert.ok(c.error instanceof SignallerError && c.error.code === 432, String(c.error));
    assert.equal(reconnecting.length, 1, "the drop, and no retry after the refusal");
    assert.equal(alice.sockets.length, 2);
    assert.equal(a.state, "closed");
  } finally {
    await a.close();
  }
});

test("close 4003 (flood): the client reconnects after the backoff and resumes, and sends nothing again", async () => {
  await using s = await startServer({
    args: ["--rate", "1", "--burst", "1", "--grace-ms", String(GRACE_MS)],
  });
  const alice = makeClient(s.url, { name: "Alice" });
  const a = alice.client;
  const b = makeClient(s.url, { name: "Bob" }).client;
  try {
    const first = await a.connect();
    await b.connect();
    const channel = chan();
    await a.join(channel);
    await b.join(channel);
    const seenByB = collect(b, "event");
    const reconnecting = next(a, "reconnecting");
    const resumed = next(a, "resumed");
    // One message a second, burst 1: the 11th refused within a second is a flood. Exactly 12:
    // the server reads every frame before it closes (a socket closed with frames still unread
    // is reset, and the reset can discard the close frame before the client reads it).
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => a.pubmsg(channel, `m${i}`)),
    );
    assert.equal(results[0].status, "fulfilled");
    for (const r of results.slice(1)) {
      const e = (r as PromiseRejectedResult).reason;
      assert.ok(e instanceof SignallerError && e.code === 263, String(e));
    }
    const rc = await within(reconnecting, WAIT_MS, "reconnecting");
    assert.deepEqual([rc.code, rc.attempt], [4003, 1]);
    const r = await within(resumed, WAIT_MS, "resumed");
    assert.equal(r.data.resume, first.resume);
    assert.deepEqual(r.data.channels, [channel]);
    assert.deepEqual(r.lost, []);
    assert.deepEqual(alice.sockets[1].sent.map((f) => f.split(" ")[0]), ["/descp"]);
    const w = await b.whois(a.id);
    assert.ok("online" in w && w.online, "online again");
    assert.deepEqual(seenByB.filter((e) => e.type === "quit"), []);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test("close 1001 (the server going away): the client reconnects until a server is back; a fresh one reports the lost channels", async () => {
  await using s1 = await startServer({ args: ["--grace-ms", String(GRACE_MS)] });
  await using proxy = new TcpProxy(s1.port);
  const alice = makeClient(proxy.url, { name: "Alice" });
  const a = alice.client;
  try {
    const first = await a.connect();
    const channel = chan();
    await a.join(channel);
    const notice = next(a, "notice");
    const reconnecting = collect(a, "reconnecting");
    const resumed = next(a, "resumed");
    assert.equal(await s1.stop(), 0);
    await within(notice, WAIT_MS, "the shutdown notice");
    await using s2 = await startServer({ args: ["--grace-ms", String(GRACE_MS)] });
    proxy.target = s2.port;
    const r = await within(resumed, WAIT_MS, "resumed");
    assert.equal(reconnecting[0].code, 1001);
    assert.deepEqual(
      reconnecting.map((x) => x.attempt),
      reconnecting.map((_, i) => i + 1),
      "attempts counted until one got through",
    );
    // A server in memory forgets everything when it stops.
    assert.deepEqual(r.lost, [channel]);
    assert.notEqual(r.data.resume, first.resume);
    assert.equal(a.state, "open");
  } finally {
    await a.close();
  }
});

test("backoff grows over failed reconnects and gives up after maxRetries", async () => {
  await using proxy = new TcpProxy(server.port);
  const alice = makeClient(proxy.url, { maxRetries: 3 });
  const a = alice.client;
  await a.connect();
  const reconnecting = collect(a, "reconnecting");
  const closed = next(a, "close");
  proxy.refuse = true;
  proxy.cut();
  const c = await within(closed, WAIT_MS, "the close event");
  assert.equal(c.cause, "retries");
  assert.ok(c.error instanceof SignallerClientError && c.error.kind === "closed");
  // Half of a ceiling that doubles from 50 ms: 25, 50, 100 (the cap, 200, is not reached).
  assert.deepEqual(reconnecting.map((x) => [x.attempt, x.delayMs]), [[1, 25], [2, 50], [3, 100]]);
  assert.equal(alice.sockets.length, 4);
  assert.equal(a.state, "closed");
});

test("reconnect: false closes for good on a drop: disconnected", async () => {
  await using proxy = new TcpProxy(server.port);
  const alice = makeClient(proxy.url, { reconnect: false });
  const a = alice.client;
  await a.connect();
  let reconnecting = 0;
  a.on("reconnecting", () => reconnecting++);
  const closed = next(a, "close");
  proxy.cut();
  const c = await within(closed, WAIT_MS, "the close event");
  assert.equal(c.cause, "disconnected");
  assert.equal(reconnecting, 0);
  assert.equal(alice.sockets.length, 1);
  assert.equal(a.state, "closed");
});

test("close() while waiting to reconnect clears the timer and rejects connect() waiters", async () => {
  await using proxy = new TcpProxy(server.port);
  const alice = makeClient(proxy.url, { backoff: { initialMs: 60_000, maxMs: 60_000 } });
  const a = alice.client;
  await a.connect();
  const reconnecting = next(a, "reconnecting");
  proxy.cut();
  assert.equal((await within(reconnecting, WAIT_MS, "reconnecting")).delayMs, 30_000);
  assert.equal(a.state, "reconnecting");
  const waiting = a.connect();
  const closed = next(a, "close");
  await a.close();
  assert.equal((await within(closed, WAIT_MS, "the close event")).cause, "user");
  const e = await rejection(waiting, "connect() while reconnecting");
  assert.ok(e instanceof SignallerClientError && e.kind === "closed", String(e));
  assert.equal(alice.sockets.length, 1);
  // The sanitizers fail this test if the 30 s timer were left behind.
});

test("the first connection is not retried: nothing listening, or the /descp refused (433)", async () => {
  const nowhere = makeClient(`ws://127.0.0.1:${deadPort()}/`);
  const closes: ClientEvents["close"][] = [];
  nowhere.client.on("close", (c) => closes.push(c));
  const e = await rejection(nowhere.client.connect(), "connect() to nowhere");
  assert.ok(e instanceof SignallerClientError && e.kind === "closed", String(e));
  assert.equal(nowhere.client.state, "closed");
  assert.deepEqual(closes.map((c) => c.cause), ["failed"]);
  assert.equal(nowhere.sockets.length, 1);

  const holder = makeClient(server.url).client;
  await holder.connect();
  const second = makeClient(server.url, { id: holder.id });
  try {
    const e2 = await rejection(second.client.connect(), "connect() with a taken id");
    assert.ok(e2 instanceof SignallerError && e2.code === 433, String(e2));
    assert.equal(second.client.state, "closed");
    assert.equal(second.sockets.length, 1);
    // A later connect() may try again: the id is still taken.
    const e3 = await rejection(second.client.connect(), "connect() again");
    assert.ok(e3 instanceof SignallerError && e3.code === 433, String(e3));
    assert.equal(second.sockets.length, 2);
  } finally {
    await Promise.all([holder.close(), second.client.close()]);
  }
});

test("connect() times out when the server does not answer (its process is stopped)", async () => {
  await using s = await startServer();
  const { client, sockets } = makeClient(s.url, { timeoutMs: 300 });
  Deno.kill(s.pid, "SIGSTOP");
  try {
    const e = await rejection(client.connect(), "connect() to a stopped server");
    assert.ok(e instanceof SignallerClientError && e.kind === "timeout", String(e));
    assert.equal(client.state, "closed");
    assert.equal(sockets.length, 1);
  } finally {
    Deno.kill(s.pid, "SIGCONT");
    await client.close();
  }
});
