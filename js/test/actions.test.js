// DevTools list decisions of js/src/lib/actions.js.

import { test } from "node:test";
import assert from "node:assert/strict";
import { CHUNK_ACTION, groupChunks, positionRow } from "../src/lib/actions.js";

/** @param {number} index @param {string} type @param {string | null} [inst] */
const act = (index, type, inst = "i1") => ({ index, type, summary: "", skipped: false, instance_id: inst, timestamp: 0 });

test("groupChunks: consecutive chunks of one instance fold into one group", () => {
  const items = groupChunks([
    act(0, "runs/execute_pending"), act(1, CHUNK_ACTION), act(2, CHUNK_ACTION), act(3, CHUNK_ACTION),
    act(4, "runs/execute_fulfilled"),
  ]);
  assert.deepEqual(items.map((i) => i.kind), ["action", "chunks", "action"]);
  const g = items[1];
  assert.ok(g.kind === "chunks");
  assert.deepEqual([g.key, g.first, g.last, g.count, g.instance_id], ["chunks-1", 1, 3, 3, "i1"]);
  assert.deepEqual(g.actions.map((a) => a.index), [1, 2, 3]);
});

test("groupChunks: a lone chunk stays a row; another instance's chunks start a new group", () => {
  const items = groupChunks([
    act(0, CHUNK_ACTION, "a"), act(1, "instances/variable_set"),
    act(2, CHUNK_ACTION, "a"), act(3, CHUNK_ACTION, "a"), act(4, CHUNK_ACTION, "b"), act(5, CHUNK_ACTION, "b"),
  ]);
  assert.deepEqual(items.map((i) => (i.kind === "chunks" ? `${i.instance_id}:${i.count}` : i.action.index)),
    [0, 1, "a:2", "b:2"]);
  assert.deepEqual(groupChunks([]), []);
});

test("positionRow: the position's own row, else the last listed before it", () => {
  assert.equal(positionRow([1, 4, 9], 4), 4);
  assert.equal(positionRow([1, 4, 9], 7), 4); // 5..8 are hidden chunks
  assert.equal(positionRow([1, 4, 9], 0), null);
  assert.equal(positionRow([1, 4, 9], null), null); // live
  assert.equal(positionRow([], 3), null);
});
