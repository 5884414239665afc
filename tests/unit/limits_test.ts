/** The per-peer limits of `server/limits.ts`: the token bucket and the flood meter. */
import assert from "node:assert/strict";
import { FloodMeter, TokenBucket } from "../../server/limits.ts";

Deno.test("a token bucket starts full: `burst` takes pass at once, the next waits", () => {
  const b = new TokenBucket(2, 4, 1000);
  for (let i = 0; i < 4; i++) assert.equal(b.take(1000), 0, `take ${i}`);
  // Empty: one token comes back in 1000 / rate ms.
  assert.equal(b.take(1000), 500);
  assert.equal(b.take(1000), 500, "a refused take spends nothing");
});

Deno.test("a token bucket refills at `rate` a second, and says how long to wait", () => {
  const b = new TokenBucket(4, 1, 0); // a token every 250 ms
  assert.equal(b.take(0), 0);
  assert.equal(b.take(100), 150); // 0.4 of a token back: 0.6 × 250 ms to go
  assert.equal(b.take(250), 0);
  assert.equal(b.take(250), 250);
  // A wait of 333.3 ms is said as 334: never "retry now" too early.
  const third = new TokenBucket(3, 1, 0);
  assert.equal(third.take(0), 0);
  assert.equal(third.take(0), 334);
  assert.equal(third.take(333), 1);
  assert.equal(third.take(334), 0);
});

Deno.test("a token bucket holds at most `burst` tokens however long it rests", () => {
  const b = new TokenBucket(10, 3, 0);
  for (let i = 0; i < 3; i++) assert.equal(b.take(0), 0);
  const later = 60_000; // 600 tokens' worth of time
  for (let i = 0; i < 3; i++) assert.equal(b.take(later), 0, `take ${i}`);
  assert.equal(b.take(later), 100);
});

Deno.test("a token bucket ignores a clock that goes back", () => {
  const b = new TokenBucket(1, 1, 10_000);
  assert.equal(b.take(10_000), 0);
  assert.equal(b.take(5_000), 1000, "no refill from an earlier time");
  assert.equal(b.take(10_500), 500, "nor is the refill time moved back");
  assert.equal(b.take(11_000), 0);
});

Deno.test("the flood meter trips on the rejection past `limit` within one second", () => {
  const f = new FloodMeter(3);
  assert.equal(f.reject(0), false);
  assert.equal(f.reject(100), false);
  assert.equal(f.reject(200), false);
  assert.equal(f.reject(300), true, "the fourth within a second");
});

Deno.test("the flood meter's window slides: rejections a second old no longer count", () => {
  const f = new FloodMeter(2);
  assert.equal(f.reject(0), false);
  assert.equal(f.reject(500), false);
  // At 1000 the rejection at 0 is a full second old: two in the window.
  assert.equal(f.reject(1000), false);
  assert.equal(f.reject(1499), true, "500, 1000 and 1499 are within a second");
  assert.equal(f.reject(3000), false, "after a quiet second the count starts over");
});
