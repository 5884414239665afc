/**
 * Channels (PROTOCOL.md, `/join`, `/quit`, `/whois`, `/peers`): joining with
 * the ban, key, invite and channel-limit checks done atomically by the store,
 * leaving, and looking into a channel or a peer.
 */
import {
  Codes,
  type CommandArgs,
  PAGE_SIZE,
  type PeerEntry,
  type ReplyData,
} from "../../protocol/mod.ts";
import { type ChannelView, failed } from "../store/store.ts";
import { sha256 } from "../secrets.ts";
import { type Context, explain, refuse } from "./context.ts";
import { encode, quitEvent } from "./events.ts";
import * as streams from "./streams.ts";
import type { Session } from "./session.ts";

/** `/join`: joins (creating the channel with the key), tells the members. */
export async function join(
  ctx: Context,
  s: Session,
  c: CommandArgs<"join">,
): Promise<ReplyData<"join">> {
  ctx.needBus();
  const id = s.id!;
  const keyHash = c.token === undefined ? null : await sha256(c.channel + "\n" + c.token);
  // Messages published between the join and this node's subscription are replayed from here.
  const start = ctx.store.history > 0 ? await streams.joinStart(ctx, c.channel) : undefined;
  const r = await ctx.must(ctx.store.join(id, c.channel, keyHash), { channel: c.channel });
  const hold = ctx.store.history > 0 ? s.hold() : 0;
  try {
    // Also when `already`: a retried /join whose first reply was lost must be a member here too.
    ctx.delivery.joinLocal(s, c.channel);
    if (!r.already && ctx.showsPresence(r.total)) {
      ctx.delivery.toChannel(
        c.channel,
        encode({
          type: "join",
          ts: ctx.now(),
          channel: c.channel,
          peer: { id, name: s.peer.name },
        }),
        id,
      );
    }
    const members = await ctx.timed(ctx.store.members(c.channel, 0, PAGE_SIZE));
    const data: ReplyData<"join"> = {
      channel: c.channel,
      created: r.created,
      op: r.op,
      total: r.total,
      members,
    };
    if (hold !== 0) {
      const stream = await streams.joined(ctx, s, c.channel, r.created ? "created" : start);
      if (stream !== undefined) data.stream = stream;
    }
    return data;
  } finally {
    if (hold !== 0) streams.endHold(ctx, s, hold);
  }
}

/** `/quit`: leaves a channel, tells the members who remain. */
export async function quit(
  ctx: Context,
  s: Session,
  c: CommandArgs<"quit">,
): Promise<ReplyData<"quit">> {
  ctx.needBus();
  const id = s.id!;
  const r = await ctx.timed(ctx.store.quit(id, c.channel));
  // Not a member in the store (a retried /quit, a kick elsewhere): not one here either.
  ctx.delivery.leaveLocal(s, c.channel);
  if (failed(r)) refuse(r.error, explain(r.error, { channel: c.channel }));
  if (ctx.showsPresence(r.total + 1)) {
    ctx.delivery.toChannel(c.channel, quitEvent(ctx, c.channel, id, "quit"), id);
  }
  return { channel: c.channel };
}

/** `/whois`: a peer (with the channels the asker may see) or a channel (its first page). */
export async function whois(
  ctx: Context,
  s: Session,
  c: CommandArgs<"whois">,
): Promise<ReplyData<"whois">> {
  if (c.channel !== undefined) {
    const ch = await visibleChannel(ctx, s, c.channel);
    const members = await ctx.timed(ctx.store.members(c.channel, 0, PAGE_SIZE));
    return {
      channel: ch.channel,
      members,
      operators: ch.operators,
      keyed: ch.keyed,
      created: ch.created,
      total: ch.total,
    };
  }
  const p = await ctx.timed(ctx.store.getPeer(c.peer!));
  if (p === null) refuse(Codes.ERR_NOSUCHNICK, `No such peer: ${c.peer}`);
  const data: ReplyData<"whois"> = {
    id: p.id,
    name: p.name,
    meta: p.meta,
    away: p.away,
    online: p.online,
    channels: p.channels.filter((x) => !x.keyed || s.channels.has(x.channel)).map((x) => x.channel),
  };
  if (p.message !== undefined) data.message = p.message;
  return data;
}

/** `/peers`: one page of a channel's members, in join order. */
export async function peers(
  ctx: Context,
  s: Session,
  c: CommandArgs<"peers">,
): Promise<ReplyData<"peers">> {
  const ch = await visibleChannel(ctx, s, c.channel);
  const page: PeerEntry[] = c.offset < ch.total
    ? await ctx.timed(ctx.store.members(c.channel, c.offset, PAGE_SIZE))
    : [];
  const data: ReplyData<"peers"> = {
    channel: c.channel,
    total: ch.total,
    offset: c.offset,
    peers: page,
  };
  if (c.offset + page.length < ch.total) data.next = c.offset + page.length;
  return data;
}

/** A channel the asker may look into: `403` unknown, `442` keyed and not a member. */
async function visibleChannel(ctx: Context, s: Session, channel: string): Promise<ChannelView> {
  const ch = await ctx.timed(ctx.store.getChannel(channel));
  if (ch === null) refuse(Codes.ERR_NOSUCHCHANNEL, `No such channel ${channel}`);
  if (ch.keyed && !s.channels.has(channel)) {
    refuse(Codes.ERR_NOTONCHANNEL, `${channel} is keyed: members only`);
  }
  return ch;
}
