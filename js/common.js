// Helpers shared by every promptstate widget module (plain ESM, no bundler).
//
// anywidget loads each module from a string, so modules cannot import each other; the
// kernel prepends this file to every module it serves (promptstate.widgets._assets).

function h(tag, attrs = {}, ...children) {
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

function button(label, action, attrs = {}) {
  return h("button", { class: "ps-button", type: "button", dataset: { action }, ...attrs }, label);
}

function fmt(v) {
  if (v == null) return "";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 3 : 1);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function fmtMs(ms) {
  if (ms == null) return "–";
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

function messagesView(messages) {
  return h("div", {}, ...messages.map((m) => h("div", { class: "ps-msg", dataset: { role: m.role } },
    h("div", { class: "ps-role" }, m.role), h("div", { class: "ps-content" }, m.content))));
}

function variablesView(vars) {
  return h("table", { class: "ps-vars", dataset: { field: "variables" } }, h("tbody", {}, ...vars.map((v) =>
    h("tr", { dataset: { variable: v.name } }, h("td", {}, v.name), h("td", {}, h("span", { class: "ps-badge", dataset: { source: v.source } }, v.source)),
      h("td", { class: "ps-content" }, fmt(v.value))))));
}

function runDetail(d, extra = []) {
  const m = d.metrics ?? {};
  const tokens = `${m.input_tokens ?? "?"} in / ${m.output_tokens ?? "?"} out`;
  const kv = [
    ["status", h("span", { dataset: { status: d.status } }, h("span", { class: "ps-status-dot" }), d.status)],
    ["model", d.provider === d.model ? d.model : `${d.provider}:${d.model}`],
    ["prompt", `${d.prompt_id} @ ${d.prompt_version}`],
    ["tokens", tokens],
    ["latency", fmtMs(m.latency_ms)],
    ["first token", fmtMs(m.ttft_ms)],
    ["cost", m.cost_usd == null ? "–" : `$${Number(m.cost_usd).toFixed(6)}`],
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

// Re-render the parts of a view at most once per microtask, whichever of their traits
// changed: `groups` maps a part to its trait names, `renderers` a part to its render
// function (run in this order, and once now), `also` a trait to extra parts it dirties.
// Returns the cleanup that unhooks every listener.
function bindRenders(model, groups, renderers, also = {}) {
  const dirty = new Set();
  const handlers = [];
  let queued = false;
  const flush = () => {
    queued = false;
    for (const [part, render] of Object.entries(renderers)) if (dirty.has(part)) render();
    dirty.clear();
  };
  for (const [part, keys] of Object.entries(groups)) {
    for (const k of keys) {
      const fn = () => {
        dirty.add(part);
        for (const extra of also[k] ?? []) dirty.add(extra);
        if (!queued) {
          queued = true;
          queueMicrotask(flush);
        }
      };
      model.on(`change:${k}`, fn);
      handlers.push([k, fn]);
    }
  }
  for (const render of Object.values(renderers)) render();
  return () => {
    for (const [k, fn] of handlers) model.off(`change:${k}`, fn);
  };
}
