/** Configuration: every option is a flag and an environment variable; flags win. */
import assert from "node:assert/strict";
import { connect, describe, newId, peer } from "../support/client.ts";
import { RawClient } from "../support/raw_ws.ts";
import { bbtest, startServer } from "../support/server.ts";

bbtest("the first line on stdout is `signaller listening on ws://HOST:PORT/`", async (rt) => {
  await using s = await startServer({ runtime: rt });
  assert.equal(s.stdout()[0], `signaller listening on ws://127.0.0.1:${s.port}/`);
});

bbtest(
  "options come from environment variables (SIGNALLER_MAX_FRAME, SIGNALLER_ADMIN_TOKEN)",
  async (rt) => {
    const token = "env-" + newId();
    await using s = await startServer({
      runtime: rt,
      env: { SIGNALLER_MAX_FRAME: "1024", SIGNALLER_ADMIN_TOKEN: token },
    });
    await using a = await connect(s.url);
    assert.equal((await describe(a, { admin: token })).admin, true);
    const m = await a.cmd(`/privmsg ${a.id} ${"x".repeat(1100)}`);
    assert.equal(m.code, 417);
  },
);

bbtest("flags win over environment variables", async (rt) => {
  const envToken = "env-" + newId();
  const flagToken = "flag-" + newId();
  await using s = await startServer({
    runtime: rt,
    env: { SIGNALLER_MAX_FRAME: "1024", SIGNALLER_ADMIN_TOKEN: envToken },
    args: ["--max-frame", "4096", "--admin-token", flagToken],
  });
  await using a = await connect(s.url);
  assert.equal((await describe(a, { admin: envToken })).admin, false);
  await using b = await connect(s.url);
  assert.equal((await describe(b, { admin: flagToken })).admin, true);
  await a.ok(`/privmsg ${a.id} ${"x".repeat(1100)}`);
  assert.equal((await a.event("privmsg")).text.length, 1100);
  await using c = await peer(s.url);
  await b.ok(`/broadcast hi`);
  assert.equal((await c.event("broadcast")).text, "hi");
});

bbtest("--allow-origin: an upgrade from another Origin is refused", async (rt) => {
  await using s = await startServer({
    runtime: rt,
    args: ["--allow-origin", "http://good.example"],
  });
  await assert.rejects(
    RawClient.connect(s.url, { headers: { Origin: "http://evil.example" } }),
    /handshake failed/,
  );
  using ok = await RawClient.connect(s.url, { headers: { Origin: "http://good.example" } });
  await ok.sendText(`/descp ${JSON.stringify({ id: newId(), name: "good" })}`);
  assert.equal((await ok.reply()).type, "ok");
});
