// promptstate DevTools: the session's action history with time travel.
//
// The kernel pushes the visible window of actions and the selected action's detail
// as traits; this code only reads them. Input goes back as custom messages:
//
//   {type: "filter", action_type, instance_id}   {type: "page", offset}
//   {type: "show_chunks", show}                  list runs/chunk_received actions too
//   {type: "select", index | null}               {type: "jump", index}
//   {type: "resume"}   {type: "skip", index}     {type: "export"}   {type: "import", text}
//
// The kernel answers "export" with {type: "export_data", filename, text}.

import { atBottom, button, h, pastBanner, showMessage } from "./common.js";
import { groupChunks, positionRow } from "./lib/actions.js";
import { bindRenders } from "./lib/batch.js";
import { clock } from "./lib/format.js";
import { actionCounts } from "./lib/summary.js";

/** @typedef {import("./common.js").Model} Model */
/** @typedef {import("./common.js").Timer} Timer */
/**
 * One row of the action list, as the kernel sends it.
 * @typedef {{
 *   index: number, type: string, summary: string, skipped: boolean,
 *   instance_id: string | null, timestamp: number,
 * }} ActionRow
 */

const FILTER_DEBOUNCE_MS = 250;
const SLIDER_DEBOUNCE_MS = 80;

/**
 * Save `text` as a file through the browser.
 * @param {string} filename
 * @param {string} text
 */
function download(filename, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** @param {{ model: Model, el: HTMLElement }} view */
function render({ model, el }) {
  // -- toolbar
  const typeFilter = h("input", {
    class: "ps-text ps-devtools-filter", type: "search", placeholder: "type, e.g. variable_set",
    dataset: { field: "filter-type" }, "aria-label": "Filter by action type", spellcheck: "false",
  });
  const listId = `ps-dev-inst-${Math.random().toString(36).slice(2)}`;
  const instFilter = h("input", {
    class: "ps-text ps-devtools-filter", type: "search", placeholder: "instance id", list: listId,
    dataset: { field: "filter-instance" }, "aria-label": "Filter by instance id", spellcheck: "false",
  });
  const instList = h("datalist", { id: listId });
  /** @type {Timer} */
  let filterTimer;
  const sendFilter = () => {
    clearTimeout(filterTimer);
    filterTimer = undefined;
    model.send({ type: "filter", action_type: typeFilter.value, instance_id: instFilter.value });
  };
  for (const input of [typeFilter, instFilter]) {
    input.addEventListener("input", () => {
      clearTimeout(filterTimer);
      filterTimer = setTimeout(sendFilter, FILTER_DEBOUNCE_MS);
    });
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") sendFilter(); });
  }

  const live = h("span", { class: "ps-pill", dataset: { field: "position" } });
  const resumeBtn = button("Resume", "resume", { title: "Back to the latest state" });
  resumeBtn.addEventListener("click", () => model.send({ type: "resume" }));
  const exportBtn = button("Export", "export", { title: "Download the history as JSON" });
  exportBtn.addEventListener("click", () => model.send({ type: "export" }));

  // import: a file picker, or JSON pasted into a box
  const fileInput = h("input", { type: "file", accept: ".json,application/json", hidden: true, dataset: { field: "import-file" } });
  fileInput.addEventListener("change", async () => {
    const file = fileInput.files && fileInput.files[0];
    if (!file) return;
    model.send({ type: "import", text: await file.text() });
    fileInput.value = "";
  });
  const importBtn = button("Import…", "import", { title: "Restore an exported history from a file" });
  importBtn.addEventListener("click", () => fileInput.click());
  const pasteBox = h("textarea", { class: "ps-text", placeholder: "paste an export's JSON here", dataset: { field: "import-text" }, spellcheck: "false" });
  const pasteGo = button("Import pasted JSON", "import-text");
  pasteGo.addEventListener("click", () => {
    model.send({ type: "import", text: pasteBox.value });
  });
  const pasteToggle = button("Paste…", "toggle-paste", { title: "Import JSON pasted as text" });
  const pasteArea = h("div", { class: "ps-import-box", hidden: true }, pasteBox, h("div", {}, pasteGo));
  pasteToggle.addEventListener("click", () => { pasteArea.hidden = !pasteArea.hidden; });

  const title = h("span", { class: "ps-title" }, "DevTools");
  const counts = h("span", { class: "ps-sub", dataset: { field: "counts" } });
  const header = h("div", { class: "ps-header" }, title, live, counts, h("span", { class: "ps-spacer" }),
    resumeBtn, exportBtn, importBtn, pasteToggle, fileInput);
  // Each streamed chunk is an action: hidden by default (the kernel counts them).
  const chunkBox = h("input", { type: "checkbox", dataset: { field: "show-chunks" } });
  chunkBox.addEventListener("change", () => model.send({ type: "show_chunks", show: chunkBox.checked }));
  const chunkLabel = h("span", { dataset: { field: "chunk-count" } });
  const chunkToggle = h("label", { class: "ps-toggle", title: "List every runs/chunk_received action (one per streamed chunk)" }, chunkBox, chunkLabel);
  const toolbar = h("div", { class: "ps-toolbar" }, h("span", { class: "ps-sub" }, "filter"), typeFilter, instFilter, instList, chunkToggle);

  // -- slider: every held action, oldest to newest; the right end is "live"
  const slider = h("input", { class: "ps-slider", type: "range", min: 0, max: 0, step: 1, dataset: { field: "slider" }, "aria-label": "Time travel" });
  const sliderLabel = h("span", { class: "ps-sub ps-mono", dataset: { field: "slider-label" } });
  /** @type {Timer} */
  let sliderTimer;
  let sliderBusy = false; // the user is dragging: do not move the thumb under them
  const sendSlider = () => {
    clearTimeout(sliderTimer);
    sliderTimer = undefined;
    const v = Number(slider.value);
    if (v >= Number(slider.max)) model.send({ type: "resume" });
    else model.send({ type: "jump", index: v });
  };
  slider.addEventListener("input", () => {
    sliderBusy = true;
    sliderLabel.textContent = `#${slider.value}`;
    clearTimeout(sliderTimer);
    sliderTimer = setTimeout(sendSlider, SLIDER_DEBOUNCE_MS);
  });
  slider.addEventListener("change", () => { sliderBusy = false; sendSlider(); });
  const sliderRow = h("div", { class: "ps-slider-row" }, h("span", { class: "ps-sub" }, "time travel"), slider, sliderLabel);

  // -- action list + detail
  const list = h("div", { class: "ps-actions", role: "list", dataset: { field: "actions" } });
  const olderBtn = button("▲ older", "older", { class: "ps-button ps-small" });
  const newerBtn = button("newer ▼", "newer", { class: "ps-button ps-small" });
  olderBtn.addEventListener("click", () => model.send({ type: "page", offset: (model.get("offset") ?? 0) + (model.get("window") ?? 200) }));
  newerBtn.addEventListener("click", () => model.send({ type: "page", offset: Math.max(0, (model.get("offset") ?? 0) - (model.get("window") ?? 200)) }));
  const pager = h("div", { class: "ps-toolbar ps-sub" }, olderBtn, newerBtn);
  const detail = h("div", { class: "ps-detail", dataset: { field: "detail" } });
  const main = h("div", { class: "ps-dev-main" }, h("div", {}, list, pager), detail);

  const error = h("div", { class: "ps-error", role: "alert", dataset: { field: "error" } });
  const notice = h("div", { class: "ps-notice", dataset: { field: "notice" } });
  const past = pastBanner(model, "Viewing the past: every widget of the session shows this state; any send returns to the present (or Resume).");
  const root = h("div", {
    class: "promptstate-panel ps-devtools",
    // Keys typed here are text, not JupyterLab shortcuts.
    "data-lm-suppress-shortcuts": "true",
  }, header, past.el, pasteArea, toolbar, sliderRow, main, error, notice);

  // -- rendering
  /** @type {Map<number, { el: HTMLElement, key: string }>} */
  const rows = new Map();

  /** @param {ActionRow} a */
  function rowFor(a) {
    const key = `${a.type}|${a.summary}|${a.skipped}|${a.instance_id}`;
    let entry = rows.get(a.index);
    if (entry && entry.key === key) return entry;
    const jump = button("jump", "jump", { class: "ps-button ps-small", title: "Jump to the state after this action", dataset: { action: "jump", actionIndex: a.index } });
    const skip = button(a.skipped ? "unskip" : "skip", "skip", { class: "ps-button ps-small", title: "Toggle this action out of the history", dataset: { action: "skip", actionIndex: a.index } });
    jump.addEventListener("click", (e) => { e.stopPropagation(); model.send({ type: "jump", index: a.index }); });
    skip.addEventListener("click", (e) => { e.stopPropagation(); model.send({ type: "skip", index: a.index }); });
    const el = h("div", {
      class: "ps-action", role: "listitem", title: `${clock(a.timestamp)}${a.instance_id ? " · instance " + a.instance_id : ""}`,
      dataset: { actionIndex: a.index, actionType: a.type, instance: a.instance_id ?? "" },
    },
      h("span", { class: "ps-action-index" }, String(a.index)),
      h("span", { class: "ps-action-type" }, a.type),
      h("span", { class: "ps-action-summary" }, a.summary),
      h("span", { class: "ps-action-tools" }, jump, skip));
    el.addEventListener("click", () => {
      const sel = model.get("selected");
      model.send({ type: "select", index: sel === a.index ? null : a.index });
    });
    if (entry) entry.el.replaceWith(el);
    entry = { el, key };
    rows.set(a.index, entry);
    return entry;
  }

  /** @type {Map<string, HTMLElement>} */
  const groups = new Map(); // folded chunk runs, by their first index
  /** @type {Set<string>} */
  const opened = new Set(); // groups the user unfolded
  /** @type {number | null | undefined} */
  let scrolledTo;

  /** @param {Extract<import("./lib/actions.js").ListItem, { kind: "chunks" }>} g */
  function groupRow(g) {
    let el = groups.get(g.key);
    if (!el) {
      el = h("div", { class: "ps-action ps-action-group", role: "listitem", dataset: { group: g.key, actionType: g.actions[0].type } },
        h("span", { class: "ps-action-index" }), h("span", { class: "ps-action-type" }), h("span", { class: "ps-action-summary" }), h("span"));
      const key = g.key;
      el.addEventListener("click", () => {
        if (opened.has(key)) opened.delete(key); else opened.add(key);
        renderList();
      });
      groups.set(g.key, el);
    }
    const [idx, type, summary] = /** @type {HTMLElement[]} */ ([...el.children]);
    idx.textContent = String(g.first);
    type.textContent = `${g.actions[0].type} ×${g.count}`;
    summary.textContent = `#${g.first}–#${g.last} · one per streamed chunk${g.instance_id ? " · " + g.instance_id : ""}`;
    el.classList.toggle("ps-open", opened.has(g.key));
    return el;
  }

  function renderList() {
    /** @type {ActionRow[]} */
    const actions = model.get("actions") ?? [];
    const stick = atBottom(list);
    const items = groupChunks(actions);
    /** @type {HTMLElement[]} */
    const wanted = [];
    const keepRows = new Set();
    const keepGroups = new Set();
    for (const item of items) {
      if (item.kind === "chunks") {
        keepGroups.add(item.key);
        wanted.push(groupRow(item));
        if (!opened.has(item.key)) continue;
        for (const a of item.actions) { keepRows.add(a.index); wanted.push(rowFor(a).el); }
      } else {
        keepRows.add(item.action.index);
        wanted.push(rowFor(item.action).el);
      }
    }
    for (const [i, entry] of rows) if (!keepRows.has(i)) { entry.el.remove(); rows.delete(i); }
    for (const [k, el] of groups) if (!keepGroups.has(k)) { el.remove(); groups.delete(k); opened.delete(k); }
    /** @type {ChildNode | null} */
    let prev = null;
    for (const row of wanted) {
      /** @type {ChildNode | null} */
      const want = prev ? prev.nextSibling : list.firstChild; // keep the kernel's order
      if (want !== row) list.insertBefore(row, want);
      prev = row;
    }
    const position = model.get("position");
    const selected = model.get("selected");
    for (const a of actions) {
      const entry = rows.get(a.index);
      if (!entry) continue;
      const row = entry.el;
      row.classList.toggle("ps-selected", a.index === selected);
      row.classList.toggle("ps-current", position != null && a.index === position);
      row.classList.toggle("ps-future", position != null && a.index > position);
      row.classList.toggle("ps-skipped", a.skipped);
    }
    for (const item of items) {
      if (item.kind !== "chunks") continue;
      const el = groupRow(item);
      el.classList.toggle("ps-current", position != null && item.first <= position && position <= item.last && !opened.has(item.key));
      el.classList.toggle("ps-future", position != null && item.first > position);
    }
    if (position != null) {
      // time travel: keep the action the slider points at in view
      if (position !== scrolledTo) {
        const at = positionRow(actions.map((a) => a.index), position);
        const group = items.find((g) => g.kind === "chunks" && at != null && g.first <= at && at <= g.last && !opened.has(g.key));
        const target = group && group.kind === "chunks" ? groupRow(group) : at != null ? rows.get(at)?.el : undefined;
        if (target) {
          const y = target.getBoundingClientRect().top - list.getBoundingClientRect().top + list.scrollTop;
          list.scrollTop = Math.max(0, y - list.clientHeight / 2); // this list only, never the page
        }
      }
    } else if (stick && (model.get("offset") ?? 0) === 0) list.scrollTop = list.scrollHeight;
    scrolledTo = position;
    const total = model.get("total") ?? 0;
    const offset = model.get("offset") ?? 0;
    olderBtn.disabled = offset + actions.length >= total;
    newerBtn.disabled = offset === 0;
    pager.hidden = total <= actions.length && offset === 0;
  }

  function renderDetail() {
    const d = model.get("detail") ?? {};
    detail.replaceChildren();
    if (d.index == null) {
      detail.append(h("div", { class: "ps-detail-empty" }, "Click an action to see its payload and the state diff it caused."));
      return;
    }
    const jump = button("Jump here", "jump", { dataset: { action: "jump", actionIndex: d.index } });
    jump.addEventListener("click", () => model.send({ type: "jump", index: d.index }));
    const skip = button(d.skipped ? "Unskip" : "Skip", "skip", { dataset: { action: "skip", actionIndex: d.index } });
    skip.addEventListener("click", () => model.send({ type: "skip", index: d.index }));
    detail.append(
      h("div", { class: "ps-toolbar" },
        h("span", { class: "ps-title ps-mono" }, `#${d.index} ${d.type}`), h("span", { class: "ps-spacer" }), jump, skip),
      h("div", { class: "ps-sub" }, [clock(d.timestamp), d.instance_id ? `instance ${d.instance_id}` : null, d.skipped ? "skipped" : null].filter(Boolean).join(" · ")),
      h("h4", {}, "payload"),
      h("pre", { dataset: { field: "payload" } }, d.payload ?? ""));
    const diff = h("div", { class: "ps-diff", dataset: { field: "diff" } });
    const entries = d.diff ?? [];
    if (!entries.length) diff.append(h("div", { class: "ps-sub" }, d.skipped ? "skipped: no change" : "no state change"));
    for (const e of entries) {
      const row = h("div", { class: "ps-diff-row", dataset: { op: e.op, path: e.path } }, h("span", { class: "ps-diff-path" }, e.path), ": ");
      if (e.old != null) row.append(h("span", { class: "ps-old" }, e.old));
      if (e.old != null && e.new != null) row.append(" → ");
      if (e.new != null) row.append(h("span", { class: "ps-new" }, e.new));
      if (e.old == null) row.append(" (added)");
      if (e.new == null) row.append(" (removed)");
      diff.append(row);
    }
    if (d.diff_truncated) diff.append(h("div", { class: "ps-sub" }, "… more changes not shown"));
    detail.append(h("h4", {}, "state diff"), diff);
  }

  function renderHeader() {
    const position = model.get("position");
    const first = model.get("first_index") ?? 0;
    const last = model.get("last_index") ?? -1;
    const isLive = position == null;
    live.textContent = isLive ? "live" : `viewing #${position}`;
    live.dataset.live = String(isLive);
    resumeBtn.disabled = isLive;
    const total = model.get("total") ?? 0;
    counts.textContent = actionCounts(total, first, last, model.get("filter_type") || model.get("filter_instance") ? 0 : model.get("hidden_chunks") ?? 0);
    slider.min = String(first);
    slider.max = String(Math.max(first, last));
    slider.disabled = last < first;
    if (!sliderBusy && !sliderTimer) {
      slider.value = String(isLive ? last : position);
      sliderLabel.textContent = isLive ? "live" : `#${position}`;
    }
    if (document.activeElement !== typeFilter && !filterTimer) typeFilter.value = model.get("filter_type") ?? "";
    if (document.activeElement !== instFilter && !filterTimer) instFilter.value = model.get("filter_instance") ?? "";
    /** @type {string[]} */
    const ids = model.get("instance_ids") ?? [];
    if (instList.childElementCount !== ids.length) instList.replaceChildren(...ids.map((i) => h("option", { value: i })));
    showMessage(error, model.get("error"));
    showMessage(notice, model.get("notice"));
    past.update();
    const show = !!model.get("show_chunks");
    chunkBox.checked = show;
    const hidden = model.get("hidden_chunks") ?? 0;
    chunkLabel.textContent = show ? "chunk actions shown" : `show chunk actions${hidden ? ` (${hidden} hidden)` : ""}`;
  }

  const unbind = bindRenders(
    model,
    {
      header: ["first_index", "last_index", "position", "total", "filter_type", "filter_instance",
        "instance_ids", "error", "notice", "viewing_past", "show_chunks", "hidden_chunks"],
      list: ["actions", "position", "total", "offset", "selected"],
      detail: ["detail"],
    },
    { header: renderHeader, list: renderList, detail: renderDetail },
  );
  /** @param {any} msg */
  const onMsg = (msg) => {
    if (msg && msg.type === "export_data") download(msg.filename, msg.text);
  };
  model.on("msg:custom", onMsg);
  el.append(root);

  return () => {
    unbind();
    model.off("msg:custom", onMsg);
    clearTimeout(filterTimer);
    clearTimeout(sliderTimer);
  };
}

export default { render };
