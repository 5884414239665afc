/** Connection accounting: address keys, X-Forwarded-For, limits and release. */
import assert from "node:assert/strict";
import { addressKey, ConnectionGuard, forwardedFor } from "../../server/guard.ts";
import { createLogger } from "../../server/log.ts";
import { Metrics } from "../../server/metrics.ts";

Deno.test("addressKey: IPv4 as is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64", () => {
  assert.equal(addressKey("198.51.100.7"), "198.51.100.7");
  assert.equal(addressKey("::ffff:198.51.100.7"), "198.51.100.7");
  assert.equal(addressKey("2001:db8:1:2::1"), "2001:db8:1:2::/64");
  assert.equal(addressKey("2001:0DB8:0001:0002:ffff:0:0:9"), "2001:db8:1:2::/64");
  assert.equal(addressKey("2001:db8::1"), "2001:db8:0:0::/64");
  assert.equal(addressKey("::1"), "0:0:0:0::/64");
  assert.equal(addressKey("fe80::1%eth0"), "fe80:0:0:0::/64");
  // Not an address: counted as written.
  assert.equal(addressKey("not:an:address::x::"), "not:an:address::x::");
});

Deno.test("forwardedFor: the last hop, without a port; nothing for an empty or absent header", () => {
  assert.equal(forwardedFor("203.0.113.9, 192.0.2.1"), "192.0.2.1");
  assert.equal(forwardedFor("192.0.2.1:5555"), "192.0.2.1");
  assert.equal(forwardedFor("[2001:db8::1]:443"), "2001:db8::1");
  assert.equal(forwardedFor(" 2001:db8::1 "), "2001:db8::1");
  assert.equal(forwardedFor(""), undefined);
  assert.equal(forwardedFor("a, "), undefined);
  assert.equal(forwardedFor(null), undefined);
});

Deno.test("ConnectionGuard: 429 per address before 503 in all; release once frees one place", () => {
  const lines: string[] = [];
  const metrics = new Metrics();
  const guard = new ConnectionGuard({
    maxConns: 3,
    maxConnsPerIp: 2,
    trustProxy: false,
    log: createLogger("warn", (l) => lines.push(l)),
    metrics,
  });
  const req = new Request("http://x/", { headers: { "x-forwarded-for": "192.0.2.9" } });
  const a1 = guard.admit(req, "10.0.0.1");
  const a2 = guard.admit(req, "10.0.0.1");
  assert.ok(!(a1 instanceof Response) && !(a2 instanceof Response));
  assert.equal(a1.address, "10.0.0.1", "X-Forwarded-For ignored without trustProxy");
  const refused = guard.admit(req, "10.0.0.1");
  assert.ok(refused instanceof Response);
  assert.equal(refused.status, 429);
  const b = guard.admit(req, "10.0.0.2");
  assert.ok(!(b instanceof Response));
  const full = guard.admit(req, "10.0.0.3");
  assert.ok(full instanceof Response);
  assert.equal(full.status, 503);
  assert.equal(guard.open, 3);
  a1.release();
  a1.release();
  assert.equal(guard.open, 2);
  assert.ok(!(guard.admit(req, "10.0.0.1") instanceof Response));
  // Two refusals within a second: one line, the second counted for the next.
  assert.equal(lines.length, 1);
  assert.equal(JSON.parse(lines[0]).status, 429);
  assert.equal(metrics.refused.get("ip"), 1);
  assert.equal(metrics.refused.get("global"), 1);
});

Deno.test("ConnectionGuard: 0 turns a limit off; trustProxy counts the forwarded address", () => {
  const guard = new ConnectionGuard({
    maxConns: 0,
    maxConnsPerIp: 1,
    trustProxy: true,
    log: createLogger("error", () => {}),
  });
  const from = (xff: string) =>
    guard.admit(new Request("http://x/", { headers: { "x-forwarded-for": xff } }), "127.0.0.1");
  for (let i = 0; i < 100; i++) {
    assert.ok(!(from(`192.0.2.1, 198.51.100.${i}`) instanceof Response));
  }
  const again = from("198.51.100.5");
  assert.ok(again instanceof Response && again.status === 429);
});
