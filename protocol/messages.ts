/**
 * Replies and events, server → client (PROTOCOL.md, "Replies" and "Events"):
 * TypeScript types and zod schemas, discriminated on `type`.
 *
 * Built on `zod/mini` so the browser bundle stays small.
 */
import * as z from "zod/mini";
import type { CommandName } from "./grammar.ts";

const str = z.string();
const num = z.number();
const bool = z.boolean();
const opt = z.optional;

/** A peer as listed in `/join`, `/peers` and `/whois #channel`. */
export const PeerEntry = z.object({
  id: str,
  name: str,
  op: bool,
  away: bool,
  message: opt(str),
  online: bool,
});
/** A peer as listed in `/join`, `/peers` and `/whois #channel`. */
export type PeerEntry = z.infer<typeof PeerEntry>;

/** A message stream's position: its epoch and the seq of its last message. */
export const Position = z.object({ epoch: str, seq: num });
/** A message stream's position. */
export type Position = z.infer<typeof Position>;

/** Success `data` of each command. */
export const ReplyData = {
  descp: z.object({
    peer: z.object({ id: str, name: str, meta: z.record(str, z.unknown()) }),
    resume: str,
    admin: bool,
    channels: z.array(str),
    server: z.object({ name: str, version: str, node: str }),
    iceServers: opt(z.array(z.object({
      urls: z.union([str, z.array(str)]),
      username: opt(str),
      credential: opt(str),
    }))),
    /** The peer's inbox stream (absent when streams are off). */
    inbox: opt(Position),
    /** After a resume with `since`: which of the streams asked for were replayed. */
    recovered: opt(z.object({
      inbox: opt(bool),
      channels: opt(z.record(str, bool)),
    })),
  }),
  join: z.object({
    channel: str,
    created: bool,
    op: bool,
    total: num,
    members: z.array(PeerEntry),
    /** The channel's message stream (absent when streams are off). */
    stream: opt(Position),
  }),
  quit: z.object({ channel: str }),
  privmsg: z.object({ id: str, ts: num, away: opt(str), queued: opt(bool) }),
  pubmsg: z.object({ id: str, ts: num, seq: opt(num) }),
  broadcast: z.object({ id: str, ts: num, recipients: num }),
  whois: z.union([
    z.object({
      id: str,
      name: str,
      meta: z.record(str, z.unknown()),
      away: bool,
      message: opt(str),
      online: bool,
      channels: z.array(str),
    }),
    z.object({
      channel: str,
      members: z.array(PeerEntry),
      operators: z.array(str),
      keyed: bool,
      created: num,
      /** Members in all; `members` holds at most the first 500 (see `/peers`). */
      total: opt(num),
    }),
  ]),
  peers: z.object({
    channel: str,
    total: num,
    offset: num,
    next: opt(num),
    peers: z.array(PeerEntry),
  }),
  invite: z.object({ channel: str, peer: str }),
  away: z.object({ away: bool, message: opt(str) }),
  kick: z.object({ channel: str, peer: str }),
  ban: z.object({ channel: str, peer: str }),
  unban: z.object({ channel: str, peer: str }),
} satisfies Record<CommandName, z.ZodMiniType>;

/** Success `data` of command `C`. */
export type ReplyData<C extends CommandName> = z.infer<typeof ReplyData[C]>;

/** A success reply. `data` is checked against {@linkcode ReplyData} by `cmd`. */
export const OkReply = z.object({ type: z.literal("ok"), cmd: str, data: z.unknown() });
/** A success reply. */
export type OkReply = z.infer<typeof OkReply>;

/** An error reply; `retryAfterMs` comes with code 263. */
export const ErrorReply = z.object({
  type: z.literal("error"),
  cmd: z.nullable(str),
  code: num,
  error: str,
  message: str,
  retryAfterMs: opt(num),
});
/** An error reply. */
export type ErrorReply = z.infer<typeof ErrorReply>;

const msg = { id: str, ts: num, from: str, text: str };

/** Every event, by `type`. */
export const Events = {
  privmsg: z.object({ type: z.literal("privmsg"), ...msg, to: str, seq: opt(num) }),
  pubmsg: z.object({ type: z.literal("pubmsg"), ...msg, channel: str, seq: opt(num) }),
  broadcast: z.object({ type: z.literal("broadcast"), ...msg }),
  join: z.object({
    type: z.literal("join"),
    ts: num,
    channel: str,
    peer: z.object({ id: str, name: str }),
  }),
  quit: z.object({
    type: z.literal("quit"),
    ts: num,
    channel: str,
    peer: str,
    reason: z.enum(["quit", "disconnect"]),
  }),
  kick: z.object({
    type: z.literal("kick"),
    ts: num,
    channel: str,
    peer: str,
    by: str,
    text: opt(str),
  }),
  ban: z.object({ type: z.literal("ban"), ts: num, channel: str, peer: str, by: str }),
  invite: z.object({ type: z.literal("invite"), ts: num, channel: str, from: str }),
  away: z.object({
    type: z.literal("away"),
    ts: num,
    peer: str,
    away: bool,
    message: opt(str),
  }),
  notice: z.object({ type: z.literal("notice"), ts: num, text: str, code: opt(num) }),
};

/** An event type name, e.g. `"pubmsg"`. */
export type EventType = keyof typeof Events;
/** The event of type `T`. */
export type EventOf<T extends EventType> = z.infer<typeof Events[T]>;

/** Any object the server sends: a reply or an event. */
export const ServerMessage = z.discriminatedUnion("type", [
  OkReply,
  ErrorReply,
  ...Object.values(Events),
]);
/** Any object the server sends. */
export type ServerMessage = OkReply | ErrorReply | { [T in EventType]: EventOf<T> }[EventType];
/** Any event. */
export type ServerEvent = { [T in EventType]: EventOf<T> }[EventType];

/**
 * Splits a server frame into its messages (newline-delimited JSON) and
 * validates each; malformed lines come back as `null`, never a throw.
 */
export function parseServerFrame(frame: string): (ServerMessage | null)[] {
  const out: (ServerMessage | null)[] = [];
  for (const line of frame.split("\n")) {
    if (line.length === 0) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      out.push(null);
      continue;
    }
    const r = ServerMessage.safeParse(value);
    out.push(r.success ? r.data as ServerMessage : null);
  }
  return out;
}
