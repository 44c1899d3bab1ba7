// Formatting rules of js/src/lib/format.js.
process.env.TZ = "UTC"; // clock() shows local time; pin it before any Date is made

import { test } from "node:test";
import assert from "node:assert/strict";
import { NONE, clock, fmt, fmtCost, fmtMs, fmtTokens } from "../src/lib/format.js";

test("fmt: integers as they are, fractions to 3 decimals below 10 and 1 above", () => {
  assert.equal(fmt(0), "0");
  assert.equal(fmt(42), "42");
  assert.equal(fmt(1.23456), "1.235");
  assert.equal(fmt(9.9994), "9.999");
  assert.equal(fmt(12.345), "12.3");
  assert.equal(fmt(1234.56), "1234.6");
});

test("fmt: the magnitude decides the decimals, so negatives round like positives", () => {
  assert.equal(fmt(-1.23456), "-1.235");
  assert.equal(fmt(-123.456), "-123.5");
});

test("fmt: empty, non-finite, objects and strings", () => {
  assert.equal(fmt(null), "");
  assert.equal(fmt(undefined), "");
  assert.equal(fmt(""), "");
  assert.equal(fmt(Number.NaN), "NaN");
  assert.equal(fmt(Number.POSITIVE_INFINITY), "Infinity");
  assert.equal(fmt({ a: [1, 2] }), '{"a":[1,2]}');
  assert.equal(fmt([]), "[]");
  assert.equal(fmt(false), "false");
  assert.equal(fmt("text"), "text");
});

test("fmtMs: milliseconds rounded below a second, seconds with 2 decimals from one on", () => {
  assert.equal(fmtMs(0), "0 ms");
  assert.equal(fmtMs(0.4), "0 ms");
  assert.equal(fmtMs(12.5), "13 ms");
  assert.equal(fmtMs(999.4), "999 ms");
  assert.equal(fmtMs(1000), "1.00 s");
  assert.equal(fmtMs(1234.5), "1.23 s");
  assert.equal(fmtMs(61_000), "61.00 s");
});

test("fmtMs: a latency that rounds up to a second reads as seconds, not '1000 ms'", () => {
  assert.equal(fmtMs(999.5), "1.00 s");
  assert.equal(fmtMs(999.9), "1.00 s");
});

test("fmtMs: unknown latencies show the placeholder", () => {
  assert.equal(fmtMs(null), NONE);
  assert.equal(fmtMs(undefined), NONE);
  assert.equal(fmtMs(Number.NaN), NONE);
  assert.equal(fmtMs(Number.POSITIVE_INFINITY), NONE);
});

test("fmtCost: micro-dollars, numbers sent as strings, unknown costs", () => {
  assert.equal(fmtCost(0), "$0.000000");
  assert.equal(fmtCost(0.0000125), "$0.000013");
  assert.equal(fmtCost("0.5"), "$0.500000");
  assert.equal(fmtCost(null), NONE);
  assert.equal(fmtCost(""), NONE);
  assert.equal(fmtCost("n/a"), NONE);
});

test("fmtTokens: a side the provider did not report is '?', zero is a count", () => {
  assert.equal(fmtTokens(12, 30), "12 in / 30 out");
  assert.equal(fmtTokens(0, 0), "0 in / 0 out");
  assert.equal(fmtTokens(null, 5), "? in / 5 out");
  assert.equal(fmtTokens(undefined, undefined), "? in / ? out");
});

test("clock: wall-clock time with milliseconds, zero-padded", () => {
  assert.equal(clock(Date.UTC(2024, 0, 2, 3, 4, 5, 6) / 1000), "03:04:05.006");
  assert.equal(clock(Date.UTC(2024, 0, 2, 23, 59, 59, 999) / 1000), "23:59:59.999");
});

test("clock: midnight is 00, not 24 (toLocaleTimeString's hour12:false can say 24)", () => {
  assert.equal(clock(Date.UTC(2024, 5, 1, 0, 0, 7, 0) / 1000), "00:00:07.000");
});

test("clock: fractional seconds that fall just under a millisecond still round to it", () => {
  // 1.001 * 1000 is 1000.9999999999999 in floating point
  assert.equal(clock(1.001), "00:00:01.001");
  assert.equal(clock(1700000000.123), "22:13:20.123");
});

test("clock: no timestamp is an empty string", () => {
  assert.equal(clock(0), "");
  assert.equal(clock(null), "");
  assert.equal(clock(undefined), "");
  assert.equal(clock(Number.NaN), "");
});
