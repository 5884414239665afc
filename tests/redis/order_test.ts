/**
 * Replies in order on the Redis store (PROTOCOL.md, "Replies: exactly one per
 * command, in order"): commands that wait for Redis, commands that do not, and
 * errors, sent without waiting, are answered one each in command order.
 */
import assert from "node:assert/strict";
import { group, type Msg, newChannel, newId, peer } from "../support/client.ts";
import { redisTest, redisTests } from "../support/redis.ts";
import { type Runtime, startServer } from "../support/server.ts";

const env = await redisTests();

/** A node on the shared Redis, under `prefix`, without rate limits (the test sends a burst). */
function node(rt: Runtime, prefix: string) {
  return startServer({
    runtime: rt,
    args: ["--redis", env.url, "--redis-prefix", prefix, "--rate", "0"],
  });
}

redisTest(
  env,
  "200 mixed commands sent without waiting get one reply each, in command order",
  async (rt, prefix) => {
    await using na = await node(rt, prefix);
    await using nb = await node(rt, prefix);
    await using g = group(
      await peer(na.url, { name: "a" }),
      await peer(na.url, { name: "local" }),
      await peer(nb.url, { name: "remote" }),
    );
    const [a, local, remote] = g;
    const ch = newChannel();
    await local.ok(`/join ${ch}`);
    await remote.ok(`/join ${ch}`);

    /** Each frame with a check of its reply. */
    const frames: [string, (r: Msg) => void][] = [];
    const add = (frame: string, check: (r: Msg) => void) => frames.push([frame, check]);
    const ok = (cmd: string, more: (d: Msg) => void = () => {}) => (r: Msg) => {
      assert.deepEqual([r.type, r.cmd], ["ok", cmd], JSON.stringify(r));
      more(r.data);
    };
    const err = (cmd: string | null, code: number) => (r: Msg) =>
      assert.deepEqual([r.type, r.cmd, r.code], ["error", cmd, code], JSON.stringify(r));
    for (let i = 0; i < 20; i++) {
      const own = newChannel();
      add(`/join ${own}`, ok("join", (d) => assert.equal(d.channel, own))); // Redis script
      add(`/join ${ch}`, ok("join", (d) => assert.equal(d.channel, ch)));
      add(`/pubmsg ${ch} m${i}`, ok("pubmsg")); // no Redis round trip
      add(`/privmsg ${remote.id} r${i}`, ok("privmsg")); // a lookup, then the bus
      add(`/privmsg ${local.id} l${i}`, ok("privmsg"));
      add(`/whois ${remote.id}`, ok("whois", (d) => assert.equal(d.id, remote.id)));
      add(`/privmsg ${newId()} lost`, err("privmsg", 401));
      add(`/nosuch ${i}`, err(null, 421));
      add(`/quit ${own}`, ok("quit", (d) => assert.equal(d.channel, own)));
      add(
        `/away ${i % 2 ? "" : "away " + i}`,
        ok("away", (d) => assert.equal(d.away, i % 2 === 0)),
      );
    }
    for (const [f] of frames) a.send(f);
    const replies: Msg[] = [];
    for (let i = 0; i < frames.length; i++) replies.push(await a.reply(10_000));
    for (let i = 0; i < frames.length; i++) frames[i][1](replies[i]);
    // Nothing more: the next command's reply is the next reply.
    assert.equal((await a.ok(`/whois ${a.id}`)).id, a.id);
    // Messages reach each recipient in the order they were sent, across nodes too.
    for (let i = 0; i < 20; i++) {
      assert.equal((await remote.event("privmsg")).text, `r${i}`);
      assert.equal((await local.event("privmsg")).text, `l${i}`);
    }
    for (const c of [local, remote]) {
      const texts = (await c.events("pubmsg", 20)).map((e) => e.text);
      assert.deepEqual(texts, Array.from({ length: 20 }, (_, i) => `m${i}`), c.name);
    }
  },
);
