// promptstate SweepGrid: a sweep's replies, variable sets down, models across (plain ESM).
//
// The kernel pushes the grid (rows, models, cells) and the selected cell's run as
// traits, coalesced while results arrive. Input goes back as custom messages:
//
//   {type: "select", index | null}   {type: "cancel"}

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
  const root = h("div", { class: "promptstate-panel ps-sweep", "data-lm-suppress-shortcuts": "true" },
    h("div", { class: "ps-header" }, title, counts, h("span", { class: "ps-spacer" }), cancel),
    progress, error, h("div", { style: "overflow-x: auto" }, table), notice, pane);

  const tds = new Map(); // "row:col" -> td
  let shape = "";

  function build() {
    const models = model.get("models") ?? [];
    const names = model.get("variable_names") ?? [];
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
    const byTd = new Map();
    for (const c of cells) {
      const k = `${c.row}:${c.col}`;
      if (!byTd.has(k)) byTd.set(k, []);
      byTd.get(k).push(c);
    }
    for (const [k, td] of tds) {
      const list = byTd.get(k) ?? [];
      const sig = JSON.stringify(list) + (list.some((c) => c.index === selected) ? "*" : "");
      if (td.dataset.sig === sig) continue;
      td.dataset.sig = sig;
      // a cell's status: the worst of its repeats
      const order = ["error", "not_run", "cancelled", "pending", "success"];
      const status = list.map((c) => c.status).sort((a, b) => order.indexOf(a) - order.indexOf(b))[0] ?? "pending";
      td.dataset.status = status;
      td.dataset.cellIndex = list.length ? list[0].index : "";
      td.classList.toggle("ps-selected", list.some((c) => c.index === selected));
      td.replaceChildren(...list.map((c) => {
        const text = c.status === "pending" ? h("span", { class: "ps-cell-pending" }, "…")
          : c.status === "not_run" ? h("span", { class: "ps-cell-pending" }, "not run")
            : h("div", { class: "ps-cell-text" }, c.error && !c.response ? c.error : (c.response ?? ""));
        const meta = c.status === "pending" || c.status === "not_run" ? null
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
    const c = model.get("counts") ?? {};
    const total = c.total ?? 0;
    const done = c.done ?? 0;
    const finished = model.get("finished");
    title.textContent = `Sweep · ${model.get("prompt_id") ?? ""}`;
    counts.textContent = `${done}/${total} done · ${c.errors ?? 0} errors · ${c.cancelled ?? 0} cancelled${finished ? " · finished" : ""}`;
    counts.dataset.finished = String(!!finished);
    bar.style.width = `${total ? (100 * (finished ? total : done)) / total : 0}%`;
    cancel.disabled = !!finished;
    const err = model.get("error") ?? "";
    error.textContent = err;
    error.hidden = !err;
    const note = model.get("notice") ?? "";
    notice.textContent = note;
    notice.hidden = !note;
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
        h("div", { class: "ps-sub" }, d.status === "pending" ? "This cell has not finished yet." : "This cell never ran (cancelled, or it failed before sending).")));
      return;
    }
    pane.replaceChildren(runDetail(d, [cellInfo, close]));
  }

  const unbind = bindRenders(
    model,
    {
      cells: ["cells", "models", "variable_names", "rows", "selected"],
      header: ["counts", "finished", "error", "notice", "prompt_id"],
      pane: ["detail"],
    },
    { cells: renderCells, header: renderHeader, pane: renderPane },
  );
  el.append(root);

  return unbind;
}

export default { render };
