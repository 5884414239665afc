/**
 * Moderation (PROTOCOL.md, `/invite`, `/kick`, `/ban`, `/unban`): operators
 * remove and ban peers, members invite them; an optional channel resolves to
 * the one that fits.
 */
import { type Code, Codes, type CommandArgs, type ReplyData } from "../../protocol/mod.ts";
import { type Context, refuse } from "./context.ts";
import { encode } from "./events.ts";
import type { Session } from "./session.ts";

/** `/invite`: the target may join once, key or not; only it is told. */
export async function invite(
  ctx: Context,
  s: Session,
  c: CommandArgs<"invite">,
): Promise<ReplyData<"invite">> {
  ctx.needBus();
  // In the protocol's order: 461 (several channels fit), 401, then 442 (none fits).
  const fits = c.channel === undefined ? [...s.channels] : [c.channel];
  if (fits.length > 1) refuse(Codes.ERR_NEEDMOREPARAMS, "channel required: several channels fit");
  if (
    !(ctx.delivery.peers.has(c.peer) || (await ctx.timed(ctx.store.presence(c.peer)))?.online)
  ) {
    refuse(Codes.ERR_NOSUCHNICK, `No such peer online: ${c.peer}`);
  }
  const channel = only(fits, Codes.ERR_NOTONCHANNEL, "You are on no channel");
  await ctx.must(ctx.store.invite(s.id!, c.peer, channel), { channel, peer: c.peer });
  ctx.delivery.toPeer(c.peer, encode({ type: "invite", ts: ctx.now(), channel, from: s.id! }));
  return { channel, peer: c.peer };
}

/** `/kick`: an operator removes a member; the channel and the kicked peer are told. */
export async function kick(
  ctx: Context,
  s: Session,
  c: CommandArgs<"kick">,
): Promise<ReplyData<"kick">> {
  ctx.needBus();
  const target = await ctx.timed(ctx.store.getPeer(c.peer));
  if (target === null) refuse(Codes.ERR_NOSUCHNICK, `No such peer: ${c.peer}`);
  let channel = c.channel;
  if (channel === undefined) {
    const targetIn = new Set(target.channels.map((x) => x.channel));
    channel = only(
      (await opChannels(ctx, s)).filter((x) => targetIn.has(x)),
      Codes.ERR_USERNOTINCHANNEL,
      `${c.peer} is on none of your channels`,
    );
  }
  await ctx.must(ctx.store.kick(s.id!, c.peer, channel), { channel, peer: c.peer });
  const event = encode({
    type: "kick",
    ts: ctx.now(),
    channel,
    peer: c.peer,
    by: s.id!,
    ...(c.text === undefined ? {} : { text: c.text }),
  });
  ctx.delivery.toChannel(channel, event, undefined, c.peer);
  return { channel, peer: c.peer };
}

/** `/ban`: an operator bans a peer (removing it if a member); it is told even if not a member. */
export async function ban(
  ctx: Context,
  s: Session,
  c: CommandArgs<"ban">,
): Promise<ReplyData<"ban">> {
  ctx.needBus();
  const channel = c.channel ?? await onlyOpChannel(ctx, s);
  const r = await ctx.must(ctx.store.ban(s.id!, c.peer, channel), { channel, peer: c.peer });
  const event = encode({ type: "ban", ts: ctx.now(), channel, peer: c.peer, by: s.id! });
  if (r.wasMember) ctx.delivery.toChannel(channel, event, undefined, c.peer);
  else {
    ctx.delivery.toChannel(channel, event);
    ctx.delivery.toPeer(c.peer, event);
  }
  return { channel, peer: c.peer };
}

/** `/unban`: an operator lifts a ban; nobody is told. */
export async function unban(
  ctx: Context,
  s: Session,
  c: CommandArgs<"unban">,
): Promise<ReplyData<"unban">> {
  const channel = c.channel ?? await onlyOpChannel(ctx, s);
  await ctx.must(ctx.store.unban(s.id!, c.peer, channel), { channel, peer: c.peer });
  return { channel, peer: c.peer };
}

/** The sender's channels where it is operator; `482` when none. */
async function opChannels(ctx: Context, s: Session): Promise<string[]> {
  const ops = await ctx.timed(ctx.store.operatorOf(s.id!, [...s.channels]));
  if (ops.length === 0) {
    refuse(Codes.ERR_CHANOPRIVSNEEDED, "You are operator on none of your channels");
  }
  return ops;
}

/** The one channel where the sender is operator. */
async function onlyOpChannel(ctx: Context, s: Session): Promise<string> {
  return only(await opChannels(ctx, s), Codes.ERR_CHANOPRIVSNEEDED, "You are operator nowhere");
}

/** The one candidate: `none` when there is none, `461` when several fit. */
function only(candidates: string[], none: Code, message: string): string {
  if (candidates.length === 0) refuse(none, message);
  if (candidates.length > 1) {
    refuse(Codes.ERR_NEEDMOREPARAMS, "channel required: several channels fit");
  }
  return candidates[0];
}
