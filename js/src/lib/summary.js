// Summary lines and small decisions the views make from kernel data: the chat footer,
// counters, page ranges, a sweep cell's status, diff line kinds, chart geometry. Pure
// (no DOM), tested in js/test/summary.test.js.

import { fmtMs, fmtTokens } from "./format.js";

/** Values longer than this many characters get a textarea instead of a one-line input. */
export const MULTILINE_AT = 60;

/** Run statuses during which the instance is busy (Send disabled, Stop enabled). */
export const ACTIVE = new Set(["queued", "running"]);

/**
 * Whether a variable's value needs a textarea.
 * @param {unknown} value
 * @returns {boolean}
 */
export function isMultiline(value) {
  return typeof value === "string" && (value.includes("\n") || value.length > MULTILINE_AT);
}

/**
 * @typedef {{
 *   input_tokens?: number | null, output_tokens?: number | null,
 *   latency_ms?: number | null, ttft_ms?: number | null,
 * }} RunMetrics
 */

/**
 * The chat footer for the last run: "12 in / 30 out tokens · 850 ms · first token 120 ms",
 * leaving out what is not known ("" before any run).
 * @param {RunMetrics | null | undefined} run
 * @returns {string}
 */
export function metricsLine(run) {
  const r = run ?? {};
  const parts = [];
  if (r.input_tokens != null || r.output_tokens != null) {
    parts.push(`${fmtTokens(r.input_tokens, r.output_tokens)} tokens`);
  }
  if (r.latency_ms != null) parts.push(fmtMs(r.latency_ms));
  if (r.ttft_ms != null) parts.push(`first token ${fmtMs(r.ttft_ms)}`);
  return parts.join(" · ");
}

/**
 * The DevTools counter: every held action, or how many of them the filter matches.
 * Chunk actions hidden by default are not "filtered out": only said when some are.
 * @param {number} total  actions listed (matching the filter)
 * @param {number} first  index of the oldest held action
 * @param {number} last  index of the newest (first - 1 when none is held)
 * @param {number} [hidden]  chunk actions left out of the list
 * @returns {string}
 */
export function actionCounts(total, first, last, hidden = 0) {
  const held = Math.max(0, last - first + 1);
  if (total + hidden === held) return hidden ? `${held} actions (${hidden} chunks folded away)` : `${held} actions`;
  return `${total} of ${held} actions match`;
}

/**
 * The RunHistory pager text, "rows 1–50 of 1,234".
 * @param {number} offset  rows skipped
 * @param {number} count  rows on this page
 * @param {number} total  rows the query returns
 * @returns {string}
 */
export function rowRange(offset, count, total) {
  if (!total) return "no rows";
  if (!count) return `no rows past ${offset.toLocaleString()} of ${total.toLocaleString()}`;
  return `rows ${(offset + 1).toLocaleString()}–${(offset + count).toLocaleString()} of ${total.toLocaleString()}`;
}

/**
 * @typedef {{ total?: number, done?: number, errors?: number, cancelled?: number }} SweepCounts
 */

/**
 * The SweepGrid header and progress bar. `done` counts cells that succeeded: a failed or
 * cancelled cell is counted as such, never as done. The bar fills with ended cells.
 * @param {{ total?: number, done?: number, errors?: number, cancelled?: number,
 *   running?: number, queued?: number, not_run?: number } | null | undefined} counts
 * @param {boolean} finished
 * @returns {{ text: string, percent: number }}
 */
export function sweepProgress(counts, finished) {
  const c = counts ?? {};
  const total = c.total ?? 0;
  const done = c.done ?? 0;
  const ended = done + (c.errors ?? 0) + (c.cancelled ?? 0);
  const parts = [`${done}/${total} done`, `${c.errors ?? 0} errors`, `${c.cancelled ?? 0} cancelled`];
  if (c.running) parts.push(`${c.running} running`);
  if (c.queued) parts.push(`${c.queued} queued`);
  if (c.not_run) parts.push(`${c.not_run} not run`);
  if (finished) parts.push("finished");
  const percent = total ? (100 * Math.min(total, finished ? total : ended)) / total : 0;
  return { text: parts.join(" · "), percent };
}

// Worst first: a sweep cell with repeats shows the worst status among them; a cell
// still running ranks above one only queued (it is further along).
const SEVERITY = ["error", "not_run", "cancelled", "queued", "pending", "running", "success"];

/**
 * The status a sweep cell shows for its repeats: the worst of them ("pending" if none,
 * an unknown status ranks as bad as "error").
 * @param {string[]} statuses
 * @returns {string}
 */
export function worstStatus(statuses) {
  const rank = (/** @type {string} */ s) => Math.max(0, SEVERITY.indexOf(s));
  let worst = null;
  for (const s of statuses) if (worst === null || rank(s) < rank(worst)) worst = s;
  return worst ?? "pending";
}

/**
 * The CSS class of one line of a unified diff.
 * @param {string} line
 * @returns {"ps-hunk" | "ps-add" | "ps-del" | ""}
 */
export function diffLineClass(line) {
  if (line.startsWith("@@")) return "ps-hunk";
  if (line.startsWith("+")) return "ps-add";
  if (line.startsWith("-")) return "ps-del";
  return "";
}

const NUMERIC = /^-?\d+(\.\d+)?(e[-+]?\d+)?$/i;

/**
 * Whether a table cell holds a number (right-aligned). DuckDB sends big integers and
 * decimals as strings; run ids are never numbers even when they look like one.
 * @param {unknown} v
 * @param {boolean} isRunId
 * @returns {boolean}
 */
export function isNumericCell(v, isRunId = false) {
  if (typeof v === "number") return true;
  return typeof v === "string" && !isRunId && NUMERIC.test(v);
}

/**
 * @typedef {{
 *   key: "latency_ms" | "output_tokens", label: string, unit: string, max: number,
 *   points: { x: number, y: number }[],
 * }} Series
 */

/**
 * The RunHistory chart: latency_ms and output_tokens of the rows shown, oldest left
 * (by started_at when the query has it; otherwise rows are taken as newest first),
 * each series scaled to its own maximum. null when neither column is there or no row
 * has a number in them.
 *
 * @param {string[]} columns
 * @param {unknown[][]} rows
 * @param {{ width?: number, height?: number, pad?: number }} [box]
 * @returns {Series[] | null}
 */
export function chartSeries(columns, rows, { width = 360, height = 70, pad = 4 } = {}) {
  const si = columns.indexOf("started_at");
  let data = rows.map((r) => ({ t: si >= 0 ? String(r[si] ?? "") : "", row: r }));
  if (si >= 0) data = data.slice().sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0));
  else data = data.slice().reverse();
  const x = (/** @type {number} */ i) =>
    data.length === 1 ? width / 2 : pad + (i * (width - 2 * pad)) / (data.length - 1);
  /** @type {Series[]} */
  const out = [];
  for (const [key, label, unit] of /** @type {const} */ ([
    ["latency_ms", "latency", "ms"],
    ["output_tokens", "output tokens", ""],
  ])) {
    const col = columns.indexOf(key);
    if (col < 0) continue;
    const vals = data.map((d) => {
      const v = d.row[col];
      return typeof v === "number" && Number.isFinite(v) ? v : null;
    });
    const nums = vals.filter((v) => v != null);
    if (!nums.length) continue;
    const max = Math.max(0, ...nums);
    const y = (/** @type {number} */ v) => height - pad - (max > 0 ? (v / max) * (height - 2 * pad) : 0);
    /** @type {{ x: number, y: number }[]} */
    const points = [];
    vals.forEach((v, i) => {
      if (v != null) points.push({ x: x(i), y: y(v) });
    });
    out.push({ key, label, unit, max, points });
  }
  return out.length ? out : null;
}
