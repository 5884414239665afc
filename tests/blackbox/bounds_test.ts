/**
 * Bounds on what a client can make the server keep (PROTOCOL.md, "Limits"):
 * bans and pending invites per channel (478), members per channel (471),
 * channels created per peer per hour (263 with retryAfterMs).
 */
import assert from "node:assert/strict";
import { group, newChannel, newId, peer } from "../support/client.ts";
import { bbtest, sharedServer } from "../support/server.ts";

const server = await sharedServer({
  args: ["--max-bans", "2", "--max-invites", "1", "--max-members", "2", "--max-creates", "3"],
});

bbtest(
  "a channel holds at most --max-bans bans: then 478, and an existing ban may be repeated",
  async (rt) => {
    await using op = await peer(server(rt).url, { name: "op" });
    const ch = newChannel();
    await op.ok(`/join ${ch}`);
    const [x, y, z] = [newId(), newId(), newId()];
    await op.ok(`/ban ${x} ${ch}`);
    await op.ok(`/ban ${y} ${ch}`);
    await op.fail(`/ban ${z} ${ch}`, 478);
    await op.ok(`/ban ${x} ${ch}`);
    await op.ok(`/unban ${x} ${ch}`);
    await op.ok(`/ban ${z} ${ch}`);
  },
);

bbtest("a channel holds at most --max-invites pending invites: then 478", async (rt) => {
  const url = server(rt).url;
  await using g = group(await peer(url), await peer(url), await peer(url));
  const [a, b, c] = g;
  const ch = newChannel();
  await a.ok(`/join ${ch} k3y`);
  await a.ok(`/invite ${b.id} ${ch}`);
  await a.fail(`/invite ${c.id} ${ch}`, 478);
  // Used up by a join, the invite frees its place.
  await b.ok(`/join ${ch}`);
  await a.ok(`/invite ${c.id} ${ch}`);
});

bbtest(
  "a channel holds at most --max-members members: then 471, and nothing changes",
  async (rt) => {
    const url = server(rt).url;
    await using g = group(await peer(url), await peer(url), await peer(url));
    const [a, b, c] = g;
    const ch = newChannel();
    await a.ok(`/join ${ch}`);
    await b.ok(`/join ${ch}`);
    await c.fail(`/join ${ch}`, 471);
    assert.equal((await a.ok(`/whois ${ch}`)).total, 2);
    await b.ok(`/quit ${ch}`);
    await c.ok(`/join ${ch}`);
  },
);

bbtest(
  "a peer creates at most --max-creates channels an hour: then 263 with retryAfterMs",
  async (rt) => {
    await using a = await peer(server(rt).url);
    for (let i = 0; i < 3; i++) await a.ok(`/join ${newChannel()}`);
    const e = await a.fail(`/join ${newChannel()}`, 263);
    const wait = e.retryAfterMs ?? 0;
    assert.ok(wait > 3_500_000 && wait <= 3_600_000, `retryAfterMs ${wait}`);
    // Joining channels that exist is not creating.
    await using b = await peer(server(rt).url);
    const ch = newChannel();
    await b.ok(`/join ${ch}`);
    await a.ok(`/join ${ch}`);
  },
);
