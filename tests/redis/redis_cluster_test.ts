/**
 * Signaller on a Redis Cluster (README, "Redis Cluster"): three nodes on a
 * three-master cluster keep each channel's and each peer's keys in one slot,
 * no script crosses slots, and a master killed under traffic costs a few
 * seconds of 503 on its slots, after which every node serves again by itself,
 * sharded subscriptions included.
 *
 * Needs the local cluster of `tests/support/redis_cluster.sh` (REDIS_CLUSTER_NODES).
 */
import assert from "node:assert/strict";
import { expectError, expectOk, newChannel, peer } from "../support/client.ts";
import {
  closeCluster,
  keysUnder,
  openCluster,
  redisClusterTests,
  redisTest,
  type RedisTestEnv,
} from "../support/redis.ts";
import { ROOT, type Runtime, startServer } from "../support/server.ts";
import { until } from "../support/wait.ts";

const env = await redisClusterTests();

/** A node on the cluster, under `prefix`. */
function node(env: RedisTestEnv, rt: Runtime, prefix: string, more: string[] = []) {
  return startServer({
    runtime: rt,
    args: [
      ...env.flags,
      "--redis-prefix",
      prefix,
      "--history",
      "20",
      "--rate",
      "0",
      "--max-channels",
      "10000",
      "--max-creates",
      "10000",
      ...more,
    ],
  });
}

/** The server log lines that report a script or command crossing slots. */
function crossSlot(logs: string[]): string[] {
  return logs.filter((l) => /CROSSSLOT|non local key|different slots/i.test(l));
}

redisTest(
  env,
  "Redis Cluster: a channel's keys and a peer's keys each land in one slot; no CROSSSLOT",
  async (rt, prefix) => {
    await using n1 = await node(env, rt, prefix);
    await using n2 = await node(env, rt, prefix);
    await using n3 = await node(env, rt, prefix);
    await using a = await peer(n1.url, { name: "a" });
    await using b = await peer(n2.url, { name: "b" });
    await using c = await peer(n3.url, { name: "c" });
    const ch = newChannel();
    await a.ok(`/join ${ch} k3y`);
    await b.ok(`/join ${ch} k3y`);
    await a.ok(`/ban ${c.id} ${ch}`);
    await a.ok(`/unban ${c.id} ${ch}`);
    await a.ok(`/invite ${c.id} ${ch}`);
    await c.ok(`/join ${ch}`);
    await a.ok(`/kick ${c.id} ${ch}`);
    await b.ok(`/pubmsg ${ch} hello`);
    await b.ok(`/privmsg ${a.id} hi`);
    await a.ok("/away lunch");
    expectOk(await c.cmd(`/whois ${a.id}`), "whois");
    expectOk(await b.cmd(`/whois ${ch}`), "whois");

    const keys = await keysUnder(env.target, prefix);
    const cluster = await openCluster((env.target as { cluster: string[] }).cluster);
    try {
      const slotsOf = async (tag: string) => {
        const mine = keys.filter((k) => k.startsWith(prefix + tag));
        const slots = new Set<number>();
        for (const k of mine) slots.add(Number(await cluster.call("CLUSTER", "KEYSLOT", k)));
        return { keys: mine, slots };
      };
      const channel = await slotsOf(`{c:${ch}}`);
      assert.ok(channel.keys.length >= 4, `the channel's keys: ${channel.keys}`);
      assert.equal(channel.slots.size, 1, `one slot for ${channel.keys}`);
      for (const id of [a.id, b.id]) {
        const p = await slotsOf(`{p:${id}}`);
        assert.ok(p.keys.length >= 2, `the peer's keys: ${p.keys}`);
        assert.equal(p.slots.size, 1, `one slot for ${p.keys}`);
      }
      const nodes = await slotsOf("{nodes}");
      assert.ok(nodes.keys.length >= 2, `the liveness keys: ${nodes.keys}`);
      assert.equal(nodes.slots.size, 1, `one slot for ${nodes.keys}`);
      // Every key is under one of the three tags.
      const untagged = keys.filter((k) => !/^[^{]*\{(c:|p:|nodes\})/.test(k));
      assert.deepEqual(untagged, [], "keys without a channel, peer or {nodes} tag");
    } finally {
      await closeCluster(cluster);
    }
    for (const n of [n1, n2, n3]) assert.deepEqual(crossSlot(n.logs()), []);
  },
);

/** Runs `redis-cli` with `args`; its output. */
async function redisCli(...args: string[]): Promise<string> {
  const out = await new Deno.Command("redis-cli", { args, stdout: "piped", stderr: "null" })
    .output();
  return new TextDecoder().decode(out.stdout);
}

/** The master (`host:port`) serving `slot`, as the node at `seed` sees the cluster. */
async function masterOf(seed: string, slot: number): Promise<string | undefined> {
  const [host, port] = seed.split(":");
  for (const line of (await redisCli("-h", host, "-p", port, "cluster", "nodes")).split("\n")) {
    const f = line.split(" ");
    if (f.length < 9 || !f[2].includes("master") || f[2].includes("fail")) continue;
    for (const range of f.slice(8)) {
      const [lo, hi] = range.split("-").map(Number);
      if (slot >= lo && slot <= (hi ?? lo)) return f[1].split("@")[0];
    }
  }
  return undefined;
}

/**
 * kill -9 of the master of the channel's slot, or of the liveness slot `{nodes}`, under
 * traffic: see the test names below.
 */
async function failover(rt: Runtime, prefix: string, which: "channel" | "nodes"): Promise<void> {
  const seeds = (env.target as { cluster: string[] }).cluster;
  await using n1 = await node(env, rt, prefix);
  await using n2 = await node(env, rt, prefix);
  await using n3 = await node(env, rt, prefix);
  await using a = await peer(n1.url, { name: "a" });
  await using b = await peer(n2.url, { name: "b" });
  await using c = await peer(n3.url, { name: "c" });
  const ch = newChannel();
  for (const x of [a, b, c]) await x.ok(`/join ${ch}`);

  // The master of the channel's slot, and its process.
  const slot = Number(
    (await redisCli(
      "-h",
      "127.0.0.1",
      "-p",
      seeds[0].split(":")[1],
      "cluster",
      "keyslot",
      which === "channel" ? `${prefix}{c:${ch}}` : `${prefix}{nodes}`,
    )).trim(),
  );
  const master = await masterOf(seeds[0], slot);
  assert.ok(master, `a master for slot ${slot}`);
  const [mhost, mport] = master.split(":");
  const pid = Number(
    /process_id:(\d+)/.exec(await redisCli("-h", mhost, "-p", mport, "info", "server"))?.[1],
  );
  assert.ok(pid > 0, "the master's pid");
  const survivor = seeds.find((s) => s !== master) ?? seeds[0];

  const acked: string[] = [];
  const joined: { channel: string; at: number }[] = [];
  let refused = 0;
  let killedAt = 0;
  let firstRefusal = 0;
  let lastRefusal = 0;
  let killed = false;
  /** The longest a pubmsg waited for its reply, ms: a command may wait out the failover. */
  let slowest = 0;
  try {
    // Traffic: a pubmsg to the channel and a join of a new channel, one after the other.
    let i = 0;
    let okAfter = 0;
    const deadline = Date.now() + 60_000;
    while (okAfter < 20) {
      assert.ok(
        Date.now() < deadline,
        `the cluster did not serve again within 60 s; node logs:\n${
          [n1, n2].map((n) => n.logs().slice(-15).join("\n")).join("\n--\n")
        }`,
      );
      if (i === 20) {
        killedAt = Date.now();
        Deno.kill(pid, "SIGKILL");
        killed = true;
      }
      const text = `m${i++}`;
      const sent = Date.now();
      const r = await a.cmd(`/pubmsg ${ch} ${text}`, 10_000);
      slowest = Math.max(slowest, Date.now() - sent);
      if (r.type === "ok") {
        acked.push(text);
        if (killed && lastRefusal > 0) okAfter++;
      } else {
        expectError(r, 503, "pubmsg", `/pubmsg ${text}`);
        refused++;
        firstRefusal ||= Date.now();
        lastRefusal = Date.now();
      }
      const other = newChannel();
      const j = await b.cmd(`/join ${other}`, 10_000);
      if (j.type === "ok") joined.push({ channel: other, at: Date.now() });
      else expectError(j, 503, "join", `/join ${other}`);
      // Once the cluster has noticed, the loop goes on until it serves again.
      if (killed && lastRefusal === 0 && Date.now() - killedAt > 15_000) break;
    }
    console.log(
      `failover (${which}): ` +
        (refused === 0
          ? `no pubmsg refused, the slowest reply took ${slowest} ms`
          : `first 503 ${firstRefusal - killedAt} ms after the kill, ${refused} pubmsgs ` +
            `refused, the last ${
              lastRefusal - killedAt
            } ms after the kill; the slowest reply took ` +
            `${slowest} ms`),
    );
    // Claims and releases need the {nodes} slot: a new peer comes in after the failover, and
    // nobody was declared dead for the beats the failover held up.
    await using d = await peer(n3.url, { name: "d" });
    await d.ok(`/join ${ch}`);
    for (const x of [a, b, c]) await x.event("join", { where: (e) => e.peer.id === d.id });
    for (const x of [a, b, c]) await x.noEvent("quit", 0);

    // Every pubmsg acknowledged before the kill reached the members on the other nodes; what
    // was published while a node's sharded subscription moved to the new master (its slot map
    // refreshes every 500 ms) may be missing live, and is in the stream's history. Nothing is
    // duplicated or out of order.
    const before = acked.slice(0, 20);
    for (const x of [b, c]) {
      await until(
        () =>
          Promise.resolve(
            before.every((t) => x.log.some((m) => m.type === "pubmsg" && m.text === t)),
          ),
        5_000,
        "every pubmsg acknowledged before the kill delivered",
      );
      const got = x.log.filter((m) => m.type === "pubmsg").map((m) => m.text as string);
      let k = 0;
      for (const t of got) {
        while (k < acked.length && acked[k] !== t) k++;
        assert.ok(k < acked.length, `pubmsg ${t}: not acknowledged, duplicated or out of order`);
        k++;
      }
      console.log(
        `failover (${which}): ${acked.length - got.length} acknowledged pubmsgs missed live`,
      );
    }
    // The sharded subscriptions followed the slot to its new master: traffic both ways.
    await b.ok(`/pubmsg ${ch} after the failover`);
    for (const x of [a, c]) {
      assert.equal(
        (await x.event("pubmsg", { where: (m) => m.text === "after the failover" })).text,
        "after the failover",
      );
    }
    await c.ok(`/privmsg ${a.id} still here`);
    assert.equal((await a.event("privmsg")).text, "still here");

    // Acknowledged joins: lost only by what the replica had not received (asynchronous
    // replication); none acknowledged a second before the kill may be missing.
    let lost = 0;
    for (const j of joined) {
      const w = await c.cmd(`/whois ${j.channel}`, 10_000);
      const ok = w.type === "ok" && w.data.members.some((m: { id: string }) => m.id === b.id);
      if (!ok) {
        lost++;
        assert.ok(
          j.at > killedAt - 1000,
          `join of ${j.channel} acknowledged well before the kill was lost`,
        );
      }
    }
    console.log(`failover (${which}): ${joined.length} joins acknowledged, ${lost} lost`);
  } finally {
    if (killed) {
      // The killed master comes back as a replica of the one that took over.
      await new Deno.Command(`${ROOT}tests/support/redis_cluster.sh`, {
        args: ["node", mport],
        env: { REDIS_CLUSTER_BASE: String(Number(seeds[0].split(":")[1])) },
      }).output();
      const [shost, sport] = survivor.split(":");
      await until(
        async () =>
          (await redisCli("-h", shost, "-p", sport, "cluster", "info")).includes(
            "cluster_state:ok",
          ) &&
          !(await redisCli("-h", shost, "-p", sport, "cluster", "nodes")).includes("fail") &&
          // A replica takes over only once it has synced: the next failover needs it.
          (await redisCli("-h", mhost, "-p", mport, "info", "replication")).includes(
            "master_link_status:up",
          ),
        30_000,
        "the cluster whole again, the restarted node a synced replica",
      );
    }
  }
}

for (const which of ["channel", "nodes"] as const) {
  redisTest(
    env,
    `Redis Cluster: kill -9 of the master of the ${
      which === "channel" ? "channel's" : "{nodes}"
    } ` +
      "slot under traffic: 503 for a few seconds, then every node serves again by itself; " +
      "acknowledged joins survive; pubmsgs cross nodes again",
    (rt, prefix) => failover(rt, prefix, which),
  );
}

redisTest(
  env,
  "Redis Cluster: ban and kick across three nodes: each member sees it once; the ban holds " +
    "on every node; the peer's channels follow",
  async (rt, prefix) => {
    await using n1 = await node(env, rt, prefix);
    await using n2 = await node(env, rt, prefix);
    await using n3 = await node(env, rt, prefix);
    await using op = await peer(n1.url, { name: "op" });
    await using b = await peer(n2.url, { name: "b" });
    await using c = await peer(n3.url, { name: "c" });
    const ch = newChannel();
    for (const x of [op, b, c]) await x.ok(`/join ${ch}`);

    await op.ok(`/ban ${b.id} ${ch}`);
    for (const x of [op, b, c]) {
      const e = await x.event("ban");
      assert.deepEqual({ channel: e.channel, peer: e.peer }, { channel: ch, peer: b.id });
    }
    await b.fail(`/join ${ch}`, 474);
    // The ban is the channel's, wherever the banned peer connects.
    await using b3 = await peer(n3.url, { name: "b3" });
    await op.ok(`/ban ${b3.id} ${ch}`);
    await b3.fail(`/join ${ch}`, 474);
    assert.deepEqual(expectOk(await c.cmd(`/whois ${b.id}`), "whois").channels, []);

    await op.ok(`/kick ${c.id} ${ch}`);
    for (const x of [op, c]) {
      const e = await x.event("kick");
      assert.deepEqual({ channel: e.channel, peer: e.peer }, { channel: ch, peer: c.id });
    }
    assert.deepEqual(expectOk(await op.cmd(`/whois ${c.id}`), "whois").channels, []);
    // A kicked peer may come back (no ban), and is a member again on every node's view.
    await c.ok(`/join ${ch}`);
    const w = expectOk(await b.cmd(`/whois ${c.id}`), "whois");
    assert.deepEqual(w.channels, [ch]);
    for (const x of [op, b, c]) await x.noEvent("quit", 0);
  },
);
