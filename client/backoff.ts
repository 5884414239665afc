/**
 * Reconnect delays: capped exponential backoff with full jitter.
 *
 * Full jitter (a uniform delay between 0 and the capped exponential ceiling)
 * spreads the reconnects of many clients dropped at once — a server restart
 * drops every viewer of a stream — instead of sending them back in waves.
 */

/** How reconnect delays grow. */
export interface BackoffOptions {
  /** Ceiling of the first delay, ms (> 0). */
  initialMs: number;
  /** Largest ceiling, ms (≥ `initialMs`). */
  maxMs: number;
  /** Growth of the ceiling per attempt (≥ 1); 2 unless given. */
  factor?: number;
}

/** Defaults of {@linkcode BackoffOptions}: 500 ms doubling up to 30 s. */
export const DEFAULT_BACKOFF: Readonly<Required<BackoffOptions>> = Object.freeze({
  initialMs: 500,
  maxMs: 30_000,
  factor: 2,
});

/** Fills in the defaults and checks the ranges; throws a `RangeError` on bad values. */
export function resolveBackoff(options: Partial<BackoffOptions> = {}): Required<BackoffOptions> {
  const initialMs = options.initialMs ?? DEFAULT_BACKOFF.initialMs;
  const maxMs = options.maxMs ?? Math.max(initialMs, DEFAULT_BACKOFF.maxMs);
  const factor = options.factor ?? DEFAULT_BACKOFF.factor;
  if (!(initialMs > 0) || !Number.isFinite(initialMs)) {
    throw new RangeError(`backoff.initialMs must be a positive number, got ${initialMs}`);
  }
  if (!(maxMs >= initialMs) || !Number.isFinite(maxMs)) {
    throw new RangeError(`backoff.maxMs must be at least initialMs (${initialMs}), got ${maxMs}`);
  }
  if (!(factor >= 1) || !Number.isFinite(factor)) {
    throw new RangeError(`backoff.factor must be at least 1, got ${factor}`);
  }
  return { initialMs, maxMs, factor };
}

/**
 * The ceiling of the delay before retry `attempt` (0 for the first):
 * `min(maxMs, initialMs × factor^attempt)`.
 */
export function backoffCeiling(attempt: number, options: Partial<BackoffOptions> = {}): number {
  const { initialMs, maxMs, factor } = resolveBackoff(options);
  const n = Math.max(0, Math.floor(attempt));
  // factor ** n overflows to Infinity for large n, and min() caps it.
  return Math.min(maxMs, initialMs * factor ** n);
}

/**
 * The delay before retry `attempt` (0 for the first), ms: full jitter, a
 * whole number uniform in `[0, ceiling)` where the ceiling is
 * {@linkcode backoffCeiling}.
 *
 * @example
 * ```ts
 * import { backoffDelay } from "./backoff.ts";
 *
 * const ms = backoffDelay(3, { initialMs: 500, maxMs: 30_000 }); // 0 ≤ ms < 4000
 * ```
 */
export function backoffDelay(
  attempt: number,
  options: Partial<BackoffOptions> = {},
  random: () => number = Math.random,
): number {
  const ceiling = backoffCeiling(attempt, options);
  const r = random();
  // A misbehaving random source (NaN, out of range) must not stall reconnects.
  return r >= 0 && r < 1 ? Math.floor(r * ceiling) : 0;
}
