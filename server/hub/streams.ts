/**
 * Message streams and recovery (PROTOCOL.md, "Message streams and
 * recovery"): positions in the `/descp` and `/join` replies, and the replay of
 * what a peer missed, put before the live events held back meanwhile so that
 * each stream's messages reach it once and in `seq` order.
 */
import type { ReplyData, Since } from "../../protocol/mod.ts";
import { channelTopic, peerTopic } from "../bus/bus.ts";
import type { Appended, Position, StreamName } from "../store/store.ts";
import type { Context } from "./context.ts";
import type { Outbound } from "./events.ts";
import type { Held, Session } from "./session.ts";

/** A stream to replay from a position (none: it cannot be, and gets `false`). */
interface Wanted {
  stream: StreamName;
  from?: Position;
}

/**
 * Ends hold `id` of `s` once the command that started it has its reply out:
 * call it when the command settles. The front-end sends the reply with
 * `hub.reply`, which ends the hold at once; one that does not gets the held
 * events a turn later all the same.
 */
export function endHold(ctx: Context, s: Session, id: number): void {
  setImmediate(() => {
    if (s.holdId === id) ctx.delivery.release(s);
  });
}

/**
 * Replays into the hold of `s` the messages after each wanted position, once
 * the bus delivers its streams here (so nothing published meanwhile is
 * missed). True for each stream replayed whole, false otherwise — never a
 * partial replay. Replays beyond the client's buffer limit are refused too.
 */
export async function replay(ctx: Context, s: Session, wanted: Wanted[]): Promise<boolean[]> {
  if (wanted.length === 0) return [];
  const channels = wanted.filter((w) => w.stream[0] === "c").map((w) => w.stream.slice(2));
  if (!await ctx.delivery.listening(s, channels)) return wanted.map(() => false);
  const texts = await Promise.all(
    wanted.map(({ stream, from }) =>
      from === undefined ? null : ctx.timed(ctx.store.since(stream, from, s.id!)).catch((e) => {
        ctx.log.warn("stream read failed", { stream, error: String(e) });
        return null;
      })
    ),
  );
  const out: Held[] = [];
  let bytes = 0;
  const ok = texts.map((t, i) => {
    const size = t?.reduce((n, x) => n + x.length, 0) ?? 0;
    if (t === null || bytes + size > ctx.options.maxBuffered) return false;
    bytes += size;
    const { stream, from } = wanted[i];
    t.forEach((text, k) => {
      // The sender never gets its own /pubmsg live; nor in a replay.
      if (stream[0] !== "c" || !sentBy(text, s.id!)) {
        out.push({ text, stream, seq: from!.seq + k + 1 });
      }
    });
    return true;
  });
  if (s.holding) s.prepend(out);
  return ok;
}

/** Whether a stored message was sent by `id`: its first `from` field (before any text) says. */
function sentBy(text: string, id: string): boolean {
  return text.startsWith(`"from":"${id}"`, text.indexOf('"from":"'));
}

/**
 * The stream fields of a `/descp` reply: the inbox position and, when the
 * client asked with `since`, what was recovered. `resumed`: the claim took an
 * existing peer over (only then is anything replayed). A store that fails
 * here costs the recovery (false), never the session.
 */
export async function described(
  ctx: Context,
  s: Session,
  asked: Since | undefined,
  resumed: boolean,
): Promise<Pick<ReplyData<"descp">, "inbox" | "recovered">> {
  const out: Pick<ReplyData<"descp">, "inbox" | "recovered"> = {};
  const inbox = peerTopic(s.id!);
  try {
    out.inbox = await ctx.timed(ctx.store.position(inbox));
  } catch (e) {
    ctx.log.warn("stream position failed", { stream: inbox, error: String(e) });
  }
  if (asked === undefined) return out;
  const keys: (string | null)[] = [];
  const wanted: Wanted[] = [];
  if (asked.inbox !== undefined) {
    keys.push(null);
    wanted.push({ stream: inbox, from: resumed ? asked.inbox : undefined });
  }
  for (const [channel, from] of Object.entries(asked.channels ?? {})) {
    keys.push(channel);
    const member = resumed && s.channels.has(channel);
    wanted.push({ stream: channelTopic(channel), from: member ? from : undefined });
  }
  const ok = await replay(ctx, s, wanted);
  const recovered: NonNullable<ReplyData<"descp">["recovered"]> = {};
  keys.forEach((key, i) => {
    if (key === null) recovered.inbox = ok[i];
    else (recovered.channels ??= {})[key] = ok[i];
  });
  out.recovered = recovered;
  return out;
}

/** Where a `/join` starts reading a channel's stream (before the store call, so nothing is lost). */
export function joinStart(ctx: Context, channel: string): Promise<Position | undefined> {
  return ctx.timed(ctx.store.position(channelTopic(channel))).catch(() => undefined);
}

/**
 * The `stream` of a `/join` reply: the messages after `start` (published
 * while the join took effect) are replayed after the reply; when they cannot
 * be, the position now (what came meanwhile is not delivered). A channel the
 * join `created` started a new stream: from its first message.
 */
export async function joined(
  ctx: Context,
  s: Session,
  channel: string,
  from: Position | undefined | "created",
): Promise<Position | undefined> {
  const stream = channelTopic(channel);
  const start = from === "created"
    ? await ctx.timed(ctx.store.position(stream)).then(
      (p) => ({ epoch: p.epoch, seq: 0 }),
      () => undefined,
    )
    : from;
  const [ok] = await replay(ctx, s, [{ stream, from: start }]);
  if (ok) return start;
  return await ctx.timed(ctx.store.position(stream)).catch(() => undefined);
}

/**
 * Delivers a message the store numbered, unless the store delivers itself
 * (to every node, this one included, in the same step as numbering it).
 */
export function deliverAppended(
  ctx: Context,
  a: Appended,
  type: "pubmsg" | "privmsg",
  to: (out: Outbound) => void,
): void {
  if (!ctx.store.delivers) to({ type, text: a.text, seq: a.seq });
}
