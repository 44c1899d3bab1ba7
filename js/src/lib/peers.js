// Unsynced edits across widgets of one instance: a Send clicked in one widget (say a
// Composer) must carry the values typed into another (a VariablesForm) that the kernel
// has not received yet, so the run uses what is on screen.
//
// Why not a module-level registry: anywidget imports each widget model's module from a
// blob: URL of its own, so every widget on the page runs a separate copy of this bundle
// and module-level values are per widget. Why not a window global: it outlives the
// widgets and any copy of the code (hot reload) can clobber it. The page's document is
// the one thing every copy shares, and dispatchEvent runs its listeners synchronously,
// so the sender collects the edits before its message leaves. Pure: the target is any
// EventTarget (the document in the widget, a plain EventTarget in js/test/peers.test.js).

export const COLLECT_EVENT = "promptstate:collect-unsynced";

/**
 * @typedef {{ instanceId: string, from: object, edits: Record<string, string> }} CollectDetail
 */

/**
 * Offer this widget's unsynced edits to the other widgets bound to `instanceId`.
 *
 * @param {EventTarget} target  the page's document
 * @param {string} instanceId
 * @param {object} self  identifies this widget; its own collect requests are skipped
 * @param {() => Record<string, string>} takeEdits  returns (and hands over) the edits
 * @returns {() => void}  stops offering them
 */
export function offerEdits(target, instanceId, self, takeEdits) {
  /** @param {Event} event */
  const listener = (event) => {
    const detail = /** @type {CustomEvent<CollectDetail>} */ (event).detail;
    if (!detail || detail.instanceId !== instanceId || detail.from === self) return;
    Object.assign(detail.edits, takeEdits());
  };
  target.addEventListener(COLLECT_EVENT, listener);
  return () => target.removeEventListener(COLLECT_EVENT, listener);
}

/**
 * The unsynced edits of every other widget bound to `instanceId`, taken from them.
 *
 * @param {EventTarget} target  the page's document
 * @param {string} instanceId
 * @param {object} self  the asking widget (not asked)
 * @returns {Record<string, string>}
 */
export function collectEdits(target, instanceId, self) {
  /** @type {CollectDetail} */
  const detail = { instanceId, from: self, edits: {} };
  target.dispatchEvent(new CustomEvent(COLLECT_EVENT, { detail }));
  return detail.edits;
}
