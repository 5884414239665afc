/**
 * Several nodes on one Redis + prefix are one server (PROTOCOL.md, "Several
 * nodes"): messages cross nodes exactly once, identity and channel state are
 * cluster-wide, and a killed node's peers resume elsewhere or are quit once.
 */
import assert from "node:assert/strict";
import {
  connect,
  describe,
  type Msg,
  newChannel,
  peer,
  type TestClient,
} from "../support/client.ts";
import { redisClusterTests, redisTest, type RedisTestEnv, redisTests } from "../support/redis.ts";
import { type Runtime, startServer } from "../support/server.ts";
import { delay, within } from "../support/wait.ts";

const GRACE = 1500;
/** A node silent this long is dead (server/store/redis.ts); the protocol allows up to 10 s. */
const DEAD_MAX = 10_000;
/** Sweep period (min(1000, grace / 4)) plus scheduling slack on a loaded machine. */
const SLACK = 2500;
/**
 * After the expected events arrived: how long to watch for a stray or duplicate one, to
 * check "exactly once" (a wait for what must not come, never for what must).
 */
const QUIET = 300;
const ADMIN = "admin-" + crypto.randomUUID();

/** A node on the shared Redis, under `prefix`. */
function node(env: RedisTestEnv, rt: Runtime, prefix: string) {
  return startServer({
    runtime: rt,
    args: [
      ...env.flags,
      "--redis-prefix",
      prefix,
      "--grace-ms",
      String(GRACE),
      "--admin-token",
      ADMIN,
    ],
  });
}

/**
 * The next `n` events of `type` at `c`; then, after the quiet period, nothing more of
 * that type (checked for every client in `quiet`, so one wait covers them all).
 */
async function exactly(
  expected: [TestClient, number][],
  type: string,
  quiet: TestClient[] = [],
): Promise<Map<TestClient, Msg[]>> {
  const got = new Map<TestClient, Msg[]>();
  for (const [c, n] of expected) got.set(c, await c.events(type, n, { timeout: 5000 }));
  await delay(QUIET);
  for (const c of [...expected.map(([c]) => c), ...quiet]) await c.noEvent(type, 0);
  return got;
}

/** The suite on `env`, named with `where` (one Redis, or a Redis Cluster). */
function suite(env: RedisTestEnv, where: string): void {
  redisTest(
    env,
    `two nodes on ${where}: privmsg, pubmsg and broadcast cross nodes exactly once`,
    async (rt, prefix) => {
      await using a = await node(env, rt, prefix);
      await using b = await node(env, rt, prefix);
      await using a1 = await peer(a.url, { name: "a1" });
      await using a2 = await peer(a.url, { name: "a2" });
      await using b1 = await peer(b.url, { name: "b1" });
      await using b2 = await peer(b.url, { name: "b2" });
      await using adm = await peer(b.url, { name: "adm", admin: ADMIN });
      await using bare = await connect(a.url, "undescribed");

      // privmsg A → B and B → A.
      for (const [from, to] of [[a1, b1], [b1, a1]]) {
        const r = await from.ok(`/privmsg ${to.id} offer from ${from.name}`);
        const e = await to.event("privmsg");
        assert.deepEqual(
          { id: e.id, ts: e.ts, from: e.from, to: e.to, text: e.text },
          { id: r.id, ts: r.ts, from: from.id, to: to.id, text: `offer from ${from.name}` },
        );
        assert.equal("away" in r, false);
      }

      // One channel with members on both nodes.
      const ch = newChannel();
      const j = await a1.ok(`/join ${ch}`);
      assert.equal(j.created, true);
      for (const c of [a2, b1, b2]) await c.ok(`/join ${ch}`);
      const joins = await exactly([[a1, 3], [a2, 2], [b1, 1]], "join", [b2]);
      assert.deepEqual(
        joins.get(a1)!.map((e) => e.peer.id),
        [a2.id, b1.id, b2.id],
        "a1 sees every join",
      );

      // pubmsg: each member gets every other member's message exactly once, none of its own.
      const members = [a1, a2, b1, b2];
      const sent = new Map<string, string>();
      for (const c of members) {
        const r = await c.ok(`/pubmsg ${ch} hello from ${c.name}`);
        sent.set(r.id, c.id);
      }
      const pubs = await exactly(members.map((c) => [c, 3]), "pubmsg", [adm, bare]);
      for (const c of members) {
        const got = pubs.get(c)!;
        const expected = members.filter((m) => m !== c).map((m) => `hello from ${m.name}`);
        assert.deepEqual(
          got.map((e) => e.text).sort(),
          expected.sort(),
          `${c.name}: each other member's pubmsg exactly once, none of its own`,
        );
        for (const e of got) {
          assert.equal(e.channel, ch);
          assert.equal(sent.get(e.id), e.from, `${c.name}: event id matches the sender's reply`);
        }
      }

      // broadcast by an admin on B reaches every described peer on both nodes once.
      await a1.fail("/broadcast not an admin", 481);
      const described = [a1, a2, b1, b2];
      const br = await adm.ok("/broadcast maintenance at noon");
      assert.equal(
        br.recipients,
        described.length,
        "described peers on all nodes, sender excluded",
      );
      const broadcasts = await exactly(described.map((c) => [c, 1]), "broadcast", [adm, bare]);
      for (const c of described) {
        const got = broadcasts.get(c)!;
        assert.equal(got.length, 1, `${c.name}: exactly one broadcast, got ${JSON.stringify(got)}`);
        assert.deepEqual(
          { id: got[0].id, from: got[0].from, text: got[0].text },
          { id: br.id, from: adm.id, text: "maintenance at noon" },
        );
      }
      // (The quiet check covered the sender and the undescribed socket: neither got one.)
    },
  );

  redisTest(
    env,
    `two nodes on ${where}: one view of members, ids taken cluster-wide, kick across nodes`,
    async (rt, prefix) => {
      await using a = await node(env, rt, prefix);
      await using b = await node(env, rt, prefix);
      await using a1 = await peer(a.url, { name: "a1" });
      await using a2 = await peer(a.url, { name: "a2" });
      await using b1 = await peer(b.url, { name: "b1" });
      await using b2 = await peer(b.url, { name: "b2" });
      const ch = newChannel();
      await a1.ok(`/join ${ch}`);
      for (const c of [b1, a2, b2]) await c.ok(`/join ${ch}`);
      await a1.ok(`/away lunch`);

      // /peers and /whois agree on either node.
      const order = [a1.id, b1.id, a2.id, b2.id];
      const pa = await a2.ok(`/peers ${ch}`);
      const pb = await b1.ok(`/peers ${ch}`);
      assert.deepEqual(pa, pb, "/peers is the same from A and B");
      assert.equal(pa.total, 4);
      assert.deepEqual(
        pa.peers.map((e: Msg) => [e.id, e.op, e.away, e.online]),
        [[a1.id, true, true, true], [b1.id, false, false, true], [a2.id, false, false, true], [
          b2.id,
          false,
          false,
          true,
        ]],
      );
      assert.equal(pa.peers[0].message, "lunch");
      const wa = await a2.ok(`/whois ${ch}`);
      const wb = await b2.ok(`/whois ${ch}`);
      assert.deepEqual(wa, wb, "/whois #channel is the same from A and B");
      assert.deepEqual(wa.operators, [a1.id]);
      assert.deepEqual(wa.members.map((e: Msg) => e.id), order);
      assert.equal(wa.keyed, false);
      const wpa = await b1.ok(`/whois ${a1.id}`);
      const wpb = await a2.ok(`/whois ${a1.id}`);
      assert.deepEqual(wpa, wpb);
      assert.deepEqual(
        {
          id: wpa.id,
          name: wpa.name,
          online: wpa.online,
          away: wpa.away,
          message: wpa.message,
          channels: wpa.channels,
        },
        { id: a1.id, name: "a1", online: true, away: true, message: "lunch", channels: [ch] },
      );
      const wb1 = await a1.ok(`/whois ${b1.id}`);
      assert.equal(wb1.online, true);
      assert.deepEqual(wb1.channels, [ch]);

      // An id held on one node is taken on the other: 433 without (or with a wrong) token.
      {
        await using thief = await connect(a.url, "thief");
        await thief.fail(`/descp ${JSON.stringify({ id: b1.id, name: "x" })}`, 433);
        await thief.fail(
          `/descp ${JSON.stringify({ id: b1.id, name: "x", resume: a1.resume })}`,
          433,
        );
        await using thief2 = await connect(b.url, "thief2");
        await thief2.fail(`/descp ${JSON.stringify({ id: a1.id, name: "x" })}`, 433);
      }
      // Nobody was disturbed by the attempts.
      assert.equal(b1.ws.readyState, WebSocket.OPEN);
      assert.equal(a1.ws.readyState, WebSocket.OPEN);

      // Kick across nodes: the operator on A kicks a member on B.
      for (const c of [a1, a2, b1, b2]) c.clearEvents();
      const k = await a1.ok(`/kick ${b2.id} ${ch} bye`);
      assert.deepEqual(k, { channel: ch, peer: b2.id });
      const kicks = await exactly([a1, a2, b1, b2].map((c) => [c, 1]), "kick");
      for (const c of [a1, a2, b1, b2]) {
        const got = kicks.get(c)!;
        assert.equal(got.length, 1, `${c.name}: exactly one kick, got ${JSON.stringify(got)}`);
        assert.deepEqual(
          { channel: got[0].channel, peer: got[0].peer, by: got[0].by, text: got[0].text },
          { channel: ch, peer: b2.id, by: a1.id, text: "bye" },
        );
        assert.deepEqual(c.pending("quit"), [], `${c.name}: no quit for a kicked peer`);
      }
      // Then nothing more for the kicked peer; its co-member on B still gets messages.
      await a1.ok(`/pubmsg ${ch} after the kick`);
      assert.equal((await b1.event("pubmsg")).text, "after the kick");
      assert.equal((await a2.event("pubmsg")).text, "after the kick");
      await b2.noEvent("pubmsg", QUIET);
      await b2.fail(`/pubmsg ${ch} let me in`, 404);
      assert.deepEqual((await b2.ok(`/whois ${b2.id}`)).channels, []);
      await b1.noEvent("pubmsg", 0);
      const after = await b1.ok(`/peers ${ch}`);
      assert.deepEqual(after.peers.map((e: Msg) => e.id), [a1.id, b1.id, a2.id]);
      // A kick from B of a member on A works the same way (a2 made no operator: 482).
      await b1.fail(`/kick ${a2.id} ${ch}`, 482);
    },
  );

  redisTest(
    env,
    `two nodes on ${where}: away reaches co-members on the other node`,
    async (rt, prefix) => {
      await using a = await node(env, rt, prefix);
      await using b = await node(env, rt, prefix);
      await using a1 = await peer(a.url, { name: "a1" });
      await using a2 = await peer(a.url, { name: "a2" });
      await using b1 = await peer(b.url, { name: "b1" });
      await using b2 = await peer(b.url, { name: "b2" }); // shares no channel with a1
      const ch = newChannel();
      for (const c of [a1, a2, b1]) await c.ok(`/join ${ch}`);
      await exactly([[a1, 2], [a2, 1]], "join", [b1]);

      assert.deepEqual(await a1.ok("/away in a meeting"), { away: true, message: "in a meeting" });
      const aways = await exactly([[a2, 1], [b1, 1]], "away", [a1, b2]);
      for (const c of [a2, b1]) {
        const got = aways.get(c)!;
        assert.deepEqual(
          got.map((e) => ({ peer: e.peer, away: e.away, message: e.message })),
          [{ peer: a1.id, away: true, message: "in a meeting" }],
          `${c.name} (on node ${c === a2 ? "A" : "B"}): exactly one away event`,
        );
      }
      const r = await b1.ok(`/privmsg ${a1.id} are you there?`);
      assert.equal(r.away, "in a meeting", "the sender on B sees the away message of a peer on A");
    },
  );

  redisTest(
    env,
    `${where}: a node killed with SIGKILL: its peers resume on another node; the rest are quit once`,
    async (rt, prefix) => {
      // Three nodes, so "once for the whole cluster" is seen by two surviving sweepers.
      await using a = await node(env, rt, prefix);
      await using b = await node(env, rt, prefix);
      await using c = await node(env, rt, prefix);
      await using a1 = await peer(a.url, { name: "a1" });
      await using a2 = await peer(a.url, { name: "a2" });
      await using b1 = await peer(b.url, { name: "b1" });
      await using c1 = await peer(c.url, { name: "c1" });
      const ch = newChannel();
      await a1.ok(`/join ${ch} key`);
      for (const x of [a2, b1, c1]) await x.ok(`/join ${ch} key`);
      await exactly([[a1, 3], [a2, 2], [b1, 1]], "join", [c1]);

      const tKill = Date.now();
      await a.kill();
      await within(a1.closed, 5000, "a1's socket to end");
      await within(a2.closed, 5000, "a2's socket to end");

      // a2 resumes on B: channels kept, no events for anyone.
      await using a2b = await connect(b.url, "a2b");
      const d = await describe(a2b, { id: a2.id, name: "a2", resume: a2.resume });
      assert.deepEqual(d.channels, [ch]);
      assert.equal(d.resume, a2.resume);
      await b1.ok(`/pubmsg ${ch} hi a2`);
      assert.equal((await a2b.event("pubmsg")).text, "hi a2");
      assert.equal((await c1.event("pubmsg")).text, "hi a2");
      await a2b.ok(`/pubmsg ${ch} I moved`);
      for (const x of [b1, c1]) {
        const e = await x.event("pubmsg");
        assert.deepEqual([e.from, e.text], [a2.id, "I moved"]);
      }
      const resumedId = a2.id;

      // a1 never resumes: after the grace (from detection) each remaining member gets
      // exactly one quit, although two nodes sweep.
      const deadline = tKill + DEAD_MAX + GRACE + SLACK - Date.now();
      const first = await b1.event("quit", { timeout: Math.max(deadline, 1000) });
      const tQuit = Date.now();
      assert.ok(
        tQuit - tKill >= GRACE,
        `quit ${tQuit - tKill} ms after the kill: the peer did not get its full grace`,
      );
      const rest = await exactly([[c1, 1], [a2b, 1]], "quit", [b1]);
      // A duplicate from the other sweeper would come at its next sweep: watch a while longer.
      await delay(2 * Math.min(1000, GRACE / 4));
      for (const c of [b1, c1, a2b]) await c.noEvent("quit", 0);
      const quits = new Map<string, Msg[]>([
        ["b1", [first]],
        ["c1", rest.get(c1)!],
        ["a2b", rest.get(a2b)!],
      ]);
      for (const [name, got] of quits) {
        assert.deepEqual(
          got.map((q) => ({ channel: q.channel, peer: q.peer, reason: q.reason })),
          [{ channel: ch, peer: a1.id, reason: "disconnect" }],
          `${name}: exactly one quit, for the peer that did not resume`,
        );
        assert.equal(got.some((q) => q.peer === resumedId), false);
      }
      await b1.fail(`/whois ${a1.id}`, 401);
      const p = await c1.ok(`/peers ${ch}`);
      assert.deepEqual(
        p.peers.map((e: Msg) => [e.id, e.online]),
        [[a2.id, true], [b1.id, true], [c1.id, true]],
      );
      const pb = await b1.ok(`/peers ${ch}`);
      assert.deepEqual(pb, p);
      // The resumed peer is reachable by privmsg from the third node.
      await c1.ok(`/privmsg ${a2.id} still there?`);
      assert.equal((await a2b.event("privmsg")).from, c1.id);
    },
  );
}

suite(await redisTests(), "one Redis");
suite(await redisClusterTests(), "a Redis Cluster");
