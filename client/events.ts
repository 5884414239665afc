/**
 * The typed client's events: the server's (`pubmsg`, `join`, …) and the
 * client's own (`open`, `resumed`, `recovered`, `reconnecting`, `close`,
 * `event`, `invalid`), and the small emitter that delivers them.
 */
import type { EventOf, EventType, ReplyData, ServerEvent } from "../protocol/messages.ts";
import type { Recovered } from "./streams.ts";

/**
 * Why the client closed for good: `user` (`close()`), `replaced` (4002: a
 * newer session of the same peer took over), `rejected` (4001, or a `/descp`
 * refused), `failed` (the first connection did not come up), `retries`
 * (`maxRetries` reconnects failed), `disconnected` (`reconnect: false`).
 */
export type CloseCause = "user" | "replaced" | "rejected" | "failed" | "retries" | "disconnected";

/** A channel the client could not join again after a reconnect, and why. */
export interface RejoinFailure {
  channel: string;
  /**
   * The server's error code (e.g. 475: the key is wrong now, 474: banned),
   * or 0 when no reply came (the connection dropped again: the client tries
   * again after the next reconnect).
   */
  code: number;
  error: Error;
}

/** Events of the client itself, next to the server's. */
export interface ClientEvents {
  /** The first `/descp` succeeded. */
  open: ReplyData<"descp">;
  /**
   * A reconnect is done. `lost` lists the channels the session did not get
   * back (all of them when the server no longer knew the session); the
   * client then joined them again (`rejoined`) unless `rejoin: false`, and
   * `failed` lists those it could not. Emitted once those joins are
   * answered; right after the `/descp` reply when there are none.
   */
  resumed: {
    data: ReplyData<"descp">;
    lost: string[];
    rejoined: string[];
    failed: RejoinFailure[];
  };
  /**
   * A `/descp` that asked for missed messages (a resume by a client with
   * stream positions) was answered: which streams came back whole. Emitted
   * once per such `/descp`, before `resumed` and before any message of the
   * new connection, so a gap can be shown in its place: each stream with
   * `false` may have lost messages (refetch, or show a gap); each with
   * `true` has its missed messages replayed right after, once each, in order.
   */
  recovered: Recovered;
  /**
   * The connection dropped, or a reconnect's `/descp` was refused for a
   * while (`code` 0, `reason` the server's message); a reconnect is
   * scheduled in `delayMs`.
   */
  reconnecting: { attempt: number; delayMs: number; code: number; reason: string };
  /** The client closed for good and will not reconnect (`cause` says why). */
  close: { code: number; reason: string; cause: CloseCause; error?: Error };
  /** Any event from the server, whatever its type. */
  event: ServerEvent;
  /** A line from the server that is not a valid message; it was ignored. */
  invalid: { line: string; reason: string };
}

/** Every event {@linkcode SignallerClient.on} accepts, with its payload type. */
export type SignallerEventMap = { [T in EventType]: EventOf<T> } & ClientEvents;

type Listener = (event: never) => void;

/**
 * Listeners by event name, each called with its event's payload type. A
 * listener that throws is reported (`reportError`) and the others still run:
 * one listener's bug must not break the client's frame loop.
 */
export class Emitter<M> {
  #listeners = new Map<keyof M, Set<Listener>>();

  /** Adds `listener` for `type`; returns a function that removes it. */
  on<K extends keyof M>(type: K, listener: (event: M[K]) => void): () => void {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, set = new Set());
    set.add(listener as Listener);
    return () => this.off(type, listener);
  }

  /** Like {@linkcode on}, for the next event of `type` only. */
  once<K extends keyof M>(type: K, listener: (event: M[K]) => void): () => void {
    const off = this.on(type, (event) => {
      off();
      listener(event);
    });
    return off;
  }

  /** Removes `listener` from `type`. */
  off<K extends keyof M>(type: K, listener: (event: M[K]) => void): void {
    this.#listeners.get(type)?.delete(listener as Listener);
  }

  /** Calls every listener of `type` with `event`, in the order they were added. */
  emit<K extends keyof M>(type: K, event: M[K]): void {
    const set = this.#listeners.get(type);
    if (!set) return;
    // A copy: a listener may add or remove listeners (once() does).
    for (const listener of [...set]) {
      try {
        (listener as (event: M[K]) => void)(event);
      } catch (e) {
        report(e);
      }
    }
  }
}

/** Surfaces a listener's error the way the platform surfaces uncaught ones, without a throw here. */
function report(e: unknown): void {
  const g = globalThis as { reportError?: (e: unknown) => void };
  if (typeof g.reportError === "function") g.reportError(e);
  else {
    queueMicrotask(() => {
      throw e;
    });
  }
}
