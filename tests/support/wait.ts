/**
 * Waiting with a bound: every wait in the tests has a timeout, and sleeping is
 * only for letting time pass (a grace, a retention) or a quiet period after the
 * awaited events, never for synchronisation.
 *
 * @example
 * ```ts
 * import { until, within } from "./wait.ts";
 *
 * const closed = await within(client.closed, 3000, "close 4001");
 * await until(async () => (await fetch(url)).status === 503, 5000, "/healthz 503");
 * ```
 * @module
 */

/** A timer id, whatever `setTimeout` returns in this runtime's types. */
export type Timer = ReturnType<typeof setTimeout>;

/**
 * Resolves with `p`, or rejects with "no `what` within `ms` ms" when `p` takes
 * longer; the timer is always cleared.
 */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Options of {@linkcode until}. */
export interface UntilOptions {
  /** Milliseconds between two checks; 100 by default. */
  every?: number;
}

/**
 * Polls `check` until it is true, for state that announces itself with no
 * event (a health endpoint, a store key). Rejects with "`what` not within
 * `ms` ms" after `ms`; resolves to the milliseconds it took.
 */
export async function until(
  check: () => Promise<boolean> | boolean,
  ms: number,
  what: string,
  opts: UntilOptions = {},
): Promise<number> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > ms) throw new Error(`${what} not within ${ms} ms`);
    await delay(opts.every ?? 100);
  }
  return Date.now() - t0;
}
