/** Configuration: every option is a flag and an environment variable; flags win. */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { OPTIONS } from "../../server/config.ts";
import { connect, describe, group, newChannel, newId, peer } from "../support/client.ts";
import { RawClient } from "../support/raw_ws.ts";
import { assertRedis, deleteKeys, keysUnder, redisTests, uniquePrefix } from "../support/redis.ts";
import { bbtest, type ServerHandle, startServer } from "../support/server.ts";
import { delay, until, within } from "../support/wait.ts";

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

// ---- every environment variable, observed on a running server ---------------------------

/** A port nobody listens on right now. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function jwt(sub: string, secret: string): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(sub)
    .setExpirationTime("1h").sign(new TextEncoder().encode(secret));
}

/** One environment variable: how to start the server with it and what it changes. */
interface EnvCase {
  /** The environment the server starts with (the variable, and what it needs). */
  env: () => Record<string, string>;
  /** Flags besides the variable (never the variable's own flag). */
  args?: string[];
  /** False to leave port and host to the environment. */
  listenFlags?: false;
  /** Needs the shared Redis; the key prefix of the run is passed in `env` and `check`. */
  redis?: boolean;
  check: (s: ServerHandle, env: Record<string, string>) => Promise<void>;
}

const redis = await redisTests();
const RUN_PREFIX = uniquePrefix("env");
const SECRET = "env-secret-" + newId();

const ENV_CASES: Record<string, EnvCase> = {
  PORT: {
    env: () => ({ PORT: String(freePort()), HOST: "127.0.0.1" }),
    listenFlags: false,
    check: (s, env) => Promise.resolve(assert.equal(s.port, Number(env.PORT))),
  },
  HOST: {
    // The default is 0.0.0.0: the listening line shows the address from HOST.
    env: () => ({ HOST: "127.0.0.1" }),
    args: ["--port", "0"],
    listenFlags: false,
    check: (s) => Promise.resolve(assert.equal(s.host, "127.0.0.1")),
  },
  REDIS_URL: {
    env: () => ({ REDIS_URL: redis.url }),
    args: ["--redis-prefix", RUN_PREFIX + "url:"],
    redis: true,
    check: async (s) => {
      await using _a = await peer(s.url);
      assert.ok((await keysUnder(redis.url, RUN_PREFIX + "url:")).length > 0, "state in Redis");
    },
  },
  REDIS_PREFIX: {
    env: () => ({ REDIS_PREFIX: RUN_PREFIX + "prefix:" }),
    args: ["--redis", redis.url],
    redis: true,
    check: async (s) => {
      await using _a = await peer(s.url);
      assert.ok((await keysUnder(redis.url, RUN_PREFIX + "prefix:")).length > 0, "keys there");
    },
  },
  SIGNALLER_NODE_ID: {
    env: () => ({ SIGNALLER_NODE_ID: "node-" + newId() }),
    check: async (s, env) => {
      await using a = await connect(s.url);
      assert.equal((await describe(a)).server.node, env.SIGNALLER_NODE_ID);
    },
  },
  SIGNALLER_ADMIN_TOKEN: {
    env: () => ({ SIGNALLER_ADMIN_TOKEN: "admin-" + newId() }),
    check: async (s, env) => {
      await using a = await connect(s.url);
      assert.equal((await describe(a, { admin: env.SIGNALLER_ADMIN_TOKEN })).admin, true);
    },
  },
  SIGNALLER_AUTH_SECRET: {
    env: () => ({ SIGNALLER_AUTH_SECRET: SECRET }),
    check: async (s) => {
      const id = newId();
      await using a = await connect(s.url);
      await a.fail(`/descp ${JSON.stringify({ id, name: "a" })}`, 432);
      assert.equal((await within(a.closed, 5000, "close 4001")).code, 4001);
      await using b = await peer(s.url, { id, name: "b", token: await jwt(id, SECRET) });
      assert.equal((await b.ok(`/whois ${id}`)).online, true);
    },
  },
  SIGNALLER_GRACE_MS: {
    env: () => ({ SIGNALLER_GRACE_MS: "300" }),
    check: async (s) => {
      await using g = group(await peer(s.url), await peer(s.url));
      const ch = newChannel();
      for (const c of g) await c.ok(`/join ${ch}`);
      const t0 = Date.now();
      await g[0].close();
      // The default grace is 30 s: a quit within seconds is this one.
      const q = await g[1].event("quit", { timeout: 5000 });
      assert.equal(q.peer, g[0].id);
      assert.ok(q.ts - t0 >= 300, `quit ${q.ts - t0} ms after the close`);
    },
  },
  SIGNALLER_HANDSHAKE_MS: {
    env: () => ({ SIGNALLER_HANDSHAKE_MS: "300" }),
    check: async (s) => {
      await using idle = await connect(s.url);
      assert.equal((await within(idle.closed, 5000, "close 4001")).code, 4001);
    },
  },
  SIGNALLER_RETENTION_MS: {
    env: () => ({ SIGNALLER_RETENTION_MS: "300" }),
    check: async (s) => {
      await using g = group(await peer(s.url), await peer(s.url));
      const ch = newChannel();
      await g[0].ok(`/join ${ch} k`);
      await g[0].ok(`/quit ${ch}`);
      // The default retention is an hour: forgotten within seconds is this one.
      await until(async () => (await g[1].cmd(`/whois ${ch}`)).code === 403, 5000, "forgotten");
      assert.equal((await g[1].ok(`/join ${ch}`)).created, true);
    },
  },
  SIGNALLER_MAX_FRAME: {
    env: () => ({ SIGNALLER_MAX_FRAME: "1024" }),
    check: async (s) => {
      await using a = await peer(s.url);
      await a.fail(`/privmsg ${a.id} ${"x".repeat(1100)}`, 417);
      await a.ok(`/privmsg ${a.id} ${"x".repeat(900)}`);
    },
  },
  SIGNALLER_RATE: {
    env: () => ({ SIGNALLER_RATE: "1" }),
    args: ["--burst", "1"],
    check: async (s) => {
      await using a = await peer(s.url);
      a.send(`/privmsg ${a.id} one`);
      a.send(`/privmsg ${a.id} two`);
      assert.equal((await a.reply()).type, "ok");
      const r = await a.reply();
      assert.equal(r.code, 263);
      // One token a second (the default, 20, would say 50 ms).
      assert.ok(r.retryAfterMs > 500, `retryAfterMs ${r.retryAfterMs}`);
    },
  },
  SIGNALLER_BURST: {
    env: () => ({ SIGNALLER_BURST: "2" }),
    args: ["--rate", "1"],
    check: async (s) => {
      await using a = await peer(s.url);
      for (const t of ["one", "two", "three"]) a.send(`/privmsg ${a.id} ${t}`);
      const r = [await a.reply(), await a.reply(), await a.reply()];
      assert.deepEqual(r.map((x) => x.type), ["ok", "ok", "error"]); // the default burst is 40
      assert.equal(r[2].code, 263);
    },
  },
  SIGNALLER_PRESENCE_LIMIT: {
    env: () => ({ SIGNALLER_PRESENCE_LIMIT: "1" }),
    check: async (s) => {
      await using g = group(await peer(s.url), await peer(s.url));
      const ch = newChannel();
      await g[0].ok(`/join ${ch}`);
      await g[1].ok(`/join ${ch}`); // two members: over the limit, no join event
      await g[1].ok(`/pubmsg ${ch} barrier`);
      await g[0].event("pubmsg");
      assert.deepEqual(g[0].pending("join"), []);
    },
  },
  SIGNALLER_MAX_CHANNELS: {
    env: () => ({ SIGNALLER_MAX_CHANNELS: "1" }),
    check: async (s) => {
      await using a = await peer(s.url);
      await a.ok(`/join ${newChannel()}`);
      await a.fail(`/join ${newChannel()}`, 405);
    },
  },
  SIGNALLER_HISTORY: {
    env: () => ({ SIGNALLER_HISTORY: "0" }),
    check: async (s) => {
      await using a = await peer(s.url);
      assert.equal((await a.ok(`/join ${newChannel()}`)).stream, undefined, "streams off");
    },
  },
  SIGNALLER_HISTORY_TTL: {
    env: () => ({ SIGNALLER_HISTORY_TTL: "1" }),
    check: async (s) => {
      await using a = await peer(s.url);
      const ch = newChannel();
      const { stream } = await a.ok(`/join ${ch}`);
      await a.ok(`/pubmsg ${ch} soon gone`);
      await delay(20);
      const again = await a.ok(`/join ${ch}`);
      assert.notEqual(again.stream.epoch, stream.epoch, "history dropped: a new epoch");
    },
  },
  SIGNALLER_SHUTDOWN_MS: {
    env: () => ({ SIGNALLER_SHUTDOWN_MS: "5000" }),
    check: async (s) => {
      assert.equal(await s.stop(), 0, "a shutdown within its deadline exits 0");
    },
  },
  SIGNALLER_MAX_BANS: {
    env: () => ({ SIGNALLER_MAX_BANS: "1" }),
    check: async (s) => {
      await using a = await peer(s.url);
      const ch = newChannel();
      await a.ok(`/join ${ch}`);
      await a.ok(`/ban ${newId()} ${ch}`);
      await a.fail(`/ban ${newId()} ${ch}`, 478);
    },
  },
  SIGNALLER_MAX_INVITES: {
    env: () => ({ SIGNALLER_MAX_INVITES: "0" }),
    check: async (s) => {
      await using g = group(await peer(s.url), await peer(s.url));
      const ch = newChannel();
      await g[0].ok(`/join ${ch}`);
      await g[0].fail(`/invite ${g[1].id} ${ch}`, 478);
    },
  },
  SIGNALLER_MAX_MEMBERS: {
    env: () => ({ SIGNALLER_MAX_MEMBERS: "1" }),
    check: async (s) => {
      await using g = group(await peer(s.url), await peer(s.url));
      const ch = newChannel();
      await g[0].ok(`/join ${ch}`);
      await g[1].fail(`/join ${ch}`, 471);
    },
  },
  SIGNALLER_MAX_CREATES: {
    env: () => ({ SIGNALLER_MAX_CREATES: "1" }),
    check: async (s) => {
      await using a = await peer(s.url);
      await a.ok(`/join ${newChannel()}`);
      await a.fail(`/join ${newChannel()}`, 263);
    },
  },
  SIGNALLER_PEERJS: {
    env: () => ({ SIGNALLER_PEERJS: "off" }),
    check: async (s) => {
      const r = await fetch(`${s.httpUrl}/peerjs/id`);
      await r.body?.cancel();
      assert.equal(r.status, 404, "the PeerJS routes are off");
    },
  },
  SIGNALLER_PEERJS_KEY: {
    env: () => ({ SIGNALLER_PEERJS_KEY: "mykey" }),
    check: async (s) => {
      const r = await fetch(`${s.httpUrl}/mykey/id`);
      assert.equal(r.status, 200);
      assert.ok((await r.text()).length > 0, "an id");
    },
  },
  SIGNALLER_PEERJS_DISCOVERY: {
    env: () => ({ SIGNALLER_PEERJS_DISCOVERY: "on" }),
    check: async (s) => {
      const r = await fetch(`${s.httpUrl}/peerjs/peers`);
      assert.equal(r.status, 200, "listed when on (401 by default)");
      assert.deepEqual(await r.json(), []);
    },
  },
  SIGNALLER_Y_WEBRTC: {
    env: () => ({ SIGNALLER_Y_WEBRTC: "off" }),
    check: async (s) => {
      // Turned off, the endpoint says so in its close (1008, the reason).
      using ws = await RawClient.connect(`${s.url}y-webrtc`);
      assert.equal((await ws.readUntilClose()).code, 1008);
    },
  },
  SIGNALLER_ALLOW_ORIGIN: {
    env: () => ({ SIGNALLER_ALLOW_ORIGIN: "http://a.example, http://good.example" }),
    check: async (s) => {
      await assert.rejects(
        RawClient.connect(s.url, { headers: { Origin: "http://evil.example" } }),
        /handshake failed/,
      );
      using ok = await RawClient.connect(s.url, { headers: { Origin: "http://good.example" } });
      await ok.sendText(`/descp ${JSON.stringify({ id: newId(), name: "good" })}`);
      assert.equal((await ok.reply()).type, "ok");
    },
  },
  SIGNALLER_STUN: {
    env: () => ({ SIGNALLER_STUN: "stun:stun1.example:3478,stun:stun2.example:3478" }),
    check: async (s) => {
      await using a = await connect(s.url);
      assert.deepEqual((await describe(a)).iceServers, [{
        urls: ["stun:stun1.example:3478", "stun:stun2.example:3478"],
      }]);
    },
  },
  SIGNALLER_TURN: {
    env: () => ({ SIGNALLER_TURN: "turn:turn.example:3478" }),
    check: async (s) => {
      await using a = await connect(s.url);
      assert.deepEqual((await describe(a)).iceServers, [{ urls: ["turn:turn.example:3478"] }]);
    },
  },
  SIGNALLER_TURN_SECRET: {
    env: () => ({ SIGNALLER_TURN_SECRET: "turn-secret" }),
    args: ["--turn", "turn:turn.example:3478"],
    check: async (s) => {
      await using a = await connect(s.url);
      const [turn] = (await describe(a)).iceServers;
      assert.deepEqual(turn.urls, ["turn:turn.example:3478"]);
      assert.match(turn.username, new RegExp(`^\\d+:${a.id}$`));
      assert.equal(typeof turn.credential, "string");
    },
  },
  SIGNALLER_LOG: {
    env: () => ({ SIGNALLER_LOG: "debug" }),
    check: async (s) => {
      // A server-side close is logged at debug level only.
      await using a = await connect(s.url);
      await a.fail(`/whois ${newId()}`, 451);
      await within(a.closed, 5000, "close 4001");
      assert.equal(await s.stop(), 0);
      const levels = s.logs().map((l) => JSON.parse(l).level);
      assert.ok(levels.includes("debug"), `no debug line in ${s.logs().join("\n")}`);
    },
  },
};

// SIGNALLER_CERT and SIGNALLER_KEY are in tls_test.ts; SIGNALLER_MAX_BUFFERED needs a client
// that stops reading until the kernel's buffers are full (limits_test.ts does it with the flag,
// and the unit tests check that the variable sets the same option). The PeerJS and y-webrtc
// timers take seconds to observe: tests/peerjs and tests/y_webrtc do it with the flags, and the
// unit tests check that each variable sets the same option. The connection limits and the request
// head's deadline are observed in edge_test.ts (the per-address limit and --trust-proxy through
// their variables).
// REDIS_CLUSTER needs the test cluster: tests/redis start nodes on it with the flag. The presence
// cache shows only between two nodes on Redis: tests/redis/presence_cache_test.ts uses the flag.
const ELSEWHERE = [
  "REDIS_CLUSTER",
  "SIGNALLER_MAX_CONNS",
  "SIGNALLER_MAX_CONNS_PER_IP",
  "SIGNALLER_TRUST_PROXY",
  "SIGNALLER_HEADER_TIMEOUT_MS",
  "SIGNALLER_CERT",
  "SIGNALLER_KEY",
  "SIGNALLER_MAX_BUFFERED",
  "SIGNALLER_PEERJS_EXPIRE_MS",
  "SIGNALLER_PEERJS_ALIVE_MS",
  "SIGNALLER_Y_WEBRTC_PING_MS",
  "SIGNALLER_PRESENCE_CACHE_MS",
];

Deno.test("every environment variable of the configuration is observed here or named", () => {
  const all = Object.values(OPTIONS).map((o) => o.env).sort();
  assert.deepEqual([...Object.keys(ENV_CASES), ...ELSEWHERE].sort(), all);
});

for (const [name, c] of Object.entries(ENV_CASES)) {
  bbtest(`${name} in the environment takes effect`, async (rt) => {
    const env = c.env();
    try {
      if (c.redis) assertRedis(redis);
      await using s = await startServer({
        runtime: rt,
        env,
        args: c.args,
        listenFlags: c.listenFlags,
      });
      await c.check(s, env);
    } finally {
      if (c.redis) await deleteKeys(redis.url, RUN_PREFIX);
    }
  }, { ignore: c.redis === true && redis.ignore });
}

bbtest("SIGNALLER_LOG=error: nothing below error is written", async (rt) => {
  await using s = await startServer({ runtime: rt, env: { SIGNALLER_LOG: "error" } });
  await using a = await connect(s.url);
  await a.fail(`/whois ${newId()}`, 451); // a debug line at the debug level
  await within(a.closed, 5000, "close 4001");
  assert.equal(await s.stop(), 0); // "shutting down" is an info line; stop drains stderr
  assert.deepEqual(s.logs(), []);
});
