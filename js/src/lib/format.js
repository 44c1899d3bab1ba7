// Formatting of values shown in the widgets: numbers, latencies, costs, token counts and
// timestamps. Pure (no DOM), so js/test/format.test.js checks every rounding rule.

/** Placeholder for a value that is not known (no run yet, a metric the provider omits). */
export const NONE = "–";

/**
 * A value as table/detail text: integers as they are, other numbers with 3 decimals
 * below 10 (magnitude) and 1 above, objects as JSON, null/undefined as "".
 * @param {unknown} v
 * @returns {string}
 */
export function fmt(v) {
  if (v == null) return "";
  if (typeof v === "number") {
    if (Number.isInteger(v) || !Number.isFinite(v)) return String(v);
    return v.toFixed(Math.abs(v) < 10 ? 3 : 1);
  }
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/**
 * A duration in milliseconds: "850 ms" below a second, "1.25 s" from a second on.
 * Rounds first, so 999.6 ms reads "1.00 s", never "1000 ms".
 * @param {number | null | undefined} ms
 * @returns {string}
 */
export function fmtMs(ms) {
  if (ms == null || !Number.isFinite(ms)) return NONE;
  const whole = Math.round(ms);
  return Math.abs(whole) >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${whole} ms`;
}

/**
 * A cost in US dollars, to the micro-dollar (prompt prices are that small).
 * @param {number | string | null | undefined} usd
 * @returns {string}
 */
export function fmtCost(usd) {
  if (usd == null || usd === "") return NONE;
  const n = Number(usd);
  return Number.isFinite(n) ? `$${n.toFixed(6)}` : NONE;
}

/**
 * Token counts of a run, "?" for a side the provider did not report.
 * @param {number | null | undefined} input
 * @param {number | null | undefined} output
 * @returns {string}
 */
export function fmtTokens(input, output) {
  return `${input ?? "?"} in / ${output ?? "?"} out`;
}

const pad = (/** @type {number} */ n, width = 2) => String(n).padStart(width, "0");

/**
 * A Unix timestamp (seconds, as the kernel sends them) as local wall-clock time with
 * milliseconds, "14:03:07.042". Built from the date's fields rather than
 * toLocaleTimeString, whose 24-hour form reads "24:03" after midnight in some locales.
 * @param {number | null | undefined} ts
 * @returns {string}
 */
export function clock(ts) {
  if (!ts || !Number.isFinite(ts)) return "";
  const d = new Date(Math.round(ts * 1000)); // ts * 1000 can land just under the integer
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}
