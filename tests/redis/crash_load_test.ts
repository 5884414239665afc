/**
 * A node killed with SIGKILL in the middle of a burst loses nothing that was
 * acknowledged: every join, quit, kick, ban, invite and away change whose ok
 * reply reached its client is in the state afterwards, as a client on the
 * surviving node sees it; the killed node's peers that do not resume are quit
 * exactly once per channel, and none stays behind as a ghost member.
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
import { redisTest, redisTests } from "../support/redis.ts";
import { type Runtime, startServer } from "../support/server.ts";
import { delay, until } from "../support/wait.ts";

const GRACE = 4_000;
/** Sweep period plus scheduling slack on a loaded machine. */
const SLACK = 5_000;
/** Join/quit/away steps per mover. */
const STEPS = 40;
/** Acknowledged steps, all movers together, before the kill: the burst is well under way. */
const KILL_AFTER = 150;
const KEY = "k3y";

const env = await redisTests();

/** What a mover's acknowledged commands left, and what is unknown (a reply that never came). */
interface Ledger {
  /** channel → member after the last acknowledged join or quit. */
  member: Map<string, boolean>;
  /** Channels whose last command got no reply: either state is right. */
  unsure: Set<string>;
  /** The last acknowledged away message, and one sent without a reply since. */
  away?: string;
  awayPending?: string;
}

function node(rt: Runtime, prefix: string, nodeId: string) {
  return startServer({
    runtime: rt,
    args: [
      ...["--redis", env.url, "--redis-prefix", prefix, "--grace-ms", String(GRACE)],
      ...["--node-id", nodeId, "--rate", "0"],
    ],
  });
}

/** Sends a command; its reply, or null when the socket closed before it came. */
async function attempt(c: TestClient, frame: string): Promise<Msg | null> {
  try {
    return await c.cmd(frame);
  } catch {
    return null;
  }
}

redisTest(
  env,
  "kill -9 under load: every acknowledged change survives, reaped peers are quit once",
  async (rt, prefix) => {
    const run = crypto.randomUUID().slice(0, 8);
    await using a = await node(rt, prefix, `survivor-${run}`);
    let k = await node(rt, prefix, `killed-${run}`);
    const chans = [newChannel(), newChannel()];
    const keyed = newChannel();
    const all = [...chans, keyed];
    const clients: TestClient[] = [];
    const join = async (url: string, name: string) => {
      const c = await peer(url, { name });
      clients.push(c);
      return c;
    };
    try {
      const op = await join(a.url, "op");
      const obs = await join(a.url, "obs");
      await op.ok(`/join ${chans[0]}`);
      await op.ok(`/join ${chans[1]}`);
      await op.ok(`/join ${keyed} ${KEY}`);
      for (const c of all) await obs.ok(`/join ${c} ${KEY}`);

      // 20 movers (half on each node), 6 victims (kicked or banned), 4 invitees.
      const movers: { c: TestClient; onKilled: boolean; l: Ledger }[] = [];
      for (let i = 0; i < 20; i++) {
        const onKilled = i % 2 === 1;
        const c = await join(onKilled ? k.url : a.url, `mover${i}`);
        movers.push({ c, onKilled, l: { member: new Map(), unsure: new Set() } });
      }
      const victims: { c: TestClient; onKilled: boolean; ch: string; ban: boolean }[] = [];
      for (let i = 0; i < 6; i++) {
        const onKilled = i < 4;
        const c = await join(onKilled ? k.url : a.url, `victim${i}`);
        const ch = chans[i % 2];
        await c.ok(`/join ${ch}`);
        victims.push({ c, onKilled, ch, ban: i % 3 !== 0 });
      }
      const invitees: TestClient[] = [];
      for (let i = 0; i < 4; i++) invitees.push(await join(a.url, `invitee${i}`));

      // ---- the burst; the killed node dies once KILL_AFTER steps were acknowledged.
      let acked = 0;
      let ackedOnKilled = 0;
      let killed!: () => void;
      const killNow = new Promise<void>((resolve) => killed = resolve);
      const moverLoop = async (m: (typeof movers)[number], seed: number) => {
        for (let i = 0; i < STEPS; i++) {
          const ch = chans[(seed + i) % 2];
          let frame: string;
          let away: string | undefined;
          if (i % 4 === 3) {
            away = `m${seed}-${i}`;
            frame = `/away ${away}`;
          } else {
            frame = m.l.member.get(ch) ? `/quit ${ch}` : `/join ${ch}`;
          }
          if (away !== undefined) m.l.awayPending = away;
          else m.l.unsure.add(ch);
          const r = await attempt(m.c, frame);
          if (r === null) return; // the node died under it: this step is unknown
          assert.equal(r.type, "ok", `${frame}: ${JSON.stringify(r)}`);
          if (away !== undefined) {
            m.l.away = away;
            m.l.awayPending = undefined;
          } else {
            m.l.member.set(ch, frame.startsWith("/join"));
            m.l.unsure.delete(ch);
          }
          if (m.onKilled) ackedOnKilled++;
          if (++acked === KILL_AFTER) killed();
        }
      };
      const opLoop = async () => {
        for (const [i, v] of victims.entries()) {
          await op.ok(`/${v.ban ? "ban" : "kick"} ${v.c.id} ${v.ch}`);
          await op.ok(`/invite ${invitees[i % invitees.length].id} ${keyed}`);
          await delay(20); // spread over the burst, on both sides of the kill
        }
      };
      const burst = Promise.all([...movers.map((m, i) => moverLoop(m, i)), opLoop()]);
      // A failing step ends the burst early: then it fails the test rather than wait forever.
      await Promise.race([killNow, burst]);
      await k.kill();

      // ---- restart the killed node (same id: its peers' grace starts now); half resume,
      // while the survivor's movers go on.
      k = await node(rt, prefix, `killed-${run}`);
      const resumed = new Set<TestClient>();
      const returning = movers.filter((m) => m.onKilled).filter((_, i) => i % 2 === 0);
      await Promise.all(returning.map(async (m, i) => {
        const back = await connect(i % 2 === 0 ? a.url : k.url, "resumed " + m.c.name);
        clients.push(back);
        const d = await describe(back, { id: m.c.id, name: m.c.name, resume: m.c.resume });
        assert.equal(d.resume, m.c.resume, `${m.c.name} resumed within its grace`);
        for (const ch of chans) {
          if (m.l.unsure.has(ch)) continue;
          assert.equal(d.channels.includes(ch), m.l.member.get(ch) ?? false, `${m.c.name} ${ch}`);
        }
        resumed.add(m.c);
      }));
      await burst;
      const onKilled = movers.filter((m) => m.onKilled).length;
      assert.ok(ackedOnKilled < onKilled * STEPS, "the node was killed in the middle of the burst");
      const reaped = [
        ...movers.filter((m) => m.onKilled && !resumed.has(m.c)).map((m) => m.c.id),
        ...victims.filter((v) => v.onKilled).map((v) => v.c.id),
      ];

      // No ghosts: every reaped peer leaves every channel, and is forgotten, once its grace
      // ends.
      const members = async (ch: string) =>
        ((await obs.ok(`/peers ${ch}`)).peers as { id: string }[]).map((e) => e.id);
      await until(
        async () => {
          for (const ch of all) {
            const ids = await members(ch);
            if (reaped.some((id) => ids.includes(id))) return false;
          }
          // A reaped peer in no channel is in none already: it must be forgotten too.
          for (const id of reaped) if ((await obs.cmd(`/whois ${id}`)).type === "ok") return false;
          return true;
        },
        GRACE + SLACK,
        "every reaped peer gone, from every channel",
      );
      for (const id of reaped) await obs.fail(`/whois ${id}`, 401);
      await delay(500); // a duplicate quit would come within a sweep or two

      // Exactly one disconnect quit per channel a reaped peer was surely in; never two.
      const quits = obs.pending("quit").filter((q) => q.reason === "disconnect");
      const count = (id: string, ch: string) =>
        quits.filter((q) => q.peer === id && q.channel === ch).length;
      for (const m of movers.filter((m) => m.onKilled && !resumed.has(m.c))) {
        for (const ch of chans) {
          const n = count(m.c.id, ch);
          if (m.l.unsure.has(ch)) assert.ok(n <= 1, `${m.c.name}: ${n} quits in ${ch}`);
          else assert.equal(n, m.l.member.get(ch) ? 1 : 0, `${m.c.name}: quits in ${ch}`);
        }
      }
      for (const q of quits) assert.ok(reaped.includes(q.peer), `a quit for ${q.peer}`);

      // Every acknowledged change is in the state.
      const now = new Map(
        await Promise.all(all.map(async (ch) => [ch, await members(ch)] as const)),
      );
      for (const m of movers.filter((m) => !m.onKilled || resumed.has(m.c))) {
        for (const ch of chans) {
          if (m.l.unsure.has(ch)) continue;
          assert.equal(now.get(ch)!.includes(m.c.id), m.l.member.get(ch) ?? false, m.c.name);
        }
        const w = await obs.ok(`/whois ${m.c.id}`);
        if (m.l.away === undefined && m.l.awayPending === undefined) continue;
        const expected = [m.l.away, m.l.awayPending].filter((x) => x !== undefined);
        assert.ok(expected.includes(w.message), `${m.c.name}: away ${w.message} ∉ ${expected}`);
      }
      for (const v of victims) {
        assert.ok(!now.get(v.ch)!.includes(v.c.id), `victim ${v.c.name} still in ${v.ch}`);
        if (v.ban && !v.onKilled) await v.c.fail(`/join ${v.ch}`, 474);
      }
      for (const inv of invitees) {
        assert.equal((await inv.ok(`/join ${keyed}`)).created, false, "the invite survived");
      }
      // Nobody unknown in any channel.
      const known = new Set([op.id, obs.id, ...clients.map((c) => c.id)]);
      for (const [ch, ids] of now) for (const id of ids) assert.ok(known.has(id), `${id} in ${ch}`);
    } finally {
      await Promise.all(clients.map((c) => c.close().catch(() => {})));
      await k[Symbol.asyncDispose]();
    }
  },
);
