/**
 * Events as they leave the core (PROTOCOL.md, "Events"): built from their
 * typed shape and serialized once, whatever the number of recipients.
 */
import type { EventOf, EventType } from "../../protocol/mod.ts";

/** A serialized event and its type (for metrics, without reading the text). */
export interface Outbound {
  readonly type: EventType;
  readonly text: string;
  /** The message's position in its stream, when it is a stream message. */
  readonly seq?: number;
}

/** A `privmsg` or `pubmsg` event. */
type MessageEvent = EventOf<"privmsg"> | EventOf<"pubmsg">;

/**
 * The JSON of a message event without its closing brace: a stream appends
 * `,"seq":N}` once it has numbered the message. Written field by field, in
 * the order `JSON.stringify` of the event would give and with the same bytes
 * (`id` is hex, `ts` an integer), so that only the strings a client chose
 * (or a front-end mapped, as a y-webrtc topic to a channel) are escaped.
 */
export function head(e: MessageEvent): string {
  const where = "to" in e
    ? ',"to":' + JSON.stringify(e.to)
    : ',"channel":' + JSON.stringify(e.channel);
  return '{"type":"' + e.type + '","id":"' + e.id + '","ts":' + e.ts + ',"from":' +
    JSON.stringify(e.from) + where + ',"text":' + JSON.stringify(e.text);
}

/** A message event kept in no stream, serialized once as {@linkcode head} writes it. */
export function message(event: MessageEvent): Outbound {
  return { type: event.type, text: head(event) + "}" };
}

/** A `quit` event: `peer` left `channel` (by `/quit`, or its grace ended). */
export function quitEvent(
  ctx: { now(): number },
  channel: string,
  peer: string,
  reason: "quit" | "disconnect",
): Outbound {
  return encode({ type: "quit", ts: ctx.now(), channel, peer, reason });
}

/** Serializes an event once, for every recipient. */
export function encode<T extends EventType>(event: EventOf<T> & { type: T }): Outbound {
  return { type: event.type, text: JSON.stringify(event) };
}
