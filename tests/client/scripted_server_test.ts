/**
 * The typed client against a scripted socket, for what the real server
 * cannot be made to do on cue: send malformed messages, lay out a batch,
 * close 4001 or 4008 a live session, refuse a resume with 503 or 263, drop
 * a connection right behind a `/descp` reply. Every test name says which.
 * All else is tested against the real server (`client_test.ts`,
 * `recovery_test.ts`).
 */
import assert from "node:assert/strict";
import {
  type ClientEvents,
  SignallerClient,
  SignallerClientError,
  type SignallerClientOptions,
  SignallerError,
  type WebSocketConstructor,
} from "../../client/mod.ts";
import { Codes } from "../../protocol/codes.ts";
import { newId } from "../../protocol/ids.ts";
import { collect, next, rejection, test, WAIT_MS, within } from "./support.ts";

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

  /** The server sends one frame holding `messages` (objects are serialized). */
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

/** A successful `/descp` reply. */
function descpOk(id = ME, channels: string[] = []) {
  return {
    type: "ok",
    cmd: "descp",
    data: {
      peer: { id, name: "me", meta: {} },
      resume: "tok-1",
      admin: false,
      channels,
      server: { name: "signaller", version: "1.0.0", node: "n1" },
    },
  };
}

/** An error reply to `/descp`. */
function descpError(code: number, error: string, retryAfterMs?: number) {
  return { type: "error", cmd: "descp", code, error, message: `refused: ${error}`, retryAfterMs };
}

/**
 * A fake WebSocket constructor that records its sockets. Each socket opens
 * by itself and answers `/descp` with `descp(body, n)` (`n`: the socket's
 * index), by default a success resuming `channels`.
 */
function fakeServer(
  descp: (body: Record<string, unknown>, n: number) => unknown = (body) =>
    descpOk(String(body.id), [CHAN]),
) {
  const sockets: FakeSocket[] = [];
  const Ctor = class extends FakeSocket {
    constructor(url: string) {
      super(url);
      const n = sockets.push(this) - 1;
      this.onSend = (frame) => {
        if (!frame.startsWith("/descp ")) return;
        const body = JSON.parse(frame.slice("/descp ".length));
        queueMicrotask(() => this.push(descp(body, n)));
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
    /** The `/descp` body sent on socket `n`. */
    descp(n: number): Record<string, unknown> {
      return JSON.parse(sockets[n].sent[0].slice("/descp ".length));
    },
  };
}

/** A client of `fake`; reconnects wait half of a 10 ms ceiling doubling up to 40 ms. */
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

test("scripted (a real server sends only valid messages): malformed lines are reported, a malformed reply rejects its own command, a binary frame is ignored", async () => {
  const fake = fakeServer();
  const client = fakeClient(fake);
  await client.connect();
  const invalid = collect(client, "invalid");
  const a = client.quit(CHAN);
  const b = client.away("brb");
  const c = client.whois(CHAN);
  fake.last.push(
    "not json",
    { type: "pubmsg", text: "missing fields" },
    { type: "ok", cmd: "quit", data: { nope: 1 } }, // fails ReplyData.quit
    { type: "ok" }, // fails OkReply itself: still the oldest command's reply
    {
      type: "ok",
      cmd: "whois",
      data: { channel: CHAN, members: [], operators: [], keyed: false, created: 5 },
    },
    { type: "ok", cmd: "away", data: {} }, // a reply with no command waiting
  );
  fake.last.onmessage?.({ data: new Uint8Array([1, 2]) });
  for (const p of [a, b]) {
    const e = await rejection(p);
    assert.ok(e instanceof SignallerClientError && e.kind === "invalid-reply", String(e));
  }
  const w = await within(c, WAIT_MS, "the whois reply");
  assert.ok("keyed" in w && w.keyed === false);
  assert.deepEqual(invalid.map((i) => i.reason), [
    "not a valid server message",
    "not a valid server message",
    "not a valid server message",
    "reply without a command",
    "binary frame",
  ]);
  assert.equal(invalid[0].line, "not json");
  assert.equal(client.state, "open");
  await client.close();
});

test("scripted (a real server sends only valid messages): a malformed /descp reply fails the first connection at once", async () => {
  const fake = fakeServer(() => ({ type: "ok", cmd: "descp", data: { peer: "?" } }));
  const client = fakeClient(fake, { timeoutMs: 60_000 });
  const e = await rejection(client.connect(), "connect()");
  assert.ok(e instanceof SignallerClientError && e.kind === "invalid-reply", String(e));
  assert.equal(client.state, "closed");
  assert.equal(fake.sockets.length, 1);
  await client.close();
  assert.equal(fake.last.readyState, 3);
});

test("scripted (a real server's batches cannot be laid out): close() from a listener in the middle of a frame stops there; connect() starts afresh and resumes", async () => {
  const fake = fakeServer();
  const client = fakeClient(fake);
  await client.connect();
  const texts: string[] = [];
  const closes = collect(client, "close");
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
  const e = await rejection(pending);
  assert.ok(e instanceof SignallerClientError && e.kind === "closed", String(e));
  const again = await within(client.connect(), WAIT_MS, "connect() again");
  assert.equal(again.peer.id, ME);
  assert.equal(fake.sockets.length, 2);
  assert.equal(fake.descp(1).resume, "tok-1", "a later connect() resumes");
  await client.close();
  assert.equal(fake.sockets[0].readyState, 3);
});

test("scripted (a real server closes 4001 only before a session is up): a close 4001 ends the client: rejected", async () => {
  const fake = fakeServer();
  const client = fakeClient(fake);
  await client.connect();
  const reconnecting = collect(client, "reconnecting");
  const closed = next(client, "close");
  fake.last.drop(4001, "not described");
  const c = await within(closed, WAIT_MS, "the close event");
  assert.deepEqual([c.cause, c.code, c.reason], ["rejected", 4001, "not described"]);
  assert.deepEqual(reconnecting, []);
  assert.equal(fake.sockets.length, 1);
  assert.equal(client.state, "closed");
});

for (
  const [code, why] of [
    [4008, "a client that reads cannot be made too slow"],
    [1009, "a Deno server reads frames of any size"],
  ] as const
) {
  test(`scripted (${why}): close ${code} reconnects after the backoff and resumes`, async () => {
    const fake = fakeServer();
    const client = fakeClient(fake);
    await client.connect();
    const inFlight = client.whois(OTHER); // no reply scripted: in flight when the close comes
    const reconnecting = next(client, "reconnecting");
    const resumed = next(client, "resumed");
    fake.last.drop(code, "bye");
    const e = await rejection(inFlight);
    assert.ok(e instanceof SignallerClientError && e.closeCode === code, String(e));
    const rc = await within(reconnecting, WAIT_MS, "reconnecting");
    assert.deepEqual(rc, { attempt: 1, delayMs: 5, code, reason: "bye" });
    const r = await within(resumed, WAIT_MS, "resumed");
    assert.deepEqual(r.data.channels, [CHAN]);
    assert.equal(fake.descp(1).resume, "tok-1");
    assert.deepEqual(fake.sockets[1].sent.length, 1, "nothing replayed");
    assert.equal(client.state, "open");
    await client.close();
  });
}

test("scripted (a real server refuses /descp with 503 only while its store is down): a resume refused with 503 is tried again after the next backoff delay", async () => {
  // Socket 0 connects; 1 and 2 are refused; 3 resumes.
  const fake = fakeServer((body, n) =>
    n === 1 || n === 2
      ? descpError(Codes.ERR_UNAVAILABLE, "ERR_UNAVAILABLE")
      : descpOk(String(body.id), [CHAN])
  );
  const client = fakeClient(fake);
  await client.connect();
  const reconnecting = collect(client, "reconnecting");
  const resumed = next(client, "resumed");
  fake.last.drop(1006);
  const r = await within(resumed, WAIT_MS, "resumed");
  // Half of a ceiling doubling from 10 ms, over the drop and the two refusals.
  assert.deepEqual(
    reconnecting.map((x) => [x.attempt, x.delayMs, x.code]),
    [[1, 5, 1006], [2, 10, 0], [3, 20, 0]],
  );
  assert.equal(reconnecting[1].reason, "refused: ERR_UNAVAILABLE");
  assert.equal(fake.sockets.length, 4);
  for (const n of [1, 2, 3]) assert.equal(fake.descp(n).resume, "tok-1");
  assert.deepEqual(r.data.channels, [CHAN]);
  assert.equal(client.state, "open");
  await client.close();
});

test("scripted (a real server refuses /descp with 503 only while its store is down): refusals count towards maxRetries; the first connection is not retried", async () => {
  const fake = fakeServer((body, n) =>
    n === 0 ? descpOk(String(body.id)) : descpError(Codes.ERR_UNAVAILABLE, "ERR_UNAVAILABLE")
  );
  const client = fakeClient(fake, { maxRetries: 2 });
  await client.connect();
  const closed = next(client, "close");
  fake.last.drop(1006);
  const c = await within(closed, WAIT_MS, "the close event");
  assert.equal(c.cause, "retries");
  assert.ok(c.error instanceof SignallerError && c.error.code === 503, String(c.error));
  assert.equal(fake.sockets.length, 3);

  // A first connection refused with 503 rejects at once.
  const fresh = fakeServer(() => descpError(Codes.ERR_UNAVAILABLE, "ERR_UNAVAILABLE"));
  const other = fakeClient(fresh);
  const closes: ClientEvents["close"][] = collect(other, "close");
  const e = await rejection(other.connect());
  assert.ok(e instanceof SignallerError && e.code === 503, String(e));
  assert.deepEqual(closes.map((x) => x.cause), ["failed"]);
  assert.equal(fresh.sockets.length, 1);
});

test("scripted (a real server does not rate-limit a fresh socket's /descp): a resume refused with 263 is tried again after retryAfterMs", async () => {
  const fake = fakeServer((body, n) =>
    n === 1 ? descpError(Codes.RPL_TRYAGAIN, "RPL_TRYAGAIN", 70) : descpOk(String(body.id), [CHAN])
  );
  const client = fakeClient(fake);
  await client.connect();
  const reconnecting = collect(client, "reconnecting");
  const retry = next(client, "reconnecting", (x) => x.attempt === 2);
  const resumed = next(client, "resumed");
  fake.last.drop(1006);
  await within(retry, WAIT_MS, "the retry after 263");
  assert.equal(fake.sockets.length, 2, "the next try waits for its timer");
  const r = await within(resumed, WAIT_MS, "resumed");
  // The server's wait, not the backoff's (10 ms at attempt 2).
  assert.deepEqual(reconnecting.map((x) => [x.attempt, x.delayMs]), [[1, 5], [2, 70]]);
  assert.equal(fake.sockets.length, 3);
  assert.equal(fake.descp(2).resume, "tok-1");
  assert.deepEqual(r.data.channels, [CHAN]);
  await client.close();
});

test("scripted (a real server cannot be cut off between a /descp reply and the joins behind it): a rejoin the next drop cuts off is reported with code 0 and tried again after the next reconnect", async () => {
  const joinOk = {
    type: "ok",
    cmd: "join",
    data: { channel: CHAN, created: true, op: true, total: 1, members: [] },
  };
  const withResume = (resume: string) => {
    const ok = descpOk(ME, []);
    return { ...ok, data: { ...ok.data, resume } };
  };
  // Socket 0: the first session. 1: the server no longer knows it (a new token); the
  // connection drops right behind the rejoin. 2: resumes the new session, and the rejoin is
  // answered.
  const fake = fakeServer((_body, n) => {
    if (n === 0) return withResume("tok-1");
    queueMicrotask(() => n === 1 ? fake.sockets[1].drop(1006) : fake.sockets[2].push(joinOk));
    return withResume("tok-2");
  });
  const client = fakeClient(fake);
  await client.connect();
  const joining = client.join(CHAN, "k3y");
  fake.last.push(joinOk);
  await within(joining, WAIT_MS, "the first join");
  const resumed = collect(client, "resumed");
  const second = next(client, "resumed", (r) => r.rejoined.length > 0);
  fake.last.drop(1006);
  await within(second, WAIT_MS, "the second resumed");
  assert.deepEqual(fake.sockets[1].sent.slice(1), [`/join ${CHAN} k3y`]);
  assert.deepEqual(fake.sockets[2].sent.slice(1), [`/join ${CHAN} k3y`]);
  assert.equal(fake.descp(2).resume, "tok-2");
  assert.equal(resumed.length, 2);
  assert.deepEqual([resumed[0].lost, resumed[0].rejoined], [[CHAN], []]);
  assert.deepEqual(resumed[0].failed.map((f) => [f.channel, f.code]), [[CHAN, 0]]);
  assert.ok(resumed[0].failed[0].error instanceof SignallerClientError);
  assert.deepEqual([resumed[1].lost, resumed[1].rejoined, resumed[1].failed], [[], [CHAN], []]);
  assert.deepEqual(client.channels, [CHAN]);
  await client.close();
});
