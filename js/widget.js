// promptstate widgets: front end (plain ESM, no bundler, no network).
//
// One module renders every widget; the model's `sections` trait says which parts
// to show ("variables", "chat", "composer"). Data flows one way: the kernel pushes
// selector results as traits and this code only reads them. User input goes back
// as custom messages that the kernel turns into store actions:
//
//   {type: "set_variable", name, value}      debounced while typing
//   {type: "unset_variable", name}           back to the inherited value
//   {type: "send", seq, content, variables}  Send click; carries unsynced edits
//   {type: "stop"}
//
// The kernel answers a send with {type: "send_done", seq, ok, run_id, status, error}.

const DEBOUNCE_MS = 200;
// After this long, a kernel value that differs from an edit we sent is newer than
// the edit (a change made in code), not a stale echo: show it.
const SETTLE_MS = 1000;
const MULTILINE_AT = 60; // characters; longer values get a textarea
const ACTIVE = new Set(["queued", "running"]);

// Forms on the page by instance id, so a Send in one widget also carries the
// not-yet-synced edits typed into another widget bound to the same instance.
const FORMS = (globalThis.__promptstateForms ??= new Map());

// Inside a notebook cell JupyterLab cancels the line break of Shift+Enter (it is the
// "run cell" key), even in our textareas; insert it ourselves.
function keepShiftEnter(textarea) {
  textarea.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || !e.shiftKey || e.isComposing) return;
    e.preventDefault();
    textarea.setRangeText("\n", textarea.selectionStart, textarea.selectionEnd, "end");
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
  });
  return textarea;
}

function isMultiline(value) {
  return typeof value === "string" && (value.includes("\n") || value.length > MULTILINE_AT);
}

// ---------------------------------------------------------------- variables form

function createForm(model) {
  const el = h("div", { class: "ps-variables", dataset: { section: "variables" } });
  const rows = new Map(); // name -> {row, input, badge, reset, dirty, timer, multiline}

  let recheck = null;

  function flush(name, entry) {
    clearTimeout(entry.timer);
    entry.timer = null;
    entry.sentAt = performance.now();
    model.send({ type: "set_variable", name, value: entry.input.value });
  }

  function addRow(v, multiline) {
    const entry = { dirty: false, timer: null, sentAt: 0, multiline };
    const attrs = { class: "ps-input", dataset: { variable: v.name }, "aria-label": v.name, spellcheck: "false" };
    const value = v.value ?? "";
    entry.input = multiline
      ? keepShiftEnter(h("textarea", { ...attrs, rows: Math.min(8, Math.max(3, value.split("\n").length)) }))
      : h("input", { ...attrs, type: "text" });
    entry.input.value = value;
    entry.input.addEventListener("input", () => {
      // A local edit: dirty until the kernel echoes this exact value back, so an
      // older echo arriving meanwhile does not clobber what is being typed.
      entry.dirty = true;
      clearTimeout(entry.timer);
      entry.timer = setTimeout(() => flush(v.name, entry), DEBOUNCE_MS);
    });
    entry.input.addEventListener("blur", () => {
      if (entry.timer) flush(v.name, entry);
    });
    entry.badge = h("span", { class: "ps-badge" });
    entry.reset = h("button", {
      class: "ps-reset",
      type: "button",
      dataset: { action: "unset", reset: v.name },
      onclick: () => {
        clearTimeout(entry.timer);
        entry.timer = null;
        entry.dirty = false;
        model.send({ type: "unset_variable", name: v.name });
      },
    }, "↺");
    entry.row = h("div", { class: "ps-var", dataset: { row: v.name } },
      h("label", { class: "ps-var-name" }, v.name), entry.badge, entry.reset, entry.input);
    rows.set(v.name, entry);
    return entry;
  }

  function drop(name) {
    const entry = rows.get(name);
    clearTimeout(entry.timer);
    entry.row.remove();
    rows.delete(name);
  }

  function update() {
    const vars = model.get("variables") ?? [];
    const seen = new Set();
    let prev = null;
    for (const v of vars) {
      seen.add(v.name);
      let entry = rows.get(v.name);
      if (entry && !entry.multiline && isMultiline(v.value) && !entry.dirty
          && document.activeElement !== entry.input) {
        drop(v.name); // grow into a textarea, but never under the user's fingers
        entry = undefined;
      }
      entry ??= addRow(v, isMultiline(v.value));
      const server = v.value ?? "";
      if (entry.dirty && !entry.timer) {
        if (entry.input.value === server) {
          entry.dirty = false; // the kernel has caught up with what was typed
        } else if (performance.now() - entry.sentAt > SETTLE_MS) {
          entry.dirty = false; // changed elsewhere after our edit landed
        } else if (!recheck) {
          recheck = setTimeout(() => { recheck = null; update(); }, SETTLE_MS);
        }
      }
      if (!entry.dirty && entry.input.value !== server) entry.input.value = server;
      entry.badge.textContent = v.source;
      entry.badge.dataset.source = v.source;
      entry.row.dataset.source = v.source;
      entry.input.placeholder = v.value == null ? "missing" : "";
      // An instance value can be dropped to fall back to org/project/user/default.
      entry.reset.hidden = v.source !== "instance";
      entry.reset.title = "Drop the instance value (use the inherited one)";
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
    // Values typed but not yet acknowledged by the kernel. Cancels their timers:
    // the Send message carries them instead.
    takeDirty() {
      const out = {};
      for (const [name, entry] of rows) {
        if (entry.dirty || entry.timer) {
          clearTimeout(entry.timer);
          entry.timer = null;
          entry.sentAt = performance.now();
          out[name] = entry.input.value;
        }
      }
      return out;
    },
    flushAll() {
      clearTimeout(recheck);
      for (const [name, entry] of rows) if (entry.timer) flush(name, entry);
    },
  };
}

// ---------------------------------------------------------------- chat view

function createChat(model) {
  const list = h("div", { class: "ps-messages", role: "log", "aria-live": "polite" });
  const metrics = h("span", { class: "ps-metrics", dataset: { field: "metrics" } });
  const outdated = h("span", { class: "ps-outdated", dataset: { field: "outdated" } },
    "The prompt changed since this reply; Send to run it again.");
  const el = h("div", { class: "ps-chat", dataset: { section: "chat" } }, list,
    h("div", { class: "ps-chat-footer" }, metrics, outdated));
  const items = []; // message elements, reused across updates

  function update() {
    const msgs = model.get("messages") ?? [];
    const status = model.get("status");
    const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
    msgs.forEach((m, i) => {
      let item = items[i];
      if (!item) {
        item = { el: h("div", { class: "ps-msg" }, h("div", { class: "ps-role" }), h("div", { class: "ps-content" })) };
        items.push(item);
        list.append(item.el);
      }
      if (item.role !== m.role) {
        item.role = m.role;
        item.el.dataset.role = m.role;
        item.el.firstChild.textContent = m.role;
      }
      if (item.content !== m.content) {
        item.content = m.content;
        item.el.lastChild.textContent = m.content;
      }
      const streaming = i === msgs.length - 1 && m.role === "assistant" && ACTIVE.has(status);
      item.el.classList.toggle("ps-streaming", streaming);
      if (m.run_id) item.el.dataset.runId = m.run_id;
      else delete item.el.dataset.runId;
    });
    while (items.length > msgs.length) items.pop().el.remove();
    if (stick) list.scrollTop = list.scrollHeight;

    const run = model.get("last_run") ?? {};
    const parts = [];
    if (run.input_tokens != null || run.output_tokens != null) {
      parts.push(`${run.input_tokens ?? "?"} in / ${run.output_tokens ?? "?"} out tokens`);
    }
    if (run.latency_ms != null) parts.push(fmtMs(run.latency_ms));
    if (run.ttft_ms != null) parts.push(`first token ${fmtMs(run.ttft_ms)}`);
    metrics.textContent = parts.join(" · ");
    metrics.dataset.runId = run.run_id ?? "";
    outdated.hidden = !model.get("outdated");
  }

  return { el, update };
}

// ---------------------------------------------------------------- composer

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

function render({ model, el }) {
  const sections = model.get("sections") ?? ["variables", "chat", "composer"];
  const instanceId = model.get("instance_id");
  let seq = 0;

  const status = h("span", { class: "ps-status" });
  const title = h("span", { class: "ps-title" });
  const error = h("div", { class: "ps-error", dataset: { field: "error" }, role: "alert" });
  const root = h("div", {
    class: "promptstate-widget",
    dataset: { instance: instanceId },
    // Keys typed here are text, not JupyterLab shortcuts (Shift+Enter, "a", "b"...).
    "data-lm-suppress-shortcuts": "true",
  }, h("div", { class: "ps-header" }, title, status));

  const parts = [];
  let form = null;
  if (sections.includes("variables")) {
    form = createForm(model);
    parts.push(form);
    let set = FORMS.get(instanceId);
    if (!set) FORMS.set(instanceId, (set = new Set()));
    set.add(form);
  }
  if (sections.includes("chat")) parts.push(createChat(model));
  root.append(error);

  function send(content) {
    // Edits typed into any form bound to this instance that the kernel has not
    // seen yet travel with the click, so the run uses what is on screen.
    const variables = {};
    for (const f of FORMS.get(instanceId) ?? []) {
      if (f !== form) Object.assign(variables, f.takeDirty());
    }
    if (form) Object.assign(variables, form.takeDirty()); // this widget's own inputs win
    model.send({ type: "send", seq: ++seq, content, variables });
  }
  if (sections.includes("composer")) parts.push(createComposer(model, send));
  for (const p of parts) root.insertBefore(p.el, error);

  function update() {
    const st = model.get("status") ?? "idle";
    status.textContent = st;
    status.dataset.status = st;
    title.textContent = [model.get("prompt_id"), model.get("model_label")].filter(Boolean).join(" · ");
    const run = model.get("last_run") ?? {};
    const msg = model.get("error") || (run.status === "error" ? run.error : "") || "";
    error.textContent = msg;
    error.hidden = !msg;
    for (const p of parts) p.update();
  }

  // One kernel sync can change several traits; render once for all of them.
  let queued = false;
  const schedule = () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      update();
    });
  };
  const keys = ["variables", "messages", "status", "last_run", "error", "prompt_id", "model_label", "outdated"];
  for (const k of keys) model.on(`change:${k}`, schedule);
  update();
  el.append(root);

  return () => {
    for (const k of keys) model.off(`change:${k}`, schedule);
    if (form) {
      form.flushAll();
      FORMS.get(instanceId)?.delete(form);
    }
  };
}

export default { render };
