// DevTools action-list decisions: folding a streamed reply's chunk actions into one
// row, and which row the time-travel position points at. Pure (no DOM), tested in
// js/test/actions.test.js.

/** The action each streamed chunk records. */
export const CHUNK_ACTION = "runs/chunk_received";

/**
 * @typedef {{
 *   index: number, type: string, summary: string, skipped: boolean,
 *   instance_id: string | null, timestamp: number,
 * }} ActionRow
 */

/**
 * One line of the list: an action, or a run of consecutive chunk actions of one
 * instance folded into a group (`key` stays the same while the group grows).
 * @typedef {{ kind: "action", action: ActionRow }
 *   | { kind: "chunks", key: string, first: number, last: number, count: number,
 *       instance_id: string | null, actions: ActionRow[] }} ListItem
 */

/**
 * Fold each run of 2+ consecutive chunk actions of the same instance into one group.
 * @param {ActionRow[]} actions  in list order
 * @returns {ListItem[]}
 */
export function groupChunks(actions) {
  /** @type {ListItem[]} */
  const out = [];
  /** @type {ActionRow[]} */
  let run = [];
  const flush = () => {
    if (run.length === 1) out.push({ kind: "action", action: run[0] });
    else if (run.length > 1) {
      out.push({
        kind: "chunks", key: `chunks-${run[0].index}`, first: run[0].index, last: run[run.length - 1].index,
        count: run.length, instance_id: run[0].instance_id, actions: run,
      });
    }
    run = [];
  };
  for (const a of actions) {
    if (a.type === CHUNK_ACTION && (run.length === 0 || run[0].instance_id === a.instance_id)) {
      run.push(a);
      continue;
    }
    flush();
    if (a.type === CHUNK_ACTION) run.push(a);
    else out.push({ kind: "action", action: a });
  }
  flush();
  return out;
}

/**
 * The action index whose row the list should scroll to for a time-travel position:
 * the position itself if listed, else the last listed action before it (hidden or
 * filtered actions have no row); null when live or nothing is listed at or before it.
 * @param {number[]} indexes  listed action indexes, ascending
 * @param {number | null | undefined} position
 * @returns {number | null}
 */
export function positionRow(indexes, position) {
  if (position == null) return null;
  let best = null;
  for (const i of indexes) {
    if (i > position) break;
    best = i;
  }
  return best;
}
