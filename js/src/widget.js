// promptstate widgets: front end of PromptRunner, VariablesForm, ChatView, Composer.
//
// One module renders every widget; the model's `sections` trait says which parts
// to show ("variables", "chat", "composer"). Data flows one way: the kernel pushes
// selector results as traits and this code only reads them. User input goes back
// as custom messages that the kernel turns into store actions:
//
//   {type: "set_variable", name, value}      debounced while typing
//   {type: "unset_variable", name}           back to the inherited value
//   {type: "send", seq, content, variables, settings?}  Send click; carries unsynced
//                                            edits and the settings row's values
//   {type: "set_model", model | null}        the settings row's model
//   {type: "stop"}
//
// The kernel answers a send with {type: "send_done", seq, ok, run_id, status, error}.

import { h, keepShiftEnter, pastBanner, showMessage } from "./common.js";
import { bindRenders } from "./lib/batch.js";
import { EditTracker, SETTLE_MS } from "./lib/dirty.js";
import { ACTIVE, isMultiline } from "./lib/summary.js";
import { collectEdits, offerEdits } from "./lib/peers.js";
import { createChat } from "./chat.js";
import { createSettings } from "./settings.js";

const DEBOUNCE_MS = 200;

/** @typedef {import("./common.js").Model} Model */
/** @typedef {import("./common.js").Timer} Timer */

/**
 * @typedef {{
 *   row: HTMLElement, input: HTMLInputElement | HTMLTextAreaElement, badge: HTMLElement,
 *   reset: HTMLButtonElement, edits: EditTracker, timer: Timer,
 *   multiline: boolean,
 * }} Row
 */

// ---------------------------------------------------------------- variables form

/** @param {Model} model */
function createForm(model) {
  const el = h("div", { class: "ps-variables", dataset: { section: "variables" } });
  /** @type {Map<string, Row>} */
  const rows = new Map();
  /** @type {Timer} */
  let recheck;

  /** @param {Row} entry */
  function stopTimer(entry) {
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = undefined;
  }

  /** @param {string} name @param {Row} entry */
  function flush(name, entry) {
    stopTimer(entry);
    entry.edits.sent(performance.now());
    model.send({ type: "set_variable", name, value: entry.input.value });
  }

  /**
   * @param {{ name: string, value: string | null }} v
   * @param {boolean} multiline
   * @returns {Row}
   */
  function addRow(v, multiline) {
    const attrs = { class: "ps-input", dataset: { variable: v.name }, "aria-label": v.name, spellcheck: "false" };
    const value = v.value ?? "";
    const input = multiline
      ? keepShiftEnter(h("textarea", { ...attrs, rows: Math.min(8, Math.max(3, value.split("\n").length)) }))
      : h("input", { ...attrs, type: "text" });
    input.value = value;
    const badge = h("span", { class: "ps-badge" });
    const reset = h("button", {
      class: "ps-reset",
      type: "button",
      dataset: { action: "unset", reset: v.name },
      title: "Drop the instance value (use the inherited one)",
      onclick: () => {
        stopTimer(entry);
        entry.edits.discard();
        model.send({ type: "unset_variable", name: v.name });
      },
    }, "↺");
    const row = h("div", { class: "ps-var", dataset: { row: v.name } },
      h("label", { class: "ps-var-name" }, v.name), badge, reset, input);
    /** @type {Row} */
    const entry = { row, input, badge, reset, edits: new EditTracker(SETTLE_MS), timer: undefined, multiline };
    input.addEventListener("input", () => {
      // A local edit: kept on screen until the kernel echoes it back (lib/dirty.js).
      entry.edits.edit();
      stopTimer(entry);
      entry.timer = setTimeout(() => flush(v.name, entry), DEBOUNCE_MS);
    });
    input.addEventListener("blur", () => {
      if (entry.timer) flush(v.name, entry);
    });
    rows.set(v.name, entry);
    return entry;
  }

  /**
   * Show a value the kernel holds. A focused input whose whole text is selected (the
   * user is about to replace it) keeps it all selected: assigning `value` alone would
   * collapse the selection and the next key would be added to the new text instead.
   * @param {HTMLInputElement | HTMLTextAreaElement} input
   * @param {string} value
   */
  function showValue(input, value) {
    const all = document.activeElement === input && input.value.length > 0
      && input.selectionStart === 0 && input.selectionEnd === input.value.length;
    input.value = value;
    if (all) input.select();
  }

  /** @param {string} name */
  function drop(name) {
    const entry = rows.get(name);
    if (!entry) return;
    stopTimer(entry);
    entry.row.remove();
    rows.delete(name);
  }

  function update() {
    /** @type {{ name: string, value: string | null, source: string }[]} */
    const vars = model.get("variables") ?? [];
    const seen = new Set();
    /** @type {HTMLElement | null} */
    let prev = null;
    for (const v of vars) {
      seen.add(v.name);
      let entry = rows.get(v.name);
      if (entry && !entry.multiline && isMultiline(v.value) && !entry.edits.unsynced
          && document.activeElement !== entry.input) {
        drop(v.name); // grow into a textarea, but never under the user's fingers
        entry = undefined;
      }
      entry ??= addRow(v, isMultiline(v.value));
      const server = v.value ?? "";
      const verdict = entry.edits.reconcile(entry.input.value, server, performance.now());
      if (verdict === "show") showValue(entry.input, server);
      else if (verdict === "wait" && !recheck) {
        recheck = setTimeout(() => { recheck = undefined; update(); }, SETTLE_MS);
      }
      entry.badge.textContent = v.source;
      entry.badge.dataset.source = v.source;
      entry.row.dataset.source = v.source;
      entry.input.placeholder = v.value == null ? "missing" : "";
      // An instance value can be dropped to fall back to org/project/user/default.
      // Not the `hidden` attribute: marimo's preflight turns [hidden] into display:none
      // (a layered !important), which pulls the button out of the form's grid.
      const noReset = v.source !== "instance";
      entry.reset.classList.toggle("ps-invisible", noReset);
      entry.reset.disabled = noReset;
      entry.reset.tabIndex = noReset ? -1 : 0;
      entry.reset.setAttribute("aria-hidden", String(noReset));
      /** @type {ChildNode | null} */
      const want = prev ? prev.nextSibling : el.firstChild; // keep prompt order
      if (want !== entry.row) el.insertBefore(entry.row, want);
      prev = entry.row;
    }
    for (const name of [...rows.keys()]) if (!seen.has(name)) drop(name);
    el.classList.toggle("ps-empty", vars.length === 0);
  }

  return {
    el,
    update,
    /**
     * Values typed since they were last sent (their debounce has not fired). Cancels
     * their timers: the Send message carries them instead. An edit already sent is not
     * carried again: the kernel received it before this click (one ordered comm), and
     * re-sending it would undo a newer change made since (code, another widget).
     * @returns {Record<string, string>}
     */
    takeUnsynced() {
      /** @type {Record<string, string>} */
      const out = {};
      const now = performance.now();
      for (const [name, entry] of rows) {
        if (entry.edits.pending) {
          stopTimer(entry);
          entry.edits.sent(now);
          out[name] = entry.input.value;
        }
      }
      return out;
    },
    close() {
      if (recheck) clearTimeout(recheck);
      recheck = undefined;
      for (const [name, entry] of rows) if (entry.timer) flush(name, entry);
    },
  };
}

// ---------------------------------------------------------------- composer

/**
 * @param {Model} model
 * @param {(content: string | null) => void} send
 */
function createComposer(model, send) {
  const box = keepShiftEnter(h("textarea", {
    class: "ps-composer-input",
    rows: 2,
    placeholder: "Message (Enter to send, Shift+Enter for a new line). Empty: run the prompt.",
    dataset: { field: "composer" },
    "aria-label": "Message",
  }));
  const sendBtn = h("button", { class: "ps-button ps-send", type: "button", dataset: { action: "send" } }, "Send");
  const stopBtn = h("button", { class: "ps-button ps-stop", type: "button", dataset: { action: "stop" } }, "Stop");
  sendBtn.addEventListener("click", () => {
    const content = box.value;
    box.value = "";
    send(content === "" ? null : content);
  });
  stopBtn.addEventListener("click", () => model.send({ type: "stop" }));
  box.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      if (!sendBtn.disabled) sendBtn.click();
    }
  });
  const el = h("div", { class: "ps-composer", dataset: { section: "composer" } }, box,
    h("div", { class: "ps-buttons" }, sendBtn, stopBtn));

  function update() {
    const status = model.get("status");
    const busy = ACTIVE.has(status);
    sendBtn.disabled = busy || status === "closed";
    stopBtn.disabled = !busy;
    box.disabled = status === "closed";
  }

  return { el, update };
}

// ---------------------------------------------------------------- the widget

/** @param {{ model: Model, el: HTMLElement }} view */
function render({ model, el }) {
  const sections = model.get("sections") ?? ["variables", "chat", "composer"];
  const instanceId = model.get("instance_id");
  const self = {}; // this view, as other views of the instance know it (lib/peers.js)
  let seq = 0;

  const status = h("span", { class: "ps-status" });
  const title = h("span", { class: "ps-title" });
  const past = pastBanner(model);
  const error = h("div", { class: "ps-error", dataset: { field: "error" }, role: "alert" });
  const root = h("div", {
    class: "promptstate-widget",
    dataset: { instance: instanceId },
    // Keys typed here are text, not JupyterLab shortcuts (Shift+Enter, "a", "b"...).
    "data-lm-suppress-shortcuts": "true",
  }, h("div", { class: "ps-header" }, title, status), past.el);

  /** @type {{ el: HTMLElement, update(): void }[]} */
  const parts = [];
  const form = sections.includes("variables") ? createForm(model) : null;
  // Other views of this instance (a Composer beside a VariablesForm) take our unsynced
  // edits when their Send is clicked.
  const stopOffering = form
    ? offerEdits(document, instanceId, self, () => form.takeUnsynced())
    : () => {};
  if (form) parts.push(form);
  if (sections.includes("chat")) parts.push(createChat(model));
  const settings = sections.includes("composer") ? createSettings(model) : null;
  if (settings) parts.push(settings);
  root.append(error);

  /** @param {string | null} content */
  function send(content) {
    // Edits typed into any view of this instance that the kernel has not seen yet
    // travel with the click, so the run uses what is on screen; this view's own win.
    const variables = collectEdits(document, instanceId, self);
    if (form) Object.assign(variables, form.takeUnsynced());
    /** @type {Record<string, any>} */
    const msg = { type: "send", seq: ++seq, content, variables };
    const chosen = settings?.values() ?? {};
    if (Object.keys(chosen).length) msg.settings = chosen;
    model.send(msg);
  }
  if (sections.includes("composer")) parts.push(createComposer(model, send));
  for (const p of parts) root.insertBefore(p.el, error);

  function update() {
    const st = model.get("status") ?? "idle";
    status.textContent = st;
    status.dataset.status = st;
    title.textContent = [model.get("prompt_id"), model.get("model_label")].filter(Boolean).join(" · ");
    const run = model.get("last_run") ?? {};
    showMessage(error, model.get("error") || (run.status === "error" ? run.error : "") || "");
    past.update();
    for (const p of parts) p.update();
  }

  // One kernel sync can change several traits; render once for all of them.
  const unbind = bindRenders(
    model,
    { view: ["variables", "messages", "status", "last_run", "error", "prompt_id", "model_label", "outdated",
      "preview", "viewing_past", "model", "model_choices"] },
    { view: update },
  );
  el.append(root);

  return () => {
    unbind();
    stopOffering();
    form?.close();
  };
}

export default { render };
