/**
 * The PeerJS endpoint on several nodes sharing one Redis: ids are held
 * cluster-wide, messages cross nodes, and a message waits for a target that
 * connects on another node.
 */
import assert from "node:assert/strict";
import { type Runtime, type ServerHandle, startServer } from "../support/server.ts";
import { redisTest, redisTests } from "../support/redis.ts";
import { JsonWs } from "./json_ws.ts";

const EXPIRE = 1500;
const env = await redisTests();

function node(rt: Runtime, prefix: string): Promise<ServerHandle> {
  return startServer({
    runtime: rt,
    args: ["--redis", env.url, "--redis-prefix", prefix, "--peerjs-expire-ms", String(EXPIRE)],
  });
}

function url(s: ServerHandle, id: string, token: string): string {
  return `ws://127.0.0.1:${s.port}/peerjs?key=peerjs&id=${id}&token=${token}&version=1.5.5`;
}

async function open(s: ServerHandle, id: string, token = "t-" + id): Promise<JsonWs> {
  const ws = await JsonWs.open(url(s, id, token));
  assert.deepEqual(await ws.next(), { type: "OPEN" });
  return ws;
}

redisTest(env, "peerjs on two nodes: an id is taken cluster-wide", async (rt, prefix) => {
  await using a = await node(rt, prefix);
  await using b = await node(rt, prefix);
  await using held = await open(a, "shared-id", "one");
  await using other = await JsonWs.open(url(b, "shared-id", "two"));
  assert.deepEqual(await other.next(), { type: "ID-TAKEN", payload: { msg: "ID is taken" } });
  await other.closedWithin();
  // The same token takes it over from the other node; the old socket is closed.
  await using moved = await JsonWs.open(url(b, "shared-id", "one"));
  assert.equal((await held.closedWithin()).code, 4002);
  await using c = await open(a, "sender");
  c.send({ type: "OFFER", dst: "shared-id", payload: "here now" });
  assert.deepEqual(await moved.next(), {
    type: "OFFER",
    src: "sender",
    dst: "shared-id",
    payload: "here now",
  });
});

redisTest(env, "peerjs on two nodes: messages cross nodes both ways", async (rt, prefix) => {
  await using a = await node(rt, prefix);
  await using b = await node(rt, prefix);
  await using x = await open(a, "x");
  await using y = await open(b, "y");
  for (let i = 0; i < 5; i++) x.send({ type: "CANDIDATE", dst: "y", src: "forged", payload: i });
  for (let i = 0; i < 5; i++) {
    assert.deepEqual(await y.next(), { type: "CANDIDATE", src: "x", dst: "y", payload: i });
  }
  y.send({ type: "ANSWER", dst: "x", payload: "a" });
  assert.deepEqual(await x.next(), { type: "ANSWER", src: "y", dst: "x", payload: "a" });
});

redisTest(
  env,
  "peerjs on two nodes: a message waits for a target that connects on the other node",
  async (rt, prefix) => {
    await using a = await node(rt, prefix);
    await using b = await node(rt, prefix);
    await using x = await open(a, "early");
    x.send({ type: "OFFER", dst: "late", payload: 1 });
    x.send({ type: "CANDIDATE", dst: "late", payload: 2 });
    await using late = await open(b, "late");
    assert.deepEqual(await late.next(), { type: "OFFER", src: "early", dst: "late", payload: 1 });
    assert.deepEqual(await late.next(), {
      type: "CANDIDATE",
      src: "early",
      dst: "late",
      payload: 2,
    });
    x.send({ type: "OFFER", dst: "never", payload: 3 });
    assert.deepEqual(await x.next(undefined, EXPIRE + 3000), {
      type: "EXPIRE",
      src: "never",
      dst: "early",
    });
  },
);
