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

/**
 * The JSON of a stream message without its closing brace: the stream appends
 * `,"seq":N}` once it has numbered the message.
 */
export function head<T extends "pubmsg" | "privmsg">(event: EventOf<T> & { type: T }): string {
  const text = JSON.stringify(event);
  return text.slice(0, -1);
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
