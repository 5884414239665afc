/**
 * Cross-node delivery. A node delivers to its own sockets directly and hands
 * the same envelope to the bus, which carries it to the other nodes that
 * subscribed to the topic (and never back to the publishing node). With the
 * memory store there are no other nodes and the bus is {@linkcode NoBus}.
 * Stream messages are the exception: a store that `delivers` publishes them
 * itself, with an empty origin, so they reach every node, the sender's too.
 *
 * Topics: `c:<channel>` (channel events), `p:<peer>` (one peer),
 * `all` (broadcasts and presence that spans channels).
 */

import type { EventType } from "../../protocol/mod.ts";

/** A topic: `c:<channel>`, `p:<peer>` or `all` (also the name of a channel's or peer's stream). */
export type Topic = `c:${string}` | `p:${string}` | "all";

/** The topic (and stream) of a channel's events. */
export function channelTopic(channel: string): `c:${string}` {
  return `c:${channel}`;
}

/** The topic (and stream, the inbox) of one peer's events. */
export function peerTopic(id: string): `p:${string}` {
  return `p:${id}`;
}

/** What travels between nodes. */
export interface Envelope {
  /** A serialized event (one JSON object) to deliver. */
  text?: string;
  /** The event's type (for metrics on the receiving node). */
  type?: EventType;
  /** A stream message's seq (to drop duplicates at the seam of a replay). */
  seq?: number;
  /** A peer id not to deliver to (the sender). */
  except?: string;
  /** On `all`: deliver only to local members of these channels, each once. */
  channels?: string[];
  /** On `c:<channel>`: this peer leaves the channel with this event (kick, ban). */
  drop?: string;
  /** On `p:<peer>`: close this session of the peer with 4002 (taken over). */
  replace?: string;
  /** On `all`: these peers' presence changed; forget what was cached of them. */
  presence?: string[];
}

/** Receives envelopes published by other nodes. */
export type Deliver = (topic: string, env: Envelope) => void;

/** The cross-node bus. */
export interface Bus {
  /** Whether envelopes can reach the other nodes now. */
  readonly up: boolean;
  /** Sends `env` to the other nodes subscribed to `topic`. */
  publish(topic: string, env: Envelope): void;
  /**
   * Starts receiving `topic`; resolves once the subscription is active (what
   * is published from then on arrives). Calling it again for a topic already
   * subscribed only returns that confirmation.
   */
  subscribe(topic: string): Promise<void>;
  /** Stops receiving `topic`. */
  unsubscribe(topic: string): void;
  /** Releases connections. */
  close(): Promise<void>;
}

/** The bus of a single node: there is nobody else to tell. */
export class NoBus implements Bus {
  readonly up = true;
  publish(): void {}
  subscribe(): Promise<void> {
    return Promise.resolve();
  }
  unsubscribe(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
}
