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

const PAGE_SIZES = [25, 50, 100, 200];
const NUMERIC = /^-?\d+(\.\d+)?(e[-+]?\d+)?$/i;

// ---------------------------------------------------------------- chart

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

// latency_ms and output_tokens over the runs shown, oldest left; each series has its
// own scale (the legend gives the maxima).
function chart(columns, rows) {
  const li = columns.indexOf("latency_ms");
  const ti = columns.indexOf("output_tokens");
  if (li < 0 && ti < 0) return null;
  const si = columns.indexOf("started_at");
  let data = rows.map((r) => ({ t: si >= 0 ? String(r[si] ?? "") : "", lat: li >= 0 ? r[li] : null, tok: ti >= 0 ? r[ti] : null }));
  if (si >= 0) data = data.slice().sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : 0));
  else data = data.slice().reverse();
  if (data.length < 1) return null;
  const W = 360, H = 70, P = 4;
  const svg = s("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "latency and output tokens" });
  const x = (i) => (data.length === 1 ? W / 2 : P + (i * (W - 2 * P)) / (data.length - 1));
  const legend = h("div", { class: "ps-legend" });
  for (const [key, cls, label, unit] of [["lat", "ps-series-latency", "latency", "ms"], ["tok", "ps-series-tokens", "output tokens", ""]]) {
    const vals = data.map((d) => (typeof d[key] === "number" ? d[key] : null));
    const max = Math.max(0, ...vals.filter((v) => v != null));
    if (!vals.some((v) => v != null)) continue;
    const y = (v) => H - P - (max > 0 ? (v / max) * (H - 2 * P) : 0);
    const pts = vals.map((v, i) => (v == null ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`)).filter(Boolean);
    const g = s("g", { class: cls, "data-series": key === "lat" ? "latency_ms" : "output_tokens" });
    if (pts.length > 1) g.append(s("polyline", { points: pts.join(" "), fill: "none", stroke: "currentColor", "stroke-width": 1.5 }));
    vals.forEach((v, i) => { if (v != null) g.append(s("circle", { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2, fill: "currentColor" })); });
    svg.append(g);
    legend.append(h("span", { class: cls }, `${label} (max ${fmt(max)}${unit ? " " + unit : ""})`));
  }
  return h("div", { class: "ps-chart", dataset: { field: "chart" } }, svg, legend);
}

// ---------------------------------------------------------------- detail and diff

function unifiedDiff(text, field) {
  const pre = h("pre", { class: "ps-udiff", dataset: { field } });
  if (!text) { pre.textContent = "(identical)"; return pre; }
  for (const line of text.split("\n")) {
    const cls = line.startsWith("@@") ? "ps-hunk" : line.startsWith("+") ? "ps-add" : line.startsWith("-") ? "ps-del" : "";
    pre.append(h("span", { class: cls }, line + "\n"));
  }
  return pre;
}

function diffView(d, close) {
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
    box.setRangeText("\n", box.selectionStart, box.selectionEnd, "end");
    box.dispatchEvent(new Event("input", { bubbles: true }));
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
  const page = (offset, limit) => model.send({ type: "page", offset: Math.max(0, offset), limit: limit ?? model.get("page_size") });
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
  const root = h("div", { class: "promptstate-panel ps-history", "data-lm-suppress-shortcuts": "true" },
    h("div", { class: "ps-header" }, h("span", { class: "ps-title" }, "Run history"), h("span", { class: "ps-sub" }, "read-only SQL over the run log")),
    query, error, pager, tableWrap, chartSlot, notice, pane);

  const modelBox = h("input", { class: "ps-text", type: "text", placeholder: "model (default: as before)", dataset: { field: "rerun-model" }, "aria-label": "Model for the re-run", spellcheck: "false" });

  function renderTable() {
    const cols = model.get("columns") ?? [];
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
        else if (typeof v === "number" || (typeof v === "string" && NUMERIC.test(v) && i !== runCol)) td.classList.add("ps-num");
        if (i === statusCol && v != null) td.dataset.status = v;
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
    range.textContent = total ? `rows ${offset + 1}–${offset + rows.length} of ${total.toLocaleString()}` : "no rows";
    prev.disabled = offset <= 0;
    next.disabled = offset + rows.length >= total;
    if (!PAGE_SIZES.includes(size)) sizeSel.append(h("option", { value: size }, `${size} / page`));
    sizeSel.value = String(size);
    compareHint.textContent = runCol >= 0 ? "click a row for the run · tick two to compare" : "add a run_id column to open runs";
    chartSlot.replaceChildren(...[chart(cols, rows)].filter(Boolean));
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
      parts.push(runDetail(detail, [modelBox, rerun, close]));
    }
    pane.replaceChildren(...parts);
  }

  function renderStatus() {
    const err = model.get("error") ?? "";
    error.textContent = err;
    error.hidden = !err;
    const note = model.get("notice") ?? "";
    notice.textContent = note;
    notice.hidden = !note;
    loading.hidden = !model.get("loading");
    if (!edited && document.activeElement !== box) box.value = model.get("query") ?? "";
  }

  const unbind = bindRenders(
    model,
    {
      table: ["columns", "rows", "total", "offset", "page_size", "compare_ids", "highlight"],
      pane: ["detail", "diff", "reruns"],
      status: ["error", "notice", "loading", "query"],
    },
    { table: renderTable, pane: renderPane, status: renderStatus },
    { detail: ["table"] }, // the selected row
  );
  el.append(root);

  return unbind;
}

export default { render };
