// Summary lines and view decisions of js/src/lib/summary.js.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  MULTILINE_AT,
  actionCounts,
  chartSeries,
  diffLineClass,
  isMultiline,
  isNumericCell,
  metricsLine,
  rowRange,
  sweepProgress,
  worstStatus,
} from "../src/lib/summary.js";

test("metricsLine: every known metric, in order", () => {
  assert.equal(
    metricsLine({ input_tokens: 12, output_tokens: 30, latency_ms: 850.4, ttft_ms: 1200 }),
    "12 in / 30 out tokens · 850 ms · first token 1.20 s",
  );
});

test("metricsLine: missing metrics are left out; one token side known shows '?' for the other", () => {
  assert.equal(metricsLine({ output_tokens: 0 }), "? in / 0 out tokens");
  assert.equal(metricsLine({ latency_ms: 0 }), "0 ms");
  assert.equal(metricsLine({ ttft_ms: 999.7 }), "first token 1.00 s");
});

test("metricsLine: no run yet is an empty footer", () => {
  assert.equal(metricsLine({}), "");
  assert.equal(metricsLine(null), "");
  assert.equal(metricsLine(undefined), "");
  assert.equal(metricsLine({ input_tokens: null, latency_ms: null }), "");
});

test("isMultiline: line breaks or long strings; empty and non-strings are one line", () => {
  assert.equal(isMultiline(""), false);
  assert.equal(isMultiline(null), false);
  assert.equal(isMultiline(42), false);
  assert.equal(isMultiline("a\nb"), true);
  assert.equal(isMultiline("x".repeat(MULTILINE_AT)), false);
  assert.equal(isMultiline("x".repeat(MULTILINE_AT + 1)), true);
});

test("actionCounts: all held, filtered, and an empty history", () => {
  assert.equal(actionCounts(5, 0, 4), "5 actions");
  assert.equal(actionCounts(2, 0, 4), "2 of 5 actions match");
  assert.equal(actionCounts(3, 10, 12), "3 actions"); // older ones dropped from the window
  assert.equal(actionCounts(0, 0, -1), "0 actions");
});

test("rowRange: a page, the last partial page, no rows, a page past the end", () => {
  assert.equal(rowRange(0, 13, 13), "rows 1–13 of 13");
  assert.equal(rowRange(50, 7, 57), "rows 51–57 of 57");
  assert.equal(rowRange(0, 0, 0), "no rows");
  assert.equal(rowRange(100, 0, 57), `no rows past ${(100).toLocaleString()} of 57`);
  assert.equal(rowRange(0, 50, 1234), `rows 1–50 of ${(1234).toLocaleString()}`);
});

test("actionCounts: hidden chunk actions are not counted as filtered out", () => {
  assert.equal(actionCounts(8, 0, 10, 3), "11 actions (3 chunks folded away)");
  assert.equal(actionCounts(11, 0, 10, 0), "11 actions");
  assert.equal(actionCounts(2, 0, 10, 3), "2 of 11 actions match");
});

test("sweepProgress: done is successes only; running and queued are counted apart", () => {
  assert.deepEqual(sweepProgress({ total: 4, done: 1, errors: 1, cancelled: 0 }, false), {
    text: "1/4 done · 1 errors · 0 cancelled",
    percent: 50, // the bar fills with every ended cell
  });
  // cancelled cells are not done
  assert.deepEqual(sweepProgress({ total: 5, done: 1, cancelled: 2, running: 1, queued: 1 }, false), {
    text: "1/5 done · 0 errors · 2 cancelled · 1 running · 1 queued",
    percent: 60,
  });
  // finished early: the bar is full, the never-run cells are said
  assert.deepEqual(sweepProgress({ total: 4, done: 2, cancelled: 1, not_run: 1 }, true), {
    text: "2/4 done · 0 errors · 1 cancelled · 1 not run · finished",
    percent: 100,
  });
  assert.deepEqual(sweepProgress(null, false), { text: "0/0 done · 0 errors · 0 cancelled", percent: 0 });
  assert.equal(sweepProgress({ total: 2, done: 5 }, false).percent, 100); // never past full
});

test("worstStatus: the worst repeat wins; no repeats is pending; unknown ranks worst", () => {
  assert.equal(worstStatus(["success", "error", "success"]), "error");
  assert.equal(worstStatus(["success", "pending"]), "pending");
  assert.equal(worstStatus(["cancelled", "not_run"]), "not_run");
  assert.equal(worstStatus(["success"]), "success");
  assert.equal(worstStatus([]), "pending");
  assert.equal(worstStatus(["success", "interrupted"]), "interrupted");
  assert.equal(worstStatus(["success", "running"]), "running");
  assert.equal(worstStatus(["running", "queued"]), "queued"); // not started yet is further behind
});

test("diffLineClass: hunks, additions, deletions, context", () => {
  assert.equal(diffLineClass("@@ -1,2 +1,2 @@"), "ps-hunk");
  assert.equal(diffLineClass("+added"), "ps-add");
  assert.equal(diffLineClass("-removed"), "ps-del");
  assert.equal(diffLineClass(" context"), "");
  assert.equal(diffLineClass(""), "");
});

test("isNumericCell: numbers and numeric strings, never a run id", () => {
  assert.equal(isNumericCell(3), true);
  assert.equal(isNumericCell("12345678901234567890"), true); // a HUGEINT sent as text
  assert.equal(isNumericCell("-1.5e-3"), true);
  assert.equal(isNumericCell("1.2.3"), false);
  assert.equal(isNumericCell(""), false);
  assert.equal(isNumericCell(null), false);
  assert.equal(isNumericCell("123", true), false);
});

test("chartSeries: each series scaled to its own maximum, oldest run on the left", () => {
  const cols = ["run_id", "started_at", "latency_ms", "output_tokens"];
  const rows = [
    ["b", "2024-01-02", 200, 10],
    ["a", "2024-01-01", 100, 40],
  ];
  const series = chartSeries(cols, rows, { width: 104, height: 54, pad: 2 });
  assert.ok(series);
  assert.deepEqual(series.map((s) => [s.key, s.max]), [["latency_ms", 200], ["output_tokens", 40]]);
  const [lat, tok] = series;
  // sorted by started_at: "a" (100 ms) first; 100 of max 200 is half height
  assert.deepEqual(lat.points, [{ x: 2, y: 27 }, { x: 102, y: 2 }]);
  assert.deepEqual(tok.points, [{ x: 2, y: 2 }, { x: 102, y: 39.5 }]); // 10 of 40: a quarter up
});

test("chartSeries: without started_at rows are newest first, so they are reversed", () => {
  const series = chartSeries(["latency_ms"], [[30], [10]], { width: 10, height: 10, pad: 0 });
  assert.deepEqual(series?.[0].points.map((p) => p.x), [0, 10]);
  assert.deepEqual(series?.[0].points.map((p) => p.y), [10 - (10 / 30) * 10, 0]);
});

test("chartSeries: one run sits in the middle; all-zero values sit on the floor", () => {
  const [one] = chartSeries(["latency_ms"], [[0]], { width: 100, height: 50, pad: 5 }) ?? [];
  assert.deepEqual(one.points, [{ x: 50, y: 45 }]);
  assert.equal(one.max, 0);
});

test("chartSeries: nulls leave gaps; no numbers or no columns or no rows is no chart", () => {
  const series = chartSeries(["latency_ms", "output_tokens"], [[null, 5], [7, null], [null, null]]);
  assert.deepEqual(series?.map((s) => [s.key, s.points.length]), [["latency_ms", 1], ["output_tokens", 1]]);
  assert.equal(chartSeries(["latency_ms"], [[null], ["12"]]), null); // text is not plotted
  assert.equal(chartSeries(["run_id", "status"], [["a", "success"]]), null);
  assert.equal(chartSeries(["latency_ms"], []), null);
  assert.equal(chartSeries([], []), null);
});
