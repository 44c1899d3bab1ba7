// The chat view of the instance widgets: the conversation as sent and received, a reply
// that did not complete with its status badge, and the next request's preview apart.

import { atBottom, h } from "./common.js";
import { onlyPreview, previewDiffers, statusBadge } from "./lib/chat.js";
import { ACTIVE, metricsLine } from "./lib/summary.js";

/** @typedef {import("./common.js").Model} Model */

// ---------------------------------------------------------------- chat view

/**
 * Message elements kept across updates (a streamed reply grows in place).
 * @param {HTMLElement} list
 * @param {"role" | "previewRole"} roleKey  the preview block's messages are not
 *   `data-role`: selectors for the conversation ([data-role=assistant]) skip them
 */
function messageList(list, roleKey = "role") {
  /** @type {{ el: HTMLElement, role?: string, content?: string, status?: string }[]} */
  const items = [];
  /** @param {import("./lib/chat.js").ChatMessage[]} msgs @param {boolean} active */
  return (msgs, active) => {
    msgs.forEach((m, i) => {
      let item = items[i];
      if (!item) {
        item = { el: h("div", { class: "ps-msg" },
          h("div", { class: "ps-role" }, h("span", { class: "ps-role-name" }), h("span", { class: "ps-msg-badge" })),
          h("div", { class: "ps-content" })) };
        items.push(item);
        list.append(item.el);
      }
      const [head, body] = /** @type {HTMLElement[]} */ ([...item.el.children]);
      if (item.role !== m.role) {
        item.role = m.role;
        item.el.dataset[roleKey] = m.role;
        /** @type {Node} */ (head.firstChild).textContent = m.role;
      }
      if (item.content !== m.content) {
        item.content = m.content;
        body.textContent = m.content;
      }
      const status = m.status ?? "";
      if (item.status !== status) {
        item.status = status;
        if (status) item.el.dataset.status = status;
        else delete item.el.dataset.status;
        /** @type {Node} */ (head.lastChild).textContent = statusBadge(m);
      }
      // the cursor only while the reply is really in flight
      item.el.classList.toggle("ps-streaming", status === "streaming" && active);
      if (m.run_id) item.el.dataset.runId = m.run_id;
      else delete item.el.dataset.runId;
    });
    while (items.length > msgs.length) items.pop()?.el.remove();
  };
}

/** @param {Model} model */
export function createChat(model) {
  const list = h("div", { class: "ps-messages", role: "log", "aria-live": "polite", dataset: { field: "messages" } });
  const previewLabel = h("div", { class: "ps-preview-label", dataset: { field: "preview-label" } },
    "Preview: the request Send will make (not sent yet)");
  const metrics = h("span", { class: "ps-metrics", dataset: { field: "metrics" } });
  const outdated = h("span", { class: "ps-outdated", dataset: { field: "outdated" } },
    "The prompt changed since this reply; Send to run it again.");
  // The next fresh request, rendered from the live variables: shown apart from the
  // conversation as sent, collapsed unless opened (the user's choice is kept).
  const previewList = h("div", { class: "ps-preview-messages" });
  const preview = h("details", { class: "ps-preview", dataset: { field: "preview" } },
    h("summary", {}, "Next request (preview)"), previewList);
  const el = h("div", { class: "ps-chat", dataset: { section: "chat" } }, list, preview,
    h("div", { class: "ps-chat-footer" }, metrics, outdated));
  const showMessages = messageList(list);
  list.prepend(previewLabel);
  const showPreview = messageList(previewList, "previewRole");

  function update() {
    /** @type {import("./lib/chat.js").ChatMessage[]} */
    const msgs = model.get("messages") ?? [];
    /** @type {import("./lib/chat.js").ChatMessage[]} */
    const next = model.get("preview") ?? [];
    const active = ACTIVE.has(model.get("status"));
    const stick = atBottom(list);
    showMessages(msgs, active);
    const unsent = onlyPreview(msgs);
    previewLabel.hidden = !unsent;
    list.dataset.preview = String(unsent);
    if (stick) list.scrollTop = list.scrollHeight;
    const differs = previewDiffers(msgs, next);
    preview.hidden = !differs;
    showPreview(differs ? next : [], false);

    const run = model.get("last_run") ?? {};
    metrics.textContent = metricsLine(run);
    metrics.dataset.runId = run.run_id ?? "";
    outdated.hidden = !model.get("outdated");
  }

  return { el, update };
}

