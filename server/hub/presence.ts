/**
 * What this node knows of the presence of peers on other nodes, so that a
 * `/privmsg` kept in no stream (streams off, or the PeerJS relay) to a peer
 * elsewhere reads the store once, not once per message (PROTOCOL.md,
 * "Several nodes").
 *
 * Only "online" is remembered (an offline or unknown peer is read again every
 * time: that is the `401` path). An entry is forgotten when the peer's
 * presence changes anywhere in the cluster — its socket closed (grace), it was
 * taken over, its away state changed, its node was declared dead, its grace
 * ended — as the node that made the change tells every node over the bus
 * ({@linkcode presenceChanged}). The bus may lose a message (across a
 * reconnect), so an entry also lives at most `ttlMs`; and a read that an
 * invalidation of its peer overtook is not remembered, so a late answer cannot
 * bring a stale "online" back. Reads of one peer in flight together are one
 * store read. The cache holds at most `max` entries, the least recently stored
 * dropped first.
 */
import type { Presence } from "../store/store.ts";
import type { Context } from "./context.ts";

/** Entries the cache holds at most: a few MiB at worst. */
export const PRESENCE_CACHE_MAX = 10_000;

interface Entry {
  readonly presence: Presence;
  /** When it stops counting (the node's clock, ms). */
  readonly until: number;
}

/** A bounded, expiring map of remote peers known online. */
export class PresenceCache {
  readonly #entries = new Map<string, Entry>();
  readonly #ttlMs: number;
  readonly #max: number;
  readonly #now: () => number;
  /** Store reads in flight, by peer; `stale` once the peer's presence changed meanwhile. */
  readonly #reading = new Map<string, { done: Promise<Presence | null>; stale: boolean }>();

  /** `ttlMs` 0 turns the cache off: every relay to another node reads the store. */
  constructor(o: { ttlMs: number; max?: number; now?: () => number }) {
    this.#ttlMs = o.ttlMs;
    this.#max = o.max ?? PRESENCE_CACHE_MAX;
    this.#now = o.now ?? Date.now;
  }

  /** Entries held now (expired ones included until looked up or pushed out). */
  get size(): number {
    return this.#entries.size;
  }

  /** The remembered presence of an online peer, if still valid. */
  get(id: string): Presence | undefined {
    const e = this.#entries.get(id);
    if (e === undefined) return undefined;
    if (this.#now() < e.until) return e.presence;
    this.#entries.delete(id);
    return undefined;
  }

  /**
   * Reads a peer's presence with `load` (the store) and remembers it when
   * online, unless an invalidation arrived while the read was on its way.
   */
  read(id: string, load: () => Promise<Presence | null>): Promise<Presence | null> {
    const pending = this.#reading.get(id);
    if (pending !== undefined) return pending.done;
    const reading = { done: load(), stale: false };
    this.#reading.set(id, reading);
    const settle = () => {
      if (this.#reading.get(id) === reading) this.#reading.delete(id);
    };
    reading.done.then((p) => {
      settle();
      if (p === null || !p.online || reading.stale || this.#ttlMs <= 0) return;
      this.#entries.delete(id);
      if (this.#entries.size >= this.#max) {
        this.#entries.delete(this.#entries.keys().next().value!);
      }
      this.#entries.set(id, { presence: p, until: this.#now() + this.#ttlMs });
    }, settle);
    return reading.done;
  }

  /** The presence of these peers changed: what was known of them no longer holds. */
  forget(ids: readonly string[]): void {
    for (const id of ids) {
      this.#entries.delete(id);
      const reading = this.#reading.get(id);
      if (reading === undefined) continue;
      // Its answer may predate the change: not remembered, and the next read starts afresh.
      reading.stale = true;
      this.#reading.delete(id);
    }
  }
}

/**
 * The presence of `ids` changed here (once the store has it): this node and
 * every other forget what they cached of them.
 */
export function presenceChanged(ctx: Context, ids: readonly string[]): void {
  if (ids.length === 0) return;
  ctx.presence.forget(ids);
  ctx.bus.publish("all", { presence: [...ids] });
}
