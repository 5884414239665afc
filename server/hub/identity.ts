/**
 * Identity (PROTOCOL.md, "`/descp`", "Semantics": descp first, identity,
 * disconnect grace, several nodes): claiming an id, taking a session over with the resume token,
 * closing sessions, releasing a peer into its grace and quitting the peers
 * whose grace ended.
 */
import { CloseCodes, Codes, type Description, type ReplyData } from "../../protocol/mod.ts";
import { peerTopic } from "../bus/bus.ts";
import { randomToken, sameSecret, sha256 } from "../secrets.ts";
import { type Context, refuse } from "./context.ts";
import { quitEvent } from "./events.ts";
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
  const fresh = randomToken();
  const claimed = await ctx.must(
    ctx.store.claimPeer({
      id: d.id,
      name: d.name,
      meta: d.meta,
      admin,
      resumeHash: d.resume === undefined ? null : await sha256(d.resume),
      freshHash: await sha256(fresh),
      node: ctx.node,
      session: s.nonce,
    }),
    { peer: d.id },
  );
  // The claim holds the id now: any other session of it is over, here or elsewhere.
  const old = ctx.delivery.peers.get(d.id);
  if (claimed.replaced !== undefined && old?.nonce !== claimed.replaced.session) {
    ctx.bus.publish(peerTopic(d.id), { replace: claimed.replaced.session });
  }
  if (s.gone) {
    // The socket closed while the claim was in flight: the peer starts its grace now.
    if (old !== undefined) evict(ctx, old, CloseCodes.REPLACED, "replaced by a newer session");
    await release(ctx, d.id, s.nonce);
    refuse(Codes.ERR_UNAVAILABLE, "closed");
  }
  // A resume that asks for what it missed holds live events back until the replay is out.
  const hold = d.since !== undefined && !claimed.fresh && ctx.store.history > 0 ? s.hold() : 0;
  s.describe({
    id: d.id,
    name: d.name,
    meta: d.meta,
    admin,
    resume: claimed.fresh ? fresh : d.resume!,
    away: claimed.away,
    message: claimed.message,
  });
  // The new session is in place before the old one leaves: no subscription lapses.
  ctx.delivery.bind(s);
  for (const c of claimed.channels) ctx.delivery.joinLocal(s, c);
  if (old !== undefined) evict(ctx, old, CloseCodes.REPLACED, "replaced by a newer session");
  try {
    return await described(ctx, s, d, !claimed.fresh);
  } catch (e) {
    // The claim took effect but the reply cannot be made: no half-described session.
    drop(ctx, s, CloseCodes.GOING_AWAY, "the server could not complete descp; resume");
    throw e;
  } finally {
    if (hold !== 0) streams.endHold(ctx, s, hold);
  }
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
 * The socket of `s` closed: its peer enters the disconnect grace. Resolves
 * when the store has it (never rejects: a failure is logged).
 */
export function disconnected(ctx: Context, s: Session): Promise<void> {
  if (!s.markGone()) return Promise.resolve();
  ctx.delivery.sessions.delete(s);
  if (s.id === null || s.replaced) return Promise.resolve();
  ctx.delivery.forget(s);
  return release(ctx, s.id, s.nonce);
}

/** The session `nonce` no longer holds peer `id`: the peer enters its grace (never rejects). */
function release(ctx: Context, id: string, nonce: string): Promise<void> {
  return ctx.timed(ctx.store.releasePeer(id, nonce, ctx.now() + ctx.options.graceMs))
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
    const ctx = this.#ctx;
    try {
      for (const gone of await ctx.timed(ctx.store.expirePeers(ctx.now()))) {
        // A session still open here was given up by the cluster (this node stalled).
        const stale = ctx.delivery.peers.get(gone.id);
        if (stale !== undefined) evict(ctx, stale, CloseCodes.GOING_AWAY, "session expired");
        for (const t of gone.channels) {
          if (!ctx.showsPresence(t.total + 1)) continue;
          ctx.delivery.toChannel(t.channel, quitEvent(ctx, t.channel, gone.id, "disconnect"));
        }
      }
    } catch (e) {
      ctx.log.warn("sweep failed", { error: String(e) });
    } finally {
      this.#sweeping = false;
    }
  }
}
