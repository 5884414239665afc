/**
 * A node remembers that a peer on another node is online, so that a relay
 * kept in no stream (`--history 0` here) reads no Redis per `/privmsg`. Every
 * change of that peer's presence elsewhere must reach it: the nodes here
 * remember for a minute, so only the invalidation over the bus, not the
 * entry's expiry, can make these tests pass.
 */
import assert from "node:assert/strict";
import { connect, describe, type Msg, peer, type TestClient } from "../support/client.ts";
import { redisTest, redisTests } from "../support/redis.ts";
import { type Runtime, startServer } from "../support/server.ts";
import { delay, until, within } from "../support/wait.ts";

const env = await redisTests();

/** Long: the peers of a killed node are still in their grace when the test ends. */
const GRACE = 30_000;
/** A node silent this long is dead (6 s), with room for a loaded machine. */
const DEAD_MAX = 15_000;
/** How long an invalidation may take to arrive. */
const TOLD = 5_000;

function node(rt: Runtime, prefix: string, id?: string) {
  return startServer({
    runtime: rt,
    args: [
      ...(id === undefined ? [] : ["--node-id", id]),
      "--redis",
      env.url,
      "--redis-prefix",
      prefix,
      "--history",
      "0",
      "--grace-ms",
      String(GRACE),
      "--presence-cache-ms",
      "60000",
    ],
  });
}

/** `from` relays to `to` on another node, which gets it: `to` is now cached on `from`'s node. */
async function relayed(from: TestClient, to: TestClient, text: string): Promise<Msg> {
  const data = await from.ok(`/privmsg ${to.id} ${text}`);
  assert.equal((await to.event("privmsg", { where: (e) => e.text === text })).from, from.id);
  return data;
}

/** Resolves once a `/privmsg` from `from` to `id` gets `401`. */
function refusedTo(from: TestClient, id: string, ms: number, what: string): Promise<number> {
  return until(async () => (await from.cmd(`/privmsg ${id} anyone?`)).code === 401, ms, what);
}

redisTest(
  env,
  "a cached target on another node closes its socket: /privmsg gets 401",
  async (rt, prefix) => {
    await using a = await node(rt, prefix);
    await using b = await node(rt, prefix);
    const p = await peer(a.url, { name: "p" });
    await using q = await peer(b.url, { name: "q" });
    await relayed(q, p, "one");
    await relayed(q, p, "two");
    await p.close();
    await refusedTo(q, p.id, TOLD, "401 after the target's socket closed");
    // And it stays so: nothing is acknowledged into its grace.
    await q.fail(`/privmsg ${p.id} still?`, 401);
  },
);

redisTest(
  env,
  "a cached target taken over on the other node is delivered there",
  async (rt, prefix) => {
    await using a = await node(rt, prefix);
    await using b = await node(rt, prefix);
    await using p = await peer(a.url, { name: "p" });
    await using q = await peer(b.url, { name: "q" });
    await relayed(q, p, "before");
    // p takes itself over on q's node: the old socket is replaced. (Its presence stays online
    // and not away, so the cached entry was still right: this checks delivery, not the notice.)
    await using p2 = await connect(b.url, "p2");
    await describe(p2, { id: p.id, name: "p", resume: p.resume });
    assert.equal((await within(p.closed, TOLD, "the old socket replaced")).code, 4002);
    await relayed(q, p2, "after");
  },
);

redisTest(env, "a cached target resumed on a third node is delivered there", async (rt, prefix) => {
  await using a = await node(rt, prefix);
  await using b = await node(rt, prefix);
  await using c = await node(rt, prefix);
  const p = await peer(a.url, { name: "p" });
  await using q = await peer(b.url, { name: "q" });
  await relayed(q, p, "before");
  // Taken over on a third node while online...
  await using p2 = await connect(c.url, "p2");
  await describe(p2, { id: p.id, name: "p", resume: p.resume });
  await within(p.closed, TOLD, "the old socket replaced");
  await relayed(q, p2, "taken over");
  // ...then dropped (grace: 401) and resumed on the first one.
  await p2.close();
  await refusedTo(q, p.id, TOLD, "401 during the grace");
  await using p3 = await connect(a.url, "p3");
  await describe(p3, { id: p.id, name: "p", resume: p.resume });
  await relayed(q, p3, "resumed");
});

redisTest(
  env,
  "the cached target's node is killed: 401 once it is declared dead",
  async (rt, prefix) => {
    const a = await node(rt, prefix);
    try {
      await using b = await node(rt, prefix);
      const p = await peer(a.url, { name: "p" });
      await using q = await peer(b.url, { name: "q" });
      await relayed(q, p, "before");
      await a.kill();
      await within(p.closed, TOLD, "close after the crash");
      // Until then a relay may be acknowledged and lost (PROTOCOL.md); never after. The grace
      // (30 s) outlasts the wait: only the node's death, told over the bus, makes this 401.
      await refusedTo(q, p.id, DEAD_MAX, "401 once node A is declared dead");
      for (let i = 0; i < 5; i++) {
        await q.fail(`/privmsg ${p.id} into the void?`, 401);
        await delay(100);
      }
    } finally {
      await a.kill().catch(() => {});
    }
  },
);

redisTest(
  env,
  "the cached target's node is killed and restarted with its node id: 401 at once",
  async (rt, prefix) => {
    const a = await node(rt, prefix, "node-a");
    await using b = await node(rt, prefix);
    const p = await peer(a.url, { name: "p" });
    await using q = await peer(b.url, { name: "q" });
    await relayed(q, p, "before");
    await a.kill();
    await within(p.closed, TOLD, "close after the crash");
    // Restarted before the others declare it dead: it puts its predecessor's peers in their grace.
    await using a2 = await node(rt, prefix, "node-a");
    await refusedTo(q, p.id, TOLD, "401 once node A restarted");
    await using p2 = await connect(a2.url, "p2");
    await describe(p2, { id: p.id, name: "p", resume: p.resume });
    await relayed(q, p2, "after the restart");
  },
);

redisTest(env, "away set after the target was cached shows in the reply", async (rt, prefix) => {
  await using a = await node(rt, prefix);
  await using b = await node(rt, prefix);
  await using p = await peer(a.url, { name: "p" });
  await using q = await peer(b.url, { name: "q" });
  assert.equal((await relayed(q, p, "here?")).away, undefined);
  await p.ok("/away out for lunch");
  let last: Msg = {} as Msg;
  await until(
    async () => {
      last = await q.ok(`/privmsg ${p.id} here now?`);
      return last.away === "out for lunch";
    },
    TOLD,
    "the away message in the reply",
  );
  await p.ok("/away");
  await until(
    async () => (await q.ok(`/privmsg ${p.id} back?`)).away === undefined,
    TOLD,
    "away cleared in the reply",
  );
});
