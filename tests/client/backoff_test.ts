/** The reconnect delays of the typed client: capped exponential backoff with full jitter. */
import assert from "node:assert/strict";
import { backoffCeiling, backoffDelay, SignallerClient } from "../../client/mod.ts";
import { resolveBackoff } from "../../client/backoff.ts";

Deno.test("backoff ceiling starts at initialMs, grows by factor, and is capped at maxMs", () => {
  const opts = { initialMs: 100, maxMs: 1000 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 10].map((n) => backoffCeiling(n, opts)),
    [100, 200, 400, 800, 1000, 1000, 1000],
  );
  assert.equal(backoffCeiling(3, { initialMs: 10, maxMs: 10_000, factor: 3 }), 270);
  // Huge attempt numbers overflow the exponent to Infinity; the cap still holds.
  assert.equal(backoffCeiling(5000, opts), 1000);
  assert.equal(backoffCeiling(-3, opts), 100);
});

Deno.test("backoff with full jitter stays in [0, ceiling)", () => {
  const opts = { initialMs: 100, maxMs: 1000 };
  assert.equal(backoffDelay(2, opts, () => 0), 0);
  assert.equal(backoffDelay(2, opts, () => 0.5), 200);
  assert.equal(backoffDelay(2, opts, () => 1 - Number.EPSILON), 399);
  assert.equal(backoffDelay(9, opts, () => 1 - Number.EPSILON), 999);
  for (let attempt = 0; attempt < 12; attempt++) {
    const ceiling = backoffCeiling(attempt, opts);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(attempt, opts);
      assert.ok(Number.isInteger(d) && d >= 0 && d < ceiling, `${d} in [0, ${ceiling})`);
    }
  }
  // The jitter is spread, not stuck at one end.
  const seen = new Set(Array.from({ length: 200 }, () => backoffDelay(8, opts)));
  assert.ok(seen.size > 50);
  // A broken random source must not stall reconnects.
  assert.equal(backoffDelay(3, opts, () => NaN), 0);
  assert.equal(backoffDelay(3, opts, () => 7), 0);
});

Deno.test("backoff options are checked and defaulted", () => {
  assert.deepEqual(resolveBackoff(), { initialMs: 500, maxMs: 30_000, factor: 2 });
  assert.deepEqual(resolveBackoff({ initialMs: 60_000 }), {
    initialMs: 60_000,
    maxMs: 60_000,
    factor: 2,
  });
  assert.throws(() => resolveBackoff({ initialMs: 0 }), RangeError);
  assert.throws(() => resolveBackoff({ initialMs: 100, maxMs: 50 }), RangeError);
  assert.throws(() => resolveBackoff({ factor: 0.5 }), RangeError);
  assert.throws(() => resolveBackoff({ initialMs: NaN }), RangeError);
  assert.throws(
    () => new SignallerClient("ws://x/", { name: "a", backoff: { initialMs: -1 } }),
    RangeError,
  );
});
