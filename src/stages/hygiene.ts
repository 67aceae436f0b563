// Data hygiene before any training: attack and fine-tuning data must not repeat the evaluation prompts, exactly
// or nearly (METHOD.md §8), or the measured safety is a memory test. Refuses by default; warns when told to go on.

import { findOverlaps, type Sample } from "../data/index.js";
import { InputError } from "../util/errors.js";

export interface HygieneOverlap {
  /** Name of the training set the sample is in ("harmful", "curated", ...). */
  set: string;
  trainId: string;
  evalId: string;
  kind: "exact" | "near";
  /** Jaccard similarity of the word 3-gram sets of the normalised prompts (1 for exact). */
  similarity: number;
}

export interface HygieneOptions {
  /** Return the overlaps instead of refusing (the caller warns with them). Default false. */
  allowOverlap?: boolean;
  /** Near-duplicate threshold (Jaccard on word 3-grams of the prompt). Default the data room's (0.7). */
  threshold?: number;
}

/**
 * Compare every training set's prompts with the evaluation prompts. With overlaps and no allowOverlap, throws an
 * InputError naming the overlapping ids; otherwise returns the overlaps (empty when the data are clean).
 */
export function checkHygiene(
  trainingSets: Record<string, readonly Sample[]>,
  evalPrompts: readonly Sample[],
  options: HygieneOptions = {},
): HygieneOverlap[] {
  const overlaps: HygieneOverlap[] = [];
  for (const [set, samples] of Object.entries(trainingSets)) {
    for (const o of findOverlaps(samples, evalPrompts, { threshold: options.threshold, field: "prompt" }))
      overlaps.push({ set, trainId: o.aId, evalId: o.bId, kind: o.kind, similarity: o.similarity });
  }
  if (overlaps.length > 0 && !options.allowOverlap) {
    const shown = overlaps.slice(0, 10).map((o) => `${o.set} ${o.trainId} ~ eval ${o.evalId} (${o.kind})`);
    throw new InputError(
      `${overlaps.length} training sample(s) overlap the evaluation prompts: ${shown.join("; ")}` +
        (overlaps.length > 10 ? `; and ${overlaps.length - 10} more` : ""),
      {
        hint:
          "remove them from the training data or the evaluation set, or pass --allow-overlap " +
          "(allowOverlap: true) to continue with a warning",
      },
    );
  }
  return overlaps;
}
