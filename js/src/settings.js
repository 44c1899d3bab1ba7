// The settings row of the instance widgets: the model and common request settings.

import { h } from "./common.js";

/** @typedef {import("./common.js").Model} Model */

// ---------------------------------------------------------------- settings row

/**
 * The model (from the configured providers and the models seen in this session) and
 * common request settings. A model choice is set on the instance at once; the
 * settings travel with each Send.
 * @param {Model} model
 */
export function createSettings(model) {
  const listId = `ps-models-${Math.random().toString(36).slice(2)}`;
  const modelBox = h("input", {
    class: "ps-setting ps-model", type: "text", list: listId, spellcheck: "false",
    dataset: { field: "model" }, "aria-label": "Model", title: "Model for the next sends (provider:model)",
  });
  const choices = h("datalist", { id: listId });
  const temperature = h("input", {
    class: "ps-setting ps-number", type: "number", min: 0, max: 2, step: 0.1, placeholder: "default",
    dataset: { field: "temperature" }, "aria-label": "Temperature",
  });
  const maxTokens = h("input", {
    class: "ps-setting ps-number", type: "number", min: 1, step: 1, placeholder: "default",
    dataset: { field: "max-tokens" }, "aria-label": "Max tokens",
  });
  let editing = false;
  const commit = () => {
    editing = false;
    const value = modelBox.value.trim();
    if (value !== (model.get("model") ?? "")) model.send({ type: "set_model", model: value || null });
  };
  modelBox.addEventListener("input", () => { editing = true; });
  modelBox.addEventListener("change", commit);
  modelBox.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); commit(); } });
  const el = h("div", { class: "ps-settings", dataset: { field: "settings" } },
    h("label", {}, "model", modelBox), choices,
    h("label", {}, "temperature", temperature),
    h("label", {}, "max tokens", maxTokens));

  function update() {
    if (!editing && document.activeElement !== modelBox) modelBox.value = model.get("model") ?? "";
    /** @type {string[]} */
    const names = model.get("model_choices") ?? [];
    const have = [...choices.options].map((o) => o.value);
    if (have.join("\n") !== names.join("\n")) choices.replaceChildren(...names.map((n) => h("option", { value: n })));
    modelBox.disabled = model.get("status") === "closed";
  }

  return {
    el,
    update,
    /**
     * The settings to send with a click (only the fields filled in).
     * @returns {Record<string, number>}
     */
    values() {
      /** @type {Record<string, number>} */
      const out = {};
      if (temperature.value !== "") out.temperature = Number(temperature.value);
      if (maxTokens.value !== "") out.max_tokens = Number(maxTokens.value);
      return out;
    },
  };
}

