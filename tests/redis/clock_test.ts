/**
 * One clock for the cluster: two nodes whose clocks are two minutes apart
 * (`SIGNALLER_TEST_CLOCK_OFFSET_MS`, a test-only skew) still agree on when a
 * grace ends, because every deadline is counted on Redis' clock. A peer that
 * drops gets its full grace, whichever node sweeps, and is quit on time.
 */
import assert from "node:assert/strict";
import { connect, describe, newChannel, peer } from "../support/client.ts";
import { redisTest, redisTests } from "../support/redis.ts";
import { type Runtime, startServer } from "../support/server.ts";
import { delay } from "../support/wait.ts";

const GRACE = 3_000;
/** Sweep period (min(1000, grace / 4)) plus scheduling slack on a loaded machine. */
const SLACK = 2_500;

const env = await redisTests();

/** A node on the shared Redis whose clock is `offsetMs` off. */
function node(rt: Runtime, prefix: string, offsetMs: number) {
  return startServer({
    runtime: rt,
    args: ["--redis", env.url, "--redis-prefix", prefix, "--grace-ms", String(GRACE)],
    env: { SIGNALLER_TEST_CLOCK_OFFSET_MS: String(offsetMs) },
  });
}

redisTest(
  env,
  "nodes whose clocks are two minutes apart give a dropped peer its full grace, and no more",
  async (rt, prefix) => {
    await using ahead = await node(rt, prefix, 60_000);
    await using behind = await node(rt, prefix, -60_000);
    const ch = newChannel();
    await using watchAhead = await peer(ahead.url, { name: "watch-ahead" });
    await using watchBehind = await peer(behind.url, { name: "watch-behind" });
    await using early = await peer(behind.url, { name: "early" });
    await using late = await peer(ahead.url, { name: "late" });
    for (const c of [watchAhead, watchBehind, early, late]) await c.ok(`/join ${ch}`);
    for (const c of [watchAhead, watchBehind]) await c.events("join", 2, { timeout: 5_000 });

    // A peer of the node behind drops. On its own clock the node ahead would see that grace
    // ended a minute ago; counted on Redis' clock it still runs a second before its end.
    const tDrop = Date.now();
    await early.close();
    await delay(tDrop + GRACE - 1_000 - Date.now());
    {
      await using back = await connect(ahead.url, "early again");
      const d = await describe(back, { id: early.id, name: "early", resume: early.resume });
      assert.deepEqual(d.channels, [ch], "the peer resumed within its grace, channels and all");
      assert.ok(Date.now() - tDrop < GRACE, "the resume came within the grace");
      for (const w of [watchAhead, watchBehind]) {
        await w.noEvent("quit", 0, (q) => q.peer === early.id);
      }
      await back.ok(`/pubmsg ${ch} still here`);
      assert.equal((await watchBehind.event("pubmsg")).from, early.id);
    }

    // A peer of the node ahead drops and that node goes away: only the node behind sweeps.
    // On its own clock that grace would end two minutes from now.
    const tLate = Date.now();
    await late.close();
    assert.equal(await ahead.stop(), 0);
    const q = await watchBehind.event("quit", {
      timeout: GRACE + SLACK,
      where: (m) => m.peer === late.id,
    });
    const after = Date.now() - tLate;
    assert.equal(q.reason, "disconnect");
    assert.ok(after >= GRACE, `quit ${after} ms after the drop: the grace was cut short`);
  },
);
