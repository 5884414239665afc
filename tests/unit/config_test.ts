/**
 * Configuration parsing (`server/config.ts`): every option is a flag and an
 * environment variable, flags win, and a bad value is a `ConfigError`.
 */
import assert from "node:assert/strict";
import { type Config, ConfigError, OPTIONS, parseConfig } from "../../server/config.ts";

type Name = keyof typeof OPTIONS;

/** For each option: a value to give as text, and what the parsed config holds for it. */
const SAMPLES: Record<Name, [string, unknown]> = {
  port: ["4040", 4040],
  host: ["127.0.0.1", "127.0.0.1"],
  redis: ["redis://10.0.0.1:6380", "redis://10.0.0.1:6380"],
  redisCluster: ["10.0.0.1:7000, 10.0.0.2:7000", ["10.0.0.1:7000", "10.0.0.2:7000"]],
  redisPrefix: ["app:", "app:"],
  nodeId: ["node-7", "node-7"],
  adminToken: ["t0ken", "t0ken"],
  authSecret: ["s3cret", "s3cret"],
  graceMs: ["1500", 1500],
  handshakeMs: ["2500", 2500],
  retentionMs: ["60000", 60000],
  maxFrame: ["1024", 1024],
  rate: ["0", 0],
  burst: ["7", 7],
  presenceLimit: ["50", 50],
  maxBuffered: ["65536", 65536],
  maxChannels: ["3", 3],
  history: ["10", 10],
  historyTtlMs: ["2000", 2000],
  presenceCacheMs: ["0", 0],
  shutdownMs: ["500", 500],
  maxBans: ["11", 11],
  maxInvites: ["12", 12],
  maxMembers: ["13", 13],
  maxCreates: ["14", 14],
  maxConns: ["15", 15],
  maxConnsPerIp: ["16", 16],
  trustProxy: ["true", true],
  headerTimeoutMs: ["1700", 1700],
  allowOrigin: [" http://a.example ,http://b.example,, ", ["http://a.example", "http://b.example"]],
  stun: ["stun:s.example:3478", ["stun:s.example:3478"]],
  turn: ["turn:t.example:3478,turns:t.example:5349", [
    "turn:t.example:3478",
    "turns:t.example:5349",
  ]],
  turnSecret: ["shh", "shh"],
  cert: ["/tmp/cert.pem", "/tmp/cert.pem"],
  key: ["/tmp/key.pem", "/tmp/key.pem"],
  peerjs: ["off", false],
  peerjsKey: ["k", "k"],
  peerjsDiscovery: ["on", true],
  peerjsExpireMs: ["100", 100],
  peerjsAliveMs: ["200", 200],
  yWebrtc: ["on", true],
  yWebrtcPingMs: ["300", 300],
  log: ["debug", "debug"],
};

/** Another valid value, different from the sample, to tell flag from environment. */
const OTHER: Record<Name, string> = {
  port: "5050",
  host: "0.0.0.0",
  redis: "redis://other:6379",
  redisCluster: "10.0.0.3:7000",
  redisPrefix: "other:",
  nodeId: "node-8",
  adminToken: "other-token",
  authSecret: "other-secret",
  graceMs: "1",
  handshakeMs: "2",
  retentionMs: "3",
  maxFrame: "4",
  rate: "5",
  burst: "6",
  presenceLimit: "7",
  maxBuffered: "8",
  maxChannels: "9",
  history: "0",
  historyTtlMs: "1",
  presenceCacheMs: "2",
  shutdownMs: "2",
  maxBans: "3",
  maxInvites: "4",
  maxMembers: "5",
  maxCreates: "6",
  maxConns: "7",
  maxConnsPerIp: "8",
  trustProxy: "false",
  headerTimeoutMs: "9",
  allowOrigin: "http://other.example",
  stun: "stun:other.example",
  turn: "turn:other.example",
  turnSecret: "other",
  cert: "/other/cert.pem",
  key: "/other/key.pem",
  peerjs: "on",
  peerjsKey: "other",
  peerjsDiscovery: "off",
  peerjsExpireMs: "1",
  peerjsAliveMs: "2",
  yWebrtc: "off",
  yWebrtcPingMs: "3",
  log: "error",
};

const DEFAULTS: Partial<Config> = {
  port: 3012,
  host: "0.0.0.0",
  redisPrefix: "signaller:",
  graceMs: 30_000,
  handshakeMs: 10_000,
  retentionMs: 3_600_000,
  maxFrame: 65_536,
  rate: 20,
  burst: 40,
  presenceLimit: 1000,
  maxBuffered: 1_048_576,
  maxChannels: 100,
  history: 100,
  historyTtlMs: 300_000,
  presenceCacheMs: 1_000,
  shutdownMs: 10_000,
  maxBans: 1000,
  maxInvites: 1000,
  maxMembers: 0,
  maxCreates: 200,
  maxConns: 10_000,
  maxConnsPerIp: 256,
  trustProxy: false,
  headerTimeoutMs: 10_000,
  peerjsKey: "peerjs",
  peerjsDiscovery: false,
  peerjsExpireMs: 5000,
  peerjsAliveMs: 90_000,
  yWebrtcPingMs: 30_000,
  log: "info",
  help: false,
};

Deno.test("with nothing given: the documented defaults, and no value for the rest", () => {
  const c = parseConfig([], {});
  assert.deepEqual(c, DEFAULTS);
});

Deno.test("the option table covers every key of Config but help", () => {
  const names = Object.keys(OPTIONS).sort();
  assert.deepEqual(Object.keys(SAMPLES).sort(), names);
  assert.deepEqual(Object.keys(OTHER).sort(), names);
  const flags = Object.values(OPTIONS).map((o) => o.flag);
  const envs = Object.values(OPTIONS).map((o) => o.env);
  assert.equal(new Set(flags).size, flags.length, "one flag per option");
  assert.equal(new Set(envs).size, envs.length, "one environment variable per option");
});

for (const [name, o] of Object.entries(OPTIONS) as [Name, (typeof OPTIONS)[Name]][]) {
  const [text, value] = SAMPLES[name];

  // A switch without a value (`--trust-proxy`) is true by being there.
  const flagArgs = o.kind === "bool" ? [`--${o.flag}`] : [`--${o.flag}`, text];

  Deno.test(`--${o.flag} sets ${name}`, () => {
    assert.deepEqual(parseConfig(flagArgs, {})[name], value);
    if (o.kind !== "bool") assert.deepEqual(parseConfig([`--${o.flag}=${text}`], {})[name], value);
  });

  Deno.test(`${o.env} sets ${name}`, () => {
    const c = parseConfig([], { [o.env]: text });
    assert.deepEqual(c[name], value);
    // Nothing else changes.
    assert.deepEqual({ ...c, [name]: undefined }, { ...DEFAULTS, [name]: undefined });
  });

  Deno.test(`--${o.flag} wins over ${o.env}`, () => {
    assert.deepEqual(parseConfig(flagArgs, { [o.env]: OTHER[name] })[name], value);
  });

  if (o.kind === "int") {
    for (const bad of ["-1", "1.5", "1e3", "abc", "0x10", " 5", "5ms"]) {
      Deno.test(`--${o.flag} ${JSON.stringify(bad)} (flag or ${o.env}) is a ConfigError`, () => {
        assert.throws(() => parseConfig([`--${o.flag}=${bad}`], {}), ConfigError);
        assert.throws(
          () => parseConfig([], { [o.env]: bad }),
          (e: unknown) => e instanceof ConfigError && e.message.includes(`--${o.flag}`),
        );
      });
    }
  }
}

Deno.test("an empty environment variable of an option without a default sets nothing", () => {
  for (const o of Object.values(OPTIONS).filter((o) => o.def === undefined)) {
    assert.deepEqual(parseConfig([], { [o.env]: "" }), DEFAULTS, o.env);
  }
});

Deno.test("an empty environment variable is as if unset: the option keeps its default", () => {
  for (const o of Object.values(OPTIONS)) {
    assert.deepEqual(parseConfig([], { [o.env]: "" }), DEFAULTS, o.env);
  }
});

Deno.test("--log takes debug, info, warn or error; anything else is a ConfigError", () => {
  for (const level of ["debug", "info", "warn", "error"]) {
    assert.equal(parseConfig(["--log", level], {}).log, level);
  }
  for (const bad of ["trace", "INFO", "verbose"]) {
    assert.throws(() => parseConfig(["--log", bad], {}), ConfigError);
    assert.throws(() => parseConfig([], { SIGNALLER_LOG: bad }), ConfigError);
  }
});

Deno.test("--peerjs and --y-webrtc are switches: on or off (true, false, yes, no, 1, 0)", () => {
  for (const [text, value] of [["on", true], ["yes", true], ["1", true], ["off", false]] as const) {
    assert.equal(parseConfig(["--peerjs", text], {}).peerjs, value);
    assert.equal(parseConfig([], { SIGNALLER_Y_WEBRTC: text }).yWebrtc, value);
  }
  for (const bad of ["maybe", "ON ", "toString", "constructor"]) {
    assert.throws(() => parseConfig(["--peerjs", bad], {}), ConfigError);
    assert.throws(() => parseConfig([], { SIGNALLER_PEERJS_DISCOVERY: bad }), ConfigError);
  }
});

Deno.test("an unknown flag, a positional argument or a flag without its value is a ConfigError", () => {
  assert.throws(() => parseConfig(["--nope", "1"], {}), ConfigError);
  assert.throws(() => parseConfig(["server.ts"], {}), ConfigError);
  assert.throws(() => parseConfig(["--port"], {}), ConfigError);
  assert.throws(() => parseConfig(["--help=yes"], {}), ConfigError);
});

Deno.test("--help is a switch; unknown environment variables are ignored", () => {
  assert.equal(parseConfig(["--help"], {}).help, true);
  assert.deepEqual(parseConfig([], { SIGNALLER_NOPE: "1", PATH: "/bin" }), DEFAULTS);
});

Deno.test("flags and environment variables mix, each option from where it is given", () => {
  const c = parseConfig(["--port", "0", "--rate", "1"], {
    PORT: "9999",
    SIGNALLER_BURST: "2",
    SIGNALLER_RATE: "50",
  });
  assert.equal(c.port, 0);
  assert.equal(c.rate, 1);
  assert.equal(c.burst, 2);
});

Deno.test("--redis and --redis-cluster together are a ConfigError", () => {
  assert.throws(
    () => parseConfig(["--redis", "redis://a:6379", "--redis-cluster", "a:7000"], {}),
    (e: unknown) => e instanceof ConfigError && e.message.includes("--redis-cluster"),
  );
  assert.throws(() => parseConfig([], { REDIS_URL: "redis://a", REDIS_CLUSTER: "a:7000" }));
});
