/**
 * The y-webrtc signalling endpoint over raw sockets, on Deno and Bun: the
 * rules of y-webrtc 10's `bin/server.js`, and the same on two nodes of one
 * Redis.
 */
import assert from "node:assert/strict";
import {
  bbtest,
  type Runtime,
  type ServerHandle,
  sharedServer,
  startServer,
} from "../support/server.ts";
import { RawClient } from "../support/raw_ws.ts";
import { JsonWs } from "../peerjs/json_ws.ts";
import { redisTest, redisTests } from "../support/redis.ts";

const server = await sharedServer({ args: ["--rate", "0"] });
const env = await redisTests();

function url(s: ServerHandle): string {
  return `ws://127.0.0.1:${s.port}/y-webrtc`;
}

/** A fresh topic name, as y-webrtc's rooms are named by their users. */
function newTopic(): string {
  return `room ${crypto.randomUUID()}`;
}

/** A socket subscribed to `topics`, once the subscription is in place (a ping answered after it). */
async function subscriber(s: ServerHandle, ...topics: string[]): Promise<JsonWs> {
  const ws = await JsonWs.open(url(s));
  ws.send({ type: "subscribe", topics });
  ws.send({ type: "ping" });
  await ws.type("pong");
  return ws;
}

bbtest("y-webrtc: ping gets pong", async (rt) => {
  await using ws = await JsonWs.open(url(server(rt)));
  ws.send({ type: "ping" });
  assert.deepEqual(await ws.next(), { type: "pong" });
});

bbtest(
  "y-webrtc: publish reaches every subscriber, the sender included, with clients",
  async (rt) => {
    const s = server(rt);
    const topic = newTopic();
    await using a = await subscriber(s, topic);
    await using b = await subscriber(s, topic, "other");
    await using outsider = await subscriber(s, newTopic());
    const data = { type: "announce", from: "peer-a", nested: [1, "two"] };
    a.send({ type: "publish", topic, data, clients: 99 });
    const expected = { type: "publish", topic, data, clients: 2 };
    assert.deepEqual(await a.next(), expected);
    assert.deepEqual(await b.next(), expected);
    await outsider.none(200);
  },
);

bbtest("y-webrtc: unsubscribe stops delivery and lowers clients", async (rt) => {
  const s = server(rt);
  const topic = newTopic();
  await using a = await subscriber(s, topic);
  await using b = await subscriber(s, topic);
  b.send({ type: "unsubscribe", topics: [topic] });
  b.send({ type: "ping" });
  await b.type("pong");
  a.send({ type: "publish", topic, data: "x" });
  assert.deepEqual(await a.next(), { type: "publish", topic, data: "x", clients: 1 });
  await b.none(200);
});

bbtest("y-webrtc: a closed subscriber leaves its topics", async (rt) => {
  const s = server(rt);
  const topic = newTopic();
  await using a = await subscriber(s, topic);
  const b = await subscriber(s, topic);
  await b.close();
  // The close is handled by the time the server answers a ping sent after it.
  await using c = await JsonWs.open(url(s));
  c.send({ type: "ping" });
  await c.type("pong");
  a.send({ type: "publish", topic, data: 1 });
  assert.equal((await a.next()).clients, 1);
});

bbtest("y-webrtc: malformed frames and non-string topics are ignored", async (rt) => {
  const s = server(rt);
  const topic = newTopic();
  await using a = await JsonWs.open(url(s));
  a.send("not json");
  a.send([1, 2]);
  a.send({ type: "subscribe", topics: [5, null, topic] });
  a.send({ type: "subscribe" });
  a.send({ type: "publish", data: "no topic" });
  a.send({ type: "publish", topic: newTopic(), data: "not subscribed" });
  a.send({ type: "whatever" });
  a.send({ type: "publish", topic, data: "ok" });
  assert.deepEqual(await a.next(), { type: "publish", topic, data: "ok", clients: 1 });
  await a.none(150);
});

bbtest("y-webrtc: a frame over the limit closes the socket with 1009", async (rt) => {
  const topic = newTopic();
  await using a = await subscriber(server(rt), topic);
  a.send({ type: "publish", topic, data: "x".repeat(70_000) });
  assert.equal((await a.closedWithin()).code, 1009);
});

bbtest("y-webrtc: /metrics counts y-webrtc messages by front-end", async (rt) => {
  const s = server(rt);
  const topic = newTopic();
  await using a = await subscriber(s, topic);
  a.send({ type: "publish", topic, data: 1 });
  await a.next();
  const text = await (await fetch(`${s.httpUrl}/metrics`)).text();
  assert.match(text, /^signaller_messages_in_total\{frontend="y-webrtc",type="publish"\} [1-9]/m);
  assert.match(text, /^signaller_messages_out_total\{frontend="y-webrtc",type="publish"\} [1-9]/m);
  assert.match(text, /^signaller_messages_out_total\{frontend="y-webrtc",type="pong"\} [1-9]/m);
});

/** A server of its own for `rt`, with `args`. */
function own(rt: Runtime, args: string[]): Promise<ServerHandle> {
  return startServer({ runtime: rt, args });
}

bbtest("y-webrtc: the server pings; a socket that never answers is closed", async (rt) => {
  await using s = await own(rt, ["--y-webrtc-ping-ms", "1000"]);
  // A standard WebSocket answers pings by itself: it stays.
  await using answering = await JsonWs.open(url(s));
  using silent = await RawClient.connect(url(s));
  let pings = 0;
  while (true) {
    const f = await silent.readFrame();
    if (f === null || f.opcode === 8) break;
    if (f.opcode === 9) pings++;
  }
  assert.ok(pings >= 1, "pinged before being closed");
  assert.equal(answering.isClosed, false);
  answering.send({ type: "ping" });
  await answering.type("pong");
});

bbtest("y-webrtc: with --auth-secret the endpoint is off unless --y-webrtc on", async (rt) => {
  {
    await using s = await own(rt, ["--auth-secret", "s3cret"]);
    const ws = await JsonWs.open(url(s));
    const closed = await ws.closedWithin();
    assert.equal(closed.code, 1008);
    assert.match(closed.reason, /signed tokens/);
  }
  await using s = await own(rt, ["--auth-secret", "s3cret", "--y-webrtc", "on"]);
  await using ws = await JsonWs.open(url(s));
  ws.send({ type: "ping" });
  await ws.type("pong");
});

redisTest(env, "y-webrtc on two nodes: publish reaches subscribers on both", async (rt, prefix) => {
  const args = ["--redis", env.url, "--redis-prefix", prefix];
  await using n1 = await own(rt, args);
  await using n2 = await own(rt, args);
  const topic = newTopic();
  await using a = await subscriber(n1, topic);
  await using b = await subscriber(n2, topic);
  await using c = await subscriber(n2, topic);
  a.send({ type: "publish", topic, data: "from node 1" });
  // `clients` counts the subscribers on the node that delivers the message.
  assert.deepEqual(await a.next(), { type: "publish", topic, data: "from node 1", clients: 1 });
  assert.deepEqual(await b.next(), { type: "publish", topic, data: "from node 1", clients: 2 });
  assert.deepEqual(await c.next(), { type: "publish", topic, data: "from node 1", clients: 2 });
  c.send({ type: "publish", topic, data: "from node 2" });
  for (const ws of [a, b, c]) assert.equal((await ws.next()).data, "from node 2");
});
