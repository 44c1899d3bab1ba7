// promptstate RunHistory: SQL over the run log, paged, with run detail, diff and re-run.
//
// The kernel pushes the current page (columns, rows, total, offset), the run detail
// and the diff as traits. Input goes back as custom messages:
//
//   {type: "run_query", query}   {type: "page", offset, limit}   {type: "refresh"}
//   {type: "select_run", run_id | null}   {type: "toggle_compare", run_id}
//   {type: "rerun", run_id, model | null}
//
// The kernel answers a re-run with {type: "rerun_done", run_id, new_run_id, ok, status, error}.

import { button, h, insertNewline, pastBanner, runDetail, showMessage, svg } from "./common.js";
import { bindRenders } from "./lib/batch.js";
import { fmt } from "./lib/format.js";
import { chartSeries, diffLineClass, isNumericCell, rowRange } from "./lib/summary.js";

/** @typedef {import("./common.js").Model} Model */

const PAGE_SIZES = [25, 50, 100, 200];

// ---------------------------------------------------------------- chart

const CHART = { width: 360, height: 70, pad: 4 };
const SERIES_CLASS = { latency_ms: "ps-series-latency", output_tokens: "ps-series-tokens" };

/**
 * latency_ms and output_tokens over the runs shown (lib/summary.js computes the points).
 * @param {string[]} columns
 * @param {unknown[][]} rows
 * @returns {HTMLElement | null}
 */
function chart(columns, rows) {
  const series = chartSeries(columns, rows, CHART);
  if (!series) return null;
  const { width: W, height: H } = CHART;
  const plot = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "latency and output tokens" });
  const legend = h("div", { class: "ps-legend" });
  for (const { key, label, unit, max, points } of series) {
    const cls = SERIES_CLASS[key];
    const xy = points.map((p) => [p.x.toFixed(1), p.y.toFixed(1)]);
    const g = svg("g", { class: cls, "data-series": key });
    if (xy.length > 1) g.append(svg("polyline", { points: xy.map(([x, y]) => `${x},${y}`).join(" "), fill: "none", stroke: "currentColor", "stroke-width": 1.5 }));
    for (const [cx, cy] of xy) g.append(svg("circle", { cx, cy, r: 2, fill: "currentColor" }));
    plot.append(g);
    legend.append(h("span", { class: cls }, `${label} (max ${fmt(max)}${unit ? " " + unit : ""})`));
  }
  return h("div", { class: "ps-chart", dataset: { field: "chart" } }, plot, legend);
}

// ---------------------------------------------------------------- detail and diff

/**
 * @param {string | null | undefined} text  a unified diff ("" when identical)
 * @param {string} field
 */
function unifiedDiff(text, field) {
  const pre = h("pre", { class: "ps-udiff", dataset: { field } });
  if (!text) { pre.textContent = "(identical)"; return pre; }
  for (const line of text.split("\n")) pre.append(h("span", { class: diffLineClass(line) }, line + "\n"));
  return pre;
}

/**
 * @param {Record<string, any>} d  the kernel's diff payload
 * @param {HTMLElement} close
 */
function diffView(d, close) {
  /** @param {string} title @param {{ name: string, a: unknown, b: unknown }[]} items */
  const side = (title, items) => {
    if (!items.length) return [h("h4", {}, title), h("div", { class: "ps-sub" }, "same")];
    return [h("h4", {}, title), h("div", { class: "ps-side" },
      h("div", { class: "ps-side-head" }, ""), h("div", { class: "ps-side-head" }, d.a), h("div", { class: "ps-side-head" }, d.b),
      ...items.flatMap((f) => [h("div", { class: "ps-mono" }, f.name), h("div", { class: "ps-old" }, fmt(f.a)), h("div", { class: "ps-new" }, fmt(f.b))]))];
  };
  return h("div", { class: "ps-run-pane", dataset: { field: "diff" } },
    h("div", { class: "ps-toolbar" }, h("span", { class: "ps-title" }, "Compare"), h("span", { class: "ps-mono ps-sub" }, `${d.a} ↔ ${d.b}`), h("span", { class: "ps-spacer" }), close),
    ...side("fields", d.fields ?? []),
    ...side("variables", d.variables ?? []),
    h("h4", {}, "rendered prompt"), unifiedDiff(d.messages, "diff-messages"),
    h("h4", {}, "response"), unifiedDiff(d.response, "diff-response"));
}

// ---------------------------------------------------------------- the widget

/** @param {{ model: Model, el: HTMLElement }} view */
function render({ model, el }) {
  const box = h("textarea", { class: "ps-text", rows: 3, spellcheck: "false", dataset: { field: "query" }, "aria-label": "SQL query" });
  box.value = model.get("query") ?? "";
  let edited = false;
  box.addEventListener("input", () => { edited = true; });
  const runBtn = button("Run", "run-query", { class: "ps-button ps-primary", title: "Run (Ctrl+Enter or Shift+Enter)" });
  const run = () => { edited = false; model.send({ type: "run_query", query: box.value }); };
  runBtn.addEventListener("click", run);
  box.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || e.isComposing) return;
    e.preventDefault();
    if (e.ctrlKey || e.metaKey || e.shiftKey) { run(); return; }
    // Inside a notebook cell JupyterLab cancels Enter's line break even in a textarea.
    insertNewline(box);
  });
  const refreshBtn = button("Refresh", "refresh", { title: "Run the current query again" });
  refreshBtn.addEventListener("click", () => model.send({ type: "refresh" }));
  const query = h("div", { class: "ps-query" }, box, h("div", { class: "ps-buttons" }, runBtn, refreshBtn));

  const prev = button("‹ prev", "prev-page", { class: "ps-button ps-small" });
  const next = button("next ›", "next-page", { class: "ps-button ps-small" });
  const sizeSel = h("select", { class: "ps-text", dataset: { field: "page-size" }, "aria-label": "Rows per page" },
    ...PAGE_SIZES.map((n) => h("option", { value: n }, `${n} / page`)));
  const range = h("span", { dataset: { field: "range" } });
  const loading = h("span", { class: "ps-sub", dataset: { field: "loading" } }, "running…");
  const page = (/** @type {number} */ offset, /** @type {number} */ limit = model.get("page_size")) => model.send({ type: "page", offset: Math.max(0, offset), limit });
  prev.addEventListener("click", () => page((model.get("offset") ?? 0) - (model.get("page_size") ?? 50)));
  next.addEventListener("click", () => page((model.get("offset") ?? 0) + (model.get("page_size") ?? 50)));
  sizeSel.addEventListener("change", () => page(0, Number(sizeSel.value)));
  const compareHint = h("span", { class: "ps-sub", dataset: { field: "compare-hint" } });
  const pager = h("div", { class: "ps-pager" }, prev, next, range, sizeSel, loading, h("span", { class: "ps-spacer" }), compareHint);

  const table = h("table", { class: "ps-table", dataset: { field: "table" } });
  const tableWrap = h("div", { class: "ps-table-wrap" }, table);
  const chartSlot = h("div");
  const pane = h("div");
  const error = h("div", { class: "ps-error", role: "alert", dataset: { field: "error" } });
  const notice = h("div", { class: "ps-notice", dataset: { field: "notice" } });
  const past = pastBanner(model);
  const root = h("div", { class: "promptstate-panel ps-history", "data-lm-suppress-shortcuts": "true" },
    h("div", { class: "ps-header" }, h("span", { class: "ps-title" }, "Run history"), h("span", { class: "ps-sub" }, "read-only SQL over the run log")),
    past.el, query, error, pager, tableWrap, chartSlot, notice, pane);

  const modelBox = h("input", { class: "ps-text", type: "text", placeholder: "model (default: as before)", dataset: { field: "rerun-model" }, "aria-label": "Model for the re-run", spellcheck: "false" });

  function renderTable() {
    /** @type {string[]} */
    const cols = model.get("columns") ?? [];
    /** @type {unknown[][]} */
    const rows = model.get("rows") ?? [];
    const runCol = cols.indexOf("run_id");
    const statusCol = cols.indexOf("status");
    const selected = (model.get("detail") ?? {}).run_id;
    const compare = new Set(model.get("compare_ids") ?? []);
    const fresh = model.get("highlight");
    const head = h("tr", {}, runCol >= 0 ? h("th", { title: "Tick two runs to compare them" }, "⇄") : null, ...cols.map((c) => h("th", {}, c)));
    const body = h("tbody", {}, ...rows.map((r) => {
      const id = runCol >= 0 ? r[runCol] : null;
      const tr = h("tr", { dataset: id != null ? { runId: id } : {} });
      if (runCol >= 0) {
        const tick = h("input", { type: "checkbox", dataset: { action: "compare", runId: id ?? "" }, "aria-label": `compare ${id}` });
        tick.checked = compare.has(id);
        tick.addEventListener("click", (e) => { e.stopPropagation(); model.send({ type: "toggle_compare", run_id: id }); });
        tr.append(h("td", {}, tick));
      }
      r.forEach((v, i) => {
        const td = h("td", { title: v == null ? "NULL" : fmt(v) }, v == null ? "NULL" : fmt(v));
        if (v == null) td.classList.add("ps-null");
        else if (isNumericCell(v, i === runCol)) td.classList.add("ps-num");
        if (i === statusCol && v != null) td.dataset.status = String(v);
        tr.append(td);
      });
      if (id != null) {
        tr.classList.toggle("ps-selected", id === selected);
        tr.classList.toggle("ps-new", id === fresh);
        tr.addEventListener("click", () => model.send({ type: "select_run", run_id: id === (model.get("detail") ?? {}).run_id ? null : id }));
      }
      return tr;
    }));
    table.replaceChildren(h("thead", {}, head), body);
    tableWrap.hidden = cols.length === 0;
    const total = model.get("total") ?? 0;
    const offset = model.get("offset") ?? 0;
    const size = model.get("page_size") ?? 50;
    range.textContent = rowRange(offset, rows.length, total);
    prev.disabled = offset <= 0;
    next.disabled = offset + rows.length >= total;
    // A page size set in code gets its option (once: this runs on every render).
    if (![...sizeSel.options].some((o) => o.value === String(size))) sizeSel.append(h("option", { value: size }, `${size} / page`));
    sizeSel.value = String(size);
    compareHint.textContent = runCol >= 0 ? "click a row for the run · tick two to compare" : "add a run_id column to open runs";
    const plot = chart(cols, rows);
    chartSlot.replaceChildren(...(plot ? [plot] : []));
  }

  function renderPane() {
    const diff = model.get("diff") ?? {};
    const detail = model.get("detail") ?? {};
    const parts = [];
    if (diff.a) {
      const close = button("×", "close-diff", { class: "ps-button ps-small", title: "Close the diff" });
      close.addEventListener("click", () => { for (const id of model.get("compare_ids") ?? []) model.send({ type: "toggle_compare", run_id: id }); });
      parts.push(diffView(diff, close));
    }
    if (detail.run_id) {
      const rerun = button("Re-run", "rerun", { class: "ps-button ps-primary", dataset: { action: "rerun", runId: detail.run_id }, title: "Send this run's prompt version and variables again" });
      const pending = (model.get("reruns") ?? []).includes(detail.run_id);
      rerun.disabled = pending;
      if (pending) rerun.textContent = "Re-running…";
      rerun.addEventListener("click", () => model.send({ type: "rerun", run_id: detail.run_id, model: modelBox.value.trim() || null }));
      const close = button("×", "close-run", { class: "ps-button ps-small", title: "Close" });
      close.addEventListener("click", () => model.send({ type: "select_run", run_id: null }));
      const runPane = runDetail(detail, [modelBox, rerun, close]);
      // a failed re-run is reported right under its button, not above the query box
      const rerunError = h("div", { class: "ps-error", role: "alert", dataset: { field: "rerun-error" } });
      showMessage(rerunError, model.get("rerun_error"));
      runPane.firstChild?.after(rerunError);
      parts.push(runPane);
    }
    pane.replaceChildren(...parts);
    // the pane opens below the table: bring it into view when a row opens another run
    const opened = detail.run_id ?? diff.a ?? null;
    if (opened && opened !== shownInPane) pane.scrollIntoView({ block: "nearest", behavior: "smooth" });
    shownInPane = opened;
  }
  /** @type {string | null} */
  let shownInPane = null;

  function renderStatus() {
    showMessage(error, model.get("error"));
    showMessage(notice, model.get("notice"));
    loading.hidden = !model.get("loading");
    if (!edited && document.activeElement !== box) box.value = model.get("query") ?? "";
    past.update();
  }

  const unbind = bindRenders(
    model,
    {
      table: ["columns", "rows", "total", "offset", "page_size", "compare_ids", "highlight"],
      pane: ["detail", "diff", "reruns", "rerun_error"],
      status: ["error", "notice", "loading", "query", "viewing_past"],
    },
    { table: renderTable, pane: renderPane, status: renderStatus },
    { also: { detail: ["table"] } }, // the selected row
  );
  el.append(root);

  return unbind;
}

export default { render };
