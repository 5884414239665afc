/**
 * A message stream's history in memory (PROTOCOL.md, "Message streams"): the
 * last `size` messages, their positions, and the epoch that changes when the
 * history is lost (it expired).
 */
import type { Position } from "./store.ts";

/** A bounded ring of one stream's serialized messages. */
export class Ring {
  #epoch: string = newEpoch();
  #seq = 0;
  /** Message `seq` is at `seq % size`; allocated with the first message. */
  #texts?: string[];
  #lastAt = 0;
  readonly #size: number;
  readonly #ttlMs: number;

  /** Keeps the last `size` messages, for `ttlMs` after the last one. */
  constructor(size: number, ttlMs: number) {
    this.#size = size;
    this.#ttlMs = ttlMs;
  }

  /**
   * Appends a message given as its JSON without the closing brace; returns its
   * seq and its text, `head` with `,"seq":N}` added.
   */
  append(head: string, now: number): { seq: number; text: string } {
    this.#expire(now);
    const seq = ++this.#seq;
    const text = head + ',"seq":' + seq + "}";
    (this.#texts ??= [])[seq % this.#size] = text;
    this.#lastAt = now;
    return { seq, text };
  }

  /** The stream's epoch and last seq. */
  position(now: number): Position {
    this.#expire(now);
    return { epoch: this.#epoch, seq: this.#seq };
  }

  /**
   * The messages after `from`, oldest first; null when `from` is of another
   * epoch or the gap is no longer entirely in history (never a partial replay).
   */
  since(from: Position, now: number): string[] | null {
    this.#expire(now);
    if (from.epoch !== this.#epoch || from.seq > this.#seq || from.seq < 0) return null;
    if (from.seq < this.#seq - this.#size) return null;
    const out: string[] = [];
    for (let s = from.seq + 1; s <= this.#seq; s++) out.push(this.#texts![s % this.#size]);
    return out;
  }

  #expire(now: number): void {
    if (this.#seq === 0 || now - this.#lastAt < this.#ttlMs) return;
    this.#epoch = newEpoch();
    this.#seq = 0;
    this.#texts = undefined;
  }
}

/** A fresh epoch: random, so a restarted server never reuses one. */
export function newEpoch(): string {
  const b = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
