/**
 * A node restarted after the cluster declared it dead: the new process must
 * not take its predecessor's death as its own (it used to crash at start),
 * and its peers resume there and are delivered to.
 */
import assert from "node:assert/strict";
import { connect, newChannel, peer } from "../support/client.ts";
import { redisTest, redisTests } from "../support/redis.ts";
import { type Runtime, startServer } from "../support/server.ts";
import { delay, until, within } from "../support/wait.ts";

/** Long enough that the peers of the dead node are still in their grace at the restart. */
const GRACE = 30_000;
/** A node silent this long is dead (6 s), with room for a loaded machine. */
const DEAD_MAX = 15_000;

const env = await redisTests();

function node(rt: Runtime, prefix: string, id: string) {
  return startServer({
    runtime: rt,
    args: [
      "--redis",
      env.url,
      "--redis-prefix",
      prefix,
      "--grace-ms",
      String(GRACE),
      "--node-id",
      id,
    ],
  });
}

redisTest(
  env,
  "kill -9, declared dead, restarted with the same node id: it stays up and its peer resumes",
  async (rt, prefix) => {
    const ch = newChannel();
    const a = await node(rt, prefix, "node-a");
    await using b = await node(rt, prefix, "node-b");
    const p = await peer(a.url, { name: "p" });
    await using q = await peer(b.url, { name: "q" });
    await p.ok(`/join ${ch}`);
    await q.ok(`/join ${ch}`);

    await a.kill();
    await within(p.closed, 5000, "close after the crash");
    // Node B declares A dead: its peer goes into its grace.
    await until(
      async () => (await q.ok(`/whois ${p.id}`)).online === false,
      DEAD_MAX,
      "node-a declared dead",
    );

    await using a2 = await node(rt, prefix, "node-a");
    await using p2 = await connect(a2.url, "p2");
    const d = await p2.ok(`/descp ${JSON.stringify({ id: p.id, name: "p", resume: p.resume })}`);
    assert.deepEqual(d.channels, [ch]);
    await q.ok(`/privmsg ${p.id} still there?`);
    assert.equal((await p2.event("privmsg")).text, "still there?");
    await q.ok(`/pubmsg ${ch} and the channel?`);
    assert.equal((await p2.event("pubmsg")).text, "and the channel?");

    // Several beats later the restarted node still serves its session.
    await delay(3000);
    assert.equal((await p2.ok(`/whois ${p.id}`)).online, true);
    await q.ok(`/privmsg ${p.id} ping`);
    assert.equal((await p2.event("privmsg")).text, "ping");
    assert.ok(a2.logs().every((l) => !l.includes("closing every session")), a2.logs().join("\n"));
  },
);
