/**
 * The PeerJS endpoint over raw sockets, on Deno and Bun: peerjs-server 1.0's
 * rules as the `peerjs` 1.5 client relies on them.
 */
import assert from "node:assert/strict";
import {
  bbtest,
  type Runtime,
  type ServerHandle,
  sharedServer,
  startServer,
} from "../support/server.ts";
import { delay, within } from "../support/wait.ts";
import { RawClient } from "../support/raw_ws.ts";
import { type Json, JsonWs } from "./json_ws.ts";

const EXPIRE = 1000;
const server = await sharedServer({
  args: ["--peerjs-expire-ms", String(EXPIRE), "--peerjs-discovery", "on", "--rate", "0"],
});

/** A fresh PeerJS id. */
function newPeer(tag = "p"): string {
  return `${tag}-${crypto.randomUUID().slice(0, 8)}`;
}

/** The URL the `peerjs` 1.5 client opens for `new Peer(id, { host, port, path: "/" })`. */
function url(s: ServerHandle, id: string, token: string, key = "peerjs"): string {
  return `ws://127.0.0.1:${s.port}/peerjs?key=${key}&id=${id}&token=${token}&version=1.5.5`;
}

/** A socket that got `OPEN` for `id`. */
async function open(s: ServerHandle, id = newPeer(), token = "t-" + id): Promise<JsonWs> {
  const ws = await JsonWs.open(url(s, id, token));
  assert.deepEqual(await ws.next(), { type: "OPEN" });
  return ws;
}

/** Resolves once the server has handled every frame `ws` (holding `id`) sent before: it echoes one. */
async function handled(ws: JsonWs, id: string): Promise<void> {
  const mark = crypto.randomUUID();
  ws.send({ type: "CANDIDATE", dst: id, payload: mark });
  await ws.next((m) => m.payload === mark);
}

/** Waits until the server lists (or no longer lists) `id` among its connected ids. */
async function listed(s: ServerHandle, id: string, expected: boolean): Promise<void> {
  await within(
    (async () => {
      while (true) {
        const ids: string[] = await (await fetch(`${s.httpUrl}/peerjs/peers`)).json();
        if (ids.includes(id) === expected) return;
        await delay(20);
      }
    })(),
    3000,
    `${id} ${expected ? "listed" : "unlisted"}`,
  );
}

bbtest("peerjs: a new id at the client's URL gets OPEN", async (rt) => {
  await using a = await open(server(rt));
  await a.none(100);
});

bbtest("peerjs: a socket without id, token or key gets ERROR and is closed", async (rt) => {
  const s = server(rt);
  for (const q of ["key=peerjs&id=a", "key=peerjs&token=t", "id=a&token=t", "key=&id=a&token=t"]) {
    await using ws = await JsonWs.open(`ws://127.0.0.1:${s.port}/peerjs?${q}`);
    assert.deepEqual(await ws.next(), {
      type: "ERROR",
      payload: { msg: "No id, token, or key supplied to websocket server" },
    }, q);
    await ws.closedWithin();
  }
});

bbtest("peerjs: a wrong key gets ERROR Invalid key provided and is closed", async (rt) => {
  await using ws = await JsonWs.open(url(server(rt), newPeer(), "t", "other"));
  assert.deepEqual(await ws.next(), { type: "ERROR", payload: { msg: "Invalid key provided" } });
  await ws.closedWithin();
});

bbtest("peerjs: an id held by another token gets ID-TAKEN and is closed", async (rt) => {
  const s = server(rt);
  const id = newPeer();
  await using a = await open(s, id, "one");
  await using b = await JsonWs.open(url(s, id, "two"));
  assert.deepEqual(await b.next(), { type: "ID-TAKEN", payload: { msg: "ID is taken" } });
  await b.closedWithin();
  assert.equal(a.isClosed, false);
});

bbtest(
  "peerjs: the same token takes the id over silently; the old socket is closed",
  async (rt) => {
    const s = server(rt);
    const id = newPeer();
    await using a = await open(s, id, "same");
    await using b = await JsonWs.open(url(s, id, "same"));
    assert.equal((await a.closedWithin()).code, 4002);
    await using c = await open(s);
    c.send({ type: "OFFER", dst: id, payload: { sdp: "to the new socket" } });
    const got = await b.next();
    assert.equal(got.type, "OFFER", "no OPEN before it: the takeover is silent");
    assert.equal(got.payload.sdp, "to the new socket");
  },
);

bbtest(
  "peerjs: OFFER, ANSWER, CANDIDATE, LEAVE reach dst with src set by the server",
  async (rt) => {
    const s = server(rt);
    const aid = newPeer("a"), bid = newPeer("b");
    await using a = await open(s, aid);
    await using b = await open(s, bid);
    for (const type of ["OFFER", "ANSWER", "CANDIDATE", "LEAVE"]) {
      a.send({ type, dst: bid, src: "forged", extra: 1, payload: { type: "data", n: type } });
      assert.deepEqual(await b.next(), {
        type,
        src: aid,
        dst: bid,
        payload: { type: "data", n: type },
      });
    }
    b.send({ type: "ANSWER", dst: aid, payload: { sdp: "back" } });
    assert.deepEqual(await a.next(), {
      type: "ANSWER",
      src: bid,
      dst: aid,
      payload: { sdp: "back" },
    });
  },
);

bbtest("peerjs: HEARTBEAT, unknown types and non-JSON frames are not relayed", async (rt) => {
  const s = server(rt);
  const bid = newPeer("b");
  await using a = await open(s);
  await using b = await open(s, bid);
  a.send({ type: "HEARTBEAT" });
  a.send({ type: "OPEN", dst: bid });
  a.send({ type: "OFFER" });
  a.send("not json");
  a.send({ type: "OFFER", dst: bid, payload: 1 });
  assert.equal((await b.next()).payload, 1, "only the well-formed OFFER arrives");
  await b.none(100);
  assert.equal(a.isClosed, false);
});

bbtest("peerjs: messages to an id not connected wait for it and arrive in order", async (rt) => {
  const s = server(rt);
  const aid = newPeer("a"), cid = newPeer("c");
  await using a = await open(s, aid);
  for (let i = 0; i < 5; i++) {
    a.send({ type: i === 0 ? "OFFER" : "CANDIDATE", dst: cid, payload: i });
  }
  await handled(a, aid);
  await using c = await JsonWs.open(url(s, cid, "t"));
  assert.deepEqual(await c.next(), { type: "OPEN" });
  for (let i = 0; i < 5; i++) {
    const m = await c.next();
    assert.deepEqual([m.src, m.payload], [aid, i]);
  }
  await a.none(EXPIRE + 500, (m) => m.type === "EXPIRE");
});

bbtest("peerjs: a message nobody connects for expires: the sender gets EXPIRE once", async (rt) => {
  const s = server(rt);
  const aid = newPeer("a"), nobody = newPeer("nobody");
  await using a = await open(s, aid);
  a.send({ type: "OFFER", dst: nobody, payload: 1 });
  a.send({ type: "CANDIDATE", dst: nobody, payload: 2 });
  const t0 = Date.now();
  assert.deepEqual(await a.next(undefined, EXPIRE + 3000), {
    type: "EXPIRE",
    src: nobody,
    dst: aid,
  });
  assert.ok(Date.now() - t0 >= EXPIRE - 50, "not before the expire time");
  await a.none(EXPIRE);
  // Expired messages are gone: the id connecting now gets nothing.
  await using late = await open(s, nobody);
  await late.none(300);
});

bbtest("peerjs: LEAVE and EXPIRE to an id not connected are dropped, not queued", async (rt) => {
  const s = server(rt);
  const eid = newPeer("e");
  const aid = newPeer("a");
  await using a = await open(s, aid);
  a.send({ type: "LEAVE", dst: eid });
  a.send({ type: "EXPIRE", dst: eid });
  await handled(a, aid);
  await using e = await open(s, eid);
  await e.none(300);
  await a.none(EXPIRE + 500);
});

bbtest("peerjs: a client that closes its socket frees its id at once", async (rt) => {
  const s = server(rt);
  const id = newPeer();
  const a = await open(s, id, "first");
  await a.close();
  await listed(s, id, false);
  await using _b = await open(s, id, "second");
});

bbtest("peerjs: a lost connection keeps its id for its token through the grace", async (rt) => {
  const s = server(rt);
  const id = newPeer();
  const raw = await RawClient.connect(url(s, id, "mine"));
  const first = await raw.readMessages();
  assert.deepEqual(first, [{ type: "OPEN" }]);
  await listed(s, id, true);
  raw.close(); // no close frame: the connection is lost
  await listed(s, id, false);
  await using other = await JsonWs.open(url(s, id, "other"));
  assert.equal((await other.next()).type, "ID-TAKEN");
  // A message to it meanwhile waits for it, as for any id not connected.
  await using a = await open(s);
  a.send({ type: "OFFER", dst: id, payload: "while away" });
  await using back = await open(s, id, "mine");
  assert.equal((await back.next()).payload, "while away");
});

bbtest("peerjs: a message over the frame limit closes the socket with 1009", async (rt) => {
  await using a = await open(server(rt));
  a.send({ type: "OFFER", dst: "x", payload: "y".repeat(70_000) });
  assert.equal((await a.closedWithin()).code, 1009);
});

bbtest("peerjs: GET /peerjs/id gives a fresh id, with CORS as peerjs-server", async (rt) => {
  const s = server(rt);
  const res = await fetch(`${s.httpUrl}/peerjs/id?ts=1&version=1.5.5`, {
    headers: { origin: "http://app.example" },
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("access-control-allow-origin"), "http://app.example");
  assert.match(res.headers.get("content-type")!, /^text\/html/);
  const id = await res.text();
  assert.match(id, /^[0-9a-f-]{36}$/);
  assert.notEqual(await (await fetch(`${s.httpUrl}/peerjs/id`)).text(), id);
  const pre = await fetch(`${s.httpUrl}/peerjs/id`, {
    method: "OPTIONS",
    headers: {
      origin: "http://app.example",
      "access-control-request-method": "GET",
      "access-control-request-headers": "x-thing",
    },
  });
  await pre.body?.cancel();
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "http://app.example");
  assert.equal(pre.headers.get("access-control-allow-headers"), "x-thing");
  await using _a = await open(s, id);
});

bbtest("peerjs: GET /peerjs/peers lists connected ids with --peerjs-discovery on", async (rt) => {
  const s = server(rt);
  const id = newPeer();
  await using _a = await open(s, id);
  const res = await fetch(`${s.httpUrl}/peerjs/peers`);
  assert.match(res.headers.get("content-type")!, /^application\/json/);
  assert.ok((await res.json()).includes(id));
});

bbtest("peerjs: /metrics counts PeerJS messages by front-end", async (rt) => {
  const s = server(rt);
  const bid = newPeer("b");
  await using a = await open(s);
  await using b = await open(s, bid);
  a.send({ type: "OFFER", dst: bid, payload: 1 });
  await b.next();
  const text = await (await fetch(`${s.httpUrl}/metrics`)).text();
  assert.match(text, /^signaller_messages_in_total\{frontend="peerjs",type="OFFER"\} [1-9]/m);
  assert.match(text, /^signaller_messages_out_total\{frontend="peerjs",type="OFFER"\} [1-9]/m);
  assert.match(text, /^signaller_messages_out_total\{frontend="peerjs",type="OPEN"\} [1-9]/m);
});

/** A server of its own for `rt`, with `args`. */
function own(rt: Runtime, args: string[]): Promise<ServerHandle> {
  return startServer({ runtime: rt, args });
}

bbtest(
  "peerjs: GET /peerjs/peers is 401 without discovery; --peerjs-key moves the routes",
  async (rt) => {
    await using s = await own(rt, ["--peerjs-key", "k2"]);
    const res = await fetch(`${s.httpUrl}/k2/peers`);
    assert.equal(res.status, 401);
    assert.equal(await res.text(), "Unauthorized");
    assert.equal(
      (await fetch(`${s.httpUrl}/k2/id`).then(async (r) => (await r.text(), r))).status,
      200,
    );
    await (await fetch(`${s.httpUrl}/peerjs/id`)).body?.cancel();
    await using ws = await JsonWs.open(url(s, newPeer(), "t", "k2"));
    assert.deepEqual(await ws.next(), { type: "OPEN" });
  },
);

bbtest("peerjs: a socket that sends nothing for the alive time is closed", async (rt) => {
  await using s = await own(rt, ["--peerjs-alive-ms", "1000"]);
  await using quiet = await open(s);
  await using talking = await open(s);
  const beat = setInterval(() => talking.send({ type: "HEARTBEAT" }), 200);
  try {
    await quiet.closedWithin(3000);
    assert.equal(talking.isClosed, false);
  } finally {
    clearInterval(beat);
  }
});

bbtest("peerjs: over the rate, messages wait rather than being lost", async (rt) => {
  await using s = await own(rt, ["--rate", "20", "--burst", "10"]);
  const bid = newPeer("b");
  await using a = await open(s);
  await using b = await open(s, bid);
  for (let i = 0; i < 30; i++) a.send({ type: "CANDIDATE", dst: bid, payload: i });
  const got: Json[] = [];
  for (let i = 0; i < 30; i++) got.push(await b.next());
  assert.deepEqual(got.map((m) => m.payload), [...Array(30).keys()]);
});

bbtest("peerjs: with --auth-secret the endpoint is off unless --peerjs on", async (rt) => {
  {
    await using s = await own(rt, ["--auth-secret", "s3cret"]);
    await using ws = await JsonWs.open(url(s, newPeer(), "t"));
    const m = await ws.next();
    assert.equal(m.type, "ERROR");
    assert.match(m.payload.msg, /signed tokens/);
    await ws.closedWithin();
    const res = await fetch(`${s.httpUrl}/peerjs/id`);
    await res.body?.cancel();
    assert.equal(res.status, 404);
  }
  await using s = await own(rt, ["--auth-secret", "s3cret", "--peerjs", "on"]);
  await using _a = await open(s);
});
