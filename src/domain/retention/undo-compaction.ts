/**
 * Which undo files of one point's undo list to merge next (docs/design/recovery-points.md section 6.1).
 * The list's weights are the cycles each file holds, first file first. The plan is a binary counter:
 * merge the last adjacent pair whose later file weighs at least as much as the earlier one. Repeated
 * until it answers null, it leaves the weights strictly decreasing, so a list of C cycles holds at most
 * floor(log2 C) + 1 files and every cycle's undo is rewritten at most about log2 C times.
 */

/** Index `i` of the pair (i, i+1) to merge next, or null when the list needs no merge. */
export function nextUndoMerge(cycles: readonly number[]): number | null {
  for (let i = cycles.length - 2; i >= 0; i--) {
    if ((cycles[i] as number) <= (cycles[i + 1] as number)) return i;
  }
  return null;
}
