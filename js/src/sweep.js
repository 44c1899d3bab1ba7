// promptstate SweepGrid: a sweep's replies, variable sets down, models across.
//
// The kernel pushes the grid (rows, models, cells) and the selected cell's run as
// traits, coalesced while results arrive. Input goes back as custom messages:
//
//   {type: "select", index | null}   {type: "cancel"}

import { button, h, pastBanner, runDetail, showMessage } from "./common.js";
import { bindRenders } from "./lib/batch.js";
import { fmtMs } from "./lib/format.js";
import { sweepProgress, worstStatus } from "./lib/summary.js";

/** @typedef {import("./common.js").Model} Model */
/** @typedef {{ index: number, variables: Record<string, string> }} GridRow */

/** What a cell without a result says, by status. */
const WAITING = /** @type {Record<string, string>} */ ({
  running: "running…", queued: "queued", pending: "…", not_run: "not run",
});

/** @param {{ model: Model, el: HTMLElement }} view */
function render({ model, el }) {
  const title = h("span", { class: "ps-title" });
  const counts = h("span", { class: "ps-sub", dataset: { field: "counts" } });
  const cancel = button("Cancel", "cancel", { title: "Stop the sweep: queued cells end 'cancelled'" });
  cancel.addEventListener("click", () => model.send({ type: "cancel" }));
  const bar = h("div");
  const progress = h("div", { class: "ps-progress", dataset: { field: "progress" } }, bar);
  const table = h("table", { class: "ps-grid", dataset: { field: "grid" } });
  const pane = h("div");
  const error = h("div", { class: "ps-error", role: "alert", dataset: { field: "error" } });
  const notice = h("div", { class: "ps-notice", dataset: { field: "notice" } });
  const past = pastBanner(model, "Viewing the past (DevTools) — the grid shows the live sweep; sending returns to the present.");
  const root = h("div", { class: "promptstate-panel ps-sweep", "data-lm-suppress-shortcuts": "true" },
    h("div", { class: "ps-header" }, title, counts, h("span", { class: "ps-spacer" }), cancel), past.el,
    progress, error, h("div", { style: "overflow-x: auto" }, table), notice, pane);

  /** @type {Map<string, HTMLElement>} */
  const tds = new Map(); // "row:col" -> td
  let shape = "";

  function build() {
    /** @type {string[]} */
    const models = model.get("models") ?? [];
    /** @type {string[]} */
    const names = model.get("variable_names") ?? [];
    /** @type {GridRow[]} */
    const rows = model.get("rows") ?? [];
    const key = JSON.stringify([models, names, rows.length]);
    if (key === shape) return;
    shape = key;
    tds.clear();
    const head = h("tr", {}, ...names.map((n) => h("th", { title: n }, n)), ...models.map((m) => h("th", { title: m, dataset: { model: m } }, m)));
    const body = h("tbody", {}, ...rows.map((r) => h("tr", { dataset: { row: r.index } },
      ...names.map((n) => h("td", { class: "ps-var-cell", title: r.variables[n] ?? "" }, r.variables[n] ?? "")),
      ...models.map((m, col) => {
        const td = h("td", { class: "ps-cell", dataset: { row: r.index, col } });
        tds.set(`${r.index}:${col}`, td);
        return td;
      }))));
    table.replaceChildren(h("colgroup", {}, ...names.map(() => h("col", { style: "width: 9em" })), ...models.map(() => h("col", {}))),
      h("thead", {}, head), body);
  }

  function renderCells() {
    build();
    const cells = model.get("cells") ?? [];
    const selected = model.get("selected");
    /** @type {Map<string, any[]>} */
    const byTd = new Map();
    for (const c of cells) {
      const k = `${c.row}:${c.col}`;
      if (!byTd.has(k)) byTd.set(k, []);
      byTd.get(k)?.push(c);
    }
    for (const [k, td] of tds) {
      const list = byTd.get(k) ?? [];
      const sig = JSON.stringify(list) + (list.some((c) => c.index === selected) ? "*" : "");
      if (td.dataset.sig === sig) continue;
      td.dataset.sig = sig;
      td.dataset.status = worstStatus(list.map((c) => c.status)); // the worst of its repeats
      td.dataset.cellIndex = list.length ? list[0].index : "";
      td.classList.toggle("ps-selected", list.some((c) => c.index === selected));
      td.replaceChildren(...list.map((c) => {
        const waiting = WAITING[c.status];
        const text = waiting ? h("span", { class: "ps-cell-pending" }, waiting)
          : h("div", { class: "ps-cell-text" }, c.error && !c.response ? c.error : (c.response ?? ""));
        const meta = waiting ? null
          : h("div", { class: "ps-cell-meta" }, [c.status, c.latency_ms != null ? fmtMs(c.latency_ms) : null, c.output_tokens != null ? `${c.output_tokens} tok` : null].filter(Boolean).join(" · "));
        const run = h("div", { class: "ps-cell-run", dataset: { cellIndex: c.index, status: c.status, runId: c.run_id ?? "" } }, text, meta);
        run.addEventListener("click", (e) => {
          e.stopPropagation();
          model.send({ type: "select", index: model.get("selected") === c.index ? null : c.index });
        });
        return run;
      }));
    }
  }

  function renderHeader() {
    const finished = !!model.get("finished");
    const shown = sweepProgress(model.get("counts"), finished);
    title.textContent = `Sweep · ${model.get("prompt_id") ?? ""}`;
    counts.textContent = shown.text;
    counts.dataset.finished = String(finished);
    bar.style.width = `${shown.percent}%`;
    cancel.disabled = finished;
    showMessage(error, model.get("error"));
    showMessage(notice, model.get("notice"));
    past.update();
  }

  function renderPane() {
    const d = model.get("detail") ?? {};
    if (!d.cell) { pane.replaceChildren(); return; }
    const close = button("×", "close-run", { class: "ps-button ps-small", title: "Close" });
    close.addEventListener("click", () => model.send({ type: "select", index: null }));
    const cellInfo = h("span", { class: "ps-sub" }, `cell ${d.cell.index} · ${d.cell.model}${d.cell.repeat ? ` · repeat ${d.cell.repeat}` : ""}`);
    if (!d.run_id) {
      pane.replaceChildren(h("div", { class: "ps-run-pane", dataset: { field: "run-detail" } },
        h("div", { class: "ps-toolbar" }, cellInfo, h("span", { class: "ps-spacer" }), close),
        h("div", { class: "ps-sub" }, d.status === "running" ? "This cell is running." : d.status === "queued" || d.status === "pending" ? "This cell is queued: it has not started yet." : "This cell never ran (cancelled, or it failed before sending)."),
        d.error ? h("div", { class: "ps-error", dataset: { field: "run-error" } }, d.error) : null));
      return;
    }
    pane.replaceChildren(runDetail(d, [cellInfo, close]));
  }

  const unbind = bindRenders(
    model,
    {
      cells: ["cells", "models", "variable_names", "rows", "selected"],
      header: ["counts", "finished", "error", "notice", "prompt_id", "viewing_past"],
      pane: ["detail"],
    },
    { cells: renderCells, header: renderHeader, pane: renderPane },
  );
  el.append(root);

  return unbind;
}

export default { render };
