// Picks subsets of samples: an exact number (a rate or a count) by even stride or by seeded random choice,
// and seeded disjoint splits (train/eval). Input order is always preserved inside each result.

import { InputError } from "../util/errors.js";
import { Rng } from "../util/random.js";

export interface SelectOptions {
  /** Fraction of the items to keep, in [0, 1]; round(rate * n) items are kept. Give this or `count`. */
  rate?: number;
  /** Number of items to keep, an integer in [0, n]. Give this or `rate`. */
  count?: number;
  /** "stride": evenly spaced and deterministic; "random": a seeded uniform choice. */
  strategy: "stride" | "random";
  /** Seed for "random" (default 0, so an unseeded call is still reproducible). */
  seed?: number;
}

/** How many items a rate or count asks for out of `n`, validated. */
export function selectionSize(n: number, options: Pick<SelectOptions, "rate" | "count">): number {
  const { rate, count } = options;
  if ((rate === undefined) === (count === undefined))
    throw new InputError("give either a selection rate or a count, not both or neither", {
      hint: "rate is a fraction of the samples (0.05 = 5%); count is a number of samples",
    });
  if (rate !== undefined) {
    if (!Number.isFinite(rate) || rate < 0 || rate > 1)
      throw new InputError(`selection rate must be between 0 and 1, got ${rate}`, {
        hint: "a rate is a fraction: 0.05 keeps 5% of the samples",
      });
    return Math.round(rate * n);
  }
  if (!Number.isInteger(count) || (count as number) < 0 || (count as number) > n)
    throw new InputError(
      `selection count must be an integer between 0 and ${n} (the number of samples), got ${count}`,
      {
        hint: "lower the count or use a larger dataset",
      },
    );
  return count as number;
}

/** Exactly round(rate * n) or `count` items, in input order. */
export function selectSamples<T>(items: readonly T[], options: SelectOptions): T[] {
  const n = items.length;
  const k = selectionSize(n, options);
  if (options.strategy === "stride") {
    // The middle of each of k equal slices: distinct indices because slices are at least one item wide.
    return Array.from({ length: k }, (_, i) => items[Math.floor(((i + 0.5) * n) / k)]);
  }
  if (options.strategy !== "random")
    throw new InputError(`unknown selection strategy "${String(options.strategy)}"`, {
      hint: 'use "stride" or "random"',
    });
  return pickIndices(n, k, new Rng(options.seed ?? 0)).map((i) => items[i]);
}

/** k distinct indices of [0, n) chosen uniformly (partial Fisher-Yates), ascending. */
function pickIndices(n: number, k: number, rng: Rng): number[] {
  const indices = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rng.next() * (n - i));
    [indices[i], indices[j]] = [indices[j], indices[i]];
  }
  return indices.slice(0, k).sort((a, b) => a - b);
}

/**
 * Split items into disjoint parts of the given fractions (each >= 0, summing to at most 1; a sum below 1
 * leaves the rest out), chosen by a seeded shuffle. Sizes come from rounding the cumulative fractions, so
 * fractions summing to 1 use every item. Each part keeps input order.
 */
export function splitSamples<T>(items: readonly T[], fractions: number[], seed: number): T[][] {
  if (fractions.length === 0) throw new InputError("a split needs at least one fraction");
  const bad = fractions.find((f) => !Number.isFinite(f) || f < 0);
  if (bad !== undefined) throw new InputError(`split fractions must be >= 0, got ${bad}`);
  const total = fractions.reduce((a, b) => a + b, 0);
  if (total > 1 + 1e-9)
    throw new InputError(`split fractions sum to ${total}, more than 1`, {
      hint: "e.g. 0.9,0.1 for train/eval",
    });
  const n = items.length;
  const order = new Rng(seed).shuffle(Array.from({ length: n }, (_, i) => i));
  const parts: T[][] = [];
  let cumulative = 0;
  let start = 0;
  for (const f of fractions) {
    cumulative += f;
    const end = Math.min(n, Math.round(Math.min(cumulative, 1) * n));
    parts.push(
      order
        .slice(start, end)
        .sort((a, b) => a - b)
        .map((i) => items[i]),
    );
    start = end;
  }
  return parts;
}
