// Dirty-edit tracking for one input bound to a kernel value (pure: no DOM, no timers).
//
// The kernel echoes every value it receives back as the `variables` trait, and it may
// also change a value itself (code in the notebook, another widget). An echo that lags
// behind what is being typed must not overwrite the input; a change made elsewhere must
// show. The input is "dirty" from the first key press until the kernel reports the value
// it holds, or until SETTLE_MS after our last send, after which a differing kernel value
// is a newer change, not a stale echo. The widget owns the debounce timer and the clock
// and tells the tracker what happened; the tracker says what to show.

/** After this long, a kernel value that differs from the edit we sent is newer than it. */
export const SETTLE_MS = 1000;

/**
 * What {@link EditTracker#reconcile} asks of the input:
 * "show" the kernel's value, "keep" the typed one, or "wait" (keep it and call
 * reconcile again once the edit has settled).
 * @typedef {"show" | "keep" | "wait"} Reconciled
 */

export class EditTracker {
  /** @param {number} [settleMs] */
  constructor(settleMs = SETTLE_MS) {
    this.settleMs = settleMs;
    /** Typed locally and not yet confirmed by the kernel. */
    this.dirty = false;
    /** Typed since the last send (the debounce has not fired yet). */
    this.pending = false;
    /** When the last value left for the kernel (the caller's clock, in ms). */
    this.sentAt = -Infinity;
  }

  /** A key press in the input. The caller (re)starts its debounce. */
  edit() {
    this.dirty = true;
    this.pending = true;
  }

  /**
   * The input's value was sent to the kernel (debounce, blur, or carried by a Send).
   * @param {number} now
   */
  sent(now) {
    this.pending = false;
    this.sentAt = now;
  }

  /** The local edit was abandoned (the value was reset to the inherited one). */
  discard() {
    this.dirty = false;
    this.pending = false;
  }

  /** True while the kernel may not have the input's value yet. */
  get unsynced() {
    return this.dirty || this.pending;
  }

  /**
   * The kernel reports `server` while the input holds `local`.
   * @param {string} local
   * @param {string} server
   * @param {number} now
   * @returns {Reconciled}
   */
  reconcile(local, server, now) {
    if (this.pending) return "keep"; // still typing: nothing the kernel says is newer
    if (this.dirty) {
      if (local === server) this.dirty = false; // the kernel has caught up
      else if (now - this.sentAt > this.settleMs) this.dirty = false; // changed elsewhere since
      else return "wait";
    }
    return local === server ? "keep" : "show";
  }
}
