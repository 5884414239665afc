/**
 * Message streams on several nodes (PROTOCOL.md, "Message streams and
 * recovery"): Redis holds each stream and publishes each message to every
 * node in the same step, so all nodes agree on seq order, and a peer whose
 * node was killed resumes elsewhere with every message it missed.
 */
import assert from "node:assert/strict";
import { connect, describe, group, newChannel, peer } from "../support/client.ts";
import { redisTest, redisTests } from "../support/redis.ts";
import { type Runtime, startServer } from "../support/server.ts";
import { delay, until, within } from "../support/wait.ts";

const env = await redisTests();

/** A node on the shared Redis, under `prefix`, without rate limiting. */
function node(rt: Runtime, prefix: string) {
  return startServer({
    runtime: rt,
    args: ["--redis", env.url, "--redis-prefix", prefix, "--grace-ms", "30000", "--rate", "0"],
  });
}

redisTest(
  env,
  "a peer whose node is killed resumes on another node with every message it missed, once, in order",
  async (rt, prefix) => {
    await using a = await node(rt, prefix);
    await using b = await node(rt, prefix);
    const ch = newChannel();
    await using g = group(
      await peer(b.url, { name: "pub" }),
      await peer(b.url, { name: "priv" }),
    );
    const [pub, priv] = g;
    await pub.ok(`/join ${ch}`);
    await using victim = await connect(a.url, "victim");
    const d = await describe(victim, { name: "victim" });
    const j = await victim.ok(`/join ${ch}`);
    assert.equal(j.stream.seq, 0);

    // Live first: messages from node B reach the peer on node A with their seq.
    assert.equal((await pub.ok(`/pubmsg ${ch} live`)).seq, 1);
    assert.equal((await victim.event("pubmsg")).seq, 1);
    const r0 = await priv.ok(`/privmsg ${victim.id} live`);
    assert.equal(r0.queued, undefined);
    assert.equal((await victim.event("privmsg")).seq, 1);
    const since = { inbox: { ...d.inbox, seq: 1 }, channels: { [ch]: { ...j.stream, seq: 1 } } };

    await a.kill(); // SIGKILL: node A stops beating; Redis still says the peer is online there
    await within(victim.closed, 5000, "the victim's socket closes with its node");

    // Messages keep coming, before and after node A is declared dead.
    const pubs: string[] = [];
    const privs: string[] = [];
    const queued: boolean[] = [];
    const send = async () => {
      const n = pubs.length;
      await pub.ok(`/pubmsg ${ch} p${n}`);
      pubs.push(`p${n}`);
      const r = await priv.ok(`/privmsg ${victim.id} m${n}`);
      privs.push(`m${n}`);
      queued.push(r.queued === true);
    };
    await send();
    assert.equal(queued[0], false, "node A is not declared dead at once");
    await until(
      async () => {
        await send();
        // Paces the senders while the cluster notices the death (up to 10 s).
        if (!queued.at(-1)) await delay(100);
        return queued.at(-1)!;
      },
      15_000,
      "privmsg to the peer of the dead node becomes queued",
    );
    for (let i = 0; i < 3; i++) await send();
    const firstQueued = queued.indexOf(true);
    assert.ok(queued.slice(firstQueued).every((q) => q), "once queued, always queued");

    await using c = await connect(b.url, "resumed");
    const data = await c.ok(
      `/descp ${JSON.stringify({ id: victim.id, name: "victim", resume: victim.resume, since })}`,
    );
    assert.deepEqual(data.recovered, { inbox: true, channels: { [ch]: true } });
    const gotPub = await c.events("pubmsg", pubs.length);
    assert.deepEqual(gotPub.map((e) => [e.text, e.seq]), pubs.map((t, i) => [t, i + 2]));
    const gotPriv = await c.events("privmsg", privs.length);
    assert.deepEqual(gotPriv.map((e) => [e.text, e.seq]), privs.map((t, i) => [t, i + 2]));

    // Live again, at the next seq, nothing twice.
    await pub.ok(`/pubmsg ${ch} after`);
    assert.deepEqual(
      [(await c.event("pubmsg")).text, c.pending("pubmsg").length],
      ["after", 0],
    );
    const r = await priv.ok(`/privmsg ${victim.id} after`);
    assert.equal(r.queued, undefined, "the resumed peer is online again");
    assert.equal((await c.event("privmsg")).seq, privs.length + 2);
    await c.noEvent("pubmsg", 150);
    assert.deepEqual(c.pending(), []);
  },
);

redisTest(
  env,
  "senders on two nodes: every member on either node sees the same gap-free seq order",
  async (rt, prefix) => {
    await using a = await node(rt, prefix);
    await using b = await node(rt, prefix);
    const ch = newChannel();
    await using g = group(
      await peer(a.url, { name: "sendA" }),
      await peer(b.url, { name: "sendB" }),
      await peer(a.url, { name: "seeA" }),
      await peer(b.url, { name: "seeB" }),
    );
    const [sendA, sendB, seeA, seeB] = g;
    for (const c of g) await c.ok(`/join ${ch}`);
    for (const c of g) c.clearEvents();

    const N = 100;
    const sent = new Map<number, string>(); // seq → text, from the replies
    const run = async (c: typeof sendA, tag: string) => {
      for (let i = 0; i < N; i++) {
        const r = await c.ok(`/pubmsg ${ch} ${tag}${i}`);
        sent.set(r.seq, `${tag}${i}`);
      }
    };
    await Promise.all([run(sendA, "a"), run(sendB, "b")]);
    const all = Array.from({ length: 2 * N }, (_, i) => i + 1);
    assert.deepEqual([...sent.keys()].sort((x, y) => x - y), all, "seqs are 1..200, none twice");

    for (const see of [seeA, seeB]) {
      const got = await see.events("pubmsg", 2 * N);
      assert.deepEqual(got.map((e) => e.seq), all, `${see.name} sees every seq in order`);
      assert.deepEqual(got.map((e) => e.text), all.map((s) => sent.get(s)));
    }
    // A sender sees the other's messages, in seq order, and never its own.
    for (const [c, other] of [[sendA, "b"], [sendB, "a"]] as const) {
      const got = await c.events("pubmsg", N);
      const expect = all.filter((s) => sent.get(s)!.startsWith(other));
      assert.deepEqual(got.map((e) => e.seq), expect);
      await c.noEvent("pubmsg", 100);
    }
  },
);
