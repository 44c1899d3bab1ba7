// Dirty-edit tracking of js/src/lib/dirty.js: what an input shows when the kernel's
// value arrives while, or after, the user types. Times are explicit milliseconds.

import { test } from "node:test";
import assert from "node:assert/strict";
import { EditTracker, SETTLE_MS } from "../src/lib/dirty.js";

test("an untouched input shows every kernel value", () => {
  const t = new EditTracker();
  assert.equal(t.unsynced, false);
  assert.equal(t.reconcile("old", "new", 0), "show");
  assert.equal(t.reconcile("same", "same", 0), "keep");
  assert.equal(t.reconcile("", "", 0), "keep");
});

test("while typing (debounce pending) no kernel value replaces the input", () => {
  const t = new EditTracker();
  t.edit();
  assert.equal(t.unsynced, true);
  assert.equal(t.reconcile("hel", "he", 10), "keep");
  // even long after: nothing has been sent yet, so the kernel cannot be newer
  assert.equal(t.reconcile("hel", "something else", 10 * SETTLE_MS), "keep");
  assert.equal(t.dirty, true);
});

test("the kernel echoing the sent value makes the input clean again", () => {
  const t = new EditTracker();
  t.edit();
  t.sent(100);
  assert.equal(t.unsynced, true); // sent, not yet confirmed
  assert.equal(t.reconcile("hello", "hello", 150), "keep");
  assert.equal(t.unsynced, false);
  // from now on kernel values show again
  assert.equal(t.reconcile("hello", "changed in code", 200), "show");
});

test("a stale echo right after a send waits instead of clobbering the edit", () => {
  const t = new EditTracker();
  t.edit();
  t.sent(1000);
  assert.equal(t.reconcile("hello", "hell", 1000 + SETTLE_MS / 2), "wait");
  assert.equal(t.dirty, true);
  // the boundary itself still counts as settling
  assert.equal(t.reconcile("hello", "hell", 1000 + SETTLE_MS), "wait");
});

test("a different kernel value after the edit has settled is a newer change: show it", () => {
  const t = new EditTracker();
  t.edit();
  t.sent(1000);
  assert.equal(t.reconcile("mine", "set in code", 1000 + SETTLE_MS + 1), "show");
  assert.equal(t.unsynced, false);
});

test("an edit typed after the last sync survives the echo of the synced value", () => {
  const t = new EditTracker();
  t.edit();
  t.sent(0);
  assert.equal(t.reconcile("abc", "abc", 50), "keep"); // synced and confirmed
  assert.equal(t.unsynced, false);

  t.edit(); // typed "abcd" after that sync; the debounce has not fired
  assert.equal(t.unsynced, true);
  assert.equal(t.reconcile("abcd", "abc", 60), "keep"); // a late echo of "abc"
  assert.equal(t.reconcile("abcd", "abc", 60 + 5 * SETTLE_MS), "keep"); // however late

  t.sent(5000); // debounce fired; another late "abc" arrives before "abcd" does
  assert.equal(t.reconcile("abcd", "abc", 5010), "wait");
  assert.equal(t.reconcile("abcd", "abcd", 5020), "keep");
  assert.equal(t.unsynced, false);
});

test("discarding an edit (reset to the inherited value) shows the kernel's value", () => {
  const t = new EditTracker();
  t.edit();
  t.discard();
  assert.equal(t.unsynced, false);
  assert.equal(t.reconcile("typed", "inherited", 1), "show");
});

test("empty values: clearing an input is an edit like any other", () => {
  const t = new EditTracker();
  t.edit();
  t.sent(0);
  assert.equal(t.reconcile("", "previous", 10), "wait"); // the old value echoing
  assert.equal(t.reconcile("", "", 20), "keep");
  assert.equal(t.unsynced, false);
});

test("the settle time is configurable", () => {
  const t = new EditTracker(50);
  t.edit();
  t.sent(0);
  assert.equal(t.reconcile("a", "b", 50), "wait");
  assert.equal(t.reconcile("a", "b", 51), "show");
});
