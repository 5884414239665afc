/**
 * The Redis store's Lua scripts, the key names they share with the store, and
 * one decoder per reply shape.
 *
 * Keys, under the prefix (`DEFAULTS.redisPrefix` unless configured):
 *
 * | key                | type   | holds                                                     |
 * | ------------------ | ------ | --------------------------------------------------------- |
 * | `peer:<id>`        | hash   | name, meta (JSON), admin, resume (SHA-256 hex), node,     |
 * |                    |        | session, graceUntil, away, message; node '' in the grace; |
 * |                    |        | creates, createsUntil (channels made in the hour window)  |
 * | `peer:<id>:ch`     | zset   | the peer's channels, scored by join sequence              |
 * | `chan:<c>`         | hash   | created (Redis ms), key (SHA-256 hex; absent: unkeyed)    |
 * | `chan:<c>:ops`     | set    | operators                                                 |
 * | `chan:<c>:bans`    | set    | banned ids                                                |
 * | `chan:<c>:inv`     | zset   | invitee → expiry (Redis ms)                               |
 * | `chan:<c>:mem`     | zset   | members, scored by join sequence (join order)             |
 * | `node:<node>`      | set    | ids whose session lives on that node                      |
 * | `dead:<node>`      | string | the node was declared dead; its next beat learns so       |
 * | `seq`              | string | the join sequence                                         |
 * | `online`           | set    | ids with a live session                                   |
 * | `nodes`            | zset   | node → last beat (Redis ms)                               |
 * | `grace`            | zset   | ids in their grace → graceUntil (Redis ms)                |
 * | `stream:<s>`       | hash   | epoch, seq (last message) of stream `c:<c>` or `p:<id>`   |
 * | `stream:<s>:log`   | list   | the stream's last `history` messages, oldest first        |
 * | `epochs`           | string | counter that makes every stream epoch unique              |
 * | `generation`       | string | made by the first beat on an empty Redis: a Redis that    |
 * |                    |        | lost its state (restarted empty, flushed) has none or a   |
 * |                    |        | new one, and every node learns so at its next beat        |
 *
 * An empty channel's keys (all but `:mem`, which vanishes when empty) get a
 * TTL of the retention time, so Redis forgets it; a join removes the TTL.
 *
 * A stream's two keys expire `historyTtlMs` after its last message (then a new
 * epoch starts); they are deleted when their channel is created anew or their
 * peer is created or forgotten, and an empty channel's shrink to its retention.
 *
 * The names are spelled once, in {@linkcode KEY_SCHEMA}: TypeScript builds them
 * with {@linkcode redisKeys}, and every script with the Lua table `K`, generated
 * from the same schema. A script finds most keys at run time (a peer's channels,
 * a dead node's peers), so they cannot all arrive in `KEYS`; this is why the
 * store needs one Redis (standalone, or a primary with replicas), not a Redis
 * Cluster.
 *
 * @module
 */
import type { Redis } from "ioredis";
import { type Code, Codes, type PeerEntry } from "../../protocol/mod.ts";
import type {
  Appended,
  ChannelView,
  Claimed,
  Expired,
  Fail,
  Joined,
  PeerView,
  Position,
  Routed,
  Touched,
} from "./store.ts";

/** Every key name: `{}` stands for the builder's argument. */
export const KEY_SCHEMA = {
  peer: "peer:{}",
  peerChannels: "peer:{}:ch",
  channel: "chan:{}",
  channelOps: "chan:{}:ops",
  channelBans: "chan:{}:bans",
  channelInvites: "chan:{}:inv",
  channelMembers: "chan:{}:mem",
  nodePeers: "node:{}",
  deadNode: "dead:{}",
  seq: "seq",
  online: "online",
  nodes: "nodes",
  grace: "grace",
  stream: "stream:{}",
  streamLog: "stream:{}:log",
  epochs: "epochs",
  generation: "generation",
} as const;

type Schema = typeof KEY_SCHEMA;

/** Key names under one prefix: a function for each key with an argument, a string otherwise. */
export type RedisKeys = {
  [K in keyof Schema]: Schema[K] extends `${string}{}${string}` ? (x: string) => string : string;
};

/** Builds the key names under `prefix`, e.g. `redisKeys("signaller:").peer(id)`. */
export function redisKeys(prefix: string): RedisKeys {
  const keys: Record<string, string | ((x: string) => string)> = {};
  for (const [name, template] of Object.entries(KEY_SCHEMA)) {
    const [head, tail] = template.split("{}");
    keys[name] = tail === undefined ? prefix + head : (x: string) => prefix + head + x + tail;
  }
  return keys as RedisKeys;
}

/** The Lua table `K` of key names, the counterpart of {@linkcode redisKeys}. */
function luaKeys(): string {
  const lines = ["local K = {}"];
  for (const [name, template] of Object.entries(KEY_SCHEMA)) {
    const [head, tail] = template.split("{}");
    lines.push(
      tail === undefined
        ? `K.${name} = P .. '${head}'`
        : `K.${name} = function(x) return P .. '${head}' .. x${
          tail === "" ? "" : ` .. '${tail}'`
        } end`,
    );
  }
  return lines.join("\n");
}

/** The window of the channel creation limit, ms. */
const HOUR_MS = 3_600_000;

/** How long a `dead:<node>` mark waits for the node's next beat, ms. */
const DEAD_MARK_MS = 3_600_000;

/**
 * Shared by every script. ARGV[1] is the key prefix and ARGV[2] the channel
 * retention time (ms); a script's own arguments start at ARGV[3].
 */
const LIB = `
local P = ARGV[1]
local RETENTION = tonumber(ARGV[2])
${luaKeys()}

-- The keys an empty channel keeps for its retention time (':mem' vanishes when empty).
local function retained(c)
  return { K.channel(c), K.channelOps(c), K.channelBans(c), K.channelInvites(c) }
end

-- Redis time in ms: one clock for all nodes. Every deadline (grace, invite expiry, channel
-- creation, heartbeats, the creation window) is computed from it, never from a node's clock:
-- nodes whose clocks disagree still agree on when a grace ends.
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Whether the hash a client's secret (resume token, channel key) gave matches the stored one.
-- Secrets never reach Redis: the node sends SHA-256 hashes, and only hashes are stored. '=='
-- may stop at the first differing character, so its timing can tell how long a prefix of the
-- stored hash a guess's hash shares; but nobody can choose a guess whose hash starts with a
-- chosen prefix (that is inverting SHA-256), so that length tells nothing about the secret.
local function sameHash(given, stored)
  return given ~= '' and given == stored
end

local function isMember(c, id)
  return redis.call('ZSCORE', K.channelMembers(c), id) ~= false
end

-- Adds a member at the end of the join order; a retained empty channel is kept for good again.
local function enter(c, id)
  local mem = K.channelMembers(c)
  if redis.call('ZCARD', mem) == 0 then
    for _, k in ipairs(retained(c)) do redis.call('PERSIST', k) end
  end
  local seq = redis.call('INCR', K.seq)
  redis.call('ZADD', mem, seq, id)
  redis.call('ZADD', K.peerChannels(id), seq, c)
end

-- A stream's keys: its epoch and seq, and its messages.
local function streamKeys(name)
  return K.stream(name), K.streamLog(name)
end

-- Removes a member; the last one out starts the channel's retention time. Returns the total.
local function leave(c, id)
  local mem = K.channelMembers(c)
  redis.call('ZREM', mem, id)
  redis.call('ZREM', K.peerChannels(id), c)
  local total = redis.call('ZCARD', mem)
  if total == 0 then
    for _, k in ipairs(retained(c)) do redis.call('PEXPIRE', k, RETENTION) end
    -- The stream goes with the channel at the latest (its own TTL may be shorter).
    for _, k in ipairs({ streamKeys('c:' .. c) }) do
      local ttl = redis.call('PTTL', k)
      if ttl == -1 or ttl > RETENTION then redis.call('PEXPIRE', k, RETENTION) end
    end
  end
  return total
end

-- A key written while the channel is empty expires with the rest of it.
local function settle(c)
  if redis.call('ZCARD', K.channelMembers(c)) > 0 then return end
  local ttl = redis.call('PTTL', K.channel(c))
  if ttl > 0 then
    for _, k in ipairs(retained(c)) do redis.call('PEXPIRE', k, ttl) end
  end
end

-- Moves every peer still live on 'node' into its grace (until 'graceUntil', Redis ms) and
-- forgets the node.
local function releaseNode(node, graceUntil)
  local np = K.nodePeers(node)
  for _, id in ipairs(redis.call('SMEMBERS', np)) do
    local pk = K.peer(id)
    if redis.call('HGET', pk, 'node') == node then
      redis.call('HSET', pk, 'node', '', 'graceUntil', graceUntil)
      redis.call('ZADD', K.grace, graceUntil, id)
      redis.call('SREM', K.online, id)
    end
  end
  redis.call('DEL', np)
  redis.call('ZREM', K.nodes, node)
end

-- A stream's epoch and last seq; a missing (new or expired) stream gets a fresh epoch,
-- kept 'ttl' ms. TIME alone could repeat (two streams in one microsecond, a clock set
-- back); the counter never does, so an epoch is never reused.
local function streamOpen(name, ttl)
  local sk, log = streamKeys(name)
  local f = redis.call('HMGET', sk, 'epoch', 'seq')
  if f[1] then return f[1], tonumber(f[2]) end
  local t = redis.call('TIME')
  local epoch = t[1] .. '.' .. t[2] .. '.' .. redis.call('INCR', K.epochs)
  redis.call('DEL', log)
  redis.call('HSET', sk, 'epoch', epoch, 'seq', 0)
  redis.call('PEXPIRE', sk, ttl)
  return epoch, 0
end

-- Appends a message (its JSON without the closing brace) to a stream; returns seq and text.
-- The history is a list, not a sorted set or a Redis stream: seqs are dense, so the list
-- holds exactly seqs (seq - LLEN + 1)..seq and a seq's index is plain arithmetic. RPUSH
-- and LTRIM are O(1) per message, and a replay is one LRANGE.
local function append(name, head, history, ttl)
  streamOpen(name, ttl)
  local sk, log = streamKeys(name)
  local seq = redis.call('HINCRBY', sk, 'seq', 1)
  local text = head .. ',"seq":' .. seq .. '}'
  redis.call('RPUSH', log, text)
  redis.call('LTRIM', log, -history, -1)
  redis.call('PEXPIRE', sk, ttl)
  redis.call('PEXPIRE', log, ttl)
  return seq, text
end

-- Publishes a stream message to its bus topic in the envelope format (server/bus/envelope.ts).
-- The origin is empty, never a node's id: every node delivers it, the sender's one included,
-- so all nodes deliver in seq order.
local function deliver(name, type_, seq, text, except)
  local header = '{"type":"' .. type_ .. '","seq":' .. seq
  if except then header = header .. ',"except":' .. cjson.encode(except) end
  redis.call('PUBLISH', P .. name, '\\n' .. header .. '}\\n' .. text)
end

-- Counts a channel creation against the peer's hourly allowance: 0 when it may create one,
-- else the ms until its window (a fixed hour from its first creation in it) ends.
local function createWait(id, now, max)
  local pk = K.peer(id)
  local f = redis.call('HMGET', pk, 'creates', 'createsUntil')
  local count, until_ = tonumber(f[1]) or 0, tonumber(f[2]) or 0
  if until_ <= now then
    count, until_ = 0, now + ${HOUR_MS}
    redis.call('HSET', pk, 'creates', 0, 'createsUntil', until_)
  end
  if count >= max then return until_ - now end
  redis.call('HINCRBY', pk, 'creates', 1)
  return 0
end

-- The operator check of kick, ban and unban: an error code, or nil when allowed.
local function opCheck(by, target, c)
  if redis.call('EXISTS', K.channel(c)) == 0 then return ${Codes.ERR_NOSUCHCHANNEL} end
  if by == target or redis.call('SISMEMBER', K.channelOps(c), by) == 0 then
    return ${Codes.ERR_CHANOPRIVSNEEDED}
  end
  return nil
end
`;

// ---- Replies and their decoders.

/** A script's reply as ioredis decodes it (Lua false and nil become null). */
export type Reply = null | string | number | Reply[];

/** A member count after a change. */
export interface Total {
  total: number;
}

const fail = (code: Reply): Fail => ({ error: Number(code) as Code });
/** A flag: `1` from a Redis command, `'1'` from a hash field. */
const bool = (r: Reply): boolean => r === 1 || r === "1";
/** An optional string (a hash field that may be missing). */
const optional = (r: Reply | undefined): string | undefined =>
  r === null || r === undefined ? undefined : String(r);
const list = (r: Reply): Reply[] => r as Reply[];

/** Pairs `[a, b, a, b, ...]` into `[[a, b], ...]`. */
function pairs(flat: Reply[]): [string, Reply][] {
  const out: [string, Reply][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([String(flat[i]), flat[i + 1]]);
  return out;
}

/** `{channel, total, channel, total, ...}`. */
function touched(flat: Reply): Touched[] {
  return pairs(list(flat)).map(([channel, total]) => ({ channel, total: Number(total) }));
}

/** `{0, ...}` on success, whose fields follow; `{code}` on failure. */
function succeeded(r: Reply): Reply[] | Fail {
  const a = list(r);
  return a[0] === 0 ? a : fail(a[0]);
}

/** A script whose reply means nothing. */
function decodeNothing(): void {}

/**
 * `{0, 1}` for a new id; `{0, 0, oldNode, oldSession, away, channels, message}`
 * on resume; `{code}` on failure.
 */
function decodeClaim(r: Reply): Claimed | Fail {
  const a = succeeded(r);
  if (!Array.isArray(a)) return a;
  if (a[1] === 1) return { fresh: true, channels: [], away: false };
  const [, , node, session, away, channels, message] = a;
  const claimed: Claimed = { fresh: false, channels: list(channels) as string[], away: bool(away) };
  if (message !== null && message !== undefined) claimed.message = String(message);
  if (node !== "") claimed.replaced = { node: String(node), session: String(session) };
  return claimed;
}

/** One `{id, channel, total, channel, total, ...}` per expired peer. */
function decodeExpired(r: Reply): Expired[] {
  return list(r).map((entry) => {
    const [id, ...flat] = list(entry);
    return { id: String(id), channels: touched(flat) };
  });
}

/** What a beat learns: whether this node had been declared dead, and Redis' generation. */
export interface Beat {
  declaredDead: boolean;
  generation: string;
}

/** `{declaredDead, generation}`. */
function decodeBeat(r: Reply): Beat {
  const [dead, generation] = list(r);
  return { declaredDead: dead === 1, generation: String(generation) };
}

/** `{name, meta, admin, away, node, {channel, keyed, ...}, message}`, or null. */
function decodePeer(r: Reply): Omit<PeerView, "id"> | null {
  if (r === null) return null;
  const [name, meta, admin, away, node, chans, message] = list(r);
  const view: Omit<PeerView, "id"> = {
    name: String(name),
    meta: JSON.parse(String(meta)),
    admin: bool(admin),
    away: bool(away),
    online: node !== "",
    channels: pairs(list(chans)).map(([channel, keyed]) => ({ channel, keyed: bool(keyed) })),
  };
  const m = optional(message);
  if (m !== undefined) view.message = m;
  return view;
}

/** The peer's away state after `/away`. */
export interface AwayReply {
  away: boolean;
  message?: string;
  channels: Touched[];
}

/** `{away, {channel, total, ...}, message}`. */
function decodeAway(r: Reply): AwayReply {
  const [away, chans, message] = list(r);
  const channels = touched(chans);
  const m = optional(message);
  return m === undefined
    ? { away: away === 1, channels }
    : { away: away === 1, message: m, channels };
}

/** `{0, created, op, already, total}`, `{263, retryAfterMs}` or `{code}`. */
function decodeJoin(r: Reply): Joined | Fail {
  const a = succeeded(r);
  if (!Array.isArray(a) && a.error === Codes.RPL_TRYAGAIN) {
    return { error: a.error, retryAfterMs: Number(list(r)[1]) };
  }
  if (!Array.isArray(a)) return a;
  return { created: a[1] === 1, op: a[2] === 1, already: a[3] === 1, total: Number(a[4]) };
}

/** `{0, total}` or `{code}`. */
function decodeTotal(r: Reply): Total | Fail {
  const a = succeeded(r);
  return Array.isArray(a) ? { total: Number(a[1]) } : a;
}

/** `{0, total, wasMember}` or `{code}`. */
function decodeBan(r: Reply): (Total & { wasMember: boolean }) | Fail {
  const a = succeeded(r);
  return Array.isArray(a) ? { total: Number(a[1]), wasMember: a[2] === 1 } : a;
}

/** A list of strings. */
function decodeStrings(r: Reply): string[] {
  return list(r).map(String);
}

/** `{created, keyed, total, operators}`, or null. */
function decodeChannel(r: Reply): Omit<ChannelView, "channel"> | null {
  if (r === null) return null;
  const [created, keyed, total, operators] = list(r);
  return {
    created: Number(created),
    keyed: keyed === 1,
    operators: decodeStrings(operators),
    total: Number(total),
  };
}

/** One `{id, name, op, away, node, message}` per member. */
function decodeMembers(r: Reply): PeerEntry[] {
  return list(r).map((m) => {
    const [id, name, op, away, node, message] = list(m);
    const e: PeerEntry = {
      id: String(id),
      name: String(name),
      op: op === 1,
      away: away === "1",
      online: node !== "" && node !== null,
    };
    const msg = optional(message);
    if (msg !== undefined) e.message = msg;
    return e;
  });
}

/** `{seq, text}`. */
function decodeAppended(r: Reply): Appended {
  const [seq, text] = list(r);
  return { seq: Number(seq), text: String(text) };
}

/** `{seq, text, online, away, message}`, or null when the peer is unknown. */
function decodeRouted(r: Reply): Routed | null {
  if (r === null) return null;
  const [seq, text, online, away, message] = list(r);
  const routed: Routed = {
    seq: Number(seq),
    text: String(text),
    online: online === 1,
    away: bool(away),
  };
  const m = optional(message);
  if (m !== undefined) routed.message = m;
  return routed;
}

/** `{epoch, seq}`. */
function decodePosition(r: Reply): Position {
  const [epoch, seq] = list(r);
  return { epoch: String(epoch), seq: Number(seq) };
}

/** The texts, or null. */
function decodeSince(r: Reply): string[] | null {
  return r === null ? null : decodeStrings(r);
}

// ---- The scripts.

/** A script argument. */
export type Arg = string | number;

/** A script: its Lua (with {@linkcode LIB}), its arguments' types and its reply's decoder. */
export interface Script<A extends readonly Arg[], T> {
  lua: string;
  decode(reply: Reply): T;
  /** Only a type: the script's own arguments, ARGV[3] onwards. */
  args?: A;
}

function script<A extends readonly Arg[], T>(body: string, decode: (r: Reply) => T): Script<A, T> {
  return { lua: LIB + body, decode };
}

/** 1 or 0, as flags travel to a script. */
type Flag = 0 | 1;

/** Every script, by name. */
export const SCRIPTS = {
  /**
   * Takes an id: new (stored with the fresh hash), or resumed with the matching
   * resume hash (taking over the live session or ending the grace); 433 otherwise.
   * The claiming node is registered as alive so its peers are never orphaned.
   */
  claim: script<
    [
      id: string,
      name: string,
      meta: string,
      admin: Flag,
      resumeHash: string,
      freshHash: string,
      node: string,
      session: string,
    ],
    Claimed | Fail
  >(
    `
local id, name, meta, admin, resumeHash, freshHash, node, session = unpack(ARGV, 3)
local pk = K.peer(id)
redis.call('ZADD', K.nodes, 'NX', nowMs(), node)
if redis.call('EXISTS', pk) == 0 then
  -- A new peer never inherits the inbox of a forgotten one with the same id.
  redis.call('DEL', streamKeys('p:' .. id))
  redis.call('HSET', pk, 'name', name, 'meta', meta, 'admin', admin, 'resume', freshHash,
    'node', node, 'session', session, 'graceUntil', 0, 'away', 0)
  redis.call('SADD', K.online, id)
  redis.call('SADD', K.nodePeers(node), id)
  return { 0, 1 }
end
if not sameHash(resumeHash, redis.call('HGET', pk, 'resume')) then
  return { ${Codes.ERR_NICKNAMEINUSE} }
end
local f = redis.call('HMGET', pk, 'node', 'session', 'away', 'message')
if f[1] ~= '' then
  redis.call('SREM', K.nodePeers(f[1]), id)
else
  redis.call('ZREM', K.grace, id)
end
redis.call('HSET', pk, 'name', name, 'meta', meta, 'admin', admin,
  'node', node, 'session', session, 'graceUntil', 0)
redis.call('SADD', K.online, id)
redis.call('SADD', K.nodePeers(node), id)
return { 0, 0, f[1], f[2], f[3], redis.call('ZRANGE', K.peerChannels(id), 0, -1), f[4] }
`,
    decodeClaim,
  ),

  /** Updates name, meta and admin if `session` holds the peer. */
  describe: script<[id: string, session: string, name: string, meta: string, admin: Flag], void>(
    `
local id, session, name, meta, admin = unpack(ARGV, 3)
local pk = K.peer(id)
if redis.call('HGET', pk, 'session') == session then
  redis.call('HSET', pk, 'name', name, 'meta', meta, 'admin', admin)
end
return 0
`,
    decodeNothing,
  ),

  /** Puts a live peer held by `session` into its grace, `graceMs` from now (Redis time). */
  release: script<[id: string, session: string, graceMs: number], void>(
    `
local id, session, graceMs = unpack(ARGV, 3)
local pk = K.peer(id)
local f = redis.call('HMGET', pk, 'session', 'node')
if f[1] == session and f[2] and f[2] ~= '' then
  local graceUntil = nowMs() + math.max(0, tonumber(graceMs))
  redis.call('SREM', K.nodePeers(f[2]), id)
  redis.call('SREM', K.online, id)
  redis.call('HSET', pk, 'node', '', 'graceUntil', graceUntil)
  redis.call('ZADD', K.grace, graceUntil, id)
end
return 0
`,
    decodeNothing,
  ),

  /**
   * First declares dead the nodes whose last beat (Redis time) is older than
   * `deadMs`, giving their peers the full grace from now (Redis time); then
   * removes, from their channels and from the store, at most `batch` peers whose
   * grace ended by Redis time + `aheadMs` (0 but in tests that move time forward).
   */
  expire: script<[aheadMs: number, graceMs: number, deadMs: number, batch: number], Expired[]>(
    `
local aheadMs, graceMs, deadMs, batch = unpack(ARGV, 3)
local redisNow = nowMs()
local now = redisNow + tonumber(aheadMs)
local dead = redis.call('ZRANGEBYSCORE', K.nodes, '-inf', redisNow - tonumber(deadMs))
for _, node in ipairs(dead) do
  releaseNode(node, redisNow + tonumber(graceMs))
  -- Tells the node, should it be alive after all, that its sessions are over.
  redis.call('SET', K.deadNode(node), 1, 'PX', ${DEAD_MARK_MS})
end
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K.grace, '-inf', now, 'LIMIT', 0, batch)) do
  local entry = { id }
  for _, c in ipairs(redis.call('ZRANGE', K.peerChannels(id), 0, -1)) do
    if redis.call('EXISTS', K.channel(c)) == 1 then
      entry[#entry + 1] = c
      entry[#entry + 1] = leave(c, id)
    end
  end
  redis.call('DEL', K.peer(id), K.peerChannels(id), streamKeys('p:' .. id))
  redis.call('ZREM', K.grace, id)
  out[#out + 1] = entry
end
return out
`,
    decodeExpired,
  ),

  /**
   * Records this node's beat; tells whether it had been declared dead (it also
   * runs on a node declared dead while stalled: it is alive again for the peers
   * it claims next), and Redis' generation, which changes when Redis lost its state.
   */
  beat: script<[node: string], Beat>(
    `
local node = ARGV[3]
local declaredDead = redis.call('DEL', K.deadNode(node))
redis.call('ZADD', K.nodes, nowMs(), node)
local generation = redis.call('GET', K.generation)
if not generation then
  -- An empty Redis: the first beat names its state. TIME and the beating node make it
  -- unique; a counter would not do, it would be lost with the rest.
  local t = redis.call('TIME')
  generation = t[1] .. '.' .. t[2] .. '.' .. node
  redis.call('SET', K.generation, generation)
end
return { declaredDead, generation }
`,
    decodeBeat,
  ),

  /**
   * A node's shutdown (or its successor's start): its remaining peers enter
   * their grace. A death mark the cluster left for it is cleared: it belonged
   * to the process that died, and a successor must not take it as its own.
   */
  nodeDown: script<[node: string, graceMs: number], void>(
    `
local node, graceMs = unpack(ARGV, 3)
releaseNode(node, nowMs() + tonumber(graceMs))
redis.call('DEL', K.deadNode(node))
return 0
`,
    decodeNothing,
  ),

  /**
   * Writes back a peer this node holds, after Redis lost its state: the peer
   * (with its resume hash, on this node and session) unless the id is held by
   * another session meanwhile (then 1, and nothing is written), and its
   * memberships (the channels after `message`, in join order). A channel that
   * is missing is made anew, unkeyed, with the peer as its operator.
   */
  restore: script<
    [
      id: string,
      name: string,
      meta: string,
      admin: Flag,
      resumeHash: string,
      node: string,
      session: string,
      away: Flag,
      hasMessage: Flag,
      message: string,
      ...channels: string[],
    ],
    boolean
  >(
    `
local id, name, meta, admin, resume, node, session, away, hasMessage, message = unpack(ARGV, 3, 12)
local pk = K.peer(id)
local now = nowMs()
redis.call('ZADD', K.nodes, 'NX', now, node)
local held = redis.call('HGET', pk, 'session')
if held and held ~= session then return 1 end
if not held then
  redis.call('HSET', pk, 'name', name, 'meta', meta, 'admin', admin, 'resume', resume,
    'node', node, 'session', session, 'graceUntil', 0, 'away', away)
  if hasMessage == '1' then redis.call('HSET', pk, 'message', message) end
  redis.call('SADD', K.online, id)
  redis.call('SADD', K.nodePeers(node), id)
end
for i = 13, #ARGV do
  local c = ARGV[i]
  if redis.call('EXISTS', K.channel(c)) == 0 then
    redis.call('DEL', K.channelOps(c), K.channelBans(c), K.channelInvites(c),
      K.channelMembers(c), streamKeys('c:' .. c))
    redis.call('HSET', K.channel(c), 'created', now)
    redis.call('SADD', K.channelOps(c), id)
  end
  if not isMember(c, id) then enter(c, id) end
end
return 0
`,
    (r) => r === 1,
  ),

  /** One peer, or null. */
  getPeer: script<[id: string], Omit<PeerView, "id"> | null>(
    `
local id = ARGV[3]
local f = redis.call('HMGET', K.peer(id), 'name', 'meta', 'admin', 'away', 'node', 'message')
if not f[1] then return false end
local chans = {}
for _, c in ipairs(redis.call('ZRANGE', K.peerChannels(id), 0, -1)) do
  chans[#chans + 1] = c
  chans[#chans + 1] = redis.call('HEXISTS', K.channel(c), 'key')
end
return { f[1], f[2], f[3], f[4], f[5], chans, f[6] }
`,
    decodePeer,
  ),

  /** Sets ('1'), clears ('0') or toggles ('t') away; the message counts when `hasMessage` is 1. */
  setAway: script<
    [id: string, mode: "1" | "0" | "t", hasMessage: Flag, message: string],
    AwayReply
  >(
    `
local id, mode, hasMessage, message = unpack(ARGV, 3)
local pk = K.peer(id)
if redis.call('EXISTS', pk) == 0 then return { 0, {} } end
local away
if mode == 't' then away = redis.call('HGET', pk, 'away') ~= '1' else away = mode == '1' end
if away and hasMessage == '1' then
  redis.call('HSET', pk, 'away', 1, 'message', message)
else
  redis.call('HSET', pk, 'away', away and 1 or 0)
  redis.call('HDEL', pk, 'message')
end
local chans = {}
for _, c in ipairs(redis.call('ZRANGE', K.peerChannels(id), 0, -1)) do
  chans[#chans + 1] = c
  chans[#chans + 1] = redis.call('ZCARD', K.channelMembers(c))
end
return { away and 1 or 0, chans, redis.call('HGET', pk, 'message') }
`,
    decodeAway,
  ),

  /**
   * Joins, creating the channel (key, creator as operator) when it does not
   * exist. Checks in protocol order: ban 474, key 475 (a live invite bypasses
   * it, once), full channel 471 (`maxMembers` 0: no limit), channel limit 405;
   * creating one also counts against the hourly `maxCreates` (263 with the ms
   * to wait). `keyHash` is '' for none.
   */
  join: script<
    [
      id: string,
      channel: string,
      keyHash: string,
      maxChannels: number,
      maxMembers: number,
      maxCreates: number,
    ],
    Joined | Fail
  >(
    `
local id, c, keyHash, max, maxMembers, maxCreates = unpack(ARGV, 3)
max, maxMembers, maxCreates = tonumber(max), tonumber(maxMembers), tonumber(maxCreates)
if redis.call('EXISTS', K.peer(id)) == 0 then return { ${Codes.ERR_NOSUCHNICK} } end
local ck = K.channel(c)
local now = nowMs()
if redis.call('EXISTS', ck) == 0 then
  if redis.call('ZCARD', K.peerChannels(id)) >= max then return { ${Codes.ERR_TOOMANYCHANNELS} } end
  local wait = createWait(id, now, maxCreates)
  if wait > 0 then return { ${Codes.RPL_TRYAGAIN}, wait } end
  -- Parts of a forgotten channel may outlive its hash by a moment: never inherit them.
  redis.call('DEL', K.channelOps(c), K.channelBans(c), K.channelInvites(c), K.channelMembers(c),
    streamKeys('c:' .. c))
  redis.call('HSET', ck, 'created', now)
  if keyHash ~= '' then redis.call('HSET', ck, 'key', keyHash) end
  redis.call('SADD', K.channelOps(c), id)
  enter(c, id)
  return { 0, 1, 1, 0, 1 }
end
local op = redis.call('SISMEMBER', K.channelOps(c), id)
if isMember(c, id) then return { 0, 0, op, 1, redis.call('ZCARD', K.channelMembers(c)) } end
if redis.call('SISMEMBER', K.channelBans(c), id) == 1 then
  return { ${Codes.ERR_BANNEDFROMCHAN} }
end
local inv = K.channelInvites(c)
local until_ = redis.call('ZSCORE', inv, id)
local invited = until_ ~= false and tonumber(until_) > now
local key = redis.call('HGET', ck, 'key')
if key and not invited and not sameHash(keyHash, key) then
  return { ${Codes.ERR_BADCHANNELKEY} }
end
if maxMembers > 0 and redis.call('ZCARD', K.channelMembers(c)) >= maxMembers then
  return { ${Codes.ERR_CHANNELISFULL} }
end
if redis.call('ZCARD', K.peerChannels(id)) >= max then return { ${Codes.ERR_TOOMANYCHANNELS} } end
redis.call('ZREM', inv, id)
redis.call('ZREMRANGEBYSCORE', inv, '-inf', now)
enter(c, id)
return { 0, 0, op, 0, redis.call('ZCARD', K.channelMembers(c)) }
`,
    decodeJoin,
  ),

  /** Leaves a channel: 403, 442. */
  quit: script<[id: string, channel: string], Total | Fail>(
    `
local id, c = unpack(ARGV, 3)
if redis.call('EXISTS', K.channel(c)) == 0 then return { ${Codes.ERR_NOSUCHCHANNEL} } end
if not isMember(c, id) then return { ${Codes.ERR_NOTONCHANNEL} } end
return { 0, leave(c, id) }
`,
    decodeTotal,
  ),

  /** Operator removes a member: 403, 482, 441. */
  kick: script<[by: string, target: string, channel: string], Total | Fail>(
    `
local by, target, c = unpack(ARGV, 3)
local err = opCheck(by, target, c)
if err then return { err } end
if not isMember(c, target) then return { ${Codes.ERR_USERNOTINCHANNEL} } end
return { 0, leave(c, target) }
`,
    decodeTotal,
  ),

  /**
   * Operator bans a peer, dropping its operator right and invite and removing
   * it if a member: 403, 482; 478 when `maxBans` others are banned already.
   */
  ban: script<
    [by: string, target: string, channel: string, maxBans: number],
    (Total & { wasMember: boolean }) | Fail
  >(
    `
local by, target, c, maxBans = unpack(ARGV, 3)
local err = opCheck(by, target, c)
if err then return { err } end
local bans = K.channelBans(c)
if redis.call('SISMEMBER', bans, target) == 0 and redis.call('SCARD', bans) >= tonumber(maxBans) then
  return { ${Codes.ERR_BANLISTFULL} }
end
redis.call('SADD', K.channelBans(c), target)
redis.call('SREM', K.channelOps(c), target)
redis.call('ZREM', K.channelInvites(c), target)
if isMember(c, target) then return { 0, leave(c, target), 1 } end
settle(c)
return { 0, redis.call('ZCARD', K.channelMembers(c)), 0 }
`,
    decodeBan,
  ),

  /** Operator lifts a ban: 403, 482. */
  unban: script<[by: string, target: string, channel: string], Total | Fail>(
    `
local by, target, c = unpack(ARGV, 3)
local err = opCheck(by, target, c)
if err then return { err } end
redis.call('SREM', K.channelBans(c), target)
return { 0, redis.call('ZCARD', K.channelMembers(c)) }
`,
    decodeTotal,
  ),

  /**
   * Member invites a peer for the retention time: 403, 442, 443, 474; 478 when
   * `maxInvites` others are pending already.
   */
  invite: script<
    [by: string, target: string, channel: string, maxInvites: number],
    Total | Fail
  >(
    `
local by, target, c, maxInvites = unpack(ARGV, 3)
if redis.call('EXISTS', K.channel(c)) == 0 then return { ${Codes.ERR_NOSUCHCHANNEL} } end
if not isMember(c, by) then return { ${Codes.ERR_NOTONCHANNEL} } end
if isMember(c, target) then return { ${Codes.ERR_USERONCHANNEL} } end
if redis.call('SISMEMBER', K.channelBans(c), target) == 1 then
  return { ${Codes.ERR_BANNEDFROMCHAN} }
end
local inv = K.channelInvites(c)
local now = nowMs()
redis.call('ZREMRANGEBYSCORE', inv, '-inf', now)
if redis.call('ZSCORE', inv, target) == false and redis.call('ZCARD', inv) >= tonumber(maxInvites)
then
  return { ${Codes.ERR_BANLISTFULL} }
end
redis.call('ZADD', inv, now + RETENTION, target)
return { 0, redis.call('ZCARD', K.channelMembers(c)) }
`,
    decodeTotal,
  ),

  /** The channels (the arguments after `id`) where `id` is an operator. */
  operatorOf: script<[id: string, ...channels: string[]], string[]>(
    `
local id = ARGV[3]
local out = {}
for i = 4, #ARGV do
  if redis.call('SISMEMBER', K.channelOps(ARGV[i]), id) == 1 then out[#out + 1] = ARGV[i] end
end
return out
`,
    decodeStrings,
  ),

  /**
   * Appends a `/pubmsg` to the channel's stream and publishes it to `c:<channel>`
   * for every node, in one step: seq order is delivery order on every node.
   */
  publish: script<
    [channel: string, head: string, except: string, history: number, ttlMs: number],
    Appended
  >(
    `
local c, head, except, history, ttl = unpack(ARGV, 3)
local name = 'c:' .. c
local seq, text = append(name, head, tonumber(history), tonumber(ttl))
deliver(name, 'pubmsg', seq, text, except)
return { seq, text }
`,
    decodeAppended,
  ),

  /**
   * Appends a `/privmsg` to the inbox of a peer online or in its grace and
   * publishes it to `p:<peer>`; null (nothing stored) when the peer is unknown.
   */
  route: script<[peer: string, head: string, history: number, ttlMs: number], Routed | null>(
    `
local id, head, history, ttl = unpack(ARGV, 3)
local f = redis.call('HMGET', K.peer(id), 'name', 'node', 'away', 'message')
if not f[1] then return false end
local name = 'p:' .. id
local seq, text = append(name, head, tonumber(history), tonumber(ttl))
deliver(name, 'privmsg', seq, text, nil)
return { seq, text, (f[2] and f[2] ~= '') and 1 or 0, f[3], f[4] }
`,
    decodeRouted,
  ),

  /** A stream's epoch (made now when missing) and last seq. */
  position: script<[stream: string, ttlMs: number], Position>(
    `
local name, ttl = unpack(ARGV, 3)
local epoch, seq = streamOpen(name, tonumber(ttl))
return { epoch, seq }
`,
    decodePosition,
  ),

  /**
   * The messages after `fromSeq` in epoch `epoch`, oldest first; null when the
   * epoch differs or any of them is no longer in the list (never a partial replay).
   */
  since: script<
    [stream: string, epoch: string, fromSeq: number, reader: string],
    string[] | null
  >(
    `
local name, epoch, from, reader = unpack(ARGV, 3)
from = tonumber(from)
-- A channel's history is for its members only, checked in the same step as the read.
if string.sub(name, 1, 2) == 'c:' and not isMember(string.sub(name, 3), reader) then
  return false
end
local sk, log = streamKeys(name)
local f = redis.call('HMGET', sk, 'epoch', 'seq')
if not f[1] or f[1] ~= epoch then return false end
local seq = tonumber(f[2])
if from == nil or from < 0 or from > seq then return false end
if from == seq then return {} end
local first = seq - redis.call('LLEN', log) + 1
if from + 1 < first then return false end
return redis.call('LRANGE', log, from + 1 - first, -1)
`,
    decodeSince,
  ),

  /** One channel, or null. */
  getChannel: script<[channel: string], Omit<ChannelView, "channel"> | null>(
    `
local c = ARGV[3]
local created = redis.call('HGET', K.channel(c), 'created')
if not created then return false end
return { created, redis.call('HEXISTS', K.channel(c), 'key'),
  redis.call('ZCARD', K.channelMembers(c)), redis.call('SMEMBERS', K.channelOps(c)) }
`,
    decodeChannel,
  ),

  /** A page of members in join order. */
  members: script<[channel: string, offset: number, limit: number], PeerEntry[]>(
    `
local c, offset, limit = unpack(ARGV, 3)
offset, limit = tonumber(offset), tonumber(limit)
local out = {}
if limit <= 0 then return out end
local ops = K.channelOps(c)
for _, id in ipairs(redis.call('ZRANGE', K.channelMembers(c), offset, offset + limit - 1)) do
  local f = redis.call('HMGET', K.peer(id), 'name', 'away', 'node', 'message')
  out[#out + 1] = { id, f[1] or '', redis.call('SISMEMBER', ops, id), f[2], f[3], f[4] }
end
return out
`,
    decodeMembers,
  ),
};

/** A script's name. */
export type ScriptName = keyof typeof SCRIPTS;
/** The arguments a script takes after the shared ones. */
export type ScriptArgs<N extends ScriptName> = (typeof SCRIPTS)[N] extends Script<infer A, unknown>
  ? A
  : never;
/** What a script's reply decodes to. */
export type ScriptResult<N extends ScriptName> = (typeof SCRIPTS)[N] extends
  Script<readonly Arg[], infer T> ? T : never;

/** Calls a script by name and decodes its reply. */
export type RunScript = <N extends ScriptName>(
  name: N,
  ...args: ScriptArgs<N>
) => Promise<ScriptResult<N>>;

/** What every script receives before its own arguments. */
export interface ScriptContext {
  /** Prefix of every key. */
  prefix: string;
  /** How long an empty channel and a pending invite are kept, ms. */
  retentionMs: number;
}

type Commands = Record<string, (...args: Arg[]) => Promise<unknown>>;

/**
 * Defines every script on `redis` (ioredis sends each by its SHA and loads it
 * when Redis does not know it yet) and returns the typed way to call them.
 */
export function defineScripts(redis: Redis, context: ScriptContext): RunScript {
  for (const [name, s] of Object.entries(SCRIPTS)) {
    redis.defineCommand(commandOf(name), { numberOfKeys: 0, lua: s.lua });
  }
  const commands = redis as unknown as Commands;
  return async (name, ...args) => {
    const reply = await commands[commandOf(name)](context.prefix, context.retentionMs, ...args);
    return SCRIPTS[name].decode(reply as Reply) as ScriptResult<typeof name>;
  };
}

/** The client method of a script; prefixed, so no ioredis method (`quit`) is shadowed. */
function commandOf(name: string): string {
  return "sg_" + name;
}
