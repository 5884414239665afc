/**
 * Events as they leave the core (PROTOCOL.md, "Events"): built from their
 * typed shape and serialized once, whatever the number of recipients.
 */
import type { EventOf, EventType } from "../../protocol/mod.ts";

/** A serialized event and its type (for metrics, without reading the text). */
export interface Outbound {
  readonly type: EventType;
  readonly text: string;
}

/** Serializes an event once, for every recipient. */
export function encode<T extends EventType>(event: EventOf<T> & { type: T }): Outbound {
  return { type: event.type, text: JSON.stringify(event) };
}
