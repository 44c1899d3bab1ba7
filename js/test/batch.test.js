// Update coalescing of js/src/lib/batch.js: many trait changes, one render per part.

import { test } from "node:test";
import assert from "node:assert/strict";
import { bindRenders, createBatch } from "../src/lib/batch.js";

/** A minimal observable with anywidget's `on`/`off`/change-event shape. */
class Emitter {
  constructor() {
    /** @type {Map<string, Set<() => void>>} */
    this.handlers = new Map();
  }
  on(event, fn) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event).add(fn);
  }
  off(event, fn) {
    this.handlers.get(event)?.delete(fn);
  }
  emit(event) {
    for (const fn of [...(this.handlers.get(event) ?? [])]) fn();
  }
  count() {
    let n = 0;
    for (const set of this.handlers.values()) n += set.size;
    return n;
  }
}

/** A scheduler run by hand: queued flushes run on `run()`. */
function manual() {
  const queue = [];
  return {
    schedule: (fn) => queue.push(fn),
    run() {
      while (queue.length) queue.shift()();
    },
    get size() {
      return queue.length;
    },
  };
}

test("many marks before a flush render each part once", () => {
  const calls = [];
  const sched = manual();
  const batch = createBatch({ a: () => calls.push("a"), b: () => calls.push("b") }, sched.schedule);
  for (let i = 0; i < 1000; i++) batch.mark(i % 2 ? "a" : "b");
  assert.equal(sched.size, 1); // one flush queued, not 1000
  assert.deepEqual(batch.pending(), ["a", "b"]);
  sched.run();
  assert.deepEqual(calls, ["a", "b"]); // renderer order, not mark order
  assert.deepEqual(batch.pending(), []);
});

test("only the marked parts render", () => {
  const calls = [];
  const sched = manual();
  const batch = createBatch({ a: () => calls.push("a"), b: () => calls.push("b") }, sched.schedule);
  batch.mark("b");
  sched.run();
  assert.deepEqual(calls, ["b"]);
});

test("a mark with no parts schedules nothing; an unknown part is an error", () => {
  const sched = manual();
  const batch = createBatch({ a: () => {} }, sched.schedule);
  batch.mark();
  assert.equal(sched.size, 0);
  assert.throws(() => batch.mark("nope"), /unknown part "nope"/);
});

test("a part marked while rendering gets its own, later flush", () => {
  const calls = [];
  const sched = manual();
  let again = true;
  const batch = createBatch({
    a: () => {
      calls.push("a");
      if (again) {
        again = false;
        batch.mark("a");
      }
    },
  }, sched.schedule);
  batch.mark("a");
  sched.run();
  assert.deepEqual(calls, ["a", "a"]);
});

test("a failing renderer does not stop the others, and the batch keeps working", () => {
  const calls = [];
  const sched = manual();
  let fail = true;
  const batch = createBatch({
    a: () => {
      calls.push("a");
      if (fail) throw new Error("boom");
    },
    b: () => calls.push("b"),
  }, sched.schedule);
  batch.mark("a", "b");
  assert.throws(() => sched.run(), /boom/);
  assert.deepEqual(calls, ["a", "b"]);
  fail = false;
  batch.mark("a");
  sched.run();
  assert.deepEqual(calls, ["a", "b", "a"]);
});

test("bindRenders renders every part at once, then once per microtask of changes", async () => {
  const model = new Emitter();
  const calls = { table: 0, pane: 0 };
  const unbind = bindRenders(
    model,
    { table: ["rows", "total"], pane: ["detail"] },
    { table: () => calls.table++, pane: () => calls.pane++ },
  );
  assert.deepEqual(calls, { table: 1, pane: 1 }); // the initial render, synchronous

  for (let i = 0; i < 500; i++) {
    model.emit("change:rows");
    model.emit("change:total");
  }
  assert.deepEqual(calls, { table: 1, pane: 1 }); // nothing until the microtask
  await Promise.resolve();
  assert.deepEqual(calls, { table: 2, pane: 1 });

  model.emit("change:detail");
  await Promise.resolve();
  assert.deepEqual(calls, { table: 2, pane: 2 });

  // an event the view does not listen to renders nothing
  model.emit("change:other");
  await Promise.resolve();
  assert.deepEqual(calls, { table: 2, pane: 2 });

  unbind();
  assert.equal(model.count(), 0);
  model.emit("change:rows");
  await Promise.resolve();
  assert.deepEqual(calls, { table: 2, pane: 2 });
});

test("bindRenders: `also` makes a trait dirty extra parts; a trait in two groups fires once", () => {
  const model = new Emitter();
  const sched = manual();
  const calls = [];
  bindRenders(
    model,
    { list: ["actions", "selected"], header: ["selected"], detail: ["detail"] },
    { header: () => calls.push("header"), list: () => calls.push("list"), detail: () => calls.push("detail") },
    { also: { detail: ["list"] }, schedule: sched.schedule },
  );
  calls.length = 0;
  assert.equal(model.handlers.get("change:selected").size, 1);

  model.emit("change:detail");
  sched.run();
  assert.deepEqual(calls, ["list", "detail"]);

  calls.length = 0;
  model.emit("change:selected");
  sched.run();
  assert.deepEqual(calls, ["header", "list"]);
});

test("bindRenders: a group naming a part with no renderer is an error", () => {
  assert.throws(() => bindRenders(new Emitter(), { x: ["a"] }, {}), /no renderer for part "x"/);
});

test("bindRenders with no traits at all still renders once", () => {
  let n = 0;
  const model = new Emitter();
  bindRenders(model, {}, { only: () => n++ });
  assert.equal(n, 1);
  assert.equal(model.count(), 0);
});
