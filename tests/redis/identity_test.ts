/**
 * Identity on Redis (PROTOCOL.md, "Identity"): the resume token is stored only
 * as its hash, and a resume on another node takes the session over there — the
 * old socket, on its own node, closes with 4002.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { connect, describe, newChannel, peer } from "../support/client.ts";
import { dumpKeys, redisTest, redisTests } from "../support/redis.ts";
import { type Runtime, startServer } from "../support/server.ts";
import { within } from "../support/wait.ts";

const env = await redisTests();

/** A node on the shared Redis, under `prefix`. */
function node(rt: Runtime, prefix: string) {
  return startServer({ runtime: rt, args: ["--redis", env.url, "--redis-prefix", prefix] });
}

redisTest(env, "the resume token is kept in Redis only as its SHA-256", async (rt, prefix) => {
  await using s = await node(rt, prefix);
  await using a = await peer(s.url, { name: "a" });
  await using b = await peer(s.url, { name: "b" });
  const ch = newChannel();
  await a.ok(`/join ${ch} k3y`);
  await b.ok(`/join ${ch} k3y`);
  await a.ok("/away back soon");
  const hash = createHash("sha256").update(a.resume).digest("hex");
  const keys = await dumpKeys(env.url, prefix);
  assert.ok(keys.length > 0, "the peer's state is in Redis");
  for (const k of keys) {
    assert.ok(!k.key.includes(a.resume), `the token in the key name ${k.key}`);
    for (const v of k.strings) assert.ok(!v.includes(a.resume), `the token in ${k.key}: ${v}`);
  }
  const holders = keys.filter((k) => k.strings.includes(hash)).map((k) => k.key);
  assert.ok(holders.length > 0, "the token's SHA-256 (hex) is stored");
  // And it is the stored hash that a resume is checked against.
  await a.close();
  await using a2 = await connect(s.url, "a2");
  const d = await describe(a2, { id: a.id, name: "a", resume: a.resume });
  assert.deepEqual(d.channels, [ch]);
});

redisTest(
  env,
  "a resume on another node takes over: the old socket closes 4002, nobody sees a thing",
  async (rt, prefix) => {
    await using na = await node(rt, prefix);
    await using nb = await node(rt, prefix);
    await using a = await peer(na.url, { name: "a" });
    await using onA = await peer(na.url, { name: "onA" });
    await using onB = await peer(nb.url, { name: "onB" });
    const ch = newChannel();
    await a.ok(`/join ${ch}`);
    await onA.ok(`/join ${ch}`);
    await onB.ok(`/join ${ch}`);
    await a.ok("/away brb");
    await onA.events("join", 1);
    await onA.event("away");
    await onB.event("away");

    await using a2 = await connect(nb.url, "a2");
    const d = await describe(a2, { id: a.id, name: "a", resume: a.resume });
    assert.deepEqual(d.channels, [ch]);
    assert.equal(d.resume, a.resume);
    const closed = await within(a.closed, 5000, "close of the session on node A");
    assert.equal(closed.code, 4002);

    // The new session is the member now, on both nodes, without quit or join events:
    // its pubmsg is the first event either co-member gets.
    await a2.ok(`/pubmsg ${ch} moved to B`);
    for (const c of [onA, onB]) {
      const e = await c.event("pubmsg");
      assert.deepEqual([e.from, e.text], [a.id, "moved to B"]);
      assert.deepEqual(c.pending(), [], `${c.name}: nothing of the takeover`);
    }
    // Operator rights and away state came along; messages for the id reach node B.
    const w = await onA.ok(`/whois ${ch}`);
    assert.deepEqual(w.operators, [a.id]);
    const pr = await onA.ok(`/privmsg ${a.id} found you`);
    assert.equal(pr.away, "brb");
    assert.equal((await a2.event("privmsg")).text, "found you");
    await onA.ok(`/pubmsg ${ch} to the new session`);
    assert.equal((await a2.event("pubmsg")).text, "to the new session");
    await a2.ok(`/kick ${onA.id} ${ch}`);
    assert.equal((await onA.event("kick")).by, a.id);
  },
);
