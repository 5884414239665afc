/**
 * The presence cache of remote peers (`server/hub/presence.ts`): what it
 * remembers, for how long, how many, and what a change of presence undoes.
 */
import assert from "node:assert/strict";
import { PresenceCache } from "../../server/hub/presence.ts";
import type { Presence } from "../../server/store/store.ts";

const online: Presence = { online: true, away: false };
const offline: Presence = { online: false, away: false };

/** A cache on a clock the test moves, and a store read that counts its calls. */
function setup(o: { ttlMs?: number; max?: number } = {}) {
  let now = 0;
  const cache = new PresenceCache({ ttlMs: o.ttlMs ?? 1000, max: o.max, now: () => now });
  const loads: string[] = [];
  const load = (id: string, p: Presence | null) => () => {
    loads.push(id);
    return Promise.resolve(p);
  };
  return { cache, loads, load, tick: (ms: number) => void (now += ms) };
}

Deno.test("an online peer is remembered for ttlMs, then read again", async () => {
  const { cache, load, tick } = setup();
  assert.deepEqual(await cache.read("a", load("a", online)), online);
  assert.deepEqual(cache.get("a"), online);
  tick(999);
  assert.deepEqual(cache.get("a"), online);
  tick(1);
  assert.equal(cache.get("a"), undefined);
  assert.equal(cache.size, 0);
});

Deno.test("an offline or unknown peer is never remembered; ttlMs 0 remembers nothing", async () => {
  const { cache, load } = setup();
  assert.deepEqual(await cache.read("a", load("a", offline)), offline);
  assert.equal(await cache.read("b", load("b", null)), null);
  assert.equal(cache.get("a"), undefined);
  assert.equal(cache.get("b"), undefined);
  const off = setup({ ttlMs: 0 });
  await off.cache.read("a", off.load("a", online));
  assert.equal(off.cache.get("a"), undefined);
});

Deno.test("forget drops the entry, and a read it overtook is not remembered", async () => {
  const { cache, load } = setup();
  await cache.read("a", load("a", online));
  cache.forget(["a"]);
  assert.equal(cache.get("a"), undefined);
  // A read on its way when the change arrives: its answer may predate the change.
  const { promise, resolve } = Promise.withResolvers<Presence | null>();
  const late = cache.read("b", () => promise);
  cache.forget(["b"]);
  resolve(online);
  assert.deepEqual(await late, online);
  assert.equal(cache.get("b"), undefined);
  // A change of another peer leaves a read in flight alone.
  const next = Promise.withResolvers<Presence | null>();
  const c = cache.read("c", () => next.promise);
  cache.forget(["d"]);
  next.resolve(online);
  await c;
  assert.deepEqual(cache.get("c"), online);
});

Deno.test("reads of one peer in flight together are one store read; after forget, a new one", async () => {
  const { cache, loads } = setup();
  const gate = Promise.withResolvers<Presence | null>();
  const load = () => {
    loads.push("a");
    return gate.promise;
  };
  const reads = [cache.read("a", load), cache.read("a", load), cache.read("a", load)];
  assert.equal(loads.length, 1);
  cache.forget(["a"]);
  const fresh = cache.read("a", load);
  assert.equal(loads.length, 2);
  gate.resolve(online);
  for (const r of [...reads, fresh]) assert.deepEqual(await r, online);
});

Deno.test("at most max entries, the least recently stored dropped first", async () => {
  const { cache, load } = setup({ max: 2 });
  for (const id of ["a", "b", "c"]) await cache.read(id, load(id, online));
  assert.equal(cache.size, 2);
  assert.equal(cache.get("a"), undefined);
  assert.deepEqual(cache.get("b"), online);
  assert.deepEqual(cache.get("c"), online);
});
