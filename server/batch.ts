/**
 * Per-turn batching of outgoing events: what one socket is sent within one
 * turn of the event loop leaves as one frame of newline-delimited JSON
 * (PROTOCOL.md allows several objects per frame), so a burst costs one write
 * per socket instead of one per event. For protocols whose clients want one
 * message per frame, the turn's messages leave as that many frames, written
 * together where the runtime can (Bun's `cork`).
 */

/** Connections with text waiting, flushed together once the turn's input is handled. */
const dirty = new Set<Batched>();
/** What else leaves at the end of the turn, after the batches (deferred native publishes). */
const after = new Set<() => void>();
/**
 * Returns a function that schedules `flush` for the end of this turn, once
 * however often it is called in the turn. (setImmediate runs after the turn's
 * I/O callbacks: everything they produced is in.)
 */
export function atEndOfTurn(flush: () => void): () => void {
  let due = false;
  const run = () => {
    due = false;
    flush();
  };
  return () => {
    if (due) return;
    due = true;
    setImmediate(run);
  };
}

const schedule = atEndOfTurn(() => flushBatches());

/**
 * Writes every batch now, then runs what was deferred with
 * {@linkcode flushAfter}. A runtime that sends some events around the batches
 * (Bun's native publish) calls it first, so no socket gets them out of order.
 */
export function flushBatches(): void {
  // Taken first: a socket whose write throws must not keep every other batch waiting for good.
  if (dirty.size > 0) {
    const batches = [...dirty];
    dirty.clear();
    for (const c of batches) {
      try {
        c.flush();
      } catch (e) {
        c.failed(e);
      }
    }
  }
  if (after.size > 0) {
    const flushes = [...after];
    after.clear();
    for (const f of flushes) {
      try {
        f();
      } catch (e) {
        // The rest of the turn's flushes still run; the error reaches the process's handler.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}

/**
 * Runs `flush` once at the end of this turn, after the batches (or with the
 * next {@linkcode flushBatches}, whichever comes first). `flush` must not throw.
 */
export function flushAfter(flush: () => void): void {
  after.add(flush);
  schedule();
}

/** The last batch joined into a frame, and the frame. */
let lastParts: string[] | undefined;
let lastFrame = "";

/**
 * `parts` as one newline-delimited frame. The members of a channel are sent
 * the same events in a turn: their frames are one string, joined once (and a
 * runtime that encodes text can tell it has just encoded it).
 */
function joined(parts: string[]): string {
  const last = lastParts;
  if (last?.length !== parts.length || !parts.every((t, i) => t === last[i])) {
    lastParts = parts;
    lastFrame = parts.join("\n");
  }
  return lastFrame;
}

/** A socket whose outgoing text is batched per turn; subclasses write the frames. */
export abstract class Batched {
  /** This turn's text; none between turns (an idle socket holds no array). */
  #pending?: string[];
  readonly #batch: boolean;

  /** `batch`: false for a socket whose protocol wants one message per frame. */
  constructor(batch = true) {
    this.#batch = batch;
  }

  /** Queues `text` for this turn's frame. */
  send(text: string): void {
    if (this.#pending === undefined) {
      this.#pending = [];
      dirty.add(this);
      schedule();
    }
    this.#pending.push(text);
  }

  /** Writes what this turn batched as one frame. */
  flush(): void {
    const p = this.#pending;
    if (p === undefined) return;
    this.#pending = undefined;
    if (p.length === 1) this.write(p[0]);
    else if (this.#batch) this.write(joined(p));
    else this.writeFrames(p);
  }

  /** Writes one frame to the socket. */
  protected abstract write(frame: string): void;

  /** A flush threw (a frame too large to build, a socket gone wrong): close the socket. */
  abstract failed(error: unknown): void;

  /** Writes several frames, one message each; a runtime that can write them at once does. */
  protected writeFrames(frames: string[]): void {
    for (const f of frames) this.write(f);
  }
}
