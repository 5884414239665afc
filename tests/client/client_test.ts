/**
 * Tests of the typed client (`client/`): the backoff, the client against a
 * scripted fake socket (FIFO, events, reconnect decisions, timers), and the
 * client against the real server spawned on a free port.
 */
import { startServer as start } from "../harness.ts";
import assert from "node:assert/strict";
import {
  backoffCeiling,
  backoffDelay,
  type ClientEvents,
  SignallerClient,
  SignallerClientError,
  type SignallerClientOptions,
  SignallerError,
  type SignallerEventMap,
  type WebSocketConstructor,
} from "../../client/mod.ts";
import { resolveBackoff } from "../../client/backoff.ts";
import { newChannelId, newId } from "../../protocol/ids.ts";
import type { EventOf } from "../../protocol/messages.ts";

// ---- backoff ----------------------------------------------------------------

Deno.test("backoff ceiling starts at initialMs, grows by factor, and is capped at maxMs", () => {
  const opts = { initialMs: 100, maxMs: 1000 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 10].map((n) => backoffCeiling(n, opts)),
    [100, 200, 400, 800, 1000, 1000, 1000],
  );
  assert.equal(backoffCeiling(3, { initialMs: 10, maxMs: 10_000, factor: 3 }), 270);
  // Huge attempt numbers overflow the exponent to Infinity; the cap still holds.
  assert.equal(backoffCeiling(5000, opts), 1000);
  assert.equal(backoffCeiling(-3, opts), 100);
});

Deno.test("backoff with full jitter stays in [0, ceiling)", () => {
  const opts = { initialMs: 100, maxMs: 1000 };
  assert.equal(backoffDelay(2, opts, () => 0), 0);
  assert.equal(backoffDelay(2, opts, () => 0.5), 200);
  assert.equal(backoffDelay(2, opts, () => 1 - Number.EPSILON), 399);
  assert.equal(backoffDelay(9, opts, () => 1 - Number.EPSILON), 999);
  for (let attempt = 0; attempt < 12; attempt++) {
    const ceiling = backoffCeiling(attempt, opts);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(attempt, opts);
      assert.ok(Number.isInteger(d) && d >= 0 && d < ceiling, `${d} in [0, ${ceiling})`);
    }
  }
  // The jitter is spread, not stuck at one end.
  const seen = new Set(Array.from({ length: 200 }, () => backoffDelay(8, opts)));
  assert.ok(seen.size > 50);
  // A broken random source must not stall reconnects.
  assert.equal(backoffDelay(3, opts, () => NaN), 0);
  assert.equal(backoffDelay(3, opts, () => 7), 0);
});

Deno.test("backoff options are checked and defaulted", () => {
  assert.deepEqual(resolveBackoff(), { initialMs: 500, maxMs: 30_000, factor: 2 });
  assert.deepEqual(resolveBackoff({ initialMs: 60_000 }), {
    initialMs: 60_000,
    maxMs: 60_000,
    factor: 2,
  });
  assert.throws(() => resolveBackoff({ initialMs: 0 }), RangeError);
  assert.throws(() => resolveBackoff({ initialMs: 100, maxMs: 50 }), RangeError);
  assert.throws(() => resolveBackoff({ factor: 0.5 }), RangeError);
  assert.throws(() => resolveBackoff({ initialMs: NaN }), RangeError);
  assert.throws(
    () => new SignallerClient("ws://x/", { name: "a", backoff: { initialMs: -1 } }),
    RangeError,
  );
});

// ---- the client against a fake socket ------------------------------------------

/** A scripted stand-in for the server's end of the socket. */
class FakeSocket {
  readyState = 0;
  sent: string[] = [];
  onopen: ((ev: Event) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string; wasClean: boolean }) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  /** Called on every frame the client sends. */
  onSend: ((frame: string) => void) | undefined;

  constructor(readonly url: string) {}

  send(frame: string): void {
    if (this.readyState !== 1) throw new Error("InvalidStateError");
    this.sent.push(frame);
    this.onSend?.(frame);
  }

  close(code = 1000, reason = ""): void {
    if (this.readyState >= 2) return;
    this.readyState = 2;
    queueMicrotask(() => this.#closed(code, reason));
  }

  /** The server accepts the connection. */
  accept(): void {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }

  /** The server sends one frame. */
  push(...messages: unknown[]): void {
    const frame = messages.map((m) => typeof m === "string" ? m : JSON.stringify(m)).join("\n");
    this.onmessage?.({ data: frame });
  }

  /** The server (or the network) closes the connection. */
  drop(code: number, reason = ""): void {
    if (this.readyState === 3) return;
    this.#closed(code, reason);
  }

  #closed(code: number, reason: string): void {
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean: code !== 1006 });
  }
}

const ME = "65a1f0c2e4b0a1b2c3d4e5f6";
const OTHER = "65a1f0c2e4b0a1b2c3d4e5f7";
const CHAN = "#65a1f0c2e4b0a1b2c3d4e5f8";

function descpData(id = ME, channels: string[] = [], resume = "tok-1") {
  return {
    peer: { id, name: "me", meta: {} },
    resume,
    admin: false,
    channels,
    server: { name: "signaller", version: "1.0.0", node: "n1" },
  };
}

/**
 * A fake WebSocket constructor that records its sockets; with `auto`, each
 * socket opens and answers `/descp` by itself (resuming `channels`).
 */
function fakeServer(auto = true) {
  const sockets: FakeSocket[] = [];
  let channels: string[] = [];
  const Ctor = class extends FakeSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
      if (!auto) return;
      this.onSend = (frame) => {
        if (frame.startsWith("/descp ")) {
          const body = JSON.parse(frame.slice(7));
          queueMicrotask(() =>
            this.push({ type: "ok", cmd: "descp", data: descpData(body.id, channels) })
          );
        }
      };
      queueMicrotask(() => this.accept());
    }
  };
  return {
    sockets,
    WebSocket: Ctor as unknown as WebSocketConstructor,
    get last(): FakeSocket {
      return sockets[sockets.length - 1];
    },
    setChannels(c: string[]) {
      channels = c;
    },
  };
}

function fakeClient(
  fake: ReturnType<typeof fakeServer>,
  options: Partial<SignallerClientOptions> = {},
): SignallerClient {
  return new SignallerClient("ws://fake/", {
    id: ME,
    name: "me",
    WebSocket: fake.WebSocket,
    backoff: { initialMs: 10, maxMs: 40 },
    random: () => 0.5,
    ...options,
  });
}

/** Resolves with the next event of `type`. */
function next<K extends keyof SignallerEventMap>(
  client: SignallerClient,
  type: K,
): Promise<SignallerEventMap[K]> {
  return new Promise((resolve) => client.once(type, resolve));
}

/** Collects every event of `type` from now on. */
function collect<K extends keyof SignallerEventMap>(
  client: SignallerClient,
  type: K,
): SignallerEventMap[K][] {
  const got: SignallerEventMap[K][] = [];
  client.on(type, (ev) => got.push(ev));
  return got;
}

Deno.test("connect() sends /descp with id, name, meta and the reserved fields, and resolves with the reply", async () => {
  const fake = fakeServer();
  const client = fakeClient(fake, {
    meta: { avatar: "a.png", resume: "not-from-meta" },
    token: () => Promise.resolve("jwt"),
    admin: "adm",
  });
  const opened = next(client, "open");
  assert.equal(client.state, "idle");
  const p = client.connect();
  assert.equal(client.state, "connecting");
  const data = await p;
  assert.equal(data.peer.id, ME);
  assert.equal(data.resume, "tok-1");
  assert.equal(client.state, "open");
  assert.equal(client.resumeToken, "tok-1");
  assert.deepEqual(await opened, data);
  assert.equal(fake.sockets.length, 1);
  const [frame] = fake.last.sent;
  assert.ok(frame.startsWith("/descp {"));
  assert.deepEqual(JSON.parse(frame.slice(7)), {
    avatar: "a.png",
    id: ME,
    name: "me",
    token: "jwt",
    admin: "adm",
  });
  assert.equal(await client.connect(), data, "connect() while open resolves at once");
  await client.close();
  assert.equal(client.state, "closed");
});

Deno.test("replies are matched first-in first-out, events interleave, errors reject typed", async () => {
  const fake = fakeServer();
  const client = fakeClient(fake);
  await client.connect();
  const ws = fake.last;
  const pubmsgs: EventOf<"pubmsg">[] = [];
  client.on("pubmsg", (ev) => pubmsgs.push(ev));
  const all: string[] = [];
  client.on("event", (ev) => all.push(ev.type));

  const join = client.join(CHAN, "key");
  const bad = client.privmsg(OTHER, "v=0\r\n a b ");
  const slow = client.pubmsg(CHAN, "hi");
  assert.deepEqual(ws.sent.slice(1), [
    `/join ${CHAN} key`,
    `/privmsg ${OTHER} v=0\r\n a b `,
    `/pubmsg ${CHAN} hi`,
  ]);
  const member = { id: ME, name: "me", op: true, away: false, online: true };
  // One frame: a reply, an event, an error, another event, a reply (NDJSON batch).
  ws.push(
    {
      type: "ok",
      cmd: "join",
      data: { channel: CHAN, created: true, op: true, total: 1, members: [member] },
    },
    { type: "pubmsg", id: newId(), ts: 1, from: OTHER, channel: CHAN, text: "yo" },
    {
      type: "error",
      cmd: "privmsg",
      code: 263,
      error: "RPL_TRYAGAIN",
      message: "slow down",
      retryAfterMs: 120,
    },
    { type: "join", ts: 2, channel: CHAN, peer: { id: OTHER, name: "o" } },
    { type: "ok", cmd: "pubmsg", data: { id: "x", ts: 3 } },
  );
  const joined = await join;
  assert.equal(joined.members[0].op, true);
  assert.deepEqual(client.channels, [CHAN]);
  const err = await bad.then(() => null, (e) => e);
  assert.ok(err instanceof SignallerError);
  assert.equal(err.code, 263);
  assert.equal(err.error, "RPL_TRYAGAIN");
  assert.equal(err.cmd, "privmsg");
  assert.equal(err.retryAfterMs, 120);
  assert.equal(err.message, "slow down");
  assert.deepEqual(await slow, { id: "x", ts: 3 });
  assert.equal(pubmsgs.length, 1);
  assert.equal(pubmsgs[0].text, "yo");
  assert.deepEqual(all, ["pubmsg", "join"]);
  await client.close();
});

Deno.test("bad server input never throws: invalid lines are reported, malformed replies reject their own command", async () => {
  const fake = fakeServer();
  const client = fakeClient(fake);
  await client.connect();
  const invalid: ClientEvents["invalid"][] = [];
  client.on("invalid", (ev) => invalid.push(ev));
  const a = client.quit(CHAN);
  const b = client.away("brb");
  const c = client.whois(CHAN);
  fake.last.push(
    "not json",
    { type: "pubmsg", text: "missing fields" },
    { type: "ok", cmd: "quit", data: { nope: 1 } }, // fails ReplyData.quit
    { type: "ok" }, // fails OkReply itself: still the next command's reply
    {
      type: "ok",
      cmd: "whois",
      data: { channel: CHAN, members: [], operators: [], keyed: false, created: 5 },
    },
    { type: "ok", cmd: "away", data: {} }, // a reply with no command waiting
  );
  fake.last.onmessage?.({ data: new Uint8Array([1, 2]) });
  for (const p of [a, b]) {
    const e = await p.then(() => null, (e) => e);
    assert.ok(e instanceof SignallerClientError);
    assert.equal(e.kind, "invalid-reply");
  }
  const w = await c;
  assert.ok("keyed" in w && w.keyed === false);
  assert.equal(invalid.length, 5);
  assert.equal(invalid[0].line, "not json");
  assert.equal(invalid[3].reason, "reply without a command");
  assert.equal(invalid[4].reason, "binary frame");
  await client.close();
});

Deno.test("commands while not open reject at once with not-connected and send nothing", async () => {
  const fake = fakeServer(false);
  const client = fakeClient(fake);
  const e1 = await client.join(CHAN).then(() => null, (e) => e);
  assert.ok(e1 instanceof SignallerClientError && e1.kind === "not-connected");
  const p = client.connect();
  const e2 = await client.pubmsg(CHAN, "early").then(() => null, (e) => e);
  assert.ok(e2 instanceof SignallerClientError && e2.kind === "not-connected");
  await Promise.resolve();
  fake.last.accept();
  assert.deepEqual(fake.last.sent.map((f) => f.split(" ")[0]), ["/descp"]);
  fake.last.push({ type: "ok", cmd: "descp", data: descpData() });
  await p;
  await client.close();
  const e3 = await client.away().then(() => null, (e) => e);
  assert.ok(e3 instanceof SignallerClientError && e3.kind === "not-connected");
});

Deno.test("a drop rejects pending commands, reconnects after the backoff and resumes with the token", async () => {
  const fake = fakeServer();
  const client = fakeClient(fake);
  await client.connect();
  fake.setChannels([CHAN]);
  client.join(CHAN).catch(() => {});
  fake.last.push({
    type: "ok",
    cmd: "join",
    data: { channel: CHAN, created: true, op: true, total: 1, members: [] },
  });
  await Promise.resolve();
  const other = "#65a1f0c2e4b0a1b2c3d4e5f9";
  client.join(other).catch(() => {});
  fake.last.push({
    type: "ok",
    cmd: "join",
    data: { channel: other, created: true, op: true, total: 1, members: [] },
  });
  await Promise.resolve();
  assert.deepEqual(client.channels.sort(), [CHAN, other].sort());

  const pending = client.whois(OTHER);
  const reconnecting = next(client, "reconnecting");
  const resumed = next(client, "resumed");
  fake.last.drop(1006);
  const e = await pending.then(() => null, (e) => e);
  assert.ok(e instanceof SignallerClientError && e.kind === "closed" && e.closeCode === 1006);
  // random 0.5 of a 10 ms ceiling.
  assert.deepEqual(await reconnecting, { attempt: 1, delayMs: 5, code: 1006, reason: "" });
  assert.equal(client.state, "reconnecting");
  const r = await resumed;
  assert.equal(fake.sockets.length, 2);
  const body = JSON.parse(fake.last.sent[0].slice(7));
  assert.equal(body.resume, "tok-1");
  assert.equal(body.id, ME);
  assert.deepEqual(r.data.channels, [CHAN]);
  assert.deepEqual(r.lost, [other]);
  assert.deepEqual(client.channels, [CHAN]);
  assert.equal(client.state, "open");
  assert.equal(fake.sockets[0].sent.length, 4, "nothing replayed on the old socket");
  assert.equal(fake.last.sent.length, 1, "nothing replayed on the new socket");
  await client.close();
});

Deno.test("backoff grows over failed reconnects and gives up after maxRetries", async () => {
  const fake = fakeServer(false);
  const client = fakeClient(fake, { maxRetries: 3 });
  const p = client.connect();
  await Promise.resolve();
  fake.last.accept();
  fake.last.push({ type: "ok", cmd: "descp", data: descpData() });
  await p;
  const delays: number[] = [];
  client.on("reconnecting", ({ delayMs }) => {
    delays.push(delayMs);
    // Each attempt is refused by the network.
    setTimeout(() => fake.last.drop(1006), delayMs + 1);
  });
  const closed = next(client, "close");
  fake.last.drop(1011, "boom");
  const c = await closed;
  assert.equal(c.cause, "retries");
  assert.deepEqual(delays, [5, 10, 20]);
  assert.equal(fake.sockets.length, 4);
  assert.equal(client.state, "closed");
});

for (const [code, cause] of [[4001, "rejected"], [4002, "replaced"]] as const) {
  Deno.test(`no reconnect after close code ${code}`, async () => {
    const fake = fakeServer();
    const client = fakeClient(fake);
    await client.connect();
    let reconnecting = 0;
    client.on("reconnecting", () => reconnecting++);
    const closed = next(client, "close");
    fake.last.drop(code, "bye");
    const c = await closed;
    assert.equal(c.cause, cause);
    assert.equal(c.code, code);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(reconnecting, 0);
    assert.equal(fake.sockets.length, 1);
    assert.equal(client.state, "closed");
  });
}

Deno.test("reconnect: false closes for good on a drop", async () => {
  const fake = fakeServer();
  const client = fakeClient(fake, { reconnect: false });
  await client.connect();
  const closed = next(client, "close");
  fake.last.drop(1006);
  assert.equal((await closed).cause, "disconnected");
  assert.equal(fake.sockets.length, 1);
});

Deno.test("close() while waiting to reconnect clears the timer and rejects connect() waiters", async () => {
  const fake = fakeServer();
  const client = fakeClient(fake, { backoff: { initialMs: 60_000, maxMs: 60_000 } });
  await client.connect();
  const reconnecting = next(client, "reconnecting");
  fake.last.drop(1006);
  await reconnecting;
  const waiting = client.connect().then(() => null, (e) => e);
  const closed = next(client, "close");
  await client.close();
  assert.equal((await closed).cause, "user");
  assert.ok((await waiting) instanceof SignallerClientError);
  assert.equal(fake.sockets.length, 1);
});

Deno.test("the first connection is not retried: connect() rejects and the client is closed", async () => {
  const fake = fakeServer(false);
  const client = fakeClient(fake);
  const p = client.connect().then(() => null, (e) => e);
  await Promise.resolve();
  fake.last.drop(1006);
  const e = await p;
  assert.ok(e instanceof SignallerClientError && e.kind === "closed");
  assert.equal(client.state, "closed");
  // A refused /descp rejects with the server's error.
  const q = client.connect().then(() => null, (e) => e);
  await Promise.resolve();
  fake.last.accept();
  fake.last.push({
    type: "error",
    cmd: "descp",
    code: 433,
    error: "ERR_NICKNAMEINUSE",
    message: "in use",
  });
  const e2 = await q;
  assert.ok(e2 instanceof SignallerError && e2.code === 433);
  assert.equal(client.state, "closed");
  await client.close();
  assert.equal(fake.last.readyState, 3);
});

Deno.test("connect() times out when the server never answers", async () => {
  const fake = fakeServer(false);
  const client = fakeClient(fake, { timeoutMs: 20 });
  const e = await client.connect().then(() => null, (e) => e);
  assert.ok(e instanceof SignallerClientError && e.kind === "timeout");
  assert.equal(client.state, "closed");
});

Deno.test("describe() updates name and meta, and later reconnects describe the peer that way", async () => {
  const fake = fakeServer();
  const client = fakeClient(fake);
  await client.connect();
  fake.last.onSend = () =>
    queueMicrotask(() =>
      fake.last.push({ type: "ok", cmd: "descp", data: descpData(ME, [], "tok-1") })
    );
  await client.describe({ name: "Alice", meta: { color: "red" } });
  assert.deepEqual(JSON.parse(fake.last.sent[1].slice(7)), { color: "red", id: ME, name: "Alice" });
  assert.equal(client.name, "Alice");
  const resumed = next(client, "resumed");
  fake.last.drop(1001);
  await resumed;
  assert.deepEqual(JSON.parse(fake.last.sent[0].slice(7)), {
    color: "red",
    id: ME,
    name: "Alice",
    resume: "tok-1",
  });
  await client.close();
});

Deno.test("close() from a listener in the middle of a batched frame stops there; connect() starts afresh", async () => {
  const fake = fakeServer();
  const client = fakeClient(fake);
  await client.connect();
  const texts: string[] = [];
  const closes: ClientEvents["close"][] = [];
  client.on("close", (ev) => closes.push(ev));
  client.on("pubmsg", (ev) => {
    texts.push(ev.text);
    client.close();
  });
  const pending = client.away();
  const msg = { type: "pubmsg", id: newId(), ts: 1, from: OTHER, channel: CHAN };
  fake.last.push({ ...msg, text: "one" }, { ...msg, text: "two" }, {
    type: "ok",
    cmd: "away",
    data: { away: true },
  });
  assert.deepEqual(texts, ["one"]);
  assert.equal(client.state, "closed", "closed at once, not when the socket says so");
  assert.deepEqual(closes.map((c) => c.cause), ["user"]);
  const e = await pending.then(() => null, (e) => e);
  assert.ok(e instanceof SignallerClientError && e.kind === "closed");
  const again = await client.connect();
  assert.equal(again.peer.id, ME);
  assert.equal(fake.sockets.length, 2);
  assert.equal(JSON.parse(fake.last.sent[0].slice(7)).resume, "tok-1", "a later connect resumes");
  await client.close();
  assert.equal(fake.sockets[0].readyState, 3);
});

Deno.test("a throwing listener does not break the client; the error is reported", async () => {
  const fake = fakeServer();
  const client = fakeClient(fake);
  await client.connect();
  const reported: unknown[] = [];
  const onError = (e: ErrorEvent) => {
    e.preventDefault();
    reported.push(e.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    const got: string[] = [];
    client.on("notice", () => {
      throw new Error("listener bug");
    });
    const off = client.on("notice", (ev) => got.push(ev.text));
    fake.last.push({ type: "notice", ts: 1, text: "one" }, { type: "notice", ts: 2, text: "two" });
    off();
    fake.last.push({ type: "notice", ts: 3, text: "three" });
    assert.deepEqual(got, ["one", "two"]);
    assert.equal(reported.length, 3);
  } finally {
    globalThis.removeEventListener("error", onError);
    await client.close();
  }
});

// ---- the client against the real server --------------------------------------

interface Server {
  url: string;
  stop(): Promise<void>;
}

const ADMIN_TOKEN = "client-test-admin";

/** A fresh channel id, typed as one so `whois` picks the channel reply. */
function chan(): `#${string}` {
  return newChannelId() as `#${string}`;
}

/** Spawns `server.ts` on a free port and waits for `signaller listening on ws://HOST:PORT/`. */
async function startServer(args: string[] = []): Promise<Server> {
  const s = await start({ args });
  return { url: s.url, stop: () => s.kill() };
}

/** A typed client on `server`, its sockets tracked so a test can cut them from outside. */
function makeClient(server: Server, options: Partial<SignallerClientOptions> = {}) {
  const sockets: WebSocket[] = [];
  const Tracked = class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
    }
  };
  const client = new SignallerClient(server.url, {
    name: "peer",
    WebSocket: Tracked,
    backoff: { initialMs: 50, maxMs: 200 },
    ...options,
  });
  return {
    client,
    sockets,
    /** Cuts the client's current socket, as a network failure would (not a `close()`). */
    cut(code = 4000) {
      sockets[sockets.length - 1].close(code, "cut by the test");
    },
  };
}

/** Resolves like `p`, or fails after `ms` naming `what` (a test must fail, not hang). */
async function within<T>(p: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until `check` holds, polling, or fails after `ms`. */
async function until(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Runs `fn` against a fresh server (2 s grace unless given), and always stops it. */
function withServer(fn: (server: Server) => Promise<void>, graceMs = 2000, args: string[] = []) {
  return async () => {
    const server = await startServer(
      ["--grace-ms", String(graceMs), "--admin-token", ADMIN_TOKEN, ...args],
    );
    try {
      await fn(server);
    } finally {
      await server.stop();
    }
  };
}

const live = { sanitizeResources: true, sanitizeOps: true };

Deno.test(
  "server: connect() describes the peer and resolves with the typed /descp reply",
  live,
  withServer(async (server) => {
    const id = newId();
    const { client } = makeClient(server, { id, name: "Alice", meta: { color: "red" } });
    const me = await client.connect();
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
      assert.equal(client.id, id);
      assert.equal(client.resumeToken, me.resume);
      // A server admin, by the admin token.
      const { client: admin } = makeClient(server, { name: "Root", admin: ADMIN_TOKEN });
      try {
        assert.equal((await admin.connect()).admin, true);
        const got = next(client, "broadcast");
        const b = await admin.broadcast("maintenance at noon");
        assert.equal(b.recipients, 1);
        const ev = await within(got, "the broadcast event");
        assert.deepEqual([ev.from, ev.text, ev.id], [admin.id, "maintenance at noon", b.id]);
      } finally {
        await admin.close();
      }
    } finally {
      await client.close();
    }
  }),
);

Deno.test(
  "server: /join and /pubmsg between two clients deliver typed events",
  live,
  withServer(async (server) => {
    const a = makeClient(server, { name: "Alice" }).client;
    const b = makeClient(server, { name: "Bob" }).client;
    try {
      await a.connect();
      await b.connect();
      const channel = chan();
      const joins = collect(a, "join");
      const pubs = collect(b, "pubmsg");
      const ja = await a.join(channel);
      assert.equal(ja.created, true);
      assert.equal(ja.op, true);
      assert.equal(ja.total, 1);
      const jb = await b.join(channel);
      assert.equal(jb.created, false);
      assert.equal(jb.op, false);
      assert.equal(jb.total, 2);
      assert.deepEqual(jb.members.map((m) => m.id).sort(), [a.id, b.id].sort());
      await until(() => joins.length === 1, "a's join event");
      assert.equal(joins[0].channel, channel);
      assert.deepEqual(joins[0].peer, { id: b.id, name: "Bob" });
      assert.equal(typeof joins[0].ts, "number");
      const sent = await a.pubmsg(channel, "  hello, world \r\n");
      assert.match(sent.id, /^[0-9a-f]{24}$/);
      await until(() => pubs.length === 1, "b's pubmsg event");
      assert.equal(pubs[0].id, sent.id);
      assert.equal(pubs[0].from, a.id);
      assert.equal(pubs[0].channel, channel);
      assert.equal(pubs[0].text, "  hello, world \r\n");
      const dm = collect(a, "privmsg");
      await b.privmsg(a.id, "offer");
      await until(() => dm.length === 1, "a's privmsg event");
      assert.deepEqual([dm[0].from, dm[0].to, dm[0].text], [b.id, a.id, "offer"]);
      const w = await a.whois(channel);
      assert.deepEqual(w.operators, [a.id]);
      assert.equal(w.keyed, false);
      const q = await b.quit(channel);
      assert.equal(q.channel, channel);
      assert.deepEqual(b.channels, []);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }),
);

Deno.test(
  "server: error replies reject with SignallerError (475 wrong key, 401 unknown peer, 442, 482)",
  live,
  withServer(async (server) => {
    const a = makeClient(server).client;
    const b = makeClient(server).client;
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
        const e = await p.then(() => null, (e) => e);
        assert.ok(e instanceof SignallerError, `${cmd}: ${e}`);
        assert.equal(e.code, code, `${cmd}: ${e.message}`);
        assert.equal(e.error, error);
        assert.equal(e.cmd, cmd);
        assert.equal(typeof e.message, "string");
      }
      // The connection stays usable after errors.
      assert.equal((await b.join(channel, "s3cret")).total, 2);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }),
);

Deno.test(
  "server: kick, ban and invite events are typed and keep client.channels right",
  live,
  withServer(async (server) => {
    const a = makeClient(server, { name: "Alice" }).client;
    const b = makeClient(server, { name: "Bob" }).client;
    try {
      await a.connect();
      await b.connect();
      const channel = chan();
      await a.join(channel, "key");
      const invites = collect(b, "invite");
      assert.deepEqual(await a.invite(b.id, channel), { channel, peer: b.id });
      await until(() => invites.length === 1, "b's invite event");
      assert.deepEqual([invites[0].channel, invites[0].from], [channel, a.id]);
      await b.join(channel); // the invite stands in for the key
      assert.deepEqual(b.channels, [channel]);
      const kicks = collect(b, "kick");
      assert.deepEqual(await a.kick(b.id, channel, "#not a channel, a reason"), {
        channel,
        peer: b.id,
      });
      await until(() => kicks.length === 1, "b's kick event");
      assert.deepEqual(
        [kicks[0].channel, kicks[0].peer, kicks[0].by, kicks[0].text],
        [channel, b.id, a.id, "#not a channel, a reason"],
      );
      assert.deepEqual(b.channels, []);
      await b.join(channel, "key");
      const bans = collect(b, "ban");
      await a.ban(b.id);
      await until(() => bans.length === 1, "b's ban event");
      assert.deepEqual([bans[0].channel, bans[0].peer, bans[0].by], [channel, b.id, a.id]);
      assert.deepEqual(b.channels, []);
      const e = await b.join(channel, "key").then(() => null, (e) => e);
      assert.ok(e instanceof SignallerError && e.code === 474);
      await a.unban(b.id, channel);
      assert.equal((await b.join(channel, "key")).channel, channel);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }),
);

Deno.test(
  "server: a rate-limited command rejects with 263 and retryAfterMs",
  live,
  withServer(
    async (server) => {
      const a = makeClient(server).client;
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
    },
    2000,
    ["--rate", "1", "--burst", "2"],
  ),
);

Deno.test(
  "server: 30 concurrent mixed commands each resolve to their own reply",
  live,
  withServer(async (server) => {
    const a = makeClient(server, { name: "Alice" }).client;
    const b = makeClient(server, { name: "Bob" }).client;
    try {
      await a.connect();
      await b.connect();
      const channels = Array.from({ length: 5 }, () => newChannelId());
      await b.join(channels[0]);
      const unknown = newId();
      type Check = [Promise<unknown>, (v: unknown) => void];
      const checks: Check[] = [];
      const ok = <T>(p: Promise<T>, check: (v: T) => void) =>
        checks.push([p, (v) => check(v as T)]);
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
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }),
);

Deno.test(
  "server: a cut socket reconnects and resumes: same channels, still receiving, co-members see no quit/join",
  live,
  withServer(async (server) => {
    const alice = makeClient(server, { name: "Alice" });
    const a = alice.client;
    const b = makeClient(server, { name: "Bob" }).client;
    try {
      const first = await a.connect();
      await b.connect();
      const channel = chan();
      const keyed = chan();
      await a.join(channel);
      await b.join(channel);
      await a.join(keyed, "k");
      await a.away("brb");
      const seenByB = collect(b, "event");
      const reconnecting = collect(a, "reconnecting");
      const resumed = next(a, "resumed");
      alice.cut();
      const r = await within(resumed, "resumed");
      assert.equal(reconnecting.length, 1);
      assert.equal(alice.sockets.length, 2);
      assert.equal(r.data.resume, first.resume, "the resume token stays the same");
      assert.deepEqual(r.data.channels.sort(), [channel, keyed].sort());
      assert.deepEqual(r.lost, []);
      assert.equal(a.state, "open");
      // Operator rights and away state survived.
      const w = await b.whois(channel);
      assert.ok(w.operators.includes(a.id));
      const me = await b.whois(a.id);
      assert.ok("away" in me && me.away === true && me.message === "brb");
      assert.equal(me.online, true);
      // Still receiving.
      const pubs = collect(a, "pubmsg");
      await b.pubmsg(channel, "still there?");
      await until(() => pubs.length === 1, "a's pubmsg after resume");
      assert.equal(pubs[0].text, "still there?");
      // Wait past the grace period: no quit (nor join) ever reached the co-member.
      await new Promise((r) => setTimeout(r, 2300));
      assert.deepEqual(
        seenByB.filter((e) => e.type === "quit" || e.type === "join"),
        [],
      );
      assert.equal((await b.whois(channel)).members.length, 2);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }),
);

Deno.test(
  "server: a client replaced by another session with its token (4002) does not fight back",
  live,
  withServer(async (server) => {
    const first = makeClient(server, { name: "Alice" });
    const a = first.client;
    const me = await a.connect();
    const second = makeClient(server, { id: a.id, name: "Alice", resume: me.resume });
    const a2 = second.client;
    try {
      const channel = chan();
      await a.join(channel);
      const closed = next(a, "close");
      let reconnecting = 0;
      a.on("reconnecting", () => reconnecting++);
      const taken = await a2.connect();
      assert.deepEqual(taken.channels, [channel]);
      const c = await within(closed, "close 4002");
      assert.equal(c.code, 4002);
      assert.equal(c.cause, "replaced");
      assert.equal(a.state, "closed");
      // Give a misbehaving client the time to retry: nothing happens.
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(reconnecting, 0);
      assert.equal(first.sockets.length, 1);
      assert.equal(a2.state, "open");
      const w = await a2.whois(channel);
      assert.deepEqual(w.members.map((m) => m.id), [a.id]);
    } finally {
      await Promise.all([a.close(), a2.close()]);
    }
  }),
);

Deno.test(
  "server: after the grace period a reconnect starts a fresh session and reports lost channels",
  live,
  withServer(async (server) => {
    const alice = makeClient(server, {
      name: "Alice",
      backoff: { initialMs: 1500, maxMs: 1500 },
      random: () => 0.99,
    });
    const a = alice.client;
    try {
      const first = await a.connect();
      const channel = chan();
      await a.join(channel);
      // 0.99 of a 1.5 s ceiling: the grace (0.5 s) ends before the retry.
      const resumed = next(a, "resumed");
      alice.cut();
      const r = await within(resumed, "resumed");
      assert.deepEqual(r.data.channels, []);
      assert.deepEqual(r.lost, [channel]);
      assert.notEqual(r.data.resume, first.resume);
      assert.equal(a.resumeToken, r.data.resume);
    } finally {
      await a.close();
    }
  }, 500),
);
