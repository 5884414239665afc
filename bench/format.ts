/**
 * How the report writes numbers and table cells: rates, milliseconds, ratios,
 * the delivered / expected count with its mark, CPU shares, notes.
 * A dash stands for anything not measured.
 * @module
 */
import { type LoadgenResult, perCpu, type RunRecord } from "./results.ts";

/** A number with thousands separators and a fixed number of decimals. */
export function fmtNum(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n) || n < 0) return "–";
  return n.toLocaleString("en-US", {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

/** A rate in k or M. */
export function fmtRate(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return "–";
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}

/** Microseconds as milliseconds. */
export function fmtMs(us: number | undefined): string {
  if (us === undefined || us < 0) return "–";
  return (us / 1000).toFixed(us < 10000 ? 2 : 0);
}

/** Bytes as KiB, without the unit. */
export function fmtKiB(bytes: number, digits: number): string {
  return (bytes / 1024).toFixed(digits);
}

/** Bytes per connection (or member) as KiB with two decimals; "–" when unknown. */
export function fmtPerConn(bytes: number | undefined): string {
  return bytes === undefined ? "–" : `${fmtKiB(bytes, 2)} KiB`;
}

/** KiB as MiB with one decimal; "–" when unknown. */
export function fmtMiB(kb: number | undefined): string {
  return fmtNum(kb === undefined ? undefined : kb / 1024, 1);
}

/** a / b, when both are known and b is positive. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || !(b > 0)) return undefined;
  return a / b;
}

/** A ratio as `1.23×`. */
export function fmtRatio(x: number | undefined): string {
  return x === undefined ? "–" : `${x.toFixed(x < 10 ? 2 : 1)}×`;
}

/** Deliveries per server CPU-second as a rate. */
export function perCpuCell(r: LoadgenResult | undefined): string {
  return fmtRate(perCpu(r));
}

/** Delivered / expected, marked complete, short or still arriving. */
export function countCell(r: LoadgenResult | null | undefined): string {
  if (!r) return "–";
  if (r.delivered === undefined) return r.ok ? "ok" : "failed";
  const complete = r.delivered === r.expected && !r.errors;
  // A run cut off by its drain time still owed deliveries: a backlog, not proven lost.
  const mark = complete
    ? "✓"
    : r.drain_timeout
    ? "⧗ (still arriving when the drain time ran out)"
    : "✗";
  const errs = r.errors ? `, ${r.errors} errors` : "";
  return `${fmtNum(r.delivered)} / ${fmtNum(r.expected)} ${mark}${errs}`;
}

/** Server CPU-seconds and their share of the measured window (one core = 100 %). */
export function busy(r: LoadgenResult | undefined): string {
  if (r?.server_cpu_s === undefined || r.server_cpu_s < 0) return "–";
  const share = r.window_s ? ` (${Math.round((100 * r.server_cpu_s) / r.window_s)} %)` : "";
  return `${fmtNum(r.server_cpu_s, 2)}${share}`;
}

/** The Redis server's CPU-seconds over the window. */
export function redisCpu(r: LoadgenResult | undefined): string {
  return r?.aux_cpu_s !== undefined && r.aux_cpu_s >= 0 ? fmtNum(r.aux_cpu_s, 2) : "–";
}

/** Events per frame: how well the server batched. */
export function perFrame(r: LoadgenResult | undefined): string {
  if (!r?.frames || !r.delivered) return "–";
  return (r.delivered / r.frames).toFixed(2);
}

/** An open-loop run whose server delivered less than offered measured its backlog, not its latency. */
export function behind(r: LoadgenResult | undefined, offered: number): string {
  if (!r?.deliveries_per_s || r.deliveries_per_s >= 0.97 * offered) return "";
  return `saturated: ${fmtRate(r.deliveries_per_s)}/s of the ${fmtRate(offered)}/s offered`;
}

/** Why a run failed, or the close codes its connections saw. */
export function problemCell(rec: RunRecord | undefined): string {
  if (!rec) return "not run";
  if (rec.problem) return `failed: ${rec.problem}`;
  if (rec.result?.error) return `failed: ${rec.result.error}`;
  const closes = rec.result?.closes ?? {};
  const c = Object.entries(closes).map(([k, v]) => `${v}×${k}`).join(" ");
  return c ? `closes ${c}` : "";
}
