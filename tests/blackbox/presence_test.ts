/** Big channels (`--presence-limit 2`) and /peers paging (600 members). */
import assert from "node:assert/strict";
import { closeAll, group, newChannel, newId, peer, type TestClient } from "../support/client.ts";
import { bbtest, sharedServer } from "../support/server.ts";

// 600 members from one address: over the default per-address limit of open connections.
const server = await sharedServer({
  args: ["--presence-limit", "2", "--grace-ms", "300", "--max-conns-per-ip", "1000"],
});

/** Waits until every client in `to` got a pubmsg sent now by `from`. */
async function barrier(from: TestClient, ch: string, to: TestClient[]): Promise<void> {
  const text = "barrier " + newId();
  await from.ok(`/pubmsg ${ch} ${text}`);
  for (const t of to) await t.event("pubmsg", { where: (m) => m.text === text });
}

bbtest(
  "above the presence limit: no join, quit or away events; kick and ban still sent",
  async (rt) => {
    const url = server(rt).url;
    await using g = group(
      await peer(url, { name: "a" }),
      await peer(url, { name: "b" }),
      await peer(url, { name: "c" }),
      await peer(url, { name: "d" }),
    );
    const [a, b, c, d] = g;
    const ch = newChannel();
    await a.ok(`/join ${ch}`);
    await b.ok(`/join ${ch}`);
    // 2 members: at the limit, not above it — events as usual.
    assert.equal((await a.event("join")).peer.id, b.id);
    await c.ok(`/join ${ch}`); // 3 members: crossing the limit (either way is fine)
    await barrier(c, ch, [a, b]);
    a.clearEvents();
    b.clearEvents();

    // 3 → 4 members: above the limit before and after.
    const j = await d.ok(`/join ${ch}`);
    assert.equal(j.total, 4);
    await d.ok("/away busy");
    await d.ok("/away");
    await barrier(d, ch, [a, b, c]);
    for (const x of [a, b, c]) {
      await x.noEvent("join", 0);
      await x.noEvent("away", 0);
    }
    // Members read the count from /whois or /peers.
    assert.equal((await a.ok(`/peers ${ch}`)).total, 4);

    // Kick and ban are always sent, to every member and the target.
    await a.ok(`/kick ${d.id} ${ch}`);
    for (const x of [a, b, c, d]) assert.equal((await x.event("kick")).peer, d.id);
    await d.ok(`/join ${ch}`);
    await a.ok(`/ban ${d.id} ${ch}`);
    for (const x of [a, b, c, d]) assert.equal((await x.event("ban")).peer, d.id);
    await d.ok(`/join ${newChannel()}`);

    // 4 members again, then one quits (4 → 3): no quit event.
    await using e = await peer(url, { name: "e" });
    await e.ok(`/join ${ch}`);
    await e.ok(`/quit ${ch}`);
    await barrier(a, ch, [b, c]);
    for (const x of [a, b, c]) {
      await x.noEvent("join", 0);
      await x.noEvent("quit", 0);
    }
  },
);

bbtest("above the presence limit: no quit event when a peer's grace ends", async (rt) => {
  const url = server(rt).url;
  await using g = group(
    await peer(url, { name: "a" }),
    await peer(url, { name: "b" }),
    await peer(url, { name: "c" }),
    await peer(url, { name: "d" }),
  );
  const [a, b, c, d] = g;
  const ch = newChannel();
  for (const x of g) await x.ok(`/join ${ch}`);
  await d.close();
  // Wait for the grace (300 ms) to end: d leaves the channel.
  const t0 = Date.now();
  while ((await a.ok(`/peers ${ch}`)).total !== 3) {
    assert.ok(Date.now() - t0 < 3000, "the peer never left after its grace");
    await new Promise((r) => setTimeout(r, 50));
  }
  await barrier(a, ch, [b, c]);
  for (const x of [a, b, c]) await x.noEvent("quit", 0);
});

bbtest(
  "/peers pages 500 members in join order with next; /whois #channel lists the first 500 and total",
  async (rt) => {
    const url = server(rt).url;
    const N = 600;
    const ch = newChannel();
    const clients: TestClient[] = [];
    try {
      // Connect in parallel batches to keep it fast.
      for (let i = 0; i < N; i += 50) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(50, N - i) }, (_, k) => peer(url, { name: `v${i + k}` })),
        );
        clients.push(...batch);
        // Join sequentially within the batch so the join order is known.
        for (const c of batch) await c.ok(`/join ${ch}`);
      }
      const ids = clients.map((c) => c.id);
      const last = clients[N - 1];
      const p0 = await last.ok(`/peers ${ch}`);
      assert.equal(p0.total, N);
      assert.equal(p0.offset, 0);
      assert.equal(p0.next, 500);
      assert.equal(p0.peers.length, 500);
      assert.deepEqual(p0.peers.map((e: { id: string }) => e.id), ids.slice(0, 500));
      assert.equal(p0.peers[0].op, true);
      const p1 = await last.ok(`/peers ${ch} ${p0.next}`);
      assert.equal(p1.total, N);
      assert.equal(p1.offset, 500);
      assert.equal(p1.next, undefined);
      assert.deepEqual(p1.peers.map((e: { id: string }) => e.id), ids.slice(500));
      const mid = await last.ok(`/peers ${ch} 50`);
      assert.equal(mid.next, 550);
      assert.deepEqual(mid.peers.map((e: { id: string }) => e.id), ids.slice(50, 550));
      const w = await last.ok(`/whois ${ch}`);
      assert.equal(w.members.length, 500);
      assert.equal(w.total, N);
      assert.deepEqual(w.members.map((e: { id: string }) => e.id), ids.slice(0, 500));
      // One more joiner: the first page of /peers in the join reply, and the total.
      await using extra = await peer(url);
      const j = await extra.ok(`/join ${ch}`);
      assert.equal(j.total, N + 1);
      assert.equal(j.members.length, 500);
      assert.deepEqual(j.members.map((e: { id: string }) => e.id), ids.slice(0, 500));
      // Above the limit nobody gets join events (the first joiners saw the first joins).
      for (const c of clients.slice(3, 10)) await c.noEvent("join", 0);
      assert.ok(clients[0].pending("join").length <= 2);
    } finally {
      await closeAll(clients);
    }
  },
);
