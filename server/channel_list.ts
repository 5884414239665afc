/**
 * The channels one peer is in: a few (at most `--max-channels`, 100 by
 * default), kept as a list, which costs a fraction of a `Set` (one with a
 * single entry costs 200–300 bytes on V8 and JavaScriptCore, and every
 * viewer holds one in its session and one in the memory store).
 */
export class ChannelList implements Iterable<string> {
  #ids?: string[];

  get size(): number {
    return this.#ids?.length ?? 0;
  }

  has(channel: string): boolean {
    return this.#ids !== undefined && this.#ids.includes(channel);
  }

  add(channel: string): void {
    if (!this.has(channel)) (this.#ids ??= []).push(channel);
  }

  /** Removes `channel`; a loop already going over the list still sees it (the list is copied). */
  delete(channel: string): boolean {
    if (!this.has(channel)) return false;
    const rest = this.#ids!.filter((c) => c !== channel);
    this.#ids = rest.length > 0 ? rest : undefined;
    return true;
  }

  [Symbol.iterator](): Iterator<string> {
    return (this.#ids ?? []).values();
  }
}
