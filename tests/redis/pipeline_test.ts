/**
 * A burst of messages from one peer on Redis (PROTOCOL.md, "Replies: exactly
 * one per command, in order" and "Message streams and recovery"): its
 * `/pubmsg`s and `/privmsg`s go to the store back to back, yet every reply
 * comes in command order, each stream's messages reach every member once and
 * in `seq` order, and any other command takes effect after the messages
 * before it.
 */
import assert from "node:assert/strict";
import { expectError, expectOk, type Msg, newChannel, peer } from "../support/client.ts";
import { redisClusterTests, redisTest, type RedisTestEnv, redisTests } from "../support/redis.ts";
import { type Runtime, startServer } from "../support/server.ts";
import { delay } from "../support/wait.ts";

/** Messages in one burst. */
const N = 60;
/** After the expected events arrived: how long to watch for a duplicate. */
const QUIET = 300;

/** A node on `env` under `prefix`, without rate limiting. */
function node(env: RedisTestEnv, rt: Runtime, prefix: string) {
  return startServer({
    runtime: rt,
    args: [...env.flags, "--redis-prefix", prefix, "--rate", "0"],
  });
}

/** The next `n` replies, in order. */
async function replies(c: { reply(timeout?: number): Promise<Msg> }, n: number): Promise<Msg[]> {
  const out: Msg[] = [];
  for (let i = 0; i < n; i++) out.push(await c.reply(10_000));
  return out;
}

function suite(env: RedisTestEnv, where: string): void {
  redisTest(
    env,
    `${where}: a burst of /pubmsg gets its replies in order with rising seq; each member gets each message once, in order`,
    async (rt, prefix) => {
      await using a = await node(env, rt, prefix);
      await using b = await node(env, rt, prefix);
      await using sender = await peer(a.url, { name: "sender" });
      await using near = await peer(a.url, { name: "near" });
      await using far = await peer(b.url, { name: "far" });
      // Two channels: on a Redis Cluster their streams may live on different masters.
      const [ch1, ch2] = [newChannel(), newChannel()];
      for (const c of [sender, near, far]) {
        await c.ok(`/join ${ch1}`);
        await c.ok(`/join ${ch2}`);
      }
      // Non-ASCII, astral and escaped characters: a run of messages to one channel travels
      // as one batch whose texts are counted in UTF-16 units.
      const texts = Array.from({ length: N }, (_, i) => `m${i} 弾幕 ü 🎉 "q" \\`);
      // Runs of seven to one channel, then three to the other.
      const chOf = (i: number) => i % 10 >= 7 ? ch2 : ch1;
      texts.forEach((t, i) => sender.send(`/pubmsg ${chOf(i)} ${t}`));
      const got = await replies(sender, N);
      const seq = new Map<string, number>();
      got.forEach((r, i) => {
        expectOk(r, "pubmsg", `/pubmsg ${texts[i]}`);
        const next = (seq.get(chOf(i)) ?? 0) + 1;
        assert.equal(r.data.seq, next, `reply ${i} carries its channel's next seq`);
        seq.set(chOf(i), next);
      });
      for (const c of [near, far]) {
        const events = await c.events("pubmsg", N, { timeout: 10_000 });
        for (const ch of [ch1, ch2]) {
          const mine = events.filter((e) => e.channel === ch);
          const want = texts.filter((_, i) => chOf(i) === ch);
          assert.deepEqual(mine.map((e) => e.text), want, `${c.name}: ${ch} in command order`);
          assert.deepEqual(mine.map((e) => e.seq), want.map((_, k) => k + 1));
        }
      }
      await delay(QUIET);
      for (const c of [near, far, sender]) await c.noEvent("pubmsg", 0);
    },
  );

  redisTest(
    env,
    `${where}: two senders' bursts into one channel, sent together: each member gets both once, each in order; no sender gets its own`,
    async (rt, prefix) => {
      await using a = await node(env, rt, prefix);
      await using b = await node(env, rt, prefix);
      await using s1 = await peer(a.url, { name: "s1" });
      await using s2 = await peer(a.url, { name: "s2" });
      await using far = await peer(b.url, { name: "far" });
      const ch = newChannel();
      for (const c of [s1, s2, far]) await c.ok(`/join ${ch}`);
      const burst = (who: string) => Array.from({ length: 20 }, (_, i) => `${who}-${i}`);
      // Both in flight at once: the node batches what one turn brings, from either sender.
      for (let i = 0; i < 20; i++) {
        s1.send(`/pubmsg ${ch} ${burst("s1")[i]}`);
        s2.send(`/pubmsg ${ch} ${burst("s2")[i]}`);
      }
      await Promise.all([replies(s1, 20), replies(s2, 20)]);
      const got = (c: typeof far, n: number) =>
        c.events("pubmsg", n, { timeout: 10_000 }).then((es) => es.map((e) => e.text));
      const atFar = await got(far, 40);
      const atS1 = await got(s1, 20);
      const atS2 = await got(s2, 20);
      assert.deepEqual(atFar.filter((t) => t.startsWith("s1-")), burst("s1"));
      assert.deepEqual(atFar.filter((t) => t.startsWith("s2-")), burst("s2"));
      assert.deepEqual(atS1, burst("s2"), "s1 gets s2's, in order, and none of its own");
      assert.deepEqual(atS2, burst("s1"), "s2 gets s1's, in order, and none of its own");
      // Every node delivers in seq order: far sees the interleaving the seqs give.
      const onA = s1.log.concat(s2.log).filter((m) => m.type === "pubmsg");
      assert.deepEqual(atFar, onA.sort((x, y) => x.seq - y.seq).map((m) => m.text));
      await delay(QUIET);
      for (const c of [far, s1, s2]) await c.noEvent("pubmsg", 0);
    },
  );

  redisTest(
    env,
    `${where}: a burst mixing /pubmsg, /privmsg, /away and /quit gets its replies in command order, each command after the messages before it`,
    async (rt, prefix) => {
      await using a = await node(env, rt, prefix);
      await using b = await node(env, rt, prefix);
      await using sender = await peer(a.url, { name: "sender" });
      // On the other node: everything reaches it through Redis, in the order Redis ran it.
      await using far = await peer(b.url, { name: "far" });
      const ch = newChannel();
      await sender.ok(`/join ${ch}`);
      await far.ok(`/join ${ch}`);
      await sender.event("join");
      const frames = [
        `/pubmsg ${ch} one`,
        `/pubmsg ${ch} two`,
        `/privmsg ${far.id} psst`,
        `/pubmsg ${ch} three`,
        `/away brb`,
        `/pubmsg ${ch} four`,
        `/privmsg ${far.id} psst again`,
        `/quit ${ch}`,
        `/pubmsg ${ch} five`,
      ];
      for (const f of frames) sender.send(f);
      const got = await replies(sender, frames.length);
      const cmds = ["pubmsg", "pubmsg", "privmsg", "pubmsg", "away", "pubmsg", "privmsg", "quit"];
      cmds.forEach((cmd, i) => expectOk(got[i], cmd as "pubmsg", frames[i]));
      assert.deepEqual([got[0], got[1], got[3], got[5]].map((r) => r.data.seq), [1, 2, 3, 4]);
      assert.equal(got[4].data.away, true);
      // The last /pubmsg saw the /quit before it: the sender is no longer a member.
      expectError(got[8], 404, "pubmsg", "/pubmsg after /quit");

      const order: string[] = [];
      const want = ["one", "two", "psst", "three", "away", "four", "psst again", "quit"];
      const deadline = Date.now() + 10_000;
      while (order.length < want.length && Date.now() < deadline) {
        const seen = far.log.filter((m) =>
          m.type === "pubmsg" || m.type === "privmsg" || m.type === "away" || m.type === "quit"
        );
        order.splice(0, order.length, ...seen.map((m) => m.text ?? m.type));
        if (order.length < want.length) await delay(20);
      }
      // Each stream keeps command order; an event outside the streams (away) comes after
      // every message sent before its command. (It travels on another Redis connection than
      // the messages after it, so those may overtake it.)
      const only = (keep: string[]) => (t: string) => keep.includes(t);
      const inbox = only(["psst", "psst again"]);
      const stream = only(["one", "two", "three", "four", "quit"]);
      assert.deepEqual(order.filter(inbox), want.filter(inbox), "the inbox in command order");
      assert.deepEqual(order.filter(stream), want.filter(stream), "the channel in command order");
      if (where === "one Redis") {
        // One Redis runs every script in the order the node sent them: one order for all.
        const messages = (t: string) => t !== "away";
        assert.deepEqual(order.filter(messages), want.filter(messages));
        assert.ok(
          order.indexOf("away") > order.indexOf("three"),
          "away after the messages before it",
        );
      } else {
        // A channel's stream, an inbox and node-wide events (away) may be on different
        // masters of a Redis Cluster: only each one's own order is promised there.
        assert.ok(order.includes("away"));
      }
      await delay(QUIET);
      assert.equal(far.log.filter((m) => m.type === "pubmsg").length, 4, "each pubmsg once");
    },
  );
}

suite(await redisTests(), "one Redis");
suite(await redisClusterTests(), "a Redis Cluster");
