// Update coalescing: one kernel sync can change many traits at once (and the kernel
// batches several store changes into one sync); the view re-renders each part those
// traits feed once per microtask, not once per trait. Pure: the model only needs
// `on`/`off`, the scheduler is injectable, so js/test/batch.test.js drives it by hand.

/**
 * @typedef {{
 *   on(event: string, fn: (...args: any[]) => void): void,
 *   off(event: string, fn: (...args: any[]) => void): void,
 * }} Observable  the part of an anywidget model this needs
 */

/**
 * Render parts on demand, each at most once per scheduled flush.
 *
 * @param {Record<string, () => void>} renderers  part -> render, run in this order
 * @param {(flush: () => void) => void} [schedule]  defaults to queueMicrotask
 * @returns {{
 *   mark(...parts: string[]): void,
 *   flush(): void,
 *   renderAll(): void,
 *   pending(): string[],
 * }}  `mark` queues parts for the next flush; `renderAll` renders every part now
 */
export function createBatch(renderers, schedule = queueMicrotask) {
  const order = Object.keys(renderers);
  /** @type {Set<string>} */
  const dirty = new Set();
  let queued = false;

  function flush() {
    queued = false;
    const now = order.filter((part) => dirty.has(part));
    // Cleared first: a part marked while rendering gets a flush of its own.
    dirty.clear();
    let failure = null;
    for (const part of now) {
      try {
        renderers[part]();
      } catch (err) {
        failure ??= err; // one broken part must not freeze the others
      }
    }
    if (failure) throw failure;
  }

  /** @param {string[]} parts */
  function add(parts) {
    for (const part of parts) {
      if (!(part in renderers)) throw new Error(`unknown part ${JSON.stringify(part)}`);
      dirty.add(part);
    }
  }

  return {
    mark(...parts) {
      add(parts);
      if (!queued && dirty.size) {
        queued = true;
        schedule(flush);
      }
    },
    flush,
    renderAll() {
      add(order);
      flush();
    },
    pending: () => order.filter((part) => dirty.has(part)),
  };
}

/**
 * Re-render the parts of a view at most once per microtask, whichever of their traits
 * changed, and render every part once now.
 *
 * @param {Observable} model
 * @param {Record<string, string[]>} groups  part -> the trait names it reads
 * @param {Record<string, () => void>} renderers  part -> render, run in this order
 * @param {{ also?: Record<string, string[]>, schedule?: (flush: () => void) => void }} [options]
 *   `also`: trait -> extra parts it dirties; `schedule`: defaults to queueMicrotask
 * @returns {() => void}  unhooks every listener
 */
export function bindRenders(model, groups, renderers, { also = {}, schedule } = {}) {
  const batch = createBatch(renderers, schedule);
  /** @type {[string, () => void][]} */
  const handlers = [];
  /** @type {Map<string, Set<string>>} */
  const partsOf = new Map(); // trait -> every part it dirties
  for (const [part, keys] of Object.entries(groups)) {
    if (!(part in renderers)) throw new Error(`no renderer for part ${JSON.stringify(part)}`);
    for (const k of keys) {
      if (!partsOf.has(k)) partsOf.set(k, new Set(also[k] ?? []));
      partsOf.get(k)?.add(part);
    }
  }
  for (const [k, parts] of partsOf) {
    const fn = () => batch.mark(...parts);
    model.on(`change:${k}`, fn);
    handlers.push([k, fn]);
  }
  batch.renderAll();
  return () => {
    for (const [k, fn] of handlers) model.off(`change:${k}`, fn);
  };
}
