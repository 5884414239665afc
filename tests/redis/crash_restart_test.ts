/**
 * A crash is a disconnect of every peer (PROTOCOL.md, "Several nodes"): a node
 * killed with SIGKILL and restarted on the same Redis + prefix lets its peers
 * resume with their channels, operator rights, bans and keys; those that do not
 * resume are quit once their grace, counted from the dead node's detection, ends.
 */
import assert from "node:assert/strict";
import { connect, describe, newChannel, peer } from "../support/client.ts";
import { redisClusterTests, redisTest, type RedisTestEnv, redisTests } from "../support/redis.ts";
import { type Runtime, startServer } from "../support/server.ts";
import { within } from "../support/wait.ts";

const GRACE = 1500;
/** A node silent this long is dead (server/store/redis.ts); the protocol allows up to 10 s. */
const DEAD_MAX = 10_000;
/** Sweep period (min(1000, grace / 4)) plus scheduling slack on a loaded machine. */
const SLACK = 2500;

/** A node on the shared Redis, under `prefix`. */
function node(env: RedisTestEnv, rt: Runtime, prefix: string) {
  return startServer({
    runtime: rt,
    args: [...env.flags, "--redis-prefix", prefix, "--grace-ms", String(GRACE)],
  });
}

/** The suite on `env`, named with `where` (one Redis, or a Redis Cluster). */
function suite(env: RedisTestEnv, where: string): void {
  redisTest(
    env,
    `${where}: after kill -9 and a restart, peers resume with channels, ops, bans and keys`,
    async (rt, prefix) => {
      const ch = newChannel();
      const KEY = "s3cret";
      // ---- before the crash: op creates a keyed channel; mem and gone join; banned is banned.
      await using a = await node(env, rt, prefix);
      await using op = await peer(a.url, { name: "op" });
      await using mem = await peer(a.url, { name: "mem" });
      await using gone = await peer(a.url, { name: "gone" });
      await using banned = await peer(a.url, { name: "banned" });
      const j = await op.ok(`/join ${ch} ${KEY}`);
      assert.equal(j.created, true);
      assert.equal(j.op, true);
      await mem.ok(`/join ${ch} ${KEY}`);
      await gone.ok(`/join ${ch} ${KEY}`);
      await banned.ok(`/join ${ch} ${KEY}`);
      await op.ok(`/ban ${banned.id} ${ch}`);
      assert.equal((await banned.event("ban")).peer, banned.id);
      await banned.fail(`/join ${ch} ${KEY}`, 474);
      const w0 = await mem.ok(`/whois ${ch}`);
      assert.deepEqual(w0.operators, [op.id]);
      assert.deepEqual(w0.members.map((m: { id: string }) => m.id), [op.id, mem.id, gone.id]);

      const tKill = Date.now();
      await a.kill(); // SIGKILL: no shutdown, no release, no notice
      for (const c of [op, mem, gone, banned]) {
        const info = await within(c.closed, 3000, "close after the crash");
        assert.notEqual(info.code, 1001, "a killed server sends no going-away close");
      }

      // ---- a new node on the same Redis + prefix.
      await using b = await node(env, rt, prefix);
      const tRestart = Date.now();
      await using op2 = await connect(b.url, "op2");
      await using mem2 = await connect(b.url, "mem2");
      await using banned2 = await connect(b.url, "banned2");
      await using newcomer = await peer(b.url, { name: "newcomer" });

      const dOp = await describe(op2, { id: op.id, name: "op", resume: op.resume });
      assert.deepEqual(dOp.channels, [ch], "the operator's channels survive the crash");
      assert.equal(dOp.resume, op.resume, "the resume token stays the same for the peer's life");
      const dMem = await describe(mem2, { id: mem.id, name: "mem", resume: mem.resume });
      assert.deepEqual(dMem.channels, [ch]);
      assert.equal(dMem.resume, mem.resume);
      const dBan = await describe(banned2, {
        id: banned.id,
        name: "banned",
        resume: banned.resume,
      });
      assert.deepEqual(dBan.channels, []);

      // The id of the peer that has not resumed is still taken during its grace.
      {
        await using thief = await connect(b.url, "thief");
        await thief.fail(`/descp ${JSON.stringify({ id: gone.id, name: "thief" })}`, 433);
      }

      // Operator rights held by id survive.
      const w = await mem2.ok(`/whois ${ch}`);
      assert.equal(w.channel, ch);
      assert.equal(w.keyed, true);
      assert.deepEqual(w.operators, [op.id]);
      assert.deepEqual(w.members.map((m: { id: string }) => m.id), [op.id, mem.id, gone.id]);
      assert.equal("key" in w, false, "whois never shows the key");

      // Messages flow between the resumed peers, both ways.
      await op2.ok(`/pubmsg ${ch} back from the dead`);
      const pm1 = await mem2.event("pubmsg");
      assert.deepEqual(
        { from: pm1.from, channel: pm1.channel, text: pm1.text },
        { from: op.id, channel: ch, text: "back from the dead" },
      );
      await mem2.ok(`/pubmsg ${ch} welcome back`);
      const pm2 = await op2.event("pubmsg");
      assert.deepEqual(
        { from: pm2.from, channel: pm2.channel, text: pm2.text },
        { from: mem.id, channel: ch, text: "welcome back" },
      );
      await op2.ok(`/privmsg ${mem.id} direct`);
      const pr = await mem2.event("privmsg");
      assert.deepEqual({ from: pr.from, to: pr.to, text: pr.text }, {
        from: op.id,
        to: mem.id,
        text: "direct",
      });
      await op2.noEvent("pubmsg", 0);

      // The key is still enforced for a newcomer; the ban wins over the key.
      await newcomer.fail(`/join ${ch}`, 475);
      await newcomer.fail(`/join ${ch} wrong`, 475);
      await banned2.fail(`/join ${ch} ${KEY}`, 474);
      await banned2.fail(`/join ${ch}`, 474);
      const jn = await newcomer.ok(`/join ${ch} ${KEY}`);
      assert.equal(jn.created, false);
      assert.equal(jn.op, false);
      assert.equal(jn.total, 4);
      for (const c of [op2, mem2]) {
        const e = await c.event("join");
        assert.deepEqual({ channel: e.channel, peer: e.peer }, {
          channel: ch,
          peer: { id: newcomer.id, name: "newcomer" },
        });
      }

      // Only the operator may kick.
      await mem2.fail(`/kick ${newcomer.id} ${ch}`, 482);
      await op2.ok(`/kick ${newcomer.id} ${ch} out`);
      for (const c of [newcomer, mem2]) {
        const k = await c.event("kick");
        assert.deepEqual({ channel: k.channel, peer: k.peer, by: k.by, text: k.text }, {
          channel: ch,
          peer: newcomer.id,
          by: op.id,
          text: "out",
        });
      }
      await newcomer.fail(`/pubmsg ${ch} still here?`, 404);
      await newcomer.ok(`/join ${ch} ${KEY}`); // rejoin, then a ban by the resumed operator
      await op2.event("join");
      await mem2.event("join");
      await op2.ok(`/ban ${newcomer.id} ${ch}`);
      assert.equal((await newcomer.event("ban")).by, op.id);
      await newcomer.fail(`/join ${ch} ${KEY}`, 474);

      // The peer that never resumed: one quit (reason "disconnect") to each remaining
      // member, after the grace, counted from when the dead node is detected.
      await op2.noEvent("quit", 0);
      const deadline = tRestart + DEAD_MAX + GRACE + SLACK - Date.now();
      const qOp = await op2.event("quit", { timeout: Math.max(deadline, 1000) });
      const tQuit = Date.now();
      const qMem = await mem2.event("quit", { timeout: 2000 });
      for (const q of [qOp, qMem]) {
        assert.deepEqual({ channel: q.channel, peer: q.peer, reason: q.reason }, {
          channel: ch,
          peer: gone.id,
          reason: "disconnect",
        });
      }
      assert.ok(
        tQuit - tKill >= GRACE,
        `quit ${tQuit - tKill} ms after the crash (restart at +${
          tRestart - tKill
        } ms): the peer did not get its full grace`,
      );
      await op2.noEvent("quit", 500);
      await mem2.noEvent("quit", 0);
      await newcomer.noEvent("quit", 0);

      // The expired peer is gone; the resumed ones are not.
      await op2.fail(`/whois ${gone.id}`, 401);
      const p = await op2.ok(`/peers ${ch}`);
      assert.deepEqual(
        p.peers.map((e: { id: string; op: boolean; online: boolean }) => [e.id, e.op, e.online]),
        [[op.id, true, true], [mem.id, false, true]],
      );
      assert.equal(p.total, 2);
    },
  );

  redisTest(
    env,
    `${where}: a node restarted with the same --node-id starts its predecessor's peers' grace at once`,
    async (rt, prefix) => {
      const nodeId = `test-node-${crypto.randomUUID()}`;
      const start = () =>
        startServer({
          runtime: rt,
          args: [
            ...[...env.flags, "--redis-prefix", prefix, "--grace-ms", String(GRACE)],
            ...["--node-id", nodeId],
          ],
        });
      const ch = newChannel();
      await using a = await start();
      await using stays = await peer(a.url, { name: "stays" });
      await using gone = await peer(a.url, { name: "gone" });
      await stays.ok(`/join ${ch}`);
      await gone.ok(`/join ${ch}`);
      await a.kill();
      // The grace starts while the node starts, before it listens: between these two times.
      const tStart = Date.now();
      await using b = await start();
      await using back = await connect(b.url, "back");
      const d = await describe(back, { id: stays.id, name: "stays", resume: stays.resume });
      assert.deepEqual(d.channels, [ch]);
      // Counted from the restart, not from a dead-node detection 6 s later.
      const q = await back.event("quit", { timeout: GRACE + SLACK });
      assert.deepEqual({ peer: q.peer, reason: q.reason }, { peer: gone.id, reason: "disconnect" });
      assert.ok(Date.now() - tStart >= GRACE, "the peer got its full grace");
    },
  );
}

suite(await redisTests(), "one Redis");
suite(await redisClusterTests(), "a Redis Cluster");
