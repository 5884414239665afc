/**
 * The Redis {@linkcode Store}: state shared by every node of a cluster, kept
 * across restarts. Each operation is one Lua script, so it runs atomically on
 * the Redis server: two nodes racing cannot both take an id, let a banned peer
 * in, or expire the same peer twice.
 *
 * Node liveness lives here too: each node beats into a sorted set, and
 * `expirePeers` declares nodes that stopped beating dead, moving their peers
 * into their grace as if each socket had closed at that moment.
 *
 * Scripts derive key names from the prefix, so the store needs one Redis
 * (standalone, or a primary with replicas), not a Redis Cluster.
 *
 * Keys, under the prefix:
 * - `peer:<id>` hash: name, meta (JSON), admin, resume (hash), node, session,
 *   graceUntil, away, message; `node` is empty while the peer is in its grace.
 * - `peer:<id>:ch` zset: the peer's channels, scored by join sequence.
 * - `chan:<channel>` hash: created, key (hash, absent when unkeyed).
 * - `chan:<channel>:ops`, `:bans` sets; `:inv` zset of invitee → expiry (ms);
 *   `:mem` zset of members scored by join sequence (join order).
 * - `seq`: the join sequence. `online`: ids with a live session.
 * - `node:<node>` set: ids whose session lives on that node.
 * - `nodes` zset: node → last heartbeat (Redis time, ms).
 * - `grace` zset: ids in their grace → graceUntil.
 *
 * An empty channel's keys get a TTL of the retention time (Redis forgets it);
 * a join removes the TTL.
 */
import type { Redis } from "ioredis";
import { Codes, type PeerEntry } from "../../protocol/mod.ts";
import { DEFAULTS } from "../config.ts";
import type { Logger } from "../log.ts";
import { connectRedis, endRedis, whenReady } from "../redis_conn.ts";
import type {
  ChannelView,
  Claim,
  Claimed,
  Expired,
  Fail,
  Joined,
  PeerView,
  Presence,
  Store,
  StoreLimits,
  Touched,
} from "./store.ts";

/** Options of {@linkcode RedisStore}. */
export interface RedisStoreOptions {
  /** This node's id: unique per process, so a restarted node gets a new one. */
  node: string;
  /** Limits enforced inside the scripts. */
  limits: StoreLimits;
  /** Prefix of every key. Default {@linkcode DEFAULTS}`.redisPrefix`. */
  prefix?: string;
  /** Grace given to the peers of a node declared dead, ms. Default {@linkcode DEFAULTS}`.graceMs`. */
  graceMs?: number;
  /** How often this node beats, ms. Default {@linkcode DEFAULTS}`.heartbeatMs`. */
  heartbeatMs?: number;
  /** A node whose last beat is older than this is declared dead, ms. Default {@linkcode DEFAULTS}`.deadMs`. */
  deadMs?: number;
  /** Called when a beat finds this node was declared dead meanwhile (it stalled, or Redis was away). */
  onDeclaredDead?: () => void;
  /** Where a lost and a regained Redis connection are reported. Default: nowhere. */
  log?: Logger;
}

/** Peers expired by one `expirePeers` call at most; the rest wait for the next call. */
const EXPIRE_BATCH = 500;
/** How long `ping` waits for an answer, ms. */
const PING_TIMEOUT_MS = 1000;

/**
 * Shared by every script. ARGV[1] is the key prefix and ARGV[2] the channel
 * retention time (ms); a script's own arguments start at ARGV[3].
 */
const LIB = `
local P = ARGV[1]
local RETENTION = tonumber(ARGV[2])

local function peerKey(id) return P .. 'peer:' .. id end
local function peerChans(id) return P .. 'peer:' .. id .. ':ch' end
local function nodePeers(node) return P .. 'node:' .. node end
local function chanKey(c) return P .. 'chan:' .. c end
local function chanPart(c, part) return P .. 'chan:' .. c .. ':' .. part end

-- The keys an empty channel keeps for its retention time (':mem' vanishes when empty).
local function retained(c)
  return { chanKey(c), chanPart(c, 'ops'), chanPart(c, 'bans'), chanPart(c, 'inv') }
end

-- Redis time in ms: one clock for all nodes (channel creation, invite expiry, heartbeats).
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function isMember(c, id)
  return redis.call('ZSCORE', chanPart(c, 'mem'), id) ~= false
end

-- Adds a member at the end of the join order; a retained empty channel is kept for good again.
local function enter(c, id)
  local mem = chanPart(c, 'mem')
  if redis.call('ZCARD', mem) == 0 then
    for _, k in ipairs(retained(c)) do redis.call('PERSIST', k) end
  end
  local seq = redis.call('INCR', P .. 'seq')
  redis.call('ZADD', mem, seq, id)
  redis.call('ZADD', peerChans(id), seq, c)
end

-- Removes a member; the last one out starts the channel's retention time. Returns the total.
local function leave(c, id)
  local mem = chanPart(c, 'mem')
  redis.call('ZREM', mem, id)
  redis.call('ZREM', peerChans(id), c)
  local total = redis.call('ZCARD', mem)
  if total == 0 then
    for _, k in ipairs(retained(c)) do redis.call('PEXPIRE', k, RETENTION) end
  end
  return total
end

-- A key written while the channel is empty expires with the rest of it.
local function settle(c)
  if redis.call('ZCARD', chanPart(c, 'mem')) > 0 then return end
  local ttl = redis.call('PTTL', chanKey(c))
  if ttl > 0 then
    for _, k in ipairs(retained(c)) do redis.call('PEXPIRE', k, ttl) end
  end
end

-- Moves every peer still live on 'node' into its grace and forgets the node.
local function releaseNode(node, graceUntil)
  local np = nodePeers(node)
  for _, id in ipairs(redis.call('SMEMBERS', np)) do
    local pk = peerKey(id)
    if redis.call('HGET', pk, 'node') == node then
      redis.call('HSET', pk, 'node', '', 'graceUntil', graceUntil)
      redis.call('ZADD', P .. 'grace', graceUntil, id)
      redis.call('SREM', P .. 'online', id)
    end
  end
  redis.call('DEL', np)
  redis.call('ZREM', P .. 'nodes', node)
end

-- The operator check of kick, ban and unban: an error code, or nil when allowed.
local function opCheck(by, target, c)
  if redis.call('EXISTS', chanKey(c)) == 0 then return ${Codes.ERR_NOSUCHCHANNEL} end
  if by == target or redis.call('SISMEMBER', chanPart(c, 'ops'), by) == 0 then
    return ${Codes.ERR_CHANOPRIVSNEEDED}
  end
  return nil
end
`;

/**
 * Takes an id: new (stored with the fresh hash), or resumed with the matching
 * resume hash (taking over the live session or ending the grace); 433 otherwise.
 * The claiming node is registered as alive so its peers are never orphaned.
 * ARGV: id, name, meta, admin, resumeHash ('' for none), freshHash, node, session.
 * Returns {0, 1} when new; {0, 0, oldNode, oldSession, away, channels, message} on resume.
 */
const CLAIM = LIB + `
local id, node, session = ARGV[3], ARGV[9], ARGV[10]
local pk = peerKey(id)
redis.call('ZADD', P .. 'nodes', 'NX', nowMs(), node)
if redis.call('EXISTS', pk) == 0 then
  redis.call('HSET', pk, 'name', ARGV[4], 'meta', ARGV[5], 'admin', ARGV[6], 'resume', ARGV[8],
    'node', node, 'session', session, 'graceUntil', 0, 'away', 0)
  redis.call('SADD', P .. 'online', id)
  redis.call('SADD', nodePeers(node), id)
  return { 0, 1 }
end
if ARGV[7] == '' or ARGV[7] ~= redis.call('HGET', pk, 'resume') then
  return { ${Codes.ERR_NICKNAMEINUSE} }
end
local f = redis.call('HMGET', pk, 'node', 'session', 'away', 'message')
if f[1] ~= '' then
  redis.call('SREM', nodePeers(f[1]), id)
else
  redis.call('ZREM', P .. 'grace', id)
end
redis.call('HSET', pk, 'name', ARGV[4], 'meta', ARGV[5], 'admin', ARGV[6],
  'node', node, 'session', session, 'graceUntil', 0)
redis.call('SADD', P .. 'online', id)
redis.call('SADD', nodePeers(node), id)
return { 0, 0, f[1], f[2], f[3], redis.call('ZRANGE', peerChans(id), 0, -1), f[4] }
`;

/** Updates name, meta and admin if `session` holds the peer. ARGV: id, session, name, meta, admin. */
const DESCRIBE = LIB + `
local pk = peerKey(ARGV[3])
if redis.call('HGET', pk, 'session') == ARGV[4] then
  redis.call('HSET', pk, 'name', ARGV[5], 'meta', ARGV[6], 'admin', ARGV[7])
end
return 0
`;

/** Puts a live peer held by `session` into its grace. ARGV: id, session, graceUntil. */
const RELEASE = LIB + `
local id = ARGV[3]
local pk = peerKey(id)
local f = redis.call('HMGET', pk, 'session', 'node')
if f[1] == ARGV[4] and f[2] and f[2] ~= '' then
  redis.call('SREM', nodePeers(f[2]), id)
  redis.call('SREM', P .. 'online', id)
  redis.call('HSET', pk, 'node', '', 'graceUntil', ARGV[5])
  redis.call('ZADD', P .. 'grace', ARGV[5], id)
end
return 0
`;

/**
 * First declares dead the nodes whose last beat (Redis time) is older than
 * deadMs, giving their peers graceUntil = now + graceMs; then removes, from
 * their channels and from the store, the peers whose grace ended by `now`.
 * ARGV: now, graceMs, deadMs, batch.
 * Returns one entry per expired peer: {id, channel, total, channel, total, ...}.
 */
const EXPIRE = LIB + `
local now = tonumber(ARGV[3])
local dead = redis.call('ZRANGEBYSCORE', P .. 'nodes', '-inf', nowMs() - tonumber(ARGV[5]))
for _, node in ipairs(dead) do
  releaseNode(node, now + tonumber(ARGV[4]))
  -- Tells the node, should it be alive after all, that its sessions are over.
  redis.call('SET', P .. 'dead:' .. node, 1, 'PX', 3600000)
end
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'grace', '-inf', now, 'LIMIT', 0, ARGV[6])) do
  local entry = { id }
  for _, c in ipairs(redis.call('ZRANGE', peerChans(id), 0, -1)) do
    if redis.call('EXISTS', chanKey(c)) == 1 then
      entry[#entry + 1] = c
      entry[#entry + 1] = leave(c, id)
    end
  end
  redis.call('DEL', peerKey(id), peerChans(id))
  redis.call('ZREM', P .. 'grace', id)
  out[#out + 1] = entry
end
return out
`;

/**
 * Records this node's beat. ARGV: node. It also runs on a node that was
 * declared dead while stalled: it is alive again for the peers it claims next.
 */
const BEAT = LIB + `
local declaredDead = redis.call('DEL', P .. 'dead:' .. ARGV[3])
redis.call('ZADD', P .. 'nodes', nowMs(), ARGV[3])
return declaredDead
`;

/** A graceful node shutdown: its remaining peers enter their grace. ARGV: node, graceUntil. */
const NODE_DOWN = LIB + `
releaseNode(ARGV[3], ARGV[4])
return 0
`;

/**
 * One peer, or nil. ARGV: id.
 * Returns {name, meta, admin, away, node, {channel, keyed, ...}, message}.
 */
const GET_PEER = LIB + `
local id = ARGV[3]
local f = redis.call('HMGET', peerKey(id), 'name', 'meta', 'admin', 'away', 'node', 'message')
if not f[1] then return false end
local chans = {}
for _, c in ipairs(redis.call('ZRANGE', peerChans(id), 0, -1)) do
  chans[#chans + 1] = c
  chans[#chans + 1] = redis.call('HEXISTS', chanKey(c), 'key')
end
return { f[1], f[2], f[3], f[4], f[5], chans, f[6] }
`;

/**
 * Sets ('1'), clears ('0') or toggles ('t') away. ARGV: id, mode, hasMessage, message.
 * Returns {away, {channel, total, ...}, message}.
 */
const SET_AWAY = LIB + `
local id = ARGV[3]
local pk = peerKey(id)
if redis.call('EXISTS', pk) == 0 then return { 0, {} } end
local away
if ARGV[4] == 't' then away = redis.call('HGET', pk, 'away') ~= '1' else away = ARGV[4] == '1' end
if away and ARGV[5] == '1' then
  redis.call('HSET', pk, 'away', 1, 'message', ARGV[6])
else
  redis.call('HSET', pk, 'away', away and 1 or 0)
  redis.call('HDEL', pk, 'message')
end
local chans = {}
for _, c in ipairs(redis.call('ZRANGE', peerChans(id), 0, -1)) do
  chans[#chans + 1] = c
  chans[#chans + 1] = redis.call('ZCARD', chanPart(c, 'mem'))
end
return { away and 1 or 0, chans, redis.call('HGET', pk, 'message') }
`;

/**
 * Joins, creating the channel (key, creator as operator) when it does not
 * exist. Checks in protocol order: ban 474, key 475 (a live invite bypasses
 * it, once), channel limit 405. ARGV: id, channel, keyHash ('' for none), maxChannels.
 * Returns {0, created, op, already, total} or {code}.
 */
const JOIN = LIB + `
local id, c, keyHash, max = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
if redis.call('EXISTS', peerKey(id)) == 0 then return { ${Codes.ERR_NOSUCHNICK} } end
local ck = chanKey(c)
local now = nowMs()
if redis.call('EXISTS', ck) == 0 then
  if redis.call('ZCARD', peerChans(id)) >= max then return { ${Codes.ERR_TOOMANYCHANNELS} } end
  -- Parts of a forgotten channel may outlive its hash by a moment: never inherit them.
  redis.call('DEL', chanPart(c, 'ops'), chanPart(c, 'bans'), chanPart(c, 'inv'), chanPart(c, 'mem'))
  redis.call('HSET', ck, 'created', now)
  if keyHash ~= '' then redis.call('HSET', ck, 'key', keyHash) end
  redis.call('SADD', chanPart(c, 'ops'), id)
  enter(c, id)
  return { 0, 1, 1, 0, 1 }
end
local op = redis.call('SISMEMBER', chanPart(c, 'ops'), id)
if isMember(c, id) then return { 0, 0, op, 1, redis.call('ZCARD', chanPart(c, 'mem')) } end
if redis.call('SISMEMBER', chanPart(c, 'bans'), id) == 1 then
  return { ${Codes.ERR_BANNEDFROMCHAN} }
end
local inv = chanPart(c, 'inv')
local until_ = redis.call('ZSCORE', inv, id)
local invited = until_ ~= false and tonumber(until_) > now
local key = redis.call('HGET', ck, 'key')
if key and not invited and keyHash ~= key then return { ${Codes.ERR_BADCHANNELKEY} } end
if redis.call('ZCARD', peerChans(id)) >= max then return { ${Codes.ERR_TOOMANYCHANNELS} } end
redis.call('ZREM', inv, id)
redis.call('ZREMRANGEBYSCORE', inv, '-inf', now)
enter(c, id)
return { 0, 0, op, 0, redis.call('ZCARD', chanPart(c, 'mem')) }
`;

/** Leaves a channel: 403, 442. ARGV: id, channel. Returns {0, total} or {code}. */
const QUIT = LIB + `
local id, c = ARGV[3], ARGV[4]
if redis.call('EXISTS', chanKey(c)) == 0 then return { ${Codes.ERR_NOSUCHCHANNEL} } end
if not isMember(c, id) then return { ${Codes.ERR_NOTONCHANNEL} } end
return { 0, leave(c, id) }
`;

/** Operator removes a member: 403, 482, 441. ARGV: by, target, channel. Returns {0, total} or {code}. */
const KICK = LIB + `
local by, target, c = ARGV[3], ARGV[4], ARGV[5]
local err = opCheck(by, target, c)
if err then return { err } end
if not isMember(c, target) then return { ${Codes.ERR_USERNOTINCHANNEL} } end
return { 0, leave(c, target) }
`;

/**
 * Operator bans a peer, dropping its operator right and invite and removing
 * it if a member: 403, 482. ARGV: by, target, channel.
 * Returns {0, total, wasMember} or {code}.
 */
const BAN = LIB + `
local by, target, c = ARGV[3], ARGV[4], ARGV[5]
local err = opCheck(by, target, c)
if err then return { err } end
redis.call('SADD', chanPart(c, 'bans'), target)
redis.call('SREM', chanPart(c, 'ops'), target)
redis.call('ZREM', chanPart(c, 'inv'), target)
if isMember(c, target) then return { 0, leave(c, target), 1 } end
settle(c)
return { 0, redis.call('ZCARD', chanPart(c, 'mem')), 0 }
`;

/** Operator lifts a ban: 403, 482. ARGV: by, target, channel. Returns {0, total} or {code}. */
const UNBAN = LIB + `
local by, target, c = ARGV[3], ARGV[4], ARGV[5]
local err = opCheck(by, target, c)
if err then return { err } end
redis.call('SREM', chanPart(c, 'bans'), target)
return { 0, redis.call('ZCARD', chanPart(c, 'mem')) }
`;

/**
 * Member invites a peer for the retention time: 403, 442, 443, 474.
 * ARGV: by, target, channel. Returns {0, total} or {code}.
 */
const INVITE = LIB + `
local by, target, c = ARGV[3], ARGV[4], ARGV[5]
if redis.call('EXISTS', chanKey(c)) == 0 then return { ${Codes.ERR_NOSUCHCHANNEL} } end
if not isMember(c, by) then return { ${Codes.ERR_NOTONCHANNEL} } end
if isMember(c, target) then return { ${Codes.ERR_USERONCHANNEL} } end
if redis.call('SISMEMBER', chanPart(c, 'bans'), target) == 1 then
  return { ${Codes.ERR_BANNEDFROMCHAN} }
end
local inv = chanPart(c, 'inv')
local now = nowMs()
redis.call('ZREMRANGEBYSCORE', inv, '-inf', now)
redis.call('ZADD', inv, now + RETENTION, target)
return { 0, redis.call('ZCARD', chanPart(c, 'mem')) }
`;

/** The channels (ARGV[4..]) where ARGV[3] is an operator. */
const OPERATOR_OF = LIB + `
local out = {}
for i = 4, #ARGV do
  if redis.call('SISMEMBER', chanPart(ARGV[i], 'ops'), ARGV[3]) == 1 then out[#out + 1] = ARGV[i] end
end
return out
`;

/** One channel, or nil. ARGV: channel. Returns {created, keyed, total, operators}. */
const GET_CHANNEL = LIB + `
local c = ARGV[3]
local created = redis.call('HGET', chanKey(c), 'created')
if not created then return false end
return { created, redis.call('HEXISTS', chanKey(c), 'key'), redis.call('ZCARD', chanPart(c, 'mem')),
  redis.call('SMEMBERS', chanPart(c, 'ops')) }
`;

/**
 * A page of members in join order. ARGV: channel, offset, limit.
 * Returns one {id, name, op, away, node, message} per member.
 */
const MEMBERS = LIB + `
local c, offset, limit = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
if limit <= 0 then return out end
local ops = chanPart(c, 'ops')
for _, id in ipairs(redis.call('ZRANGE', chanPart(c, 'mem'), offset, offset + limit - 1)) do
  local f = redis.call('HMGET', peerKey(id), 'name', 'away', 'node', 'message')
  out[#out + 1] = { id, f[1] or '', redis.call('SISMEMBER', ops, id), f[2], f[3], f[4] }
end
return out
`;

/** Every script, by the name ioredis defines it under. */
const SCRIPTS = {
  sgClaim: CLAIM,
  sgDescribe: DESCRIBE,
  sgRelease: RELEASE,
  sgExpire: EXPIRE,
  sgBeat: BEAT,
  sgNodeDown: NODE_DOWN,
  sgGetPeer: GET_PEER,
  sgSetAway: SET_AWAY,
  sgJoin: JOIN,
  sgQuit: QUIT,
  sgKick: KICK,
  sgBan: BAN,
  sgUnban: UNBAN,
  sgInvite: INVITE,
  sgOperatorOf: OPERATOR_OF,
  sgGetChannel: GET_CHANNEL,
  sgMembers: MEMBERS,
};
type ScriptName = keyof typeof SCRIPTS;
type Scripted = Record<ScriptName, (...args: (string | number)[]) => Promise<unknown>>;

// Script replies, as ioredis decodes them (Lua false becomes null).
type Reply = null | string | number | Reply[];

const fail = (error: number): Fail => ({ error: error as Fail["error"] });

/** Pairs `[a, b, a, b, ...]` into `[[a, b], ...]`. */
function pairs(flat: Reply[]): [string, number][] {
  const out: [string, number][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([String(flat[i]), Number(flat[i + 1])]);
  return out;
}

/** Keeps peers, channels and node liveness in Redis, shared by every node on the same prefix. */
export class RedisStore implements Store {
  readonly kind = "redis";
  #redis: Redis;
  #prefix: string;
  #node: string;
  #limits: StoreLimits;
  #graceMs: number;
  #deadMs: number;
  #beat: ReturnType<typeof setInterval>;
  #closed = false;
  #onDeclaredDead?: () => void;
  /** Putting a predecessor's peers (same node id) into their grace; done once. */
  #adopting?: Promise<void>;
  #adopted = false;

  /**
   * Connects in the background and starts beating; await {@linkcode ready}
   * before serving. While Redis is down every method rejects at once and the
   * client reconnects by itself.
   */
  constructor(url: string, options: RedisStoreOptions) {
    this.#prefix = options.prefix ?? DEFAULTS.redisPrefix;
    this.#node = options.node;
    this.#limits = options.limits;
    this.#graceMs = options.graceMs ?? DEFAULTS.graceMs;
    this.#deadMs = options.deadMs ?? DEFAULTS.deadMs;
    this.#redis = connectRedis(url, { log: options.log, role: "store" });
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      this.#redis.defineCommand(name, { numberOfKeys: 0, lua });
    }
    this.#onDeclaredDead = options.onDeclaredDead;
    // Beat as soon as a connection is up, so a reconnected node is not declared dead; the
    // first time, after taking over from a predecessor (even when `ready` timed out).
    this.#redis.on("ready", () => this.#adopt().then(() => this.#heartbeat(), () => {}));
    this.#beat = setInterval(() => this.#heartbeat(), options.heartbeatMs ?? DEFAULTS.heartbeatMs);
  }

  /**
   * Resolves once Redis answers and this node's first beat is stored; rejects
   * after `timeoutMs`. Peers a predecessor with the same node id left behind
   * (a restart) enter their grace now, without waiting to be declared dead.
   */
  async ready(timeoutMs: number = DEFAULTS.readyTimeoutMs): Promise<void> {
    await whenReady(this.#redis, timeoutMs);
    await this.#adopt();
    await this.#run("sgBeat", this.#node);
  }

  /** Puts the peers a predecessor with this node id left behind into their grace, once. */
  #adopt(): Promise<void> {
    this.#adopting ??= this.#run("sgNodeDown", this.#node, Date.now() + this.#graceMs).then(
      () => void (this.#adopted = true),
      (e) => {
        this.#adopting = undefined; // the next 'ready' tries again
        throw e;
      },
    );
    return this.#adopting;
  }

  async claimPeer(c: Claim): Promise<Claimed | Fail> {
    const r = await this.#run(
      "sgClaim",
      c.id,
      c.name,
      JSON.stringify(c.meta),
      c.admin ? 1 : 0,
      c.resumeHash ?? "",
      c.freshHash,
      c.node,
      c.session,
    );
    if (r[0] !== 0) return fail(r[0] as number);
    if (r[1] === 1) return { fresh: true, channels: [], away: false };
    const [, , node, session, away, channels, message] = r;
    const claimed: Claimed = {
      fresh: false,
      channels: channels as string[],
      away: away === "1",
    };
    if (message !== null && message !== undefined) claimed.message = String(message);
    if (node !== "") claimed.replaced = { node: String(node), session: String(session) };
    return claimed;
  }

  async describePeer(
    id: string,
    session: string,
    d: { name: string; meta: Record<string, unknown>; admin: boolean },
  ): Promise<void> {
    await this.#run("sgDescribe", id, session, d.name, JSON.stringify(d.meta), d.admin ? 1 : 0);
  }

  async releasePeer(id: string, session: string, graceUntil: number): Promise<void> {
    await this.#run("sgRelease", id, session, graceUntil);
  }

  async expirePeers(now: number): Promise<Expired[]> {
    const r = await this.#run("sgExpire", now, this.#graceMs, this.#deadMs, EXPIRE_BATCH);
    return (r as Reply[][]).map(([id, ...flat]) => ({
      id: String(id),
      channels: pairs(flat).map(([channel, total]) => ({ channel, total })),
    }));
  }

  async getPeer(id: string): Promise<PeerView | null> {
    const r = await this.#run("sgGetPeer", id);
    if (r === null) return null;
    const [name, meta, admin, away, node, chans, message] = r;
    const view: PeerView = {
      id,
      name: String(name),
      meta: JSON.parse(String(meta)),
      admin: admin === "1",
      away: away === "1",
      online: node !== "",
      channels: pairs(chans as Reply[]).map(([channel, keyed]) => ({
        channel,
        keyed: keyed === 1,
      })),
    };
    if (message !== null && message !== undefined) view.message = String(message);
    return view;
  }

  async presence(id: string): Promise<Presence | null> {
    // One plain HMGET: the relay path to a peer on another node.
    const [name, node, away, message] = await this.#redis.hmget(
      `${this.#prefix}peer:${id}`,
      "name",
      "node",
      "away",
      "message",
    );
    if (name === null) return null;
    const r: Presence = { online: node !== null && node !== "", away: away === "1" };
    if (message !== null) r.message = message;
    return r;
  }

  async setAway(
    id: string,
    away: boolean | null,
    message?: string,
  ): Promise<{ away: boolean; message?: string; channels: Touched[] }> {
    const mode = away === null ? "t" : away ? "1" : "0";
    const r = await this.#run("sgSetAway", id, mode, message === undefined ? 0 : 1, message ?? "");
    const channels = pairs(r[1] as Reply[]).map(([channel, total]) => ({ channel, total }));
    const msg = r[2];
    return msg === null || msg === undefined
      ? { away: r[0] === 1, channels }
      : { away: r[0] === 1, message: String(msg), channels };
  }

  async join(id: string, channel: string, keyHash: string | null): Promise<Joined | Fail> {
    const r = await this.#run("sgJoin", id, channel, keyHash ?? "", this.#limits.maxChannels);
    if (r[0] !== 0) return fail(r[0] as number);
    return { created: r[1] === 1, op: r[2] === 1, already: r[3] === 1, total: r[4] as number };
  }

  async quit(id: string, channel: string): Promise<Touched | Fail> {
    const r = await this.#run("sgQuit", id, channel);
    return r[0] !== 0 ? fail(r[0] as number) : { channel, total: r[1] as number };
  }

  async kick(by: string, target: string, channel: string): Promise<Touched | Fail> {
    const r = await this.#run("sgKick", by, target, channel);
    return r[0] !== 0 ? fail(r[0] as number) : { channel, total: r[1] as number };
  }

  async ban(
    by: string,
    target: string,
    channel: string,
  ): Promise<(Touched & { wasMember: boolean }) | Fail> {
    const r = await this.#run("sgBan", by, target, channel);
    if (r[0] !== 0) return fail(r[0] as number);
    return { channel, total: r[1] as number, wasMember: r[2] === 1 };
  }

  async unban(by: string, target: string, channel: string): Promise<Touched | Fail> {
    const r = await this.#run("sgUnban", by, target, channel);
    return r[0] !== 0 ? fail(r[0] as number) : { channel, total: r[1] as number };
  }

  async invite(by: string, target: string, channel: string): Promise<Touched | Fail> {
    const r = await this.#run("sgInvite", by, target, channel);
    return r[0] !== 0 ? fail(r[0] as number) : { channel, total: r[1] as number };
  }

  async operatorOf(id: string, channels: readonly string[]): Promise<string[]> {
    if (channels.length === 0) return [];
    return await this.#run("sgOperatorOf", id, ...channels) as string[];
  }

  async getChannel(channel: string): Promise<ChannelView | null> {
    const r = await this.#run("sgGetChannel", channel);
    if (r === null) return null;
    return {
      channel,
      created: Number(r[0]),
      keyed: r[1] === 1,
      operators: r[3] as string[],
      total: r[2] as number,
    };
  }

  async members(channel: string, offset: number, limit: number): Promise<PeerEntry[]> {
    const r = await this.#run("sgMembers", channel, Math.max(0, offset), limit);
    return (r as Reply[][]).map(([id, name, op, away, node, message]) => {
      const e: PeerEntry = {
        id: String(id),
        name: String(name),
        op: op === 1,
        away: away === "1",
        online: node !== "" && node !== null,
      };
      if (message !== null && message !== undefined) e.message = String(message);
      return e;
    });
  }

  onlineCount(): Promise<number> {
    return this.#redis.scard(this.#prefix + "online");
  }

  /** True when Redis answers within a second; never rejects. */
  async ping(): Promise<boolean> {
    if (this.#redis.status !== "ready") return false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.#redis.ping().then(() => true, () => false), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Stops beating, puts the peers still live on this node into their grace
   * (normally none: the hub released each session), and quits the connection.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#beat);
    try {
      await this.#run("sgNodeDown", this.#node, Date.now() + this.#graceMs);
    } catch {
      // Redis is down: the other nodes will declare this one dead instead.
    }
    await endRedis(this.#redis);
  }

  #heartbeat(): void {
    // Beats start once the predecessor's peers are handed over (see #adopt).
    if (this.#closed || !this.#adopted || this.#redis.status !== "ready") return;
    // A missed beat is retried next interval; only a long outage makes the node dead.
    this.#run("sgBeat", this.#node).then((declaredDead: number) => {
      if (declaredDead === 1) this.#onDeclaredDead?.();
    }, () => {});
  }

  // deno-lint-ignore no-explicit-any
  #run(name: ScriptName, ...args: (string | number)[]): Promise<any> {
    return (this.#redis as unknown as Scripted)[name](
      this.#prefix,
      this.#limits.retentionMs,
      ...args,
    );
  }
}
