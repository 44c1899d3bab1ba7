// DOM helpers and views shared by the widget modules. Each entry (widget.js,
// devtools.js, history.js, sweep.js) imports what it uses; esbuild bundles one copy
// into each built module. Pure logic lives in lib/, without DOM access.

import { fmt, fmtCost, fmtMs, fmtTokens } from "./lib/format.js";

/**
 * An element with attributes and children. `class`, `dataset` and `on<event>` are
 * special; false/null/undefined attributes are left out, true ones are set empty.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Node | string | null | undefined)} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c != null) el.append(c);
  return el;
}

/**
 * The part of an anywidget model the views use. Trait values are the kernel's JSON
 * payloads; each view annotates the shape it reads.
 * @typedef {import("./lib/batch.js").Observable & {
 *   get(name: string): any,
 *   send(msg: object): void,
 * }} Model
 */

/** @typedef {ReturnType<typeof setTimeout> | undefined} Timer */

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * An SVG element with attributes.
 * @param {string} tag
 * @param {Record<string, string | number>} [attrs]
 * @returns {SVGElement}
 */
export function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return /** @type {SVGElement} */ (el);
}

/**
 * A `ps-button` whose `data-action` names what it does (tests and styles find it by that).
 * @param {string} label
 * @param {string} action
 * @param {Record<string, any>} [attrs]
 * @returns {HTMLButtonElement}
 */
export function button(label, action, attrs = {}) {
  return h("button", { class: "ps-button", type: "button", dataset: { action }, ...attrs }, label);
}

/**
 * Inside a notebook cell JupyterLab cancels the line break of Shift+Enter (it is the
 * "run cell" key), even in our textareas; insert it ourselves.
 * @template {HTMLTextAreaElement} T
 * @param {T} textarea
 * @returns {T}
 */
export function keepShiftEnter(textarea) {
  textarea.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || !e.shiftKey || e.isComposing) return;
    e.preventDefault();
    insertNewline(textarea);
  });
  return textarea;
}

/**
 * Type a line break at the caret, as the browser would (an `input` event follows).
 * @param {HTMLTextAreaElement} textarea
 */
export function insertNewline(textarea) {
  textarea.setRangeText("\n", textarea.selectionStart, textarea.selectionEnd, "end");
  textarea.dispatchEvent(new Event("input", { bubbles: true }));
}

/**
 * Show `message` in an error/notice box, hidden when empty.
 * @param {HTMLElement} el
 * @param {string | null | undefined} message
 */
export function showMessage(el, message) {
  el.textContent = message ?? "";
  el.hidden = !message;
}

/**
 * True when a scrolled list is (about) at its bottom, so new items should keep it there.
 * @param {HTMLElement} list
 * @returns {boolean}
 */
export function atBottom(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 24;
}

// ---------------------------------------------------------------- run views (panels)

/**
 * @param {{ role: string, content: string }[]} messages
 * @returns {HTMLElement}
 */
export function messagesView(messages) {
  return h("div", {}, ...messages.map((m) => h("div", { class: "ps-msg", dataset: { role: m.role } },
    h("div", { class: "ps-role" }, m.role), h("div", { class: "ps-content" }, m.content))));
}

/**
 * @param {{ name: string, source: string, value: unknown }[]} vars
 * @returns {HTMLElement}
 */
export function variablesView(vars) {
  return h("table", { class: "ps-vars", dataset: { field: "variables" } }, h("tbody", {}, ...vars.map((v) =>
    h("tr", { dataset: { variable: v.name } }, h("td", {}, v.name), h("td", {}, h("span", { class: "ps-badge", dataset: { source: v.source } }, v.source)),
      h("td", { class: "ps-content" }, fmt(v.value))))));
}

/**
 * One run's detail pane (RunHistory and SweepGrid), `extra` added to its toolbar.
 * @param {Record<string, any>} d  the kernel's run detail payload
 * @param {(Node | string)[]} [extra]
 * @returns {HTMLElement}
 */
export function runDetail(d, extra = []) {
  const m = d.metrics ?? {};
  /** @type {[string, Node | string][]} */
  const kv = [
    ["status", h("span", { dataset: { status: d.status } }, h("span", { class: "ps-status-dot" }), d.status)],
    ["model", d.provider === d.model ? d.model : `${d.provider}:${d.model}`],
    ["prompt", `${d.prompt_id} @ ${d.prompt_version}`],
    ["tokens", fmtTokens(m.input_tokens, m.output_tokens)],
    ["latency", fmtMs(m.latency_ms)],
    ["first token", fmtMs(m.ttft_ms)],
    ["cost", fmtCost(m.cost_usd)],
    ["attempts", fmt(m.attempts)],
    ["started", fmt(m.started_at)],
  ];
  if (m.cache_hit) kv.push(["cache", "hit"]);
  if (m.sweep_id) kv.push(["sweep", m.sweep_id]);
  return h("div", { class: "ps-run-pane", dataset: { field: "run-detail", runId: d.run_id } },
    h("div", { class: "ps-toolbar" }, h("span", { class: "ps-title ps-mono" }, `run ${d.run_id}`), h("span", { class: "ps-spacer" }), ...extra),
    h("div", { class: "ps-kv" }, ...kv.flatMap(([k, v]) => [h("span", {}, k), h("span", {}, v)])),
    d.error ? h("div", { class: "ps-error", dataset: { field: "run-error" } }, d.error) : null,
    h("h4", {}, "variables"), variablesView(d.variables ?? []),
    h("h4", {}, "rendered messages"), messagesView(d.messages ?? []),
    h("h4", {}, "response"), h("pre", { dataset: { field: "response" } }, d.response ?? ""));
}

/**
 * The "viewing the past" banner of a widget or panel, shown while its `viewing_past`
 * trait is true (DevTools shows an earlier state).
 * @param {Model} model
 * @param {string} [text]
 * @returns {{ el: HTMLElement, update(): void }}
 */
export function pastBanner(model, text = "Viewing the past (DevTools) — sending returns to the present.") {
  const el = h("div", { class: "ps-past", dataset: { field: "viewing-past" }, role: "status" }, text);
  return { el, update() { el.hidden = !model.get("viewing_past"); } };
}
