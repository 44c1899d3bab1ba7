// The chat view's preview and status decisions of js/src/lib/chat.js.

import { test } from "node:test";
import assert from "node:assert/strict";
import { onlyPreview, previewDiffers, statusBadge } from "../src/lib/chat.js";

const sys = { role: "system", content: "Be brief." };
const ask = (/** @type {string} */ t) => ({ role: "user", content: `Summarize: ${t}` });
const reply = { role: "assistant", content: "ok", run_id: "r1" };
const asPreview = (/** @type {any[]} */ ms) => ms.map((m) => ({ ...m, status: "preview" }));

test("previewDiffers: before the first send the messages are the preview: no block", () => {
  const preview = asPreview([sys, ask("a")]);
  assert.equal(onlyPreview(preview), true);
  assert.equal(previewDiffers(preview, preview), false);
  assert.equal(previewDiffers([], preview), false);
});

test("previewDiffers: the sent conversation against the next fresh request", () => {
  const sent = [sys, ask("a"), reply];
  assert.equal(previewDiffers(sent, asPreview([sys, ask("a")])), false);
  assert.equal(previewDiffers(sent, asPreview([sys, ask("b")])), true); // a variable changed
  assert.equal(previewDiffers(sent, asPreview([sys, ask("a"), { role: "user", content: "more" }])), true);
  assert.equal(previewDiffers(sent, []), false);
  // a follow-up conversation that starts with the same request is not outdated
  assert.equal(previewDiffers([...sent, { role: "user", content: "again" }, reply], asPreview([sys, ask("a")])), false);
});

test("previewDiffers: the reply in flight and a failed turn do not count as sent", () => {
  const streaming = [sys, ask("a"), { role: "assistant", content: "o", status: "streaming" }];
  assert.equal(previewDiffers(streaming, asPreview([sys, ask("a")])), false);
  assert.equal(previewDiffers(streaming, asPreview([sys, ask("b")])), true);
  // a failed first send: its turn carries the status; the preview is compared with it
  const failed = [{ ...sys, status: "error" }, { ...ask("a"), status: "error" }, { role: "assistant", content: "", status: "error" }];
  assert.equal(previewDiffers(failed, asPreview([sys, ask("a")])), false);
  assert.equal(previewDiffers(failed, asPreview([sys, ask("b")])), true);
});

test("statusBadge: a badge only for messages not part of the sent conversation", () => {
  assert.equal(statusBadge(reply), "");
  assert.equal(statusBadge({ ...reply, status: "cancelled" }), "cancelled");
  assert.equal(statusBadge({ ...reply, status: "error" }), "failed");
  assert.equal(statusBadge({ ...reply, status: "streaming" }), "streaming…");
  assert.equal(statusBadge({ ...reply, status: "preview" }), "not sent yet");
  assert.equal(statusBadge({ ...reply, status: "interrupted" }), "interrupted");
  // the failed turn's request: coloured, not badged (the reply says what happened)
  assert.equal(statusBadge({ role: "user", content: "x", status: "cancelled" }), "");
});
