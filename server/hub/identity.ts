/**
 * Identity (PROTOCOL.md, "`/descp`", "Semantics": descp first, identity,
 * disconnect grace, several nodes): claiming an id, taking a session over with the resume token,
 * closing sessions, releasing a peer into its grace and quitting the peers
 * whose grace ended.
 */
import {
  CloseCodes,
  Codes,
  type Description,
  type ReplyData,
  type Since,
} from "../../protocol/mod.ts";
import { peerTopic } from "../bus/bus.ts";
import { randomToken, sameSecret, sha256 } from "../secrets.ts";
import { failed } from "../store/store.ts";
import { type Context, explain, refuse } from "./context.ts";
import { quitEvent } from "./events.ts";
import { presenceChanged } from "./presence.ts";
import type { Session } from "./session.ts";
import * as streams from "./streams.ts";

/** `/descp`: claims the id (new, or resumed with its token) and describes the session. */
export async function descp(ctx: Context, s: Session, d: Description): Promise<ReplyData<"descp">> {
  const o = ctx.options;
  let admin = o.adminToken !== undefined && d.admin !== undefined &&
    sameSecret(d.admin, o.adminToken);
  if (s.id !== null) {
    if (s.id !== d.id) refuse(Codes.ERR_ALREADYREGISTERED, `Already described as ${s.id}`);
    // The same id again: update name and meta, keep the session.
    await ctx.timed(ctx.store.describePeer(d.id, s.nonce, {
      name: d.name,
      meta: d.meta,
      admin: admin || s.peer.admin,
    }));
    s.describe({ ...s.peer, name: d.name, meta: d.meta, admin: admin || s.peer.admin });
    return described(ctx, s, d, false);
  }
  if (o.auth !== undefined) {
    const claims = await o.auth(d.token, d.id);
    if (claims === null) {
      refuse(Codes.ERR_ERRONEUSNICKNAME, "token is missing, invalid or not for this id", {
        code: CloseCodes.NOT_DESCRIBED,
        reason: "invalid token",
      });
    }
    admin ||= claims.admin;
  }
  const taken = await take(ctx, s, { ...d, admin, fresh: randomToken(), since: d.since });
  try {
    return await described(ctx, s, d, !taken.fresh);
  } catch (e) {
    // The claim took effect but the reply cannot be made: no half-described session.
    drop(ctx, s, CloseCodes.GOING_AWAY, "the server could not complete descp; resume");
    throw e;
  } finally {
    if (taken.hold !== 0) streams.endHold(ctx, s, taken.hold);
  }
}

/** What {@linkcode take} claims: the id, the token presented, the token kept when the id is new. */
interface Taking {
  id: string;
  name: string;
  meta: Record<string, unknown>;
  admin: boolean;
  resume?: string;
  fresh: string;
  /** On a resume, hold live events back for a replay of what was missed since then. */
  since?: Since;
}

/**
 * Claims `id` for a session whose client brings its own token instead of
 * `/descp` (a front-end whose protocol has no room for this server's resume
 * token or auth token): the id is taken when new, or resumed when `token` is
 * the one it was first claimed with; `433` otherwise. Resolves whether a live
 * session of the id was taken over.
 */
export async function claim(
  ctx: Context,
  s: Session,
  c: { id: string; name: string; token: string },
): Promise<{ replaced: boolean }> {
  if (s.id !== null) refuse(Codes.ERR_ALREADYREGISTERED, `Already described as ${s.id}`);
  const { replaced } = await take(ctx, s, {
    id: c.id,
    name: c.name,
    meta: {},
    admin: false,
    resume: c.token,
    fresh: c.token,
  });
  return { replaced };
}

/**
 * Claims the id in the store, then binds the session to it here. Resolves
 * whether the id was new, whether a live session of it was taken over, and
 * the hold of live events a resume asking for a replay began (0: none).
 */
async function take(
  ctx: Context,
  s: Session,
  t: Taking,
): Promise<{ fresh: boolean; replaced: boolean; hold: number }> {
  const request = {
    id: t.id,
    name: t.name,
    meta: t.meta,
    admin: t.admin,
    resumeHash: t.resume === undefined ? null : await sha256(t.resume),
    freshHash: await sha256(t.fresh),
    node: ctx.node,
    session: s.nonce,
  };
  let r = await ctx.timed(ctx.store.claimPeer(request));
  // An id whose grace has ended is free now, not only after the next periodic sweep.
  if (failed(r) && r.error === Codes.ERR_NICKNAMEINUSE && (await expire(ctx)).includes(t.id)) {
    r = await ctx.timed(ctx.store.claimPeer(request));
  }
  if (failed(r)) refuse(r.error, explain(r.error, { peer: t.id }));
  const claimed = r;
  // The claim holds the id now: any other session of it is over, here or elsewhere.
  const old = ctx.delivery.peers.get(t.id);
  if (claimed.replaced !== undefined) {
    if (old?.nonce !== claimed.replaced.session) {
      ctx.bus.publish(peerTopic(t.id), { replace: claimed.replaced.session });
    }
    presenceChanged(ctx, [t.id]);
  }
  if (s.gone) {
    // The socket closed while the claim was in flight: the peer starts its grace now.
    if (old !== undefined) evict(ctx, old, CloseCodes.REPLACED, "replaced by a newer session");
    await release(ctx, t.id, s.nonce);
    refuse(Codes.ERR_UNAVAILABLE, "closed");
  }
  // A resume that asks for what it missed holds live events back until the replay is out.
  const hold = t.since !== undefined && !claimed.fresh && ctx.store.history > 0 ? s.hold() : 0;
  s.describe({
    id: t.id,
    name: t.name,
    meta: t.meta,
    admin: t.admin,
    resume: claimed.fresh ? t.fresh : t.resume!,
    away: claimed.away,
    message: claimed.message,
  });
  // The new session is in place before the old one leaves: no subscription lapses.
  ctx.delivery.bind(s);
  for (const c of claimed.channels) ctx.delivery.joinLocal(s, c);
  if (old !== undefined) evict(ctx, old, CloseCodes.REPLACED, "replaced by a newer session");
  return { fresh: claimed.fresh, replaced: claimed.replaced !== undefined, hold };
}

/** The `/descp` reply for a session now described; `resumed`: it took an existing peer over. */
async function described(
  ctx: Context,
  s: Session,
  d: Description,
  resumed: boolean,
): Promise<ReplyData<"descp">> {
  const data: ReplyData<"descp"> = {
    peer: { id: d.id, name: d.name, meta: d.meta },
    resume: s.peer.resume,
    admin: s.peer.admin,
    channels: [...s.channels],
    server: { name: "signaller", version: ctx.options.version, node: ctx.node },
  };
  if (ctx.options.iceServers !== undefined) data.iceServers = await ctx.options.iceServers(d.id);
  if (ctx.store.history > 0) Object.assign(data, await streams.described(ctx, s, d.since, resumed));
  return data;
}

/** Closes a session's socket from the server side; its peer enters the grace. */
export function drop(ctx: Context, s: Session, code: number, reason: string): void {
  if (s.gone) return;
  ctx.log.debug("close", { code, reason, peer: s.id, remote: s.conn.remoteAddress });
  s.conn.close(code, reason);
  disconnected(ctx, s);
}

/**
 * Closes a session that no longer holds its peer (taken over, or given up by
 * the cluster): the peer is not released, nobody is told.
 */
export function evict(ctx: Context, s: Session, code: number, reason: string): void {
  s.markReplaced();
  ctx.delivery.forget(s);
  drop(ctx, s, code, reason);
}

/**
 * The socket of `s` closed: its peer enters the disconnect grace, `graceMs`
 * long. Resolves when the store has it (never rejects: a failure is logged).
 */
export function disconnected(
  ctx: Context,
  s: Session,
  graceMs: number = ctx.options.graceMs,
): Promise<void> {
  if (!s.markGone()) return Promise.resolve();
  ctx.delivery.sessions.delete(s);
  if (s.id === null || s.replaced) return Promise.resolve();
  ctx.delivery.forget(s);
  return release(ctx, s.id, s.nonce, graceMs);
}

/** The session `nonce` no longer holds peer `id`: the peer enters its grace (never rejects). */
function release(
  ctx: Context,
  id: string,
  nonce: string,
  graceMs: number = ctx.options.graceMs,
): Promise<void> {
  // Told once the store has it: a node that reads the presence after that sees the grace.
  return ctx.timed(ctx.store.releasePeer(id, nonce, ctx.now() + graceMs))
    .then(() => presenceChanged(ctx, [id]))
    .catch((e) => ctx.unexpected("release", e, { peer: id }));
}

/** Quits the peers whose grace ended, once for the whole cluster, every `sweepMs`. */
export class GraceSweeper {
  readonly #ctx: Context;
  readonly #timer: ReturnType<typeof setInterval>;
  #sweeping = false;

  constructor(ctx: Context) {
    this.#ctx = ctx;
    this.#timer = setInterval(() => this.sweep(), ctx.options.sweepMs);
  }

  /** Stops sweeping. */
  stop(): void {
    clearInterval(this.#timer);
  }

  /** One sweep; a sweep still running makes this one a no-op. */
  async sweep(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      await expire(this.#ctx);
    } catch (e) {
      this.#ctx.log.warn("sweep failed", { error: String(e) });
    } finally {
      this.#sweeping = false;
    }
  }
}

/**
 * Quits the peers whose grace ended (each once for the whole cluster: the
 * store hands every one of them out once) and resolves their ids.
 */
export async function expire(ctx: Context): Promise<string[]> {
  const ids: string[] = [];
  for (const gone of await ctx.timed(ctx.store.expirePeers(ctx.now()))) {
    ids.push(gone.id);
    // A session still open here was given up by the cluster (this node stalled).
    const stale = ctx.delivery.peers.get(gone.id);
    if (stale !== undefined) evict(ctx, stale, CloseCodes.GOING_AWAY, "session expired");
    for (const t of gone.channels) {
      if (!ctx.showsPresence(t.total + 1)) continue;
      ctx.delivery.toChannel(t.channel, quitEvent(ctx, t.channel, gone.id, "disconnect"));
    }
  }
  presenceChanged(ctx, ids);
  return ids;
}
