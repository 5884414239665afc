/**
 * Messages (PROTOCOL.md, `/privmsg`, `/pubmsg`, `/broadcast`, `/away`): SDP
 * and ICE to one peer, danmaku to a channel, an admin's word to everyone, and
 * the away state shown to the peers who share a channel.
 */
import { Codes, type CommandArgs, type EventOf, type ReplyData } from "../../protocol/mod.ts";
import { newId } from "../ids.ts";
import { type Context, refuse, type Result } from "./context.ts";
import { encode, head, message } from "./events.ts";
import type { Routed } from "../store/store.ts";
import { presenceChanged } from "./presence.ts";
import { deliverAppended } from "./streams.ts";
import type { Session } from "./session.ts";

/**
 * `/privmsg`: to one peer, wherever it is. No store round trip when the peer
 * is on this node and streams are off. With streams, the message is stored in
 * the target's inbox, also while it is in its grace (`queued`); `keep` false
 * keeps it in no stream, for protocols whose clients never ask for what they
 * missed (an offline target is then `401`, as without streams).
 */
export function privmsg(
  ctx: Context,
  s: Session,
  c: CommandArgs<"privmsg">,
  keep: boolean = ctx.store.history > 0,
): Result<"privmsg"> {
  const id = newId(), ts = ctx.now();
  const event = { type: "privmsg" as const, id, ts, from: s.id!, to: c.peer, text: c.text };
  if (keep) {
    // A store that delivers does it through the bus, also to this node.
    if (ctx.store.delivers) ctx.needBus();
    return ctx.then(
      ctx.store.route(c.peer, head(event)),
      (r) => routedReply(ctx, c.peer, r, id, ts),
    );
  }
  const out = message(event);
  const target = ctx.delivery.peers.get(c.peer);
  if (target !== undefined) {
    ctx.delivery.toPeer(c.peer, out);
    return awayReply(id, ts, target.peer.away, target.peer.message);
  }
  // On another node: what this node remembers of it, or one store read.
  const known = ctx.presence.get(c.peer);
  if (known !== undefined) {
    ctx.needBus();
    ctx.delivery.toPeer(c.peer, out);
    return awayReply(id, ts, known.away, known.message);
  }
  return ctx.presence.read(c.peer, () => ctx.timed(ctx.store.presence(c.peer))).then((p) => {
    if (p === null || !p.online) refuse(Codes.ERR_NOSUCHNICK, `No such peer online: ${c.peer}`);
    ctx.needBus();
    ctx.delivery.toPeer(c.peer, out);
    return awayReply(id, ts, p.away, p.message);
  });
}

/** The reply to a `/privmsg` stored in the target's inbox; delivers it unless the store did. */
function routedReply(
  ctx: Context,
  peer: string,
  r: Routed | null,
  id: string,
  ts: number,
): ReplyData<"privmsg"> {
  if (r === null) refuse(Codes.ERR_NOSUCHNICK, `No such peer: ${peer}`);
  if (!r.online) return { id, ts, queued: true };
  deliverAppended(ctx, r, "privmsg", (out) => ctx.delivery.toPeer(peer, out));
  return awayReply(id, ts, r.away, r.message);
}

function awayReply(id: string, ts: number, away: boolean, message?: string) {
  return away ? { id, ts, away: message ?? "" } : { id, ts };
}

/**
 * `/pubmsg`: to every member of the channel but the sender. No store round
 * trip: this node knows its peers' memberships.
 */
export function pubmsg(ctx: Context, s: Session, c: CommandArgs<"pubmsg">): Result<"pubmsg"> {
  if (s.channels.has(c.channel)) {
    ctx.needBus();
    const id = newId(), ts = ctx.now();
    const event = {
      type: "pubmsg" as const,
      id,
      ts,
      from: s.id!,
      channel: c.channel,
      text: c.text,
    };
    if (ctx.store.history === 0) {
      ctx.delivery.toChannel(c.channel, message(event), s.id!);
      return { id, ts };
    }
    return ctx.then(ctx.store.publish(c.channel, head(event), s.id!), (a) => {
      deliverAppended(ctx, a, "pubmsg", (out) => ctx.delivery.toChannel(c.channel, out, s.id!));
      return { id, ts, seq: a.seq };
    });
  }
  return ctx.timed(ctx.store.getChannel(c.channel)).then((ch) =>
    ch === null
      ? refuse(Codes.ERR_NOSUCHCHANNEL, `No such channel ${c.channel}`)
      : refuse(Codes.ERR_CANNOTSENDTOCHAN, `Cannot send to ${c.channel}: not a member`)
  );
}

/** `/broadcast`: a server admin's text to every described peer on every node. */
export async function broadcast(
  ctx: Context,
  s: Session,
  c: CommandArgs<"broadcast">,
): Promise<ReplyData<"broadcast">> {
  ctx.needBus();
  if (!s.peer.admin) refuse(Codes.ERR_NOPRIVILEGES, "Only server admins may broadcast");
  const online = await ctx.timed(ctx.store.onlineCount());
  const id = newId(), ts = ctx.now();
  ctx.delivery.toAll(encode({ type: "broadcast", id, ts, from: s.id!, text: c.text }), s.id!);
  return { id, ts, recipients: Math.max(0, online - 1) };
}

/** `/away`: sets, clears or toggles the away state; peers sharing a channel are told. */
export async function away(
  ctx: Context,
  s: Session,
  c: CommandArgs<"away">,
): Promise<ReplyData<"away">> {
  ctx.needBus();
  const id = s.id!;
  const r = await ctx.timed(ctx.store.setAway(id, c.text === undefined ? null : true, c.text));
  s.peer.away = r.away;
  s.peer.message = r.message;
  presenceChanged(ctx, [id]);
  const channels = r.channels.filter((t) => ctx.showsPresence(t.total)).map((t) => t.channel);
  if (channels.length > 0) {
    const event: EventOf<"away"> = { type: "away", ts: ctx.now(), peer: id, away: r.away };
    if (r.message !== undefined) event.message = r.message;
    ctx.delivery.toChannels(channels, encode(event), id);
  }
  return r.message === undefined ? { away: r.away } : { away: r.away, message: r.message };
}
