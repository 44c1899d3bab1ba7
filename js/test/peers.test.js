// Unsynced edits shared between widgets of one instance (js/src/lib/peers.js), over a
// plain EventTarget standing in for the page's document.

import { test } from "node:test";
import assert from "node:assert/strict";
import { collectEdits, offerEdits } from "../src/lib/peers.js";

/** A widget's unsynced edits: handed over once, like the form's takeUnsynced(). */
function pending(values) {
  let left = { ...values };
  const take = () => {
    const out = left;
    left = {};
    return out;
  };
  return take;
}

test("a Send collects the edits of the other views of the same instance only", () => {
  const doc = new EventTarget();
  const form = {};
  const otherInstance = {};
  const composer = {};
  offerEdits(doc, "i1", form, pending({ text: "typed in the form" }));
  offerEdits(doc, "i2", otherInstance, pending({ text: "another instance" }));
  assert.deepEqual(collectEdits(doc, "i1", composer), { text: "typed in the form" });
  // handed over: a second Send carries nothing new
  assert.deepEqual(collectEdits(doc, "i1", composer), {});
  assert.deepEqual(collectEdits(doc, "i2", composer), { text: "another instance" });
});

test("the asking view is not asked (its own edits are added by the caller, last)", () => {
  const doc = new EventTarget();
  const self = {};
  let asked = 0;
  offerEdits(doc, "i1", self, () => {
    asked++;
    return { text: "mine" };
  });
  assert.deepEqual(collectEdits(doc, "i1", self), {});
  assert.equal(asked, 0);
});

test("edits from several views merge; later-registered views win on the same name", () => {
  const doc = new EventTarget();
  offerEdits(doc, "i1", {}, pending({ a: "1", shared: "first" }));
  offerEdits(doc, "i1", {}, pending({ b: "2", shared: "second" }));
  assert.deepEqual(collectEdits(doc, "i1", {}), { a: "1", b: "2", shared: "second" });
});

test("a closed view stops offering; nothing offered means an empty object", () => {
  const doc = new EventTarget();
  const stop = offerEdits(doc, "i1", {}, pending({ text: "x" }));
  stop();
  assert.deepEqual(collectEdits(doc, "i1", {}), {});
  assert.deepEqual(collectEdits(new EventTarget(), "i1", {}), {});
});

test("an unrelated event of the same name without detail is ignored", () => {
  const doc = new EventTarget();
  let asked = 0;
  offerEdits(doc, "i1", {}, () => {
    asked++;
    return {};
  });
  doc.dispatchEvent(new Event("promptstate:collect-unsynced"));
  assert.equal(asked, 0);
});
