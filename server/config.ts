/** Server configuration: every option is a flag and an environment variable; flags win. */
import { parseArgs } from "node:util";
import { type Level, LEVELS } from "./log.ts";

/** The server's configuration, resolved. */
export interface Config {
  port: number;
  host: string;
  redis?: string;
  redisCluster?: string[];
  redisPrefix: string;
  nodeId?: string;
  adminToken?: string;
  authSecret?: string;
  graceMs: number;
  handshakeMs: number;
  retentionMs: number;
  maxFrame: number;
  rate: number;
  burst: number;
  presenceLimit: number;
  maxBuffered: number;
  maxChannels: number;
  history: number;
  historyTtlMs: number;
  presenceCacheMs: number;
  shutdownMs: number;
  maxBans: number;
  maxInvites: number;
  maxMembers: number;
  maxCreates: number;
  allowOrigin?: string[];
  maxConns: number;
  maxConnsPerIp: number;
  trustProxy: boolean;
  headerTimeoutMs: number;
  stun?: string[];
  turn?: string[];
  turnSecret?: string;
  cert?: string;
  key?: string;
  peerjs?: boolean;
  peerjsKey: string;
  peerjsDiscovery: boolean;
  peerjsExpireMs: number;
  peerjsAliveMs: number;
  yWebrtc?: boolean;
  yWebrtcPingMs: number;
  log: Level;
  help: boolean;
}

/**
 * Every default, written once: the options' defaults below, the Redis store's
 * and bus's (which take them as constructor options), and the hub's.
 */
export const DEFAULTS = {
  port: 3012,
  host: "0.0.0.0",
  /** Prefix of every Redis key and pub/sub channel. */
  redisPrefix: "signaller:",
  /** Disconnect grace, ms; also the grace of the peers of a node declared dead. */
  graceMs: 30_000,
  handshakeMs: 10_000,
  /** How long an empty channel and a pending invite are kept, ms. */
  retentionMs: 3_600_000,
  maxFrame: 65_536,
  rate: 20,
  burst: 40,
  presenceLimit: 1000,
  maxBuffered: 1_048_576,
  maxChannels: 100,
  /** Messages kept per stream; 0 turns message streams off. */
  history: 100,
  /** How long a stream's history is kept after its last message, ms. */
  historyTtlMs: 300_000,
  /**
   * How long a node remembers that a peer on another node is online, for relays kept in no
   * stream, ms; every change of the peer's presence is also sent to every node at once.
   */
  presenceCacheMs: 1_000,
  /** Bans one channel may hold. */
  maxBans: 1000,
  /** Pending invites one channel may hold. */
  maxInvites: 1000,
  /** Members one channel may hold; 0: no limit. */
  maxMembers: 0,
  /** Channels one peer may create per hour. */
  maxCreates: 200,
  /** How long a graceful shutdown may take before the process exits anyway, ms. */
  shutdownMs: 10_000,
  /**
   * Open WebSockets a node serves (0: no limit). An idle described connection
   * costs about 13 KiB on Deno and 5 KiB on Bun, so 10 000 stay near 200 MB
   * at most, and with one descriptor each they stay well below the
   * open-files limit a service is usually given; raise it (and `ulimit -n`)
   * for bigger nodes.
   */
  maxConns: 10_000,
  /**
   * Open WebSockets from one client address (0: no limit). Viewers behind one
   * carrier-grade NAT share an address, so it is far above one browser's needs.
   */
  maxConnsPerIp: 256,
  /** Time allowed for a request's head (and the TLS handshake) to arrive, ms. */
  headerTimeoutMs: 10_000,
  log: "info",
  /** How often a node beats into Redis, ms. */
  heartbeatMs: 1_000,
  /** A node whose last beat is older than this is declared dead, ms. */
  deadMs: 6_000,
  /** How long the Redis store's and bus's `ready()` wait for a connection, ms. */
  readyTimeoutMs: 5_000,
} as const;

interface Option {
  flag: string;
  env: string;
  def?: string;
  kind: "int" | "string" | "list" | "level" | "switch" | "bool";
  help: string;
}

/** Every option: flag, environment variable, default, meaning. */
export const OPTIONS: Record<Exclude<keyof Config, "help">, Option> = {
  port: {
    flag: "port",
    env: "PORT",
    def: String(DEFAULTS.port),
    kind: "int",
    help: "listen port (0: any free port)",
  },
  host: { flag: "host", env: "HOST", def: DEFAULTS.host, kind: "string", help: "listen address" },
  redis: {
    flag: "redis",
    env: "REDIS_URL",
    kind: "string",
    help: "keep state in Redis and join its cluster of nodes",
  },
  redisCluster: {
    flag: "redis-cluster",
    env: "REDIS_CLUSTER",
    kind: "list",
    help: "keep state in a Redis Cluster (host:port,...; any reachable master will do)",
  },
  redisPrefix: {
    flag: "redis-prefix",
    env: "REDIS_PREFIX",
    def: DEFAULTS.redisPrefix,
    kind: "string",
    help: "key and channel prefix in Redis",
  },
  nodeId: {
    flag: "node-id",
    env: "SIGNALLER_NODE_ID",
    kind: "string",
    help:
      "this node's id in the cluster (default HOSTNAME:PORT): a node restarted with the same id " +
      "starts its predecessor's peers' grace at once",
  },
  adminToken: {
    flag: "admin-token",
    env: "SIGNALLER_ADMIN_TOKEN",
    kind: "string",
    help:
      "descp field `admin` with this value makes the peer a server admin (random, printed, when unset)",
  },
  authSecret: {
    flag: "auth-secret",
    env: "SIGNALLER_AUTH_SECRET",
    kind: "string",
    help: "HS256 secret: descp must carry `token`, a JWT whose `sub` is the id",
  },
  graceMs: {
    flag: "grace-ms",
    env: "SIGNALLER_GRACE_MS",
    def: String(DEFAULTS.graceMs),
    kind: "int",
    help: "disconnect grace period",
  },
  handshakeMs: {
    flag: "handshake-ms",
    env: "SIGNALLER_HANDSHAKE_MS",
    def: String(DEFAULTS.handshakeMs),
    kind: "int",
    help: "time allowed before /descp",
  },
  retentionMs: {
    flag: "retention-ms",
    env: "SIGNALLER_RETENTION_MS",
    def: String(DEFAULTS.retentionMs),
    kind: "int",
    help: "how long an empty channel is kept",
  },
  maxFrame: {
    flag: "max-frame",
    env: "SIGNALLER_MAX_FRAME",
    def: String(DEFAULTS.maxFrame),
    kind: "int",
    help: "largest accepted frame, bytes",
  },
  rate: {
    flag: "rate",
    env: "SIGNALLER_RATE",
    def: String(DEFAULTS.rate),
    kind: "int",
    help: "messages per second per peer (0: no rate limiting)",
  },
  burst: {
    flag: "burst",
    env: "SIGNALLER_BURST",
    def: String(DEFAULTS.burst),
    kind: "int",
    help: "message burst per peer",
  },
  presenceLimit: {
    flag: "presence-limit",
    env: "SIGNALLER_PRESENCE_LIMIT",
    def: String(DEFAULTS.presenceLimit),
    kind: "int",
    help: "channels bigger than this send no join/quit/away events",
  },
  maxBuffered: {
    flag: "max-buffered",
    env: "SIGNALLER_MAX_BUFFERED",
    def: String(DEFAULTS.maxBuffered),
    kind: "int",
    help: "bytes queued to one client before it is closed 4008",
  },
  maxChannels: {
    flag: "max-channels",
    env: "SIGNALLER_MAX_CHANNELS",
    def: String(DEFAULTS.maxChannels),
    kind: "int",
    help: "channels one peer may be in",
  },
  history: {
    flag: "history",
    env: "SIGNALLER_HISTORY",
    def: String(DEFAULTS.history),
    kind: "int",
    help: "messages kept per stream for recovery after a reconnect (0: streams off)",
  },
  historyTtlMs: {
    flag: "history-ttl",
    env: "SIGNALLER_HISTORY_TTL",
    def: String(DEFAULTS.historyTtlMs),
    kind: "int",
    help: "how long a stream's history is kept after its last message",
  },
  presenceCacheMs: {
    flag: "presence-cache-ms",
    env: "SIGNALLER_PRESENCE_CACHE_MS",
    def: String(DEFAULTS.presenceCacheMs),
    kind: "int",
    help: "how long a peer on another node is known online without a store read (0: always read)",
  },
  maxBans: {
    flag: "max-bans",
    env: "SIGNALLER_MAX_BANS",
    def: String(DEFAULTS.maxBans),
    kind: "int",
    help: "bans one channel may hold (then 478)",
  },
  maxInvites: {
    flag: "max-invites",
    env: "SIGNALLER_MAX_INVITES",
    def: String(DEFAULTS.maxInvites),
    kind: "int",
    help: "pending invites one channel may hold (then 478)",
  },
  maxMembers: {
    flag: "max-members",
    env: "SIGNALLER_MAX_MEMBERS",
    def: String(DEFAULTS.maxMembers),
    kind: "int",
    help: "members one channel may hold, 0 for no limit (then 471)",
  },
  maxCreates: {
    flag: "max-creates",
    env: "SIGNALLER_MAX_CREATES",
    def: String(DEFAULTS.maxCreates),
    kind: "int",
    help: "channels one peer may create per hour (then 263 with retryAfterMs)",
  },
  shutdownMs: {
    flag: "shutdown-ms",
    env: "SIGNALLER_SHUTDOWN_MS",
    def: String(DEFAULTS.shutdownMs),
    kind: "int",
    help: "how long a graceful shutdown (SIGTERM, SIGINT) may take before the process exits",
  },
  allowOrigin: {
    flag: "allow-origin",
    env: "SIGNALLER_ALLOW_ORIGIN",
    kind: "list",
    help: "comma-separated Origins allowed to open a WebSocket (default: any)",
  },
  maxConns: {
    flag: "max-conns",
    env: "SIGNALLER_MAX_CONNS",
    def: String(DEFAULTS.maxConns),
    kind: "int",
    help: "open WebSockets this node serves; more are refused with HTTP 503 (0: no limit)",
  },
  maxConnsPerIp: {
    flag: "max-conns-per-ip",
    env: "SIGNALLER_MAX_CONNS_PER_IP",
    def: String(DEFAULTS.maxConnsPerIp),
    kind: "int",
    help: "open WebSockets from one address (IPv6: one /64); more are refused with HTTP 429 " +
      "(0: no limit)",
  },
  trustProxy: {
    flag: "trust-proxy",
    env: "SIGNALLER_TRUST_PROXY",
    def: "false",
    kind: "bool",
    help: "take the client address from the last hop of X-Forwarded-For (behind a reverse proxy)",
  },
  headerTimeoutMs: {
    flag: "header-timeout-ms",
    env: "SIGNALLER_HEADER_TIMEOUT_MS",
    def: String(DEFAULTS.headerTimeoutMs),
    kind: "int",
    help: "time allowed for a request's head (and TLS handshake) before the connection is " +
      "closed (Bun: its HTTP idle timeout; it closes an unfinished head after about 10 s itself)",
  },
  stun: {
    flag: "stun",
    env: "SIGNALLER_STUN",
    kind: "list",
    help: "STUN URLs handed out in the descp reply",
  },
  turn: {
    flag: "turn",
    env: "SIGNALLER_TURN",
    kind: "list",
    help: "TURN URLs handed out in the descp reply",
  },
  turnSecret: {
    flag: "turn-secret",
    env: "SIGNALLER_TURN_SECRET",
    kind: "string",
    help: "shared secret for short-lived TURN credentials (coturn REST API)",
  },
  cert: {
    flag: "cert",
    env: "SIGNALLER_CERT",
    kind: "string",
    help: "TLS certificate file (PEM): serve wss://",
  },
  key: { flag: "key", env: "SIGNALLER_KEY", kind: "string", help: "TLS private key file (PEM)" },
  peerjs: {
    flag: "peerjs",
    env: "SIGNALLER_PEERJS",
    kind: "switch",
    help: "serve PeerJS clients on /peerjs (on, off; default: on, but off with --auth-secret: " +
      "their clients cannot present its tokens)",
  },
  peerjsKey: {
    flag: "peerjs-key",
    env: "SIGNALLER_PEERJS_KEY",
    def: "peerjs",
    kind: "string",
    help: "the `key` PeerJS clients must give",
  },
  peerjsDiscovery: {
    flag: "peerjs-discovery",
    env: "SIGNALLER_PEERJS_DISCOVERY",
    def: "off",
    kind: "switch",
    help: "GET /KEY/peers lists the connected PeerJS ids (on, off)",
  },
  peerjsExpireMs: {
    flag: "peerjs-expire-ms",
    env: "SIGNALLER_PEERJS_EXPIRE_MS",
    def: "5000",
    kind: "int",
    help: "how long a PeerJS message waits for its target to connect before EXPIRE",
  },
  peerjsAliveMs: {
    flag: "peerjs-alive-ms",
    env: "SIGNALLER_PEERJS_ALIVE_MS",
    def: "90000",
    kind: "int",
    help: "a PeerJS socket silent this long (no HEARTBEAT) is closed",
  },
  yWebrtc: {
    flag: "y-webrtc",
    env: "SIGNALLER_Y_WEBRTC",
    kind: "switch",
    help: "serve y-webrtc clients on /y-webrtc (on, off; default: on, but off with --auth-secret)",
  },
  yWebrtcPingMs: {
    flag: "y-webrtc-ping-ms",
    env: "SIGNALLER_Y_WEBRTC_PING_MS",
    def: "30000",
    kind: "int",
    help: "ping period of y-webrtc sockets; one without a pong for as long is closed",
  },
  log: {
    flag: "log",
    env: "SIGNALLER_LOG",
    def: DEFAULTS.log,
    kind: "level",
    help: "log level: debug, info, warn, error",
  },
};

/** Thrown for a bad flag or value; the message says which. */
export class ConfigError extends Error {}

/** Resolves the configuration from command-line `args` and environment `env`. */
export function parseConfig(args: string[], env: Record<string, string | undefined>): Config {
  const options: Record<string, { type: "string" | "boolean" }> = { help: { type: "boolean" } };
  for (const o of Object.values(OPTIONS)) {
    options[o.flag] = { type: o.kind === "bool" ? "boolean" : "string" };
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const config: Record<string, unknown> = { help: values.help === true };
  for (const [name, o] of Object.entries(OPTIONS)) {
    // An empty environment variable is as if unset (`PORT=` keeps the default port).
    const fromEnv = env[o.env] === "" ? undefined : env[o.env];
    const flag = values[o.flag];
    const raw = (typeof flag === "boolean" ? String(flag) : flag) ?? fromEnv ?? o.def;
    if (raw === undefined || raw === "") continue;
    config[name] = convert(o, raw);
  }
  if (config.redis !== undefined && config.redisCluster !== undefined) {
    throw new ConfigError("--redis and --redis-cluster exclude each other: give one");
  }
  return config as unknown as Config;
}

function convert(o: Option, raw: string): unknown {
  switch (o.kind) {
    case "int": {
      if (!/^\d+$/.test(raw)) {
        throw new ConfigError(`--${o.flag} (${o.env}) takes a non-negative integer, not ${raw}`);
      }
      return Number(raw);
    }
    case "bool": {
      const v = raw.toLowerCase();
      if (["1", "true", "yes", "on"].includes(v)) return true;
      if (["0", "false", "no", "off"].includes(v)) return false;
      throw new ConfigError(`${o.env} takes true or false, not ${raw}`);
    }
    case "list":
      return raw.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
    case "switch":
      if (!Object.hasOwn(SWITCH, raw)) {
        throw new ConfigError(`--${o.flag} takes on or off, not ${raw}`);
      }
      return SWITCH[raw];
    case "level":
      if (!(LEVELS as readonly string[]).includes(raw)) {
        throw new ConfigError(`--${o.flag} takes one of ${LEVELS.join(", ")}`);
      }
      return raw;
    default:
      return raw;
  }
}

const SWITCH: Record<string, boolean> = {
  on: true,
  off: false,
  true: true,
  false: false,
  yes: true,
  no: false,
  "1": true,
  "0": false,
};

/** The `--help` text. */
export function usage(): string {
  const lines = [
    "signaller — WebRTC signalling server for live streaming",
    "",
    "usage: deno run -A server.ts [options]    or    bun server.ts [options]",
    "",
    "Every option is also an environment variable; flags win. Durations in ms.",
    "",
  ];
  for (const o of Object.values(OPTIONS)) {
    const left = `  --${o.flag}${
      o.kind === "bool" ? "" : o.kind === "int" ? " N" : o.kind === "switch" ? " on|off" : " VALUE"
    }`;
    lines.push(`${left.padEnd(26)}${o.env.padEnd(26)}${o.help}${o.def ? ` [${o.def}]` : ""}`);
  }
  lines.push("  --help                  print this text");
  return lines.join("\n");
}
