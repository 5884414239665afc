/**
 * The Store contract: one suite, written against the `Store` interface and run
 * against every implementation (memory, and Redis when it is reachable), plus
 * the Redis store's own rules on node liveness and outages.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Codes } from "../../protocol/mod.ts";
import { MemoryStore } from "../../server/store/memory.ts";
import { RedisStore } from "../../server/store/redis.ts";
import { type Claim, type Expired, failed, type Store } from "../../server/store/store.ts";
import {
  assertRedis,
  deleteKeys,
  redisClusterTests,
  type RedisTestEnv,
  redisTests,
  uniquePrefix,
} from "../support/redis.ts";
import { delay } from "../support/wait.ts";

/** Store settings a test may change. */
interface Setup {
  maxChannels?: number;
  retentionMs?: number;
  history?: number;
  historyTtlMs?: number;
  maxBans?: number;
  maxInvites?: number;
  maxMembers?: number;
  maxCreates?: number;
}

/** Node-level settings, meaningful to stores that know about nodes. */
interface NodeSetup {
  graceMs?: number;
  heartbeatMs?: number;
  deadMs?: number;
  /** The node's clock. */
  now?: () => number;
}

/** One shared state, seen from any number of nodes. */
interface World {
  /** The store as `node` sees it. */
  open(node: string, opts?: NodeSetup): Promise<Store>;
  /** Closes every store opened and forgets the state. */
  close(): Promise<void>;
  /**
   * How far a deadline may move, ms: 0 for a store on the caller's clock; a few for one that
   * counts durations on its own clock (Redis), so a deadline moves by the request's latency.
   */
  slackMs: number;
}

type MakeWorld = (setup: Setup) => Promise<World>;

const LIMITS = { maxChannels: 100, retentionMs: 60_000 };
/**
 * A retention for the tests that watch one end: long enough for the checks made within it on
 * a loaded machine (Redis forgets by TTL, whoever looks), short enough to wait out.
 */
const RETENTION = 1_000;

function memoryWorld(setup: Setup): Promise<World> {
  const store = new MemoryStore({ ...LIMITS, ...setup });
  return Promise.resolve({
    open: () => Promise.resolve(store),
    close: () => store.close(),
    slackMs: 0,
  });
}

function redisWorld(env: RedisTestEnv): MakeWorld {
  const url = env.target;
  return (setup) => {
    assertRedis(env);
    const prefix = uniquePrefix();
    const stores: RedisStore[] = [];
    return Promise.resolve({
      slackMs: 200,
      async open(node: string, opts: NodeSetup = {}) {
        const store = new RedisStore(url, {
          prefix,
          node,
          limits: { ...LIMITS, ...setup },
          heartbeatMs: 100,
          // Far above any pause of a loaded test machine: only the liveness tests shorten it.
          deadMs: 5_000,
          ...opts,
        });
        stores.push(store);
        await store.ready();
        return store;
      },
      async close() {
        await Promise.all(stores.map((s) => s.close()));
        await deleteKeys(url, prefix);
      },
    });
  };
}

/** A random 24-hex-digit id (peer ids and channel ids after the `#`). */
function newHex(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const newPeer = newHex;
const newChannel = () => "#" + newHex();
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

/** Polls `check` until it holds; fails after 5 s. */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await delay(25);
  }
}

/** A peer as a test holds it: its id, node, session and resume token. */
interface Held {
  id: string;
  node: string;
  session: string;
  token: string;
}

/** Claims a new id on `node`, asserting it was new. */
async function claimNew(store: Store, node: string, id = newPeer()): Promise<Held> {
  const token = newHex();
  const session = newHex();
  const r = await store.claimPeer(claimOf(id, node, session, { freshHash: sha256(token) }));
  assert.ok(!failed(r), `claim of ${id} failed: ${JSON.stringify(r)}`);
  assert.equal(r.fresh, true);
  return { id, node, session, token };
}

function claimOf(id: string, node: string, session: string, over: Partial<Claim> = {}): Claim {
  return {
    id,
    name: "peer " + id.slice(0, 4),
    meta: {},
    admin: false,
    resumeHash: null,
    freshHash: sha256(newHex()),
    node,
    session,
    ...over,
  };
}

async function joinOk(store: Store, id: string, channel: string, keyHash: string | null = null) {
  const r = await store.join(id, channel, keyHash);
  assert.ok(!failed(r), `join of ${channel} by ${id} failed: ${JSON.stringify(r)}`);
  return r;
}

function sortExpired(expired: Expired[]): Expired[] {
  return [...expired].sort((a, b) => a.id.localeCompare(b.id));
}

/** Registers the contract tests for one Store implementation. */
function contract(kind: string, make: MakeWorld, ignore: boolean): void {
  const rule = (name: string, setup: Setup, fn: (world: World) => Promise<void>) =>
    Deno.test({ name: `${kind} store: ${name}`, ignore }, async () => {
      const world = await make(setup);
      try {
        await fn(world);
      } finally {
        await world.close();
      }
    });

  rule(
    "a new id is claimed fresh; a second claim without the resume token gets 433",
    {},
    async (w) => {
      const s = await w.open("n1");
      const a = await claimNew(s, "n1");
      const again = await s.claimPeer(claimOf(a.id, "n1", newHex()));
      assert.deepEqual(again, { error: Codes.ERR_NICKNAMEINUSE });
      const wrong = await s.claimPeer(claimOf(a.id, "n1", newHex(), { resumeHash: sha256("x") }));
      assert.deepEqual(wrong, { error: Codes.ERR_NICKNAMEINUSE });
    },
  );

  rule(
    "a claim with the resume token takes over: channels, away state, replaced session",
    {},
    async (w) => {
      const s1 = await w.open("n1");
      const s2 = await w.open("n2");
      const a = await claimNew(s1, "n1");
      const c1 = newChannel();
      const c2 = newChannel();
      await joinOk(s1, a.id, c1);
      await joinOk(s1, a.id, c2);
      await s1.setAway(a.id, true, "afk");
      const r = await s2.claimPeer(
        claimOf(a.id, "n2", "s2", { name: "renamed", resumeHash: sha256(a.token) }),
      );
      assert.deepEqual(r, {
        fresh: false,
        channels: [c1, c2],
        away: true,
        message: "afk",
        replaced: { node: "n1", session: a.session },
      });
      const view = await s1.getPeer(a.id);
      assert.equal(view?.name, "renamed");
      assert.equal(view?.online, true);
      // The replaced session no longer holds the peer: its release changes nothing.
      await s1.releasePeer(a.id, a.session, Date.now() - 1);
      assert.equal((await s1.getPeer(a.id))?.online, true);
      assert.deepEqual(await s1.expirePeers(Date.now()), []);
    },
  );

  rule(
    "a resume during the grace brings the peer back online with nothing replaced",
    {},
    async (w) => {
      const s = await w.open("n1");
      const a = await claimNew(s, "n1");
      const c = newChannel();
      await joinOk(s, a.id, c);
      await s.releasePeer(a.id, a.session, Date.now() + 60_000);
      const r = await s.claimPeer(claimOf(a.id, "n1", "s2", { resumeHash: sha256(a.token) }));
      assert.deepEqual(r, { fresh: false, channels: [c], away: false });
      assert.equal((await s.getPeer(a.id))?.online, true);
      assert.equal(await s.onlineCount(), 1);
      assert.deepEqual(await s.expirePeers(Date.now() + 120_000), []);
    },
  );

  rule("a peer's channels are listed in join order", {}, async (w) => {
    const s = await w.open("n1");
    const a = await claimNew(s, "n1");
    const [c1, c2, c3] = [newChannel(), newChannel(), newChannel()];
    for (const c of [c1, c2, c3]) await joinOk(s, a.id, c);
    await s.quit(a.id, c2);
    await joinOk(s, a.id, c2);
    const r = await s.claimPeer(claimOf(a.id, "n1", "s2", { resumeHash: sha256(a.token) }));
    assert.ok(!failed(r));
    assert.deepEqual(r.channels, [c1, c3, c2]);
    assert.deepEqual((await s.getPeer(a.id))?.channels.map((c) => c.channel), [c1, c3, c2]);
  });

  rule("describePeer updates name, meta and admin for the holding session only", {}, async (w) => {
    const s = await w.open("n1");
    const a = await claimNew(s, "n1");
    const meta = JSON.parse('{"avatar":"x.png","__proto__":{"polluted":true},"n":[1,2]}');
    await s.describePeer(a.id, a.session, { name: "Ann", meta, admin: true });
    await s.describePeer(a.id, "someone else", { name: "Mallory", meta: {}, admin: false });
    const view = await s.getPeer(a.id);
    assert.equal(view?.name, "Ann");
    assert.equal(view?.admin, true);
    assert.deepEqual(view?.meta, meta);
    assert.ok(Object.hasOwn(view!.meta, "__proto__"));
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  rule(
    "getPeer shows a peer with its channels (keyed or not); null when unknown",
    {},
    async (w) => {
      const s = await w.open("n1");
      const a = await claimNew(s, "n1");
      const open = newChannel();
      const keyed = newChannel();
      await joinOk(s, a.id, open);
      await joinOk(s, a.id, keyed, sha256("k"));
      assert.deepEqual(await s.getPeer(a.id), {
        id: a.id,
        name: "peer " + a.id.slice(0, 4),
        meta: {},
        admin: false,
        away: false,
        online: true,
        channels: [{ channel: open, keyed: false }, { channel: keyed, keyed: true }],
      });
      assert.equal(await s.getPeer(newPeer()), null);
    },
  );

  rule(
    "presence: online and away state; offline in the grace; null when unknown",
    {},
    async (w) => {
      const s = await w.open("n1");
      const a = await claimNew(s, "n1");
      assert.deepEqual(await s.presence(a.id), { online: true, away: false });
      await s.setAway(a.id, true, "brb");
      assert.deepEqual(await s.presence(a.id), { online: true, away: true, message: "brb" });
      await s.releasePeer(a.id, a.session, Date.now() + 60_000);
      assert.deepEqual(await s.presence(a.id), { online: false, away: true, message: "brb" });
      assert.equal(await s.presence(newPeer()), null);
    },
  );

  rule("setAway sets with a message, toggles and clears", {}, async (w) => {
    const s = await w.open("n1");
    const a = await claimNew(s, "n1");
    const b = await claimNew(s, "n1");
    const c = newChannel();
    await joinOk(s, a.id, c);
    await joinOk(s, b.id, c);
    assert.deepEqual(await s.setAway(a.id, true, "brb"), {
      away: true,
      message: "brb",
      channels: [{ channel: c, total: 2 }],
    });
    const view = await s.getPeer(a.id);
    assert.equal(view?.away, true);
    assert.equal(view?.message, "brb");
    assert.deepEqual(await s.setAway(a.id, null), {
      away: false,
      channels: [{ channel: c, total: 2 }],
    });
    assert.equal((await s.getPeer(a.id))?.message, undefined);
    assert.equal((await s.setAway(a.id, null)).away, true);
    assert.deepEqual(await s.setAway(a.id, false), {
      away: false,
      channels: [{ channel: c, total: 2 }],
    });
  });

  rule(
    "a released peer stays for its grace, then expirePeers returns it exactly once",
    {},
    async (w) => {
      const s = await w.open("n1");
      const a = await claimNew(s, "n1");
      const b = await claimNew(s, "n1");
      const shared = newChannel();
      const alone = newChannel();
      await joinOk(s, a.id, shared);
      await joinOk(s, b.id, shared);
      await joinOk(s, b.id, alone);
      const graceUntil = Date.now() + 10_000;
      await s.releasePeer(b.id, b.session, graceUntil);

      const view = await s.getPeer(b.id);
      assert.equal(view?.online, false);
      assert.equal((await s.members(shared, 0, 10))[1].online, false);
      assert.equal(await s.onlineCount(), 1);
      assert.deepEqual(
        await s.claimPeer(claimOf(b.id, "n1", "s2")),
        { error: Codes.ERR_NICKNAMEINUSE },
        "the id stays taken during the grace",
      );
      assert.deepEqual(await s.expirePeers(graceUntil - 1 - w.slackMs), []);

      assert.deepEqual(await s.expirePeers(graceUntil + w.slackMs), [{
        id: b.id,
        channels: [{ channel: shared, total: 1 }, { channel: alone, total: 0 }],
      }]);
      assert.deepEqual(await s.expirePeers(graceUntil + 1 + w.slackMs), []);
      assert.equal(await s.getPeer(b.id), null);
      assert.deepEqual((await s.members(shared, 0, 10)).map((e) => e.id), [a.id]);
      await claimNew(s, "n1", b.id);
    },
  );

  rule("two nodes racing expirePeers get each expired peer exactly once", {}, async (w) => {
    const s1 = await w.open("n1");
    const s2 = await w.open("n2");
    const c = newChannel();
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const p = await claimNew(s1, "n1");
      await joinOk(s1, p.id, c);
      await s1.releasePeer(p.id, p.session, Date.now());
      ids.push(p.id);
    }
    const now = Date.now();
    const [e1, e2] = await Promise.all([s1.expirePeers(now), s2.expirePeers(now)]);
    const all = [...e1, ...e2];
    assert.deepEqual(all.map((e) => e.id).sort(), [...ids].sort());
    // Each removal saw the channel one member smaller: 29 down to 0.
    const totals = all.map((e) => e.channels[0].total).sort((a, b) => a - b);
    assert.deepEqual(totals, Array.from({ length: 30 }, (_, i) => i));
    assert.deepEqual(await s1.expirePeers(now), []);
    assert.equal(await s2.getChannel(c).then((v) => v?.total), 0);
  });

  rule(
    "join of a new channel creates it with the given key and makes the creator operator",
    {},
    async (w) => {
      const s = await w.open("n1");
      const a = await claimNew(s, "n1");
      const c = newChannel();
      const before = Date.now();
      assert.deepEqual(await s.join(a.id, c, sha256("k")), {
        created: true,
        op: true,
        already: false,
        total: 1,
      });
      const view = await s.getChannel(c);
      assert.ok(view !== null);
      assert.ok(view.created >= before - 1_000 && view.created <= Date.now() + 1_000);
      assert.deepEqual(view, {
        channel: c,
        created: view.created,
        keyed: true,
        operators: [a.id],
        total: 1,
      });
    },
  );

  rule(
    "join of a keyed channel with a wrong or missing key gets 475; the right key joins",
    {},
    async (w) => {
      const s = await w.open("n1");
      const a = await claimNew(s, "n1");
      const b = await claimNew(s, "n1");
      const c = newChannel();
      await joinOk(s, a.id, c, sha256("k"));
      assert.deepEqual(await s.join(b.id, c, null), { error: Codes.ERR_BADCHANNELKEY });
      assert.deepEqual(await s.join(b.id, c, sha256("K")), { error: Codes.ERR_BADCHANNELKEY });
      assert.deepEqual(await s.join(b.id, c, sha256("k")), {
        created: false,
        op: false,
        already: false,
        total: 2,
      });
    },
  );

  rule("join of a channel one is in is a success marked already", {}, async (w) => {
    const s = await w.open("n1");
    const a = await claimNew(s, "n1");
    const c = newChannel();
    await joinOk(s, a.id, c, sha256("k"));
    assert.deepEqual(await s.join(a.id, c, null), {
      created: false,
      op: true,
      already: true,
      total: 1,
    });
  });

  rule("an invite lets a peer join a keyed channel without the key, once", {}, async (w) => {
    const s = await w.open("n1");
    const a = await claimNew(s, "n1");
    const b = await claimNew(s, "n1");
    const c = newChannel();
    await joinOk(s, a.id, c, sha256("k"));
    assert.deepEqual(await s.invite(a.id, b.id, c), { channel: c, total: 1 });
    assert.deepEqual(await s.join(b.id, c, null), {
      created: false,
      op: false,
      already: false,
      total: 2,
    });
    await s.quit(b.id, c);
    assert.deepEqual(await s.join(b.id, c, null), { error: Codes.ERR_BADCHANNELKEY });
  });

  rule(
    "invite gets 403 (no channel), 442 (inviter not in it), 443 (member), 474 (banned)",
    {},
    async (w) => {
      const s = await w.open("n1");
      const [a, b, x] = [await claimNew(s, "n1"), await claimNew(s, "n1"), await claimNew(s, "n1")];
      const c = newChannel();
      await joinOk(s, a.id, c);
      await joinOk(s, b.id, c);
      assert.deepEqual(await s.invite(a.id, x.id, newChannel()), {
        error: Codes.ERR_NOSUCHCHANNEL,
      });
      assert.deepEqual(await s.invite(x.id, a.id, c), { error: Codes.ERR_NOTONCHANNEL });
      assert.deepEqual(await s.invite(a.id, b.id, c), { error: Codes.ERR_USERONCHANNEL });
      await s.ban(a.id, x.id, c);
      assert.deepEqual(await s.invite(b.id, x.id, c), { error: Codes.ERR_BANNEDFROMCHAN });
    },
  );

  rule(
    "a banned peer gets 474 even with the key or an invite; unban lets it back",
    {},
    async (w) => {
      const s = await w.open("n1");
      const a = await claimNew(s, "n1");
      const b = await claimNew(s, "n1");
      const c = newChannel();
      await joinOk(s, a.id, c, sha256("k"));
      await s.invite(a.id, b.id, c);
      assert.deepEqual(await s.ban(a.id, b.id, c), { channel: c, total: 1, wasMember: false });
      assert.deepEqual(await s.join(b.id, c, sha256("k")), { error: Codes.ERR_BANNEDFROMCHAN });
      assert.deepEqual(await s.join(b.id, c, null), { error: Codes.ERR_BANNEDFROMCHAN });
      assert.deepEqual(await s.unban(a.id, b.id, c), { channel: c, total: 1 });
      // The ban dropped the invite: the key is needed again.
      assert.deepEqual(await s.join(b.id, c, null), { error: Codes.ERR_BADCHANNELKEY });
      assert.equal((await joinOk(s, b.id, c, sha256("k"))).total, 2);
    },
  );

  rule("ban removes a member and reports wasMember; 403 and 482 as for kick", {}, async (w) => {
    const s = await w.open("n1");
    const a = await claimNew(s, "n1");
    const b = await claimNew(s, "n1");
    const c = newChannel();
    await joinOk(s, a.id, c);
    await joinOk(s, b.id, c);
    assert.deepEqual(await s.ban(b.id, a.id, c), { error: Codes.ERR_CHANOPRIVSNEEDED });
    assert.deepEqual(await s.ban(a.id, a.id, c), { error: Codes.ERR_CHANOPRIVSNEEDED });
    assert.deepEqual(await s.ban(a.id, b.id, newChannel()), { error: Codes.ERR_NOSUCHCHANNEL });
    assert.deepEqual(await s.ban(a.id, b.id, c), { channel: c, total: 1, wasMember: true });
    assert.deepEqual((await s.getPeer(b.id))?.channels, []);
    assert.deepEqual((await s.members(c, 0, 10)).map((e) => e.id), [a.id]);
    assert.deepEqual(await s.join(b.id, c, null), { error: Codes.ERR_BANNEDFROMCHAN });
    assert.deepEqual(await s.unban(b.id, b.id, c), { error: Codes.ERR_CHANOPRIVSNEEDED });
  });

  rule(
    "kick gets 403 (no channel), 482 (non-operator or self), 441 (non-member)",
    {},
    async (w) => {
      const s = await w.open("n1");
      const [a, b, x] = [await claimNew(s, "n1"), await claimNew(s, "n1"), await claimNew(s, "n1")];
      const c = newChannel();
      await joinOk(s, a.id, c);
      await joinOk(s, b.id, c);
      assert.deepEqual(await s.kick(a.id, b.id, newChannel()), { error: Codes.ERR_NOSUCHCHANNEL });
      assert.deepEqual(await s.kick(b.id, a.id, c), { error: Codes.ERR_CHANOPRIVSNEEDED });
      assert.deepEqual(await s.kick(a.id, a.id, c), { error: Codes.ERR_CHANOPRIVSNEEDED });
      assert.deepEqual(await s.kick(a.id, x.id, c), { error: Codes.ERR_USERNOTINCHANNEL });
      assert.deepEqual(await s.kick(a.id, b.id, c), { channel: c, total: 1 });
      assert.deepEqual((await s.getPeer(b.id))?.channels, []);
      // A kick is no ban: the peer may come back.
      assert.equal((await joinOk(s, b.id, c)).total, 2);
    },
  );

  rule(
    "quit gets 403 for an unknown channel and 442 for a channel one is not in",
    {},
    async (w) => {
      const s = await w.open("n1");
      const a = await claimNew(s, "n1");
      const b = await claimNew(s, "n1");
      const c = newChannel();
      await joinOk(s, a.id, c);
      assert.deepEqual(await s.quit(a.id, newChannel()), { error: Codes.ERR_NOSUCHCHANNEL });
      assert.deepEqual(await s.quit(b.id, c), { error: Codes.ERR_NOTONCHANNEL });
      await joinOk(s, b.id, c);
      assert.deepEqual(await s.quit(b.id, c), { channel: c, total: 1 });
      assert.deepEqual(await s.quit(b.id, c), { error: Codes.ERR_NOTONCHANNEL });
    },
  );

  rule("joining over maxChannels gets 405", { maxChannels: 2 }, async (w) => {
    const s = await w.open("n1");
    const a = await claimNew(s, "n1");
    const b = await claimNew(s, "n1");
    const [c1, c2, c3, other] = [newChannel(), newChannel(), newChannel(), newChannel()];
    await joinOk(s, a.id, c1);
    await joinOk(s, a.id, c2);
    await joinOk(s, b.id, other);
    assert.deepEqual(await s.join(a.id, c3, null), { error: Codes.ERR_TOOMANYCHANNELS });
    assert.deepEqual(await s.join(a.id, other, null), { error: Codes.ERR_TOOMANYCHANNELS });
    assert.equal(await s.getChannel(c3), null, "a refused join creates nothing");
    assert.equal((await s.join(a.id, c1, null) as { already: boolean }).already, true);
  });

  rule(
    "bans over maxBans get 478; banning a banned id again is fine",
    { maxBans: 2 },
    async (w) => {
      const s = await w.open("n1");
      const [a, x, y, z] = [
        await claimNew(s, "n1"),
        await claimNew(s, "n1"),
        await claimNew(s, "n1"),
        await claimNew(s, "n1"),
      ];
      const c = newChannel();
      await joinOk(s, a.id, c);
      await joinOk(s, z.id, c);
      assert.ok(!failed(await s.ban(a.id, x.id, c)));
      assert.ok(!failed(await s.ban(a.id, y.id, c)));
      assert.deepEqual(await s.ban(a.id, z.id, c), { error: Codes.ERR_BANLISTFULL });
      assert.equal((await s.getChannel(c))?.total, 2, "a refused ban removes nobody");
      assert.deepEqual(await s.ban(a.id, x.id, c), { channel: c, total: 2, wasMember: false });
      await s.unban(a.id, x.id, c);
      assert.deepEqual(await s.ban(a.id, z.id, c), { channel: c, total: 1, wasMember: true });
    },
  );

  rule(
    "pending invites over maxInvites get 478; re-inviting a pending invitee is fine",
    { maxInvites: 2 },
    async (w) => {
      const s = await w.open("n1");
      const [a, x, y, z] = [
        await claimNew(s, "n1"),
        await claimNew(s, "n1"),
        await claimNew(s, "n1"),
        await claimNew(s, "n1"),
      ];
      const c = newChannel();
      await joinOk(s, a.id, c, sha256("k"));
      assert.deepEqual(await s.invite(a.id, x.id, c), { channel: c, total: 1 });
      assert.deepEqual(await s.invite(a.id, y.id, c), { channel: c, total: 1 });
      assert.deepEqual(await s.invite(a.id, z.id, c), { error: Codes.ERR_BANLISTFULL });
      assert.deepEqual(await s.join(z.id, c, null), { error: Codes.ERR_BADCHANNELKEY });
      assert.deepEqual(await s.invite(a.id, x.id, c), { channel: c, total: 1 });
      // A used invite is no longer pending: it frees its place.
      assert.equal((await joinOk(s, x.id, c)).total, 2);
      assert.deepEqual(await s.invite(a.id, z.id, c), { channel: c, total: 2 });
      assert.equal((await joinOk(s, z.id, c)).total, 3);
    },
  );

  rule(
    "an expired invite does not count against maxInvites",
    { maxInvites: 1, retentionMs: 200 },
    async (w) => {
      const s = await w.open("n1");
      const [a, x, y] = [await claimNew(s, "n1"), await claimNew(s, "n1"), await claimNew(s, "n1")];
      const c = newChannel();
      await joinOk(s, a.id, c);
      await s.invite(a.id, x.id, c);
      assert.deepEqual(await s.invite(a.id, y.id, c), { error: Codes.ERR_BANLISTFULL });
      await delay(300);
      assert.deepEqual(await s.invite(a.id, y.id, c), { channel: c, total: 1 });
    },
  );

  rule(
    "a full channel gets 471, after 474 and 475 and before 405",
    { maxMembers: 2, maxChannels: 1 },
    async (w) => {
      const s = await w.open("n1");
      const [a, b, x, y] = [
        await claimNew(s, "n1"),
        await claimNew(s, "n1"),
        await claimNew(s, "n1"),
        await claimNew(s, "n1"),
      ];
      const c = newChannel();
      await joinOk(s, a.id, c, sha256("k"));
      await s.invite(a.id, b.id, c);
      await joinOk(s, b.id, c);
      await s.ban(a.id, y.id, c);
      assert.deepEqual(await s.join(y.id, c, sha256("k")), { error: Codes.ERR_BANNEDFROMCHAN });
      assert.deepEqual(await s.join(x.id, c, null), { error: Codes.ERR_BADCHANNELKEY });
      assert.deepEqual(await s.join(x.id, c, sha256("k")), { error: Codes.ERR_CHANNELISFULL });
      // An invite passes the key, not the limit.
      await s.invite(a.id, x.id, c);
      assert.deepEqual(await s.join(x.id, c, null), { error: Codes.ERR_CHANNELISFULL });
      // x is in as many channels as it may be: a full channel still says 471 first.
      await joinOk(s, x.id, newChannel());
      assert.deepEqual(await s.join(x.id, c, sha256("k")), { error: Codes.ERR_CHANNELISFULL });
      assert.equal((await s.join(b.id, c, null) as { already: boolean }).already, true);
      await s.quit(b.id, c);
      assert.deepEqual(await s.join(x.id, c, sha256("k")), { error: Codes.ERR_TOOMANYCHANNELS });
      assert.equal((await joinOk(s, b.id, c, sha256("k"))).total, 2);
    },
  );

  rule(
    "creating over maxCreates in an hour gets 263 with the time until the window ends",
    { maxCreates: 2 },
    async (w) => {
      const s1 = await w.open("n1");
      const s2 = await w.open("n2");
      const a = await claimNew(s1, "n1");
      const b = await claimNew(s1, "n1");
      const [c1, c2, c3] = [newChannel(), newChannel(), newChannel()];
      const first = Date.now();
      await joinOk(s1, a.id, c1);
      await joinOk(s2, a.id, c2);
      // Leaving gives nothing back: the limit counts creations.
      await s1.quit(a.id, c1);
      const r = await s2.join(a.id, c3, null);
      assert.ok(failed(r));
      assert.equal(r.error, Codes.RPL_TRYAGAIN);
      const wait = r.retryAfterMs ?? 0;
      const left = 3_600_000 - (Date.now() - first);
      assert.ok(wait > left - 2_000 && wait <= 3_600_000, `retryAfterMs ${wait}, about ${left}`);
      assert.equal(await s1.getChannel(c3), null, "a refused join creates nothing");
      // Joining an existing channel is no creation; another peer has its own allowance.
      assert.equal((await joinOk(s1, a.id, c1)).created, false);
      assert.equal((await joinOk(s1, b.id, c3)).created, true);
    },
  );

  rule(
    "operatorOf lists the channels where the peer is operator; the right survives quit",
    {},
    async (w) => {
      const s = await w.open("n1");
      const a = await claimNew(s, "n1");
      const b = await claimNew(s, "n1");
      const [c1, c2, c3] = [newChannel(), newChannel(), newChannel()];
      await joinOk(s, a.id, c1);
      await joinOk(s, a.id, c2);
      await joinOk(s, b.id, c3);
      await joinOk(s, a.id, c3);
      await joinOk(s, b.id, c1);
      assert.deepEqual(await s.operatorOf(a.id, [c1, c2, c3, newChannel()]), [c1, c2]);
      assert.deepEqual(await s.operatorOf(a.id, []), []);
      await s.quit(a.id, c1);
      assert.deepEqual(await s.operatorOf(a.id, [c1]), [c1]);
      assert.equal((await joinOk(s, a.id, c1)).op, true);
    },
  );

  rule("getChannel shows created, keyed, operators and total, never the key", {}, async (w) => {
    const s = await w.open("n1");
    const a = await claimNew(s, "n1");
    const b = await claimNew(s, "n1");
    const c = newChannel();
    await joinOk(s, a.id, c);
    await joinOk(s, b.id, c);
    const view = await s.getChannel(c);
    assert.deepEqual(Object.keys(view ?? {}).sort(), [
      "channel",
      "created",
      "keyed",
      "operators",
      "total",
    ]);
    assert.deepEqual({ ...view, created: 0 }, {
      channel: c,
      created: 0,
      keyed: false,
      operators: [a.id],
      total: 2,
    });
    assert.equal(await s.getChannel(newChannel()), null);
  });

  rule("members pages in join order with op, away and online", {}, async (w) => {
    const s = await w.open("n1");
    const [a, b, c] = [await claimNew(s, "n1"), await claimNew(s, "n1"), await claimNew(s, "n1")];
    const ch = newChannel();
    for (const p of [a, b, c]) await joinOk(s, p.id, ch);
    await s.setAway(b.id, true, "brb");
    await s.releasePeer(c.id, c.session, Date.now() + 60_000);
    const name = (id: string) => "peer " + id.slice(0, 4);
    const all = [
      { id: a.id, name: name(a.id), op: true, away: false, online: true },
      { id: b.id, name: name(b.id), op: false, away: true, message: "brb", online: true },
      { id: c.id, name: name(c.id), op: false, away: false, online: false },
    ];
    assert.deepEqual(await s.members(ch, 0, 500), all);
    assert.deepEqual(await s.members(ch, 1, 1), [all[1]]);
    assert.deepEqual(await s.members(ch, 2, 5), [all[2]]);
    assert.deepEqual(await s.members(ch, 3, 5), []);
    assert.deepEqual(await s.members(newChannel(), 0, 5), []);
  });

  rule("an empty channel keeps key, operators and bans for the retention time, then is forgotten", {
    retentionMs: RETENTION,
  }, async (w) => {
    const s = await w.open("n1");
    const [a, b, x] = [await claimNew(s, "n1"), await claimNew(s, "n1"), await claimNew(s, "n1")];
    const c = newChannel();
    await joinOk(s, a.id, c, sha256("k"));
    assert.deepEqual(await s.quit(a.id, c), { channel: c, total: 0 });
    const emptied = Date.now();
    // Written while empty: must be forgotten with the rest.
    await s.ban(a.id, x.id, c);
    const kept = await s.getChannel(c);
    assert.deepEqual(kept && { ...kept, created: 0 }, {
      channel: c,
      created: 0,
      keyed: true,
      operators: [a.id],
      total: 0,
    });
    assert.deepEqual(await s.join(b.id, c, null), { error: Codes.ERR_BADCHANNELKEY });
    await delay(emptied + RETENTION + 100 - Date.now());
    await s.expirePeers(Date.now());
    assert.equal(await s.getChannel(c), null);
    assert.deepEqual(await s.join(x.id, c, null), {
      created: true,
      op: true,
      already: false,
      total: 1,
    });
    assert.deepEqual((await s.getChannel(c))?.operators, [x.id]);
    assert.deepEqual(await s.operatorOf(a.id, [c]), []);
  });

  rule("a join within the retention time keeps the channel for good", {
    retentionMs: RETENTION,
  }, async (w) => {
    const s = await w.open("n1");
    const a = await claimNew(s, "n1");
    const c = newChannel();
    await joinOk(s, a.id, c, sha256("k"));
    await s.quit(a.id, c);
    const emptied = Date.now();
    assert.deepEqual(await s.join(a.id, c, sha256("k")), {
      created: false,
      op: true,
      already: false,
      total: 1,
    });
    // Past the end of the retention that the quit started: the channel is still there.
    await delay(emptied + RETENTION + 100 - Date.now());
    await s.expirePeers(Date.now());
    assert.equal((await s.getChannel(c))?.keyed, true);
  });

  rule("a pending invite expires with the retention time", { retentionMs: 200 }, async (w) => {
    const s = await w.open("n1");
    const a = await claimNew(s, "n1");
    const b = await claimNew(s, "n1");
    const c = newChannel();
    await joinOk(s, a.id, c, sha256("k"));
    await s.invite(a.id, b.id, c);
    await delay(300);
    await s.expirePeers(Date.now());
    assert.deepEqual(await s.join(b.id, c, null), { error: Codes.ERR_BADCHANNELKEY });
  });

  rule("onlineCount counts peers online on all nodes, not those in their grace", {}, async (w) => {
    const s1 = await w.open("n1");
    const s2 = await w.open("n2");
    assert.equal(await s1.onlineCount(), 0);
    await claimNew(s1, "n1");
    const b = await claimNew(s2, "n2");
    assert.equal(await s1.onlineCount(), 2);
    await s2.releasePeer(b.id, b.session, Date.now() + 60_000);
    assert.equal(await s1.onlineCount(), 1);
  });

  const STREAMS = { history: 100, historyTtlMs: 60_000 };
  const texts = (head: string, seqs: number[]) => seqs.map((n) => `${head},"seq":${n}}`);

  rule(
    "publish numbers a channel's messages; since replays those after a position",
    STREAMS,
    async (w) => {
      const s1 = await w.open("n1");
      const s2 = await w.open("n2");
      const a = await claimNew(s1, "n1");
      const c = newChannel();
      await joinOk(s1, a.id, c);
      assert.equal(s1.history, 100);
      const p0 = await s1.position(`c:${c}`);
      assert.equal(p0.seq, 0);
      assert.equal(typeof p0.epoch, "string");
      assert.notEqual(p0.epoch, "");
      const head = `{"type":"pubmsg","text":"h\\"i"`;
      const sent = [];
      for (let i = 0; i < 3; i++) sent.push(await (i % 2 ? s2 : s1).publish(c, head, a.id));
      assert.deepEqual(sent, [1, 2, 3].map((seq) => ({ seq, text: texts(head, [seq])[0] })));
      assert.deepEqual(JSON.parse(sent[2].text), { type: "pubmsg", text: 'h"i', seq: 3 });
      assert.deepEqual(await s2.position(`c:${c}`), { epoch: p0.epoch, seq: 3 });
      assert.deepEqual(await s2.since(`c:${c}`, p0, a.id), texts(head, [1, 2, 3]));
      assert.deepEqual(
        await s1.since(`c:${c}`, { epoch: p0.epoch, seq: 1 }, a.id),
        texts(head, [2, 3]),
      );
      assert.deepEqual(await s1.since(`c:${c}`, { epoch: p0.epoch, seq: 3 }, a.id), []);
      assert.equal(
        await s1.since(`c:${c}`, { epoch: p0.epoch, seq: 4 }, a.id),
        null,
        "from the future",
      );
      assert.equal(
        await s1.since(`c:${c}`, { epoch: "other", seq: 0 }, a.id),
        null,
        "another epoch",
      );
      const outsider = await claimNew(s2, "n2");
      assert.equal(await s2.since(`c:${c}`, p0, outsider.id), null, "members only");
      // Another channel has its own stream.
      const c2 = newChannel();
      await joinOk(s1, a.id, c2);
      assert.equal((await s1.publish(c2, head, a.id)).seq, 1);
      assert.notEqual((await s1.position(`c:${c2}`)).epoch, p0.epoch);
    },
  );

  rule("a stream keeps its last `history` messages; an older gap gets null", {
    ...STREAMS,
    history: 3,
  }, async (w) => {
    const s = await w.open("n1");
    const a = await claimNew(s, "n1");
    const c = newChannel();
    await joinOk(s, a.id, c);
    const { epoch } = await s.position(`c:${c}`);
    for (let i = 0; i < 5; i++) await s.publish(c, "{", a.id);
    assert.equal(await s.since(`c:${c}`, { epoch, seq: 0 }, a.id), null, "never a partial replay");
    assert.equal(await s.since(`c:${c}`, { epoch, seq: 1 }, a.id), null);
    assert.deepEqual(await s.since(`c:${c}`, { epoch, seq: 2 }, a.id), texts("{", [3, 4, 5]));
    assert.deepEqual(await s.position(`c:${c}`), { epoch, seq: 5 });
  });

  rule(
    "route keeps a privmsg for a peer online or in its grace; null when unknown",
    STREAMS,
    async (w) => {
      const s1 = await w.open("n1");
      const s2 = await w.open("n2");
      const a = await claimNew(s1, "n1");
      assert.equal(await s2.route(newPeer(), "{"), null);
      const { epoch } = await s2.position(`p:${a.id}`);
      assert.deepEqual(await s2.route(a.id, "{"), {
        seq: 1,
        text: '{,"seq":1}',
        online: true,
        away: false,
      });
      await s1.setAway(a.id, true, "afk");
      assert.deepEqual(await s2.route(a.id, "{"), {
        seq: 2,
        text: '{,"seq":2}',
        online: true,
        away: true,
        message: "afk",
      });
      await s1.releasePeer(a.id, a.session, Date.now() + 60_000);
      const queued = await s2.route(a.id, "{");
      assert.equal(queued?.online, false);
      assert.equal(queued?.seq, 3);
      assert.deepEqual(await s1.since(`p:${a.id}`, { epoch, seq: 0 }, a.id), texts("{", [1, 2, 3]));
      // Once forgotten, the peer is unknown; a new peer with its id starts a new inbox.
      await s1.expirePeers(Date.now() + 120_000);
      assert.equal(await s2.route(a.id, "{"), null);
      await claimNew(s1, "n1", a.id);
      const fresh = await s1.position(`p:${a.id}`);
      assert.equal(fresh.seq, 0);
      assert.notEqual(fresh.epoch, epoch);
      assert.equal(await s1.since(`p:${a.id}`, { epoch, seq: 0 }, a.id), null);
    },
  );

  rule("a stream's history expires historyTtlMs after its last message: a new epoch", {
    ...STREAMS,
    historyTtlMs: 200,
  }, async (w) => {
    const s = await w.open("n1");
    const a = await claimNew(s, "n1");
    const c = newChannel();
    await joinOk(s, a.id, c);
    await s.publish(c, "{", a.id);
    const before = await s.position(`c:${c}`);
    assert.equal(before.seq, 1);
    let after = before;
    await until(async () => {
      after = await s.position(`c:${c}`);
      return after.epoch !== before.epoch;
    }, "the history expires");
    assert.equal(after.seq, 0);
    assert.equal(await s.since(`c:${c}`, { epoch: before.epoch, seq: 1 }, a.id), null);
    assert.equal((await s.publish(c, "{", a.id)).seq, 1);
    assert.equal((await s.position(`c:${c}`)).epoch, after.epoch);
  });

  rule("a channel made anew does not inherit the stream of a forgotten one", {
    ...STREAMS,
    retentionMs: 200,
  }, async (w) => {
    const s = await w.open("n1");
    const a = await claimNew(s, "n1");
    const c = newChannel();
    await joinOk(s, a.id, c);
    await s.publish(c, "{", a.id);
    const old = await s.position(`c:${c}`);
    await s.quit(a.id, c);
    await until(async () => {
      await s.expirePeers(Date.now());
      return (await s.getChannel(c)) === null;
    }, "the empty channel is forgotten");
    assert.equal((await joinOk(s, a.id, c)).created, true);
    const fresh = await s.position(`c:${c}`);
    assert.equal(fresh.seq, 0);
    assert.notEqual(fresh.epoch, old.epoch);
  });

  rule("ping is true while the store is reachable", {}, async (w) => {
    const s = await w.open("n1");
    assert.equal(await s.ping(), true);
  });
}

/** The Redis store's own rules: node liveness, shutdown and outages. */
function redisRules(kind: string, env: RedisTestEnv): void {
  const rule = (name: string, fn: (world: World) => Promise<void>) =>
    Deno.test({ name: `${kind} store: ${name}`, ignore: env.ignore }, async () => {
      const world = await redisWorld(env)({});
      try {
        await fn(world);
      } finally {
        await world.close();
      }
    });

  rule(
    "a node that stops beating is declared dead: its peers get the full grace, then quit",
    async (w) => {
      // Long enough that setting up the peers never outlasts the dead node's last beat.
      const liveness = { deadMs: 2_000, graceMs: 2_000 };
      // Beats once when ready, then not again within the test: a crashed node.
      const dead = await w.open("dead", { ...liveness, heartbeatMs: 60_000 });
      const live = await w.open("live", { ...liveness, heartbeatMs: 50 });
      const c = newChannel();
      const [p, q, r] = [
        await claimNew(dead, "dead"),
        await claimNew(dead, "dead"),
        await claimNew(live, "live"),
      ];
      for (const x of [p, q, r]) await joinOk(live, x.id, c);

      assert.deepEqual(await live.expirePeers(Date.now()), []);
      assert.equal((await live.getPeer(p.id))?.online, true, "alive until the beat is stale");
      await delay(liveness.deadMs + 150);
      // The grace starts on Redis' clock when the script runs: somewhere in [before, after].
      const before = Date.now();
      assert.deepEqual(await live.expirePeers(before), []);
      const after = Date.now();
      assert.equal((await live.getPeer(p.id))?.online, false);
      assert.equal((await live.getPeer(r.id))?.online, true, "a beating node is left alone");
      assert.equal(await live.onlineCount(), 1);

      // p resumes on the live node within its grace; q does not.
      const resumed = await live.claimPeer(
        claimOf(p.id, "live", "s2", { resumeHash: sha256(p.token) }),
      );
      assert.deepEqual(resumed, { fresh: false, channels: [c], away: false });
      assert.deepEqual(await live.expirePeers(before + liveness.graceMs - w.slackMs), []);
      assert.deepEqual(await live.expirePeers(after + liveness.graceMs + w.slackMs), [{
        id: q.id,
        channels: [{ channel: c, total: 2 }],
      }]);
      assert.deepEqual(await live.expirePeers(after + 10_000), []);
      assert.equal((await live.getPeer(p.id))?.online, true);
    },
  );

  rule("nodes whose clocks are a minute apart agree on when a grace ends", async (w) => {
    const ahead = () => Date.now() + 60_000;
    const behind = () => Date.now() - 60_000;
    const fast = await w.open("fast", { now: ahead });
    const slow = await w.open("slow", { now: behind });
    const p = await claimNew(slow, "slow");
    const q = await claimNew(fast, "fast");
    const graceMs = 1_000;
    const released = Date.now();
    await slow.releasePeer(p.id, p.session, behind() + graceMs);
    await fast.releasePeer(q.id, q.session, ahead() + graceMs);
    // The fast node would expire the slow node's peer at once on its own clock; the slow node
    // would keep the fast node's peer two minutes.
    assert.deepEqual(await fast.expirePeers(ahead()), []);
    assert.deepEqual(await slow.expirePeers(behind()), []);
    assert.equal((await fast.getPeer(p.id))?.online, false);
    await delay(released + graceMs + w.slackMs - Date.now());
    const gone = [...await slow.expirePeers(behind()), ...await fast.expirePeers(ahead())];
    assert.deepEqual(gone.map((e) => e.id).sort(), [p.id, q.id].sort());
  });

  rule("two nodes racing to declare a node dead quit each of its peers once", async (w) => {
    const liveness = { deadMs: 300, graceMs: 0 };
    const dead = await w.open("dead", { ...liveness, heartbeatMs: 60_000 });
    const n1 = await w.open("n1", { ...liveness, heartbeatMs: 50 });
    const n2 = await w.open("n2", { ...liveness, heartbeatMs: 50 });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push((await claimNew(dead, "dead")).id);
    await delay(450);
    const race = async () => {
      const out: Expired[] = [];
      for (let i = 0; i < 3; i++) out.push(...await (i % 2 ? n1 : n2).expirePeers(Date.now()));
      return out;
    };
    const [e1, e2] = await Promise.all([race(), race()]);
    assert.deepEqual(sortExpired([...e1, ...e2]).map((e) => e.id), [...ids].sort());
  });

  rule("close puts the node's remaining peers into their grace", async (w) => {
    const s1 = await w.open("n1", { graceMs: 1_000 });
    const s2 = await w.open("n2");
    const a = await claimNew(s1, "n1");
    await joinOk(s1, a.id, newChannel());
    await s1.close();
    const closed = Date.now();
    assert.equal((await s2.getPeer(a.id))?.online, false);
    assert.equal(await s2.onlineCount(), 0);
    assert.deepEqual(await s2.expirePeers(closed - 1_000), []);
    assert.equal((await s2.expirePeers(closed + 1_000)).length, 1);
  });

  if (kind !== "redis") return;
  Deno.test({
    name: "redis store: while Redis is unreachable, methods reject and ping resolves false",
  }, async () => {
    // Needs no Redis: nothing listens on port 1, so every connection attempt is refused.
    const s = new RedisStore("redis://127.0.0.1:1", {
      node: "n1",
      prefix: uniquePrefix(),
      limits: LIMITS,
    });
    try {
      await assert.rejects(s.ready(300));
      await assert.rejects(s.claimPeer(claimOf(newPeer(), "n1", "s1")));
      await assert.rejects(s.join(newPeer(), newChannel(), null));
      await assert.rejects(s.expirePeers(Date.now()));
      assert.equal(await s.ping(), false);
    } finally {
      await s.close();
    }
  });
}

contract("memory", memoryWorld, false);

const redis = await redisTests();
contract("redis", redisWorld(redis), redis.ignore);
redisRules("redis", redis);

const cluster = await redisClusterTests();
contract("redis cluster", redisWorld(cluster), cluster.ignore);
redisRules("redis cluster", cluster);
