/**
 * A node declared dead while it is still alive (it stalled, or lost Redis for
 * longer than the dead-node time) must not keep sessions the cluster gave up:
 * once it beats again it closes them (1001), and their clients resume.
 */
import assert from "node:assert/strict";
import { newChannel, peer } from "../support/client.ts";
import { redisTest, redisTests } from "../support/redis.ts";
import { startServer } from "../support/server.ts";
import { within } from "../support/wait.ts";

const GRACE = 1000;
const env = await redisTests();

redisTest(
  env,
  "a node stopped past the dead-node time closes its given-up sessions when it runs again",
  async (rt, prefix) => {
    const args = ["--redis", env.url, "--redis-prefix", prefix, "--grace-ms", String(GRACE)];
    await using a = await startServer({ runtime: rt, args });
    await using b = await startServer({ runtime: rt, args });
    await using pa = await peer(a.url, { name: "on-a" });
    await using pb = await peer(b.url, { name: "on-b" });
    const ch = newChannel();
    await pa.ok(`/join ${ch}`);
    await pb.ok(`/join ${ch}`);
    Deno.kill(a.pid, "SIGSTOP");
    try {
      // Declared dead after 6 s of silence, then quit once its peers' grace has run.
      const q = await pb.event("quit", { timeout: 12_000 });
      assert.deepEqual({ peer: q.peer, reason: q.reason }, { peer: pa.id, reason: "disconnect" });
    } finally {
      Deno.kill(a.pid, "SIGCONT");
    }
    // The cluster gave pa's session up: node A must not keep serving it.
    const closed = await within(pa.closed, 5000, "the given-up session closes");
    assert.equal(closed.code, 1001);
  },
);
