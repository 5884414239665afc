/** `--auth-secret` (signed peer tokens) and ICE servers in the `descp` reply. */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { connect, newId, peer } from "../support/client.ts";
import { bbtest, startServer } from "../support/server.ts";
import { within } from "../support/wait.ts";

const SECRET = "test-secret-" + crypto.randomUUID();

function token(sub: string, claims: Record<string, unknown> = {}, secret = SECRET, exp = "1h") {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setSubject(sub)
    .setExpirationTime(exp).sign(new TextEncoder().encode(secret));
}

bbtest(
  "--auth-secret: a valid token for the id describes; admin: true grants admin",
  async (rt) => {
    await using s = await startServer({ runtime: rt, args: ["--auth-secret", SECRET] });
    const id = newId();
    await using a = await peer(s.url, { id, name: "a", token: await token(id) });
    const admin = newId();
    await using b = await connect(s.url);
    const d = await b.ok(
      "/descp " +
        JSON.stringify({ id: admin, name: "b", token: await token(admin, { admin: true }) }),
    );
    assert.equal(d.admin, true);
    assert.equal("token" in d.peer.meta, false, "the token is never stored in meta");
    await b.ok("/broadcast hello");
    assert.equal((await a.event("broadcast")).text, "hello");
  },
);

bbtest(
  "--auth-secret: a missing, foreign, forged or expired token gets 432 and close 4001",
  async (rt) => {
    await using s = await startServer({ runtime: rt, args: ["--auth-secret", SECRET] });
    const id = newId();
    const bad = [
      undefined,
      await token(newId()), // another id's token
      await token(id, {}, "not-the-secret"),
      await token(id, {}, SECRET, "-1m"),
    ];
    for (const t of bad) {
      await using c = await connect(s.url);
      await c.fail("/descp " + JSON.stringify({ id, name: "x", token: t }), 432);
      assert.equal((await within(c.closed, 3000, "close")).code, 4001);
    }
  },
);

bbtest("--stun/--turn/--turn-secret: ICE servers with coturn REST credentials", async (rt) => {
  await using s = await startServer({
    runtime: rt,
    args: ["--stun", "stun:stun.example.org:3478", "--turn", "turn:turn.example.org:3478"]
      .concat(["--turn-secret", "coturn-secret"]),
  });
  const id = newId();
  await using c = await connect(s.url);
  const d = await c.ok("/descp " + JSON.stringify({ id, name: "x" }));
  const [stun, turn] = d.iceServers;
  assert.deepEqual(stun, { urls: ["stun:stun.example.org:3478"] });
  assert.deepEqual(turn.urls, ["turn:turn.example.org:3478"]);
  const [expiry, user] = turn.username.split(":");
  assert.equal(user, id);
  assert.ok(Number(expiry) > Date.now() / 1000, "credentials expire in the future");
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode("coturn-secret"),
    { name: "HMAC", hash: "SHA-1" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(turn.username));
  assert.equal(turn.credential, btoa(String.fromCharCode(...new Uint8Array(mac))));
});
