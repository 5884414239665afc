/**
 * Redis losing its state while nodes run (restarted without persistence, or
 * flushed): each node notices at its next beat and writes back the peers it
 * holds live and their memberships. The "flush" here deletes every key under
 * the test's prefix, never the shared Redis' other keys.
 */
import assert from "node:assert/strict";
import { connect, describe, type Msg, newChannel, peer } from "../support/client.ts";
import { deleteKeys, redisTest, redisTests } from "../support/redis.ts";
import { type Runtime, startServer } from "../support/server.ts";
import { until } from "../support/wait.ts";

const env = await redisTests();

/** A node on the shared Redis, under `prefix`. */
function node(rt: Runtime, prefix: string) {
  return startServer({ runtime: rt, args: ["--redis", env.url, "--redis-prefix", prefix] });
}

const ids = (members: { id: string }[]) => members.map((m) => m.id).sort();

redisTest(
  env,
  "after Redis lost its state, live peers keep their ids, channels, resume and messages",
  async (rt, prefix) => {
    await using a = await node(rt, prefix);
    await using b = await node(rt, prefix);
    const ch = newChannel();
    await using pa = await peer(a.url, { name: "pa" });
    await using qa = await peer(a.url, { name: "qa" });
    await using pb = await peer(b.url, { name: "pb" });
    await using qb = await peer(b.url, { name: "qb" });
    for (const c of [pa, qa, pb, qb]) await c.ok(`/join ${ch}`);
    await qb.ok("/away lunch");
    const all = [pa.id, qa.id, pb.id, qb.id].sort();

    await deleteKeys(env.url, prefix);
    assert.equal((await pa.cmd(`/whois ${ch}`)).code, 403, "the channel is gone from Redis");

    // Each node writes its peers back at its next beat (every second).
    await until(
      async () => {
        const w = await pa.cmd(`/whois ${ch}`);
        return w.type === "ok" && w.data.total === 4;
      },
      10_000,
      "every member back in the channel",
    );
    const w = (await pa.ok(`/whois ${ch}`)) as Msg;
    assert.deepEqual(ids(w.members), all);
    assert.equal(w.operators.length, 1, "the first member written back is the operator");

    // /whois shows each peer as it was, from either node.
    const whoB = await pa.ok(`/whois ${qb.id}`);
    assert.equal(whoB.name, "qb");
    assert.equal(whoB.away, true);
    assert.equal(whoB.message, "lunch");
    assert.equal(whoB.online, true);
    assert.deepEqual(whoB.channels, [ch]);
    assert.deepEqual((await qb.ok(`/whois ${pa.id}`)).channels, [ch]);

    // The ids are still held.
    {
      await using thief = await connect(b.url, "thief");
      await thief.fail(`/descp ${JSON.stringify({ id: pa.id, name: "thief" })}`, 433);
    }

    // Messages reach every member, across nodes.
    await pb.ok(`/pubmsg ${ch} still here`);
    for (const c of [pa, qa, qb]) {
      const m = await c.event("pubmsg", { where: (e) => e.text === "still here" });
      assert.equal(m.from, pb.id);
    }

    // A peer that drops resumes on the other node with its resume token and channels.
    await qa.close();
    await using back = await connect(b.url, "qa again");
    const d = await describe(back, { id: qa.id, name: "qa", resume: qa.resume });
    assert.deepEqual(d.channels, [ch]);
    await back.ok(`/pubmsg ${ch} resumed`);
    assert.equal((await pa.event("pubmsg", { where: (e) => e.text === "resumed" })).from, qa.id);

    for (const n of [a, b]) {
      assert.ok(
        n.logs().some((l) => l.includes("Redis lost its state")),
        `the node logged the loss: ${n.logs().join("\n")}`,
      );
    }
  },
);
