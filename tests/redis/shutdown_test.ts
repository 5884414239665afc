/**
 * SIGTERM of a node on Redis (PROTOCOL.md, "Running the server"): its clients
 * get a notice and a close 1001, the process exits 0, and its peers are in
 * their grace in Redis — so they resume on another node with their channels.
 */
import assert from "node:assert/strict";
import { connect, describe, newChannel, peer } from "../support/client.ts";
import { dumpKeys, redisTest, redisTests } from "../support/redis.ts";
import { type Runtime, startServer } from "../support/server.ts";
import { within } from "../support/wait.ts";

const GRACE = 10_000;
const env = await redisTests();

/** A node on the shared Redis, under `prefix`. */
function node(rt: Runtime, prefix: string) {
  return startServer({
    runtime: rt,
    args: ["--redis", env.url, "--redis-prefix", prefix, "--grace-ms", String(GRACE)],
  });
}

redisTest(
  env,
  "SIGTERM of a node: notice and 1001, exit 0, its peers in their grace resume on another node",
  async (rt, prefix) => {
    await using na = await node(rt, prefix);
    await using nb = await node(rt, prefix);
    await using a1 = await peer(na.url, { name: "a1" });
    await using a2 = await peer(na.url, { name: "a2" });
    await using idle = await connect(na.url, "idle");
    await using b1 = await peer(nb.url, { name: "b1" });
    const ch = newChannel();
    await a1.ok(`/join ${ch} key`);
    await a2.ok(`/join ${ch} key`);
    await b1.ok(`/join ${ch} key`);
    await a1.events("join", 2);

    const tBefore = Date.now();
    const code = await na.stop();
    const tAfter = Date.now();
    assert.equal(code, 0, `exit code ${code}\n${na.logs().join("\n")}`);
    for (const c of [a1, a2]) {
      assert.equal((await within(c.closed, 5000, "close")).code, 1001);
      assert.equal(c.log.filter((m) => m.type === "notice").length, 1, `${c.name}: one notice`);
    }
    assert.equal((await within(idle.closed, 5000, "close")).code, 1001);

    // In Redis: both peers are held for their grace, until about GRACE after the stop.
    const keys = await dumpKeys(env.url, prefix);
    for (const p of [a1, a2]) {
      const until = keys.flatMap((k) => k.scores?.has(p.id) ? [k.scores.get(p.id)!] : [])
        .filter((t) => t >= tBefore + GRACE && t <= tAfter + GRACE);
      assert.equal(until.length, 1, `${p.name}: a grace end between stop + grace in Redis`);
    }
    // And so from node B: offline, still a member, the id taken.
    const w = await b1.ok(`/whois ${a1.id}`);
    assert.deepEqual([w.online, w.channels], [false, [ch]]);
    const p = await b1.ok(`/peers ${ch}`);
    assert.deepEqual(
      p.peers.map((e: { id: string; online: boolean }) => [e.id, e.online]),
      [[a1.id, false], [a2.id, false], [b1.id, true]],
    );
    await using thief = await connect(nb.url, "thief");
    await thief.fail(`/descp ${JSON.stringify({ id: a1.id, name: "x" })}`, 433);

    // a1 resumes on node B: its channel back, and b1 sees no quit or join.
    await using back = await connect(nb.url, "a1 on B");
    const d = await describe(back, { id: a1.id, name: "a1", resume: a1.resume });
    assert.deepEqual(d.channels, [ch]);
    await back.ok(`/pubmsg ${ch} back on B`);
    assert.equal((await b1.event("pubmsg")).text, "back on B");
    assert.deepEqual(b1.pending(), [], "b1 saw nothing of the shutdown and the resume");
    const op = await b1.ok(`/whois ${ch}`);
    assert.deepEqual(op.operators, [a1.id], "operator rights kept");
  },
);
