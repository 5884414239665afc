/**
 * The Redis store's Lua scripts, the key names they share with the store, and
 * one decoder per reply shape.
 *
 * ## Keys and slots
 *
 * Every key carries a hash tag (`{...}`), so the same scripts run on one Redis
 * and on a Redis Cluster: a channel's keys share the tag `{c:<channel>}`, a
 * peer's the tag `{p:<peer>}`, and node liveness the tag `{nodes}`. Each script
 * touches the keys of one tag only (one slot, never `CROSSSLOT`), and is routed
 * by a key of that tag (`KEYS[1]`). The prefix (`DEFAULTS.redisPrefix` unless
 * configured) comes first and must not contain `{` or `}`.
 *
 * | key                    | type   | holds                                                  |
 * | ---------------------- | ------ | ------------------------------------------------------ |
 * | `{p:<id>}`             | hash   | name, meta (JSON), admin, resume (SHA-256 hex), node,  |
 * |                        |        | session, graceUntil, away, message; node '' in the     |
 * |                        |        | grace; creates, createsUntil (the hourly window);      |
 * |                        |        | born (unique per incarnation of the id), jseq (join    |
 * |                        |        | counter); expiring (when its expiry began)             |
 * | `{p:<id>}:ch`          | zset   | the peer's channel index, scored by its join order     |
 * | `{p:<id>}:tok`         | hash   | channel → the token of the peer's latest join of it    |
 * | `{c:<c>}`              | hash   | created (Redis ms), key (SHA-256 hex; absent: unkeyed) |
 * | `{c:<c>}:ops`          | set    | operators                                              |
 * | `{c:<c>}:bans`         | set    | banned ids                                             |
 * | `{c:<c>}:inv`          | zset   | invitee → expiry (Redis ms)                            |
 * | `{c:<c>}:mem`          | zset   | members, scored by the channel's join sequence         |
 * | `{c:<c>}:tok`          | hash   | member → the token of its join                         |
 * | `{c:<c>}:seq`          | string | the channel's join sequence                            |
 * | `{<s>}:s`              | hash   | epoch, seq (last message) of stream `c:<c>` or `p:<id>`|
 * | `{<s>}:log`            | list   | the stream's last `history` messages, oldest first     |
 * | `{nodes}`              | zset   | node → last beat (Redis ms)                            |
 * | `{nodes}:peers:<node>` | hash   | session → id of the sessions a node holds              |
 * | `{nodes}:reap:<node>`  | hash   | the same, of a node being reaped (dead or shut down)   |
 * | `{nodes}:reaping`      | zset   | node being reaped → the grace end of its peers         |
 * | `{nodes}:grace`        | zset   | id → no later than its grace end (Redis ms)            |
 * | `{nodes}:dead:<node>`  | string | the node was declared dead; its next beat learns so    |
 * | `{nodes}:seen`         | string | the last beat or sweep (Redis ms): a long gap means    |
 * |                        |        | this slot was unreachable, and beats are forgiven      |
 * | `{nodes}:generation`   | string | made by the first beat on an empty Redis               |
 *
 * A stream's keys share the tag of its channel or peer (`{c:<c>}:s`), so a
 * message is appended and published (PUBLISH, or SPUBLISH to the sharded
 * channel `<prefix>{c:<c>}` on a cluster) in one script.
 *
 * An empty channel's keys (all but `:mem` and `:tok`, which vanish when empty)
 * get a TTL of the retention time, so Redis forgets it; a join removes the TTL.
 *
 * ## Operations across slots
 *
 * What one script did atomically across a peer and a channel is now a few
 * steps, each atomic in its slot, in an order that keeps these invariants
 * under races and when a node dies between two steps:
 *
 * 1. **The channel side is authoritative for membership.** `{c:<c>}:mem` says
 *    who is in a channel; the peer's index `{p:<id>}:ch` is a superset of the
 *    channels where it is a member. A join writes the index first (with a new
 *    token) and then the member (with that token); a leave, kick or ban removes
 *    the member first, and then the index entry only if its token is still the
 *    one the removed membership had. Every interleaving of a join and a
 *    kick of the same peer and channel ends with the index listing the channel
 *    whenever the peer is a member. A step lost to a crash leaves an index
 *    entry without membership: whoever reads the index (resume, `/whois`,
 *    `/away`, expiry) checks each entry against its channel and skips it; it is
 *    dropped when the peer expires, and counts against the channel limit until then.
 * 2. **The peer hash is authoritative for liveness** (`node`, `session`,
 *    `graceUntil`). The node index `{nodes}:peers:<node>` is a superset of the
 *    sessions whose hash names that node: a claim enlists the session before it
 *    writes the hash, a release delists it after. A node declared dead, or shut
 *    down, has its index moved to `{nodes}:reap:<node>`; each entry is parked
 *    (into its grace) only if the hash still names that session, then removed.
 *    A crash mid-reap leaves the rest for the next sweep of any node.
 * 3. **Every peer in its grace has a `{nodes}:grace` entry.** A release (or a
 *    reap) writes the entry, scored with the grace end, before it parks the
 *    peer; entries are removed by the sweep only, which checks the hash: a live
 *    or forgotten peer's entry is dropped (if its score is unchanged), a later
 *    grace re-scores it, an ended one expires. Two releases racing for one id
 *    leave the later score: that peer expires up to one grace late.
 *    Deadlines are computed on the `{nodes}` master's clock, the one the sweep
 *    compares them with; invites and creation windows live on the clock of
 *    their own slot.
 * 4. **An expiry is begun once.** `expireBegin` marks the peer `expiring`
 *    (a claim of the id answers 433 and a join 401 meanwhile); the node that
 *    marked it removes the peer from each indexed channel whose membership has
 *    the indexed token (so a quit is announced once per channel), then deletes
 *    the peer and its grace entry. A node that dies mid-expiry leaves the mark
 *    and the grace entry: after `deadMs` another sweep takes over, and only the
 *    channels not yet left are left (and announced).
 * 5. **A join that races its peer's expiry is undone**: after the member is
 *    written, the join checks that the peer is still the same incarnation and
 *    not expiring, and leaves again if not.
 *
 * Redis may lose its state; the `generation` (under `{nodes}`) tells a node so
 * at its next beat. On a cluster that detects the loss of the `{nodes}` slot
 * only: a master that loses other slots (restarted empty with no replica)
 * loses their peers and channels without the nodes writing them back.
 *
 * The names are spelled once, in {@linkcode KEY_SCHEMA}: TypeScript builds them
 * with {@linkcode redisKeys}, and every script with the Lua table `K`, generated
 * from the same schema.
 *
 * @module
 */
import { type Code, Codes } from "../../protocol/mod.ts";
import type { RedisClient } from "../redis_conn.ts";
import type { ChannelView, Fail, Joined, Position, Routed } from "./store.ts";

/** Every key name: `#` stands for the builder's argument. */
export const KEY_SCHEMA = {
  peer: "{p:#}",
  peerChannels: "{p:#}:ch",
  peerTokens: "{p:#}:tok",
  channel: "{c:#}",
  channelOps: "{c:#}:ops",
  channelBans: "{c:#}:bans",
  channelInvites: "{c:#}:inv",
  channelMembers: "{c:#}:mem",
  channelTokens: "{c:#}:tok",
  channelSeq: "{c:#}:seq",
  stream: "{#}:s",
  streamLog: "{#}:log",
  nodes: "{nodes}",
  nodePeers: "{nodes}:peers:#",
  reapPeers: "{nodes}:reap:#",
  reaping: "{nodes}:reaping",
  grace: "{nodes}:grace",
  deadNode: "{nodes}:dead:#",
  seen: "{nodes}:seen",
  generation: "{nodes}:generation",
} as const;

type Schema = typeof KEY_SCHEMA;

/** Key names under one prefix: a function for each key with an argument, a string otherwise. */
export type RedisKeys = {
  [K in keyof Schema]: Schema[K] extends `${string}#${string}` ? (x: string) => string : string;
};

/** Builds the key names under `prefix`, e.g. `redisKeys("signaller:").peer(id)`. */
export function redisKeys(prefix: string): RedisKeys {
  const keys: Record<string, string | ((x: string) => string)> = {};
  for (const [name, template] of Object.entries(KEY_SCHEMA)) {
    const [head, tail] = template.split("#");
    keys[name] = tail === undefined ? prefix + head : (x: string) => prefix + head + x + tail;
  }
  return keys as RedisKeys;
}

/** The Lua table `K` of key names, the counterpart of {@linkcode redisKeys}. */
function luaKeys(): string {
  const lines = ["local K = {}"];
  for (const [name, template] of Object.entries(KEY_SCHEMA)) {
    const [head, tail] = template.split("#");
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

/**
 * A silence of the liveness slot longer than this (no beat, no sweep from any node) is an
 * outage or a failover of that slot, not nodes dying, ms: above a beat and a sweep period.
 */
const SILENCE_MS = 3_000;

/** How long a `dead:<node>` mark waits for the node's next beat, ms. */
const DEAD_MARK_MS = 3_600_000;

/**
 * Shared by every script. ARGV[1] is the key prefix, ARGV[2] the channel
 * retention time (ms) and ARGV[3] the publish command (PUBLISH, or SPUBLISH on
 * a cluster); a script's own arguments start at ARGV[4]. KEYS[1] only routes
 * the script to its slot.
 */
const LIB = `
local P = ARGV[1]
local RETENTION = tonumber(ARGV[2])
local PUB = ARGV[3]
${luaKeys()}

-- The keys an empty channel keeps for its retention time (':mem' and ':tok' vanish when empty).
local function retained(c)
  return { K.channel(c), K.channelOps(c), K.channelBans(c), K.channelInvites(c), K.channelSeq(c) }
end

-- Redis time in ms. Every deadline is computed from the clock of the master that holds it and
-- compared on that same clock, never on a node's.
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

-- Adds a member at the end of the join order with its join token; a retained empty channel
-- is kept for good again.
local function enter(c, id, tok)
  local mem = K.channelMembers(c)
  if redis.call('ZCARD', mem) == 0 then
    for _, k in ipairs(retained(c)) do redis.call('PERSIST', k) end
  end
  redis.call('ZADD', mem, redis.call('INCR', K.channelSeq(c)), id)
  redis.call('HSET', K.channelTokens(c), id, tok)
end

-- A stream's keys: its epoch and seq, and its messages.
local function streamKeys(name)
  return K.stream(name), K.streamLog(name)
end

-- Removes a member; the last one out starts the channel's retention time. Returns the total
-- and the token of the membership removed.
local function leave(c, id)
  local mem = K.channelMembers(c)
  local tok = redis.call('HGET', K.channelTokens(c), id) or ''
  redis.call('ZREM', mem, id)
  redis.call('HDEL', K.channelTokens(c), id)
  local total = redis.call('ZCARD', mem)
  if total == 0 then
    for _, k in ipairs(retained(c)) do redis.call('PEXPIRE', k, RETENTION) end
    -- The stream goes with the channel at the latest (its own TTL may be shorter).
    for _, k in ipairs({ streamKeys('c:' .. c) }) do
      local ttl = redis.call('PTTL', k)
      if ttl == -1 or ttl > RETENTION then redis.call('PEXPIRE', k, RETENTION) end
    end
  end
  return total, tok
end

-- A key written while the channel is empty expires with the rest of it.
local function settle(c)
  if redis.call('ZCARD', K.channelMembers(c)) > 0 then return end
  local ttl = redis.call('PTTL', K.channel(c))
  if ttl > 0 then
    for _, k in ipairs(retained(c)) do redis.call('PEXPIRE', k, ttl) end
  end
end

-- A stream's epoch and last seq; a missing (new or expired) stream gets a fresh epoch, kept
-- 'ttl' ms. TIME alone could repeat (a clock set back, a failover to a master whose clock is
-- behind); the node's nonce (random per process, counted per call) never does.
local function streamOpen(name, ttl, nonce)
  local sk, log = streamKeys(name)
  local f = redis.call('HMGET', sk, 'epoch', 'seq')
  if f[1] then return f[1], tonumber(f[2]) end
  local t = redis.call('TIME')
  local epoch = t[1] .. '.' .. t[2] .. '.' .. nonce
  redis.call('DEL', log)
  redis.call('HSET', sk, 'epoch', epoch, 'seq', 0)
  redis.call('PEXPIRE', sk, ttl)
  return epoch, 0
end

-- Appends a message (its JSON without the closing brace) to a stream; returns seq and text.
-- The history is a list, not a sorted set or a Redis stream: seqs are dense, so the list
-- holds exactly seqs (seq - LLEN + 1)..seq and a seq's index is plain arithmetic. RPUSH
-- and LTRIM are O(1) per message, and a replay is one LRANGE.
local function append(name, head, history, ttl, nonce)
  streamOpen(name, ttl, nonce)
  local sk, log = streamKeys(name)
  local seq = redis.call('HINCRBY', sk, 'seq', 1)
  local text = head .. ',"seq":' .. seq .. '}'
  redis.call('RPUSH', log, text)
  redis.call('LTRIM', log, -history, -1)
  redis.call('PEXPIRE', sk, ttl)
  redis.call('PEXPIRE', log, ttl)
  return seq, text
end

-- The envelope header of a stream message (server/bus/envelope.ts).
local function header(type_, seq, except)
  local h = '{"type":"' .. type_ .. '","seq":' .. seq
  if except then h = h .. ',"except":' .. cjson.encode(except) end
  return h .. '}'
end

-- Publishes a stream message to its bus topic in the envelope format (server/bus/envelope.ts),
-- on the topic's Redis channel as server/bus/redis.ts names it. The origin is empty, never a
-- node's id: every node delivers it, the sender's one included, so all nodes deliver in seq
-- order.
local function deliver(name, type_, seq, text, except)
  redis.call(PUB, P .. '{' .. name .. '}', '\\n' .. header(type_, seq, except) .. '\\n' .. text)
end

-- A text's length in UTF-16 units, as the envelope batch format counts it: a byte that continues
-- a UTF-8 sequence adds nothing, one that starts a four-byte sequence (a surrogate pair) adds one.
local function utf16Length(text)
  local _, continuing = string.gsub(text, '[\\128-\\191]', '')
  local _, astral = string.gsub(text, '[\\240-\\244]', '')
  return #text - continuing + astral
end

-- Publishes several stream messages of one topic as one envelope batch (server/bus/envelope.ts):
-- each item is a seq, a text and its except; one message needs no batch.
local function deliverAll(name, type_, items)
  if #items == 1 then return deliver(name, type_, items[1][1], items[1][2], items[1][3]) end
  local out = { '\\n*' }
  for i, m in ipairs(items) do
    out[i + 1] = '\\n' .. header(type_, m[1], m[3]) .. '\\n' .. utf16Length(m[2]) .. '\\n' .. m[2]
  end
  redis.call(PUB, P .. '{' .. name .. '}', table.concat(out))
end

-- The operator check of kick, ban and unban: an error code, or nil when allowed.
local function opCheck(by, target, c)
  if redis.call('EXISTS', K.channel(c)) == 0 then return ${Codes.ERR_NOSUCHCHANNEL} end
  if by == target or redis.call('SISMEMBER', K.channelOps(c), by) == 0 then
    return ${Codes.ERR_CHANOPRIVSNEEDED}
  end
  return nil
end

-- The peer's channel index in join order, each with the token of its latest join.
local function indexed(id)
  local out = {}
  local toks = K.peerTokens(id)
  for _, c in ipairs(redis.call('ZRANGE', K.peerChannels(id), 0, -1)) do
    out[#out + 1] = c
    out[#out + 1] = redis.call('HGET', toks, c) or ''
  end
  return out
end

-- Indexes a channel for the peer with a new join token (the first join keeps its place).
local function index(id, c)
  local pk = K.peer(id)
  local j = redis.call('HINCRBY', pk, 'jseq', 1)
  local tok = redis.call('HGET', pk, 'born') .. ':' .. j
  redis.call('ZADD', K.peerChannels(id), 'NX', j, c)
  redis.call('HSET', K.peerTokens(id), c, tok)
  return tok
end

-- Moves a node's sessions to its reap list, every one to be parked with the grace end
-- 'graceUntil'.
local function reapNode(node, graceUntil)
  local np, rp = K.nodePeers(node), K.reapPeers(node)
  local flat = redis.call('HGETALL', np)
  for i = 1, #flat, 2 do redis.call('HSET', rp, flat[i], flat[i + 1]) end
  redis.call('DEL', np)
  redis.call('ZREM', K.nodes, node)
  if redis.call('EXISTS', rp) == 1 then redis.call('ZADD', K.reaping, graceUntil, node) end
end

-- Every beat and sweep notes its time. A gap of more than ${SILENCE_MS} ms since the last one
-- means nobody could reach this slot (its master failed over, Redis was away): nobody beat, and
-- nobody is dead for that. Every node's beat counts as made now, so a node is declared dead
-- only once the others have beaten for deadMs without it.
local function continuity(now)
  local last = tonumber(redis.call('GET', K.seen) or now)
  if now - last > ${SILENCE_MS} then
    for _, n in ipairs(redis.call('ZRANGE', K.nodes, 0, -1)) do redis.call('ZADD', K.nodes, now, n) end
  end
  redis.call('SET', K.seen, now)
end

-- Up to 'batch' sessions of a node being reaped: {session, id, ...}; each id gets its grace
-- entry now, before it is parked.
local function reapBatch(node, graceUntil, batch)
  local out = {}
  local flat = redis.call('HGETALL', K.reapPeers(node))
  for i = 1, math.min(#flat, batch * 2), 2 do
    redis.call('ZADD', K.grace, graceUntil, flat[i + 1])
    out[#out + 1] = flat[i]
    out[#out + 1] = flat[i + 1]
  end
  return out
end
`;

// ---- Replies and their decoders.

/** A script's reply as ioredis decodes it (Lua false and nil become null). */
export type Reply = null | string | number | Reply[];

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

/** A peer's channel index entry: the channel and the token of the peer's latest join. */
export interface Indexed {
  channel: string;
  tok: string;
}

/** `{channel, tok, channel, tok, ...}`. */
function decodeIndexed(flat: Reply): Indexed[] {
  return pairs(list(flat)).map(([channel, tok]) => ({ channel, tok: String(tok) }));
}

/** `{0, ...}` on success, whose fields follow; `{code}` on failure. */
function succeeded(r: Reply): Reply[] | Fail {
  const a = list(r);
  return a[0] === 0 ? a : fail(a[0]);
}

/** A script whose reply means nothing. */
function decodeNothing(): void {}

/** A number. */
function decodeNumber(r: Reply): number {
  return Number(r);
}

/** A flag. */
function decodeFlag(r: Reply): boolean {
  return r === 1;
}

/** What the peer step of a claim answers. */
export type ClaimReply =
  | { fresh: true }
  | {
    fresh: false;
    node: string;
    session: string;
    away: boolean;
    channels: Indexed[];
    message?: string;
  }
  | Fail;

/**
 * `{0, 1}` for a new id; `{0, 0, oldNode, oldSession, away, index, message}`
 * on resume; `{code}` on failure.
 */
function decodeClaim(r: Reply): ClaimReply {
  const a = succeeded(r);
  if (!Array.isArray(a)) return a;
  if (a[1] === 1) return { fresh: true };
  const [, , node, session, away, channels, message] = a;
  const c: ClaimReply = {
    fresh: false,
    node: String(node),
    session: String(session),
    away: bool(away),
    channels: decodeIndexed(channels),
  };
  const m = optional(message);
  if (m !== undefined) c.message = m;
  return c;
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

/** The peer's own fields as `/whois` shows them, with its channel index. */
export interface PeerFields {
  name: string;
  meta: Record<string, unknown>;
  admin: boolean;
  away: boolean;
  online: boolean;
  channels: Indexed[];
  message?: string;
}

/** `{name, meta, admin, away, node, index, message}`, or null. */
function decodePeer(r: Reply): PeerFields | null {
  if (r === null) return null;
  const [name, meta, admin, away, node, chans, message] = list(r);
  const view: PeerFields = {
    name: String(name),
    meta: JSON.parse(String(meta)),
    admin: bool(admin),
    away: bool(away),
    online: node !== "",
    channels: decodeIndexed(chans),
  };
  const m = optional(message);
  if (m !== undefined) view.message = m;
  return view;
}

/** The peer's away state after `/away`, with its channel index. */
export interface AwayReply {
  away: boolean;
  message?: string;
  channels: Indexed[];
}

/** `{away, index, message}`. */
function decodeAway(r: Reply): AwayReply {
  const [away, chans, message] = list(r);
  const channels = decodeIndexed(chans);
  const m = optional(message);
  return m === undefined
    ? { away: away === 1, channels }
    : { away: away === 1, message: m, channels };
}

/** The peer step of a join: the token to join with, and whether the channel limit is reached. */
export interface JoinPrep {
  tok: string;
  /** The peer has `maxChannels` channels and this is not one of them. */
  over: boolean;
}

/** `{0, over, tok}` or `{code}`. */
function decodeJoinPrep(r: Reply): JoinPrep | Fail {
  const a = succeeded(r);
  return Array.isArray(a) ? { over: a[1] === 1, tok: String(a[2]) } : a;
}

/** The channel step of a join; `create` when it may only go on with a creation allowance. */
export type JoinReply = Joined | Fail | { create: true };

/** `{0, created, op, already, total}`, `{-1}` (needs a creation allowance) or `{code}`. */
function decodeJoin(r: Reply): JoinReply {
  const a = list(r);
  if (a[0] === -1) return { create: true };
  const ok = succeeded(r);
  if (!Array.isArray(ok)) return ok;
  return { created: a[1] === 1, op: a[2] === 1, already: a[3] === 1, total: Number(a[4]) };
}

/** A member count after a change, and the token of the membership it removed ('' for none). */
export interface Left {
  total: number;
  tok: string;
}

/** `{0, total, tok}` or `{code}`. */
function decodeLeft(r: Reply): Left | Fail {
  const a = succeeded(r);
  return Array.isArray(a) ? { total: Number(a[1]), tok: String(a[2]) } : a;
}

/** `{0, total, wasMember, tok}` or `{code}`. */
function decodeBan(r: Reply): (Left & { wasMember: boolean }) | Fail {
  const a = succeeded(r);
  return Array.isArray(a) ? { total: Number(a[1]), wasMember: a[2] === 1, tok: String(a[3]) } : a;
}

/** A member count. */
export interface Total {
  total: number;
}

/** `{0, total}` or `{code}`. */
function decodeTotal(r: Reply): Total | Fail {
  const a = succeeded(r);
  return Array.isArray(a) ? { total: Number(a[1]) } : a;
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

/** A member as the channel knows it: its id and whether it is an operator. */
export interface MemberRef {
  id: string;
  op: boolean;
}

/** `{id, op, id, op, ...}`. */
function decodeMemberRefs(r: Reply): MemberRef[] {
  return pairs(list(r)).map(([id, op]) => ({ id, op: op === 1 }));
}

/** A channel as seen by one of its indexed peers. */
export interface ChannelOf {
  member: boolean;
  keyed: boolean;
  total: number;
}

/** `{member, keyed, total}`. */
function decodeChannelOf(r: Reply): ChannelOf {
  const [member, keyed, total] = list(r);
  return { member: member === 1, keyed: keyed === 1, total: Number(total) };
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

/** What the expiry of one peer found when it began. */
export type ExpireBegin =
  | { state: "gone" | "live" | "busy" }
  | { state: "later"; graceUntil: number }
  | { state: "due"; channels: Indexed[] };

/** `{0}` gone, `{1}` live, `{2, graceUntil}` later, `{3, index}` due, `{4}` busy. */
function decodeExpireBegin(r: Reply): ExpireBegin {
  const a = list(r);
  switch (a[0]) {
    case 1:
      return { state: "live" };
    case 2:
      return { state: "later", graceUntil: Number(a[1]) };
    case 3:
      return { state: "due", channels: decodeIndexed(a[1]) };
    case 4:
      return { state: "busy" };
    default:
      return { state: "gone" };
  }
}

/** A session to park: its id, and which node's reap list it is on. */
export interface Reaped {
  node: string;
  graceUntil: number;
  sessions: { session: string; id: string }[];
}

/** `{node, graceUntil, {session, id, ...}}` per node. */
function decodeReaps(r: Reply): Reaped[] {
  return list(r).map((e) => {
    const [node, graceUntil, flat] = list(e);
    return {
      node: String(node),
      graceUntil: Number(graceUntil),
      sessions: pairs(list(flat)).map(([session, id]) => ({ session, id: String(id) })),
    };
  });
}

/** What a sweep found: sessions of dead nodes to park, and grace entries that are due. */
export interface Sweep {
  /** The sweep's time (the `{nodes}` master's clock, moved forward by `aheadMs`). */
  now: number;
  reaps: Reaped[];
  due: { id: string; score: number }[];
}

/** `{now, reaps, {id, score, ...}}`. */
function decodeSweep(r: Reply): Sweep {
  const [now, reaps, due] = list(r);
  return {
    now: Number(now),
    reaps: decodeReaps(reaps),
    due: pairs(list(due)).map(([id, score]) => ({ id, score: Number(score) })),
  };
}

/** `{removed, total}`. */
function decodeLeftIf(r: Reply): { removed: boolean; total: number } {
  const [removed, total] = list(r);
  return { removed: removed === 1, total: Number(total) };
}

/** `{1}` when the id is held by another session; `{0, index}` once written. */
function decodeRestore(r: Reply): Indexed[] | null {
  const [taken, index] = list(r);
  return taken === 1 ? null : decodeIndexed(index);
}

// ---- The scripts.

/** A script argument. */
export type Arg = string | number;

/** The key a script is routed by: of its tag, from its arguments. */
type Route<A extends readonly Arg[]> = (k: RedisKeys, args: A) => string;

/** A script: its Lua (with {@linkcode LIB}), its arguments' types and its reply's decoder. */
export interface Script<A extends readonly Arg[], T> {
  lua: string;
  decode(reply: Reply): T;
  route: Route<A>;
}

function script<A extends readonly Arg[], T>(
  route: Route<A>,
  body: string,
  decode: (r: Reply) => T,
): Script<A, T> {
  return { lua: LIB + body, decode, route };
}

/** 1 or 0, as flags travel to a script. */
type Flag = 0 | 1;

// Routes: the first argument is the peer, the channel, or the stream; or the {nodes} slot.
const byPeer = <A extends readonly [string, ...Arg[]]>(k: RedisKeys, a: A) => k.peer(a[0]);
const byChannel = <A extends readonly [string, ...Arg[]]>(k: RedisKeys, a: A) => k.channel(a[0]);
const byStream = <A extends readonly [string, ...Arg[]]>(k: RedisKeys, a: A) => k.stream(a[0]);
const byNodes = (k: RedisKeys) => k.nodes;

/** Every script, by name. */
export const SCRIPTS = {
  // ---- A peer's slot.

  /**
   * Takes an id: new (stored with the fresh hash), or resumed with the matching
   * resume hash (taking over the live session or ending the grace); 433
   * otherwise, and while the id's expiry runs. Answers the session it took over
   * and the peer's channel index. The session is enlisted on its node before.
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
    ClaimReply
  >(
    byPeer,
    `
local id, name, meta, admin, resumeHash, freshHash, node, session = unpack(ARGV, 4)
local pk = K.peer(id)
if redis.call('EXISTS', pk) == 0 then
  -- A new peer never inherits the inbox or an index of a forgotten one with the same id.
  redis.call('DEL', K.peerChannels(id), K.peerTokens(id), streamKeys('p:' .. id))
  local t = redis.call('TIME')
  redis.call('HSET', pk, 'name', name, 'meta', meta, 'admin', admin, 'resume', freshHash,
    'node', node, 'session', session, 'graceUntil', 0, 'away', 0, 'born', t[1] .. '.' .. t[2],
    'jseq', 0)
  return { 0, 1 }
end
if redis.call('HEXISTS', pk, 'expiring') == 1 then return { ${Codes.ERR_NICKNAMEINUSE} } end
if not sameHash(resumeHash, redis.call('HGET', pk, 'resume')) then
  return { ${Codes.ERR_NICKNAMEINUSE} }
end
local f = redis.call('HMGET', pk, 'node', 'session', 'away', 'message')
redis.call('HSET', pk, 'name', name, 'meta', meta, 'admin', admin,
  'node', node, 'session', session, 'graceUntil', 0)
return { 0, 0, f[1], f[2], f[3], indexed(id), f[4] }
`,
    decodeClaim,
  ),

  /** Updates name, meta and admin if `session` holds the peer. */
  describe: script<[id: string, session: string, name: string, meta: string, admin: Flag], void>(
    byPeer,
    `
local id, session, name, meta, admin = unpack(ARGV, 4)
local pk = K.peer(id)
if redis.call('HGET', pk, 'session') == session then
  redis.call('HSET', pk, 'name', name, 'meta', meta, 'admin', admin)
end
return 0
`,
    decodeNothing,
  ),

  /**
   * Puts a live peer held by `session` into its grace until `graceUntil` (the
   * `{nodes}` clock, where its grace entry was written before); answers the
   * node it was live on, '' when `session` held it no longer.
   */
  park: script<[id: string, session: string, graceUntil: number], string>(
    byPeer,
    `
local id, session, graceUntil = unpack(ARGV, 4)
local pk = K.peer(id)
local f = redis.call('HMGET', pk, 'session', 'node')
if f[1] ~= session or not f[2] or f[2] == '' then return '' end
redis.call('HSET', pk, 'node', '', 'graceUntil', graceUntil)
return f[2]
`,
    String,
  ),

  /**
   * Begins the expiry of a peer whose grace entry is due at `now` (the
   * `{nodes}` clock): gone, live (the entry is stale), later (a newer grace),
   * busy (another node expires it, begun less than `takeoverMs` ago), or due:
   * marked expiring, with its channel index.
   */
  expireBegin: script<[id: string, now: number, takeoverMs: number], ExpireBegin>(
    byPeer,
    `
local id, now, takeoverMs = unpack(ARGV, 4)
now = tonumber(now)
local pk = K.peer(id)
local f = redis.call('HMGET', pk, 'node', 'graceUntil', 'expiring')
if not f[1] then return { 0 } end
if f[1] ~= '' then return { 1 } end
if tonumber(f[2]) > now then return { 2, f[2] } end
if f[3] and tonumber(f[3]) + tonumber(takeoverMs) > now then return { 4 } end
redis.call('HSET', pk, 'expiring', now)
return { 3, indexed(id) }
`,
    decodeExpireBegin,
  ),

  /** Ends an expiry: forgets the peer, its index and its inbox. */
  expireEnd: script<[id: string], void>(
    byPeer,
    `
local id = ARGV[4]
redis.call('DEL', K.peer(id), K.peerChannels(id), K.peerTokens(id), streamKeys('p:' .. id))
return 0
`,
    decodeNothing,
  ),

  /**
   * The peer step of a join: 401 for an unknown or expiring peer; else a new
   * join token, indexed for the channel unless the peer is at `maxChannels`
   * without it (`over`).
   */
  joinPrep: script<[id: string, channel: string, maxChannels: number], JoinPrep | Fail>(
    byPeer,
    `
local id, c, max = unpack(ARGV, 4)
local pk = K.peer(id)
if redis.call('EXISTS', pk) == 0 or redis.call('HEXISTS', pk, 'expiring') == 1 then
  return { ${Codes.ERR_NOSUCHNICK} }
end
local listed = redis.call('ZSCORE', K.peerChannels(id), c) ~= false
if not listed and redis.call('ZCARD', K.peerChannels(id)) >= tonumber(max) then
  return { 0, 1, '' }
end
return { 0, 0, index(id, c) }
`,
    decodeJoinPrep,
  ),

  /** Whether the peer is still the incarnation `tok` was made for and not expiring. */
  alive: script<[id: string, tok: string], boolean>(
    byPeer,
    `
local id, tok = unpack(ARGV, 4)
local f = redis.call('HMGET', K.peer(id), 'born', 'expiring')
if not f[1] or f[2] then return 0 end
return string.sub(tok, 1, #f[1] + 1) == f[1] .. ':' and 1 or 0
`,
    decodeFlag,
  ),

  /** Drops the peer's index entry for `channel` if its token is still `tok`. */
  unindex: script<[id: string, channel: string, tok: string], void>(
    byPeer,
    `
local id, c, tok = unpack(ARGV, 4)
if tok ~= '' and redis.call('HGET', K.peerTokens(id), c) == tok then
  redis.call('ZREM', K.peerChannels(id), c)
  redis.call('HDEL', K.peerTokens(id), c)
end
return 0
`,
    decodeNothing,
  ),

  /**
   * Counts a channel creation against the peer's hourly allowance of `max`: 0
   * when it may create one, else the ms until its window (a fixed hour from its
   * first creation in it) ends.
   */
  createWait: script<[id: string, max: number], number>(
    byPeer,
    `
local id, max = unpack(ARGV, 4)
local pk = K.peer(id)
local now = nowMs()
local f = redis.call('HMGET', pk, 'creates', 'createsUntil')
local count, until_ = tonumber(f[1]) or 0, tonumber(f[2]) or 0
if until_ <= now then
  count, until_ = 0, now + ${HOUR_MS}
  redis.call('HSET', pk, 'creates', 0, 'createsUntil', until_)
end
if count >= tonumber(max) then return until_ - now end
redis.call('HINCRBY', pk, 'creates', 1)
return 0
`,
    decodeNumber,
  ),

  /** One peer's fields and channel index, or null. */
  getPeer: script<[id: string], PeerFields | null>(
    byPeer,
    `
local id = ARGV[4]
local f = redis.call('HMGET', K.peer(id), 'name', 'meta', 'admin', 'away', 'node', 'message')
if not f[1] then return false end
return { f[1], f[2], f[3], f[4], f[5], indexed(id), f[6] }
`,
    decodePeer,
  ),

  /** Sets ('1'), clears ('0') or toggles ('t') away; the message counts when `hasMessage` is 1. */
  setAway: script<
    [id: string, mode: "1" | "0" | "t", hasMessage: Flag, message: string],
    AwayReply
  >(
    byPeer,
    `
local id, mode, hasMessage, message = unpack(ARGV, 4)
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
return { away and 1 or 0, indexed(id), redis.call('HGET', pk, 'message') }
`,
    decodeAway,
  ),

  /**
   * Writes back a peer this node holds, after Redis lost its state: the peer
   * (with its resume hash, on this node and session) unless the id is held by
   * another session meanwhile, and its index (the channels after `message`, in
   * join order), whose tokens the channels are then written with.
   */
  restorePeer: script<
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
    Indexed[] | null
  >(
    byPeer,
    `
local id, name, meta, admin, resume, node, session, away, hasMessage, message = unpack(ARGV, 4, 13)
local pk = K.peer(id)
local held = redis.call('HGET', pk, 'session')
if held and held ~= session then return { 1 } end
if not held then
  local t = redis.call('TIME')
  redis.call('DEL', K.peerChannels(id), K.peerTokens(id))
  redis.call('HSET', pk, 'name', name, 'meta', meta, 'admin', admin, 'resume', resume,
    'node', node, 'session', session, 'graceUntil', 0, 'away', away,
    'born', t[1] .. '.' .. t[2], 'jseq', 0)
  if hasMessage == '1' then redis.call('HSET', pk, 'message', message) end
end
for i = 14, #ARGV do
  if redis.call('ZSCORE', K.peerChannels(id), ARGV[i]) == false then index(id, ARGV[i]) end
end
return { 0, indexed(id) }
`,
    decodeRestore,
  ),

  /**
   * Appends a `/privmsg` to the inbox of a peer online or in its grace and
   * publishes it to `p:<peer>`; null (nothing stored) when the peer is unknown.
   */
  route: script<
    [peer: string, head: string, history: number, ttlMs: number, nonce: string],
    Routed | null
  >(
    byPeer,
    `
local id, head, history, ttl, nonce = unpack(ARGV, 4)
local f = redis.call('HMGET', K.peer(id), 'name', 'node', 'away', 'message')
if not f[1] then return false end
local name = 'p:' .. id
local seq, text = append(name, head, tonumber(history), tonumber(ttl), nonce)
deliver(name, 'privmsg', seq, text, nil)
return { seq, text, (f[2] and f[2] ~= '') and 1 or 0, f[3], f[4] }
`,
    decodeRouted,
  ),

  // ---- A channel's slot.

  /**
   * The channel step of a join, creating the channel (key, creator as operator)
   * when it does not exist and `mayCreate` (else `{-1}`: the caller counts the
   * creation against the hourly allowance first). Checks in protocol order:
   * ban 474, key 475 (a live invite bypasses it, once), full channel 471
   * (`maxMembers` 0: no limit), channel limit 405 (`over`). `keyHash` is '' for none.
   */
  join: script<
    [
      channel: string,
      id: string,
      keyHash: string,
      over: Flag,
      tok: string,
      mayCreate: Flag,
      maxMembers: number,
    ],
    JoinReply
  >(
    byChannel,
    `
local c, id, keyHash, over, tok, mayCreate, maxMembers = unpack(ARGV, 4)
maxMembers = tonumber(maxMembers)
local ck = K.channel(c)
local now = nowMs()
if redis.call('EXISTS', ck) == 0 then
  if over == '1' then return { ${Codes.ERR_TOOMANYCHANNELS} } end
  if mayCreate ~= '1' then return { -1 } end
  -- Parts of a forgotten channel may outlive its hash by a moment: never inherit them.
  redis.call('DEL', K.channelOps(c), K.channelBans(c), K.channelInvites(c), K.channelMembers(c),
    K.channelTokens(c), K.channelSeq(c), streamKeys('c:' .. c))
  redis.call('HSET', ck, 'created', now)
  if keyHash ~= '' then redis.call('HSET', ck, 'key', keyHash) end
  redis.call('SADD', K.channelOps(c), id)
  enter(c, id, tok)
  return { 0, 1, 1, 0, 1 }
end
local op = redis.call('SISMEMBER', K.channelOps(c), id)
if isMember(c, id) then
  -- The membership now carries the latest token, the one the index has.
  if tok ~= '' then redis.call('HSET', K.channelTokens(c), id, tok) end
  return { 0, 0, op, 1, redis.call('ZCARD', K.channelMembers(c)) }
end
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
if over == '1' then return { ${Codes.ERR_TOOMANYCHANNELS} } end
redis.call('ZREM', inv, id)
redis.call('ZREMRANGEBYSCORE', inv, '-inf', now)
enter(c, id, tok)
return { 0, 0, op, 0, redis.call('ZCARD', K.channelMembers(c)) }
`,
    decodeJoin,
  ),

  /** Leaves a channel: 403, 442. */
  quit: script<[channel: string, id: string], Left | Fail>(
    byChannel,
    `
local c, id = unpack(ARGV, 4)
if redis.call('EXISTS', K.channel(c)) == 0 then return { ${Codes.ERR_NOSUCHCHANNEL} } end
if not isMember(c, id) then return { ${Codes.ERR_NOTONCHANNEL} } end
local total, tok = leave(c, id)
return { 0, total, tok }
`,
    decodeLeft,
  ),

  /**
   * Removes a member whose membership has the token `tok` (an expiry); a
   * membership with another token is a newer join and stays.
   */
  leaveIf: script<[channel: string, id: string, tok: string], { removed: boolean; total: number }>(
    byChannel,
    `
local c, id, tok = unpack(ARGV, 4)
if redis.call('EXISTS', K.channel(c)) == 1 and isMember(c, id)
  and redis.call('HGET', K.channelTokens(c), id) == tok then
  local total = leave(c, id)
  return { 1, total }
end
return { 0, redis.call('ZCARD', K.channelMembers(c)) }
`,
    decodeLeftIf,
  ),

  /** Operator removes a member: 403, 482, 441. */
  kick: script<[channel: string, by: string, target: string], Left | Fail>(
    byChannel,
    `
local c, by, target = unpack(ARGV, 4)
local err = opCheck(by, target, c)
if err then return { err } end
if not isMember(c, target) then return { ${Codes.ERR_USERNOTINCHANNEL} } end
local total, tok = leave(c, target)
return { 0, total, tok }
`,
    decodeLeft,
  ),

  /**
   * Operator bans a peer, dropping its operator right and invite and removing
   * it if a member: 403, 482; 478 when `maxBans` others are banned already.
   */
  ban: script<
    [channel: string, by: string, target: string, maxBans: number],
    (Left & { wasMember: boolean }) | Fail
  >(
    byChannel,
    `
local c, by, target, maxBans = unpack(ARGV, 4)
local err = opCheck(by, target, c)
if err then return { err } end
local bans = K.channelBans(c)
if redis.call('SISMEMBER', bans, target) == 0 and redis.call('SCARD', bans) >= tonumber(maxBans) then
  return { ${Codes.ERR_BANLISTFULL} }
end
redis.call('SADD', K.channelBans(c), target)
redis.call('SREM', K.channelOps(c), target)
redis.call('ZREM', K.channelInvites(c), target)
if isMember(c, target) then
  local total, tok = leave(c, target)
  return { 0, total, 1, tok }
end
settle(c)
return { 0, redis.call('ZCARD', K.channelMembers(c)), 0, '' }
`,
    decodeBan,
  ),

  /** Operator lifts a ban: 403, 482. */
  unban: script<[channel: string, by: string, target: string], Total | Fail>(
    byChannel,
    `
local c, by, target = unpack(ARGV, 4)
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
    [channel: string, by: string, target: string, maxInvites: number],
    Total | Fail
  >(
    byChannel,
    `
local c, by, target, maxInvites = unpack(ARGV, 4)
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

  /** Whether `id` is a member, whether the channel is keyed, and its member count. */
  channelOf: script<[channel: string, id: string], ChannelOf>(
    byChannel,
    `
local c, id = unpack(ARGV, 4)
if redis.call('EXISTS', K.channel(c)) == 0 then return { 0, 0, 0 } end
return { isMember(c, id) and 1 or 0, redis.call('HEXISTS', K.channel(c), 'key'),
  redis.call('ZCARD', K.channelMembers(c)) }
`,
    decodeChannelOf,
  ),

  /**
   * Writes a member back after Redis lost its state, with its index token; a
   * channel that is missing is made anew, unkeyed, with the peer as its operator.
   */
  restoreMember: script<[channel: string, id: string, tok: string], void>(
    byChannel,
    `
local c, id, tok = unpack(ARGV, 4)
if redis.call('EXISTS', K.channel(c)) == 0 then
  redis.call('DEL', K.channelOps(c), K.channelBans(c), K.channelInvites(c),
    K.channelMembers(c), K.channelTokens(c), K.channelSeq(c), streamKeys('c:' .. c))
  redis.call('HSET', K.channel(c), 'created', nowMs())
  redis.call('SADD', K.channelOps(c), id)
end
if not isMember(c, id) then enter(c, id, tok) end
return 0
`,
    decodeNothing,
  ),

  /**
   * Appends `/pubmsg`s (each a head and its sender, in order) to the channel's
   * stream and publishes each to `c:<channel>` for every node, in one step: seq
   * order is delivery order on every node. Returns the first one's seq; the
   * others follow it one by one.
   */
  publish: script<
    [channel: string, history: number, ttlMs: number, nonce: string, ...sent: string[]],
    number
  >(
    byChannel,
    `
local c, history, ttl, nonce = unpack(ARGV, 4, 7)
local name = 'c:' .. c
streamOpen(name, tonumber(ttl), nonce)
local sk, log = streamKeys(name)
local n = (#ARGV - 7) / 2
local first = redis.call('HINCRBY', sk, 'seq', n) - n + 1
local texts = {}
for i = 1, n do
  texts[i] = ARGV[6 + 2 * i] .. ',"seq":' .. (first + i - 1) .. '}'
end
redis.call('RPUSH', log, unpack(texts))
redis.call('LTRIM', log, -tonumber(history), -1)
redis.call('PEXPIRE', sk, ttl)
redis.call('PEXPIRE', log, ttl)
local items = {}
for i = 1, n do items[i] = { first + i - 1, texts[i], ARGV[7 + 2 * i] } end
deliverAll(name, 'pubmsg', items)
return first
`,
    decodeNumber,
  ),

  /** One channel, or null. */
  getChannel: script<[channel: string], Omit<ChannelView, "channel"> | null>(
    byChannel,
    `
local c = ARGV[4]
local created = redis.call('HGET', K.channel(c), 'created')
if not created then return false end
return { created, redis.call('HEXISTS', K.channel(c), 'key'),
  redis.call('ZCARD', K.channelMembers(c)), redis.call('SMEMBERS', K.channelOps(c)) }
`,
    decodeChannel,
  ),

  /** A page of members in join order, each with its operator flag. */
  members: script<[channel: string, offset: number, limit: number], MemberRef[]>(
    byChannel,
    `
local c, offset, limit = unpack(ARGV, 4)
offset, limit = tonumber(offset), tonumber(limit)
local out = {}
if limit <= 0 then return out end
local ops = K.channelOps(c)
for _, id in ipairs(redis.call('ZRANGE', K.channelMembers(c), offset, offset + limit - 1)) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('SISMEMBER', ops, id)
end
return out
`,
    decodeMemberRefs,
  ),

  // ---- A stream's slot (its channel's or its peer's).

  /** A stream's epoch (made now when missing) and last seq. */
  position: script<[stream: string, ttlMs: number, nonce: string], Position>(
    byStream,
    `
local name, ttl, nonce = unpack(ARGV, 4)
local epoch, seq = streamOpen(name, tonumber(ttl), nonce)
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
    byStream,
    `
local name, epoch, from, reader = unpack(ARGV, 4)
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

  // ---- The {nodes} slot.

  /** Registers the node as alive and the session as held by it: before the claim. */
  enlist: script<[node: string, session: string, id: string], void>(
    byNodes,
    `
local node, session, id = unpack(ARGV, 4)
redis.call('ZADD', K.nodes, 'NX', nowMs(), node)
redis.call('HSET', K.nodePeers(node), session, id)
return 0
`,
    decodeNothing,
  ),

  /** The session is no longer held by the node (released, refused, or taken over). */
  delist: script<[node: string, session: string], void>(
    byNodes,
    `
local node, session = unpack(ARGV, 4)
redis.call('HDEL', K.nodePeers(node), session)
return 0
`,
    decodeNothing,
  ),

  /**
   * The grace end `graceMs` from now (this clock), with the peer's grace entry
   * written at it or earlier: before the peer is parked.
   */
  graceAt: script<[id: string, graceMs: number], number>(
    byNodes,
    `
local id, graceMs = unpack(ARGV, 4)
local graceUntil = nowMs() + math.max(0, tonumber(graceMs))
redis.call('ZADD', K.grace, graceUntil, id)
return graceUntil
`,
    decodeNumber,
  ),

  /**
   * Declares dead the nodes whose last beat is older than `deadMs` (their
   * sessions go to their reap lists, with a grace of `graceMs` from now); then
   * answers up to `batch` sessions to park and `batch` grace entries due by
   * this clock + `aheadMs` (0 but in tests that move time forward).
   */
  sweep: script<[aheadMs: number, graceMs: number, deadMs: number, batch: number], Sweep>(
    byNodes,
    `
local aheadMs, graceMs, deadMs, batch = unpack(ARGV, 4)
batch = tonumber(batch)
local redisNow = nowMs()
local now = redisNow + tonumber(aheadMs)
continuity(redisNow)
for _, node in ipairs(redis.call('ZRANGEBYSCORE', K.nodes, '-inf', redisNow - tonumber(deadMs))) do
  reapNode(node, redisNow + tonumber(graceMs))
  -- Tells the node, should it be alive after all, that its sessions are over.
  redis.call('SET', K.deadNode(node), 1, 'PX', ${DEAD_MARK_MS})
end
local reaps = {}
local left = batch
for _, node in ipairs(redis.call('ZRANGE', K.reaping, 0, -1)) do
  if left <= 0 then break end
  local graceUntil = redis.call('ZSCORE', K.reaping, node)
  local sessions = reapBatch(node, graceUntil, left)
  left = left - #sessions / 2
  reaps[#reaps + 1] = { node, graceUntil, sessions }
end
local due = redis.call('ZRANGEBYSCORE', K.grace, '-inf', now, 'WITHSCORES', 'LIMIT', 0, batch)
return { now, reaps, due }
`,
    decodeSweep,
  ),

  /** The sessions parked from a node's reap list; the node is done when none is left. */
  reaped: script<[node: string, ...sessions: string[]], void>(
    byNodes,
    `
local node = ARGV[4]
local rp = K.reapPeers(node)
for i = 5, #ARGV do redis.call('HDEL', rp, ARGV[i]) end
if redis.call('EXISTS', rp) == 0 then redis.call('ZREM', K.reaping, node) end
return 0
`,
    decodeNothing,
  ),

  /**
   * Drops a grace entry whose score is still `score` (the peer is live, gone or
   * expired); an entry moved meanwhile belongs to a newer grace.
   */
  graceDone: script<[id: string, score: number], void>(
    byNodes,
    `
local id, score = unpack(ARGV, 4)
if tonumber(redis.call('ZSCORE', K.grace, id)) == tonumber(score) then
  redis.call('ZREM', K.grace, id)
end
return 0
`,
    decodeNothing,
  ),

  /** Moves a grace entry to the later grace end its peer has. */
  graceLater: script<[id: string, graceUntil: number], void>(
    byNodes,
    `
local id, graceUntil = unpack(ARGV, 4)
redis.call('ZADD', K.grace, 'XX', 'GT', graceUntil, id)
return 0
`,
    decodeNothing,
  ),

  /**
   * Records this node's beat; tells whether it had been declared dead (it also
   * runs on a node declared dead while stalled: it is alive again for the peers
   * it claims next), and Redis' generation, which changes when Redis lost its state.
   */
  beat: script<[node: string], Beat>(
    byNodes,
    `
local node = ARGV[4]
local declaredDead = redis.call('DEL', K.deadNode(node))
continuity(nowMs())
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
   * A node's shutdown (or its successor's start): its sessions go to its reap
   * list, with a grace of `graceMs` from now; answers the first `batch` of
   * them to park. A death mark the cluster left for it is cleared: it belonged
   * to the process that died, and a successor must not take it as its own.
   */
  nodeDown: script<[node: string, graceMs: number, batch: number], Reaped[]>(
    byNodes,
    `
local node, graceMs, batch = unpack(ARGV, 4)
local graceUntil = nowMs() + tonumber(graceMs)
reapNode(node, graceUntil)
redis.call('DEL', K.deadNode(node))
if redis.call('ZSCORE', K.reaping, node) == false then return {} end
graceUntil = redis.call('ZSCORE', K.reaping, node)
return { { node, graceUntil, reapBatch(node, graceUntil, tonumber(batch)) } }
`,
    decodeReaps,
  ),

  /** Sessions held by the nodes alive or being reaped: the peers online. */
  online: script<[], number>(
    byNodes,
    `
local n = 0
for _, node in ipairs(redis.call('ZRANGE', K.nodes, 0, -1)) do
  n = n + redis.call('HLEN', K.nodePeers(node))
end
return n
`,
    decodeNumber,
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
  Script<infer _A, infer T> ? T : never;

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
  /** On a Redis Cluster: streams publish with SPUBLISH to their sharded channels. */
  sharded: boolean;
}

type Commands = Record<string, (...args: Arg[]) => Promise<unknown>>;

/**
 * Defines every script on `redis` (ioredis sends each by its SHA and loads it
 * when Redis does not know it yet) and returns the typed way to call them. Each
 * call names one key of the script's tag, which routes it to its slot.
 */
export function defineScripts(redis: RedisClient, context: ScriptContext): RunScript {
  for (const [name, s] of Object.entries(SCRIPTS)) {
    redis.defineCommand(commandOf(name), { numberOfKeys: 1, lua: s.lua });
  }
  const keys = redisKeys(context.prefix);
  const pub = context.sharded ? "SPUBLISH" : "PUBLISH";
  const commands = redis as unknown as Commands;
  return async (name, ...args) => {
    const s = SCRIPTS[name] as unknown as Script<readonly Arg[], unknown>;
    const reply = await commands[commandOf(name)](
      s.route(keys, args),
      context.prefix,
      context.retentionMs,
      pub,
      ...args,
    );
    return s.decode(reply as Reply) as ScriptResult<typeof name>;
  };
}

/** The client method of a script; prefixed, so no ioredis method (`quit`) is shadowed. */
function commandOf(name: string): string {
  return "sg_" + name;
}
