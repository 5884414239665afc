/**
 * Signaller: the single entry. Reads the configuration, builds the store and
 * the hub, picks the runtime adapter (Bun or Deno) and serves.
 *
 *     deno run -A server.ts [--port 3012] [--redis redis://127.0.0.1:6379] ...
 *     bun server.ts ...
 *
 * @module
 */
import process from "node:process";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import pkg from "./package.json" with { type: "json" };
import { newId } from "./server/ids.ts";
import { iceServers, jwtAuth } from "./server/auth.ts";
import { type Config, ConfigError, parseConfig, usage } from "./server/config.ts";
import type { Frontend } from "./server/frontends/frontend.ts";
import { peerjs } from "./server/frontends/peerjs.ts";
import { slash } from "./server/frontends/slash.ts";
import { yWebrtc } from "./server/frontends/y_webrtc.ts";
import { ConnectionGuard } from "./server/guard.ts";
import { Hub } from "./server/hub/mod.ts";
import { createLogger } from "./server/log.ts";
import { MemoryStore } from "./server/store/memory.ts";
import type { Bus } from "./server/bus/bus.ts";
import type { Store } from "./server/store/store.ts";
import type { Listener, ServeOptions } from "./server/serve.ts";

let config: Config;
try {
  config = parseConfig(process.argv.slice(2), process.env);
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  console.error(`signaller: ${e.message}\n\n${usage()}`);
  process.exit(2);
}
if (config.help) {
  console.log(usage());
  process.exit(0);
}

const log = createLogger(config.log);
// For tests only: SIGNALLER_TEST_CLOCK_OFFSET_MS skews this node's clock (the hub's and the
// store's `now`) by that many ms, to show that nodes whose clocks disagree still agree on
// every deadline. Never set it in production.
const clockOffsetMs = Number(process.env.SIGNALLER_TEST_CLOCK_OFFSET_MS ?? "") || 0;
const now = clockOffsetMs === 0 ? Date.now : () => Date.now() + clockOffsetMs;
// A stable id lets a restarted node recognise its predecessor's peers at once.
const node = config.nodeId ?? (config.port === 0 ? newId() : `${hostname()}:${config.port}`);
const generatedAdmin = config.adminToken === undefined;
const adminToken = config.adminToken ?? crypto.randomUUID();
const limits = {
  maxChannels: config.maxChannels,
  retentionMs: config.retentionMs,
  history: config.history,
  historyTtlMs: config.historyTtlMs,
  maxBans: config.maxBans,
  maxInvites: config.maxInvites,
  maxMembers: config.maxMembers,
  maxCreates: config.maxCreates,
};

// Declared before the store: Redis may report this node dead before the hub exists, and the
// callbacks below must then find no hub rather than a variable not yet initialised.
// deno-lint-ignore prefer-const
let hub: Hub | undefined;
const parkedEarly: string[] = [];
let store: Store = new MemoryStore(limits, now);
let bus: Bus | undefined;
// One Redis (--redis) or a Redis Cluster (--redis-cluster): the same store, bus and scripts.
const redisTarget = config.redisCluster !== undefined
  ? { cluster: config.redisCluster }
  : config.redis;
if (redisTarget !== undefined) {
  const { RedisStore } = await import("./server/store/redis.ts");
  const { RedisBus } = await import("./server/bus/redis.ts");
  const redisStore = new RedisStore(redisTarget, {
    prefix: config.redisPrefix,
    node,
    graceMs: config.graceMs,
    limits,
    now,
    // Declared dead while alive (a stall, a long Redis outage): its sessions are over.
    onDeclaredDead: () => hub?.closeAll("this node lost its place in the cluster; resume"),
    // Redis lost its state (restarted empty, flushed): the hub says what this node holds.
    onLost: () => hub?.held() ?? [],
    onDisowned: (sessions) => hub?.disown(sessions),
    // A predecessor's peers are parked before the hub exists: it tells the other nodes then.
    onParked: (ids) => hub === undefined ? parkedEarly.push(...ids) : hub.parked(ids),
    log,
  });
  const redisBus = new RedisBus(redisTarget, {
    prefix: config.redisPrefix,
    // Its own messages are recognised by a per-process id, never shared by two processes.
    node: newId(),
    deliver: (topic, env) => hub?.deliver(topic, env),
  });
  // The bus delivers only on topics the hub subscribed to, so `hub` exists by then.
  [store, bus] = [redisStore, redisBus];
  try {
    await Promise.all([redisStore.ready(), redisBus.ready()]);
  } catch (e) {
    // Serve anyway: /healthz says 503 and commands get 503 until Redis answers.
    log.warn("Redis is not reachable yet", { error: String(e) });
  }
}

hub = new Hub({
  store,
  bus,
  node,
  adminToken,
  auth: config.authSecret === undefined ? undefined : jwtAuth(config.authSecret),
  iceServers: config.stun || config.turn
    ? iceServers(config.stun, config.turn, config.turnSecret)
    : undefined,
  graceMs: config.graceMs,
  handshakeMs: config.handshakeMs,
  maxFrame: config.maxFrame,
  rate: config.rate,
  burst: config.burst,
  presenceLimit: config.presenceLimit,
  maxBuffered: config.maxBuffered,
  presenceCacheMs: config.presenceCacheMs,
  version: pkg.version,
  log,
  now,
});

hub.parked(parkedEarly.splice(0));

const serveOptions: ServeOptions = {
  port: config.port,
  host: config.host,
  cert: config.cert === undefined ? undefined : readFileSync(config.cert, "utf8"),
  key: config.key === undefined ? undefined : readFileSync(config.key, "utf8"),
  allowOrigin: config.allowOrigin,
  maxPayload: config.maxFrame * 16,
  maxBuffered: config.maxBuffered,
  guard: new ConnectionGuard({
    maxConns: config.maxConns,
    maxConnsPerIp: config.maxConnsPerIp,
    trustProxy: config.trustProxy,
    log,
    metrics: hub.metrics,
  }),
  headerTimeoutMs: config.headerTimeoutMs,
};
// The runtime is picked here, and only here.
const runtime = "Bun" in globalThis ? "bun" : "deno";
const adapter = runtime === "bun"
  ? await import("./server/bun.ts")
  : await import("./server/deno.ts");
// PeerJS and y-webrtc clients cannot present this server's signed tokens: with an auth
// secret, their endpoints are served only when turned on explicitly.
const open = config.authSecret === undefined;
const frontends: Frontend[] = [
  slash,
  peerjs(
    (config.peerjs ?? open)
      ? {
        key: config.peerjsKey,
        discovery: config.peerjsDiscovery,
        expireMs: config.peerjsExpireMs,
        aliveMs: config.peerjsAliveMs,
        allowOrigin: config.allowOrigin,
      }
      : { off: OFF("peerjs") },
  ),
  yWebrtc((config.yWebrtc ?? open) ? { pingMs: config.yWebrtcPingMs } : { off: OFF("y-webrtc") }),
];
const listener: Listener = await adapter.serve(hub, frontends, serveOptions);

/** Why an endpoint is turned off. */
function OFF(flag: string): string {
  return config.authSecret === undefined
    ? `turned off (--${flag} off)`
    : `turned off: this server requires signed tokens (--${flag} on serves it anyway)`;
}

let stopping = false;
/** Shuts down gracefully within `--shutdown-ms`; exits 0 when it did, 1 when it could not. */
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info("shutting down", { signal });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), config.shutdownMs);
  });
  const done = Promise.all([hub?.shutdown(), listener.close()]).then(() => "done" as const);
  let code = 0;
  try {
    if (await Promise.race([done, deadline]) === "late") {
      log.error("shutdown did not finish in time; exiting", { shutdownMs: config.shutdownMs });
      code = 1;
    }
  } catch (e) {
    hub?.unexpected("shutdown", e);
    code = 1;
  }
  clearTimeout(timer);
  process.exit(code);
}
// Nothing a client sends may take the process down: a failure nobody caught is logged,
// counted in /metrics, and the server goes on serving everyone else.
process.on("unhandledRejection", (reason) => hub?.unexpected("unhandled rejection", reason));
process.on("uncaughtException", (error) => hub?.unexpected("uncaught exception", error));
process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));

// Printed once the signal handlers are in place: a SIGTERM right after this line is graceful.
const scheme = config.cert === undefined ? "ws" : "wss";
console.log(`signaller listening on ${scheme}://${listener.host}:${listener.port}/`);
if (generatedAdmin) console.log(`admin token (generated): ${adminToken}`);
log.info("started", {
  runtime,
  node,
  store: store.kind,
  peerjs: config.peerjs ?? open,
  yWebrtc: config.yWebrtc ?? open,
  port: listener.port,
  version: pkg.version,
});
