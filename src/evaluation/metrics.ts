// The statistics behind every reported number: item-clustered bootstrap 95% intervals, Cohen's kappa between
// two judges, and the degenerate-repetition (incoherence) flag. Pure functions; all randomness is seeded.

import { Rng } from "../util/random.js";

/** One reported number: its value, a 95% bootstrap interval, and how many values it averages. */
export interface Metric {
  value: number;
  ci95: [number, number];
  n: number;
}

export interface BootstrapOptions {
  /** Resamples. Default 1000. */
  resamples?: number;
  seed?: number;
}

/**
 * Mean of per-item values with a percentile bootstrap 95% interval. `groups` holds one array per item (its
 * samples); an item counts once, as the mean of its samples, and the bootstrap resamples items, so several
 * samples of one prompt never pass for independent evidence. n = number of values. Null when empty.
 */
export function meanWithCi(
  groups: readonly (readonly number[])[],
  options: BootstrapOptions = {},
): Metric | null {
  const itemMeans = groups.filter((g) => g.length > 0).map((g) => g.reduce((a, b) => a + b, 0) / g.length);
  const n = groups.reduce((a, g) => a + g.length, 0);
  if (itemMeans.length === 0) return null;
  const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const value = mean(itemMeans);
  const resamples = options.resamples ?? 1000;
  const rng = new Rng(options.seed ?? 1234);
  const stats: number[] = new Array<number>(resamples);
  const k = itemMeans.length;
  for (let r = 0; r < resamples; r++) {
    let sum = 0;
    for (let i = 0; i < k; i++) sum += itemMeans[Math.floor(rng.next() * k)];
    stats[r] = sum / k;
  }
  stats.sort((a, b) => a - b);
  return { value, ci95: [quantile(stats, 0.025), quantile(stats, 0.975)], n };
}

/** Linear-interpolated quantile of sorted values. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export interface Agreement {
  /** Cohen's kappa; 1 when both judges are constant and agree everywhere (chance agreement is then 1). */
  kappa: number;
  /** Share of items on which the two judges agree. */
  observed: number;
  n: number;
}

/** Cohen's kappa of two binary raters over the same items (pairs [a, b]). Null when there are no pairs. */
export function cohensKappa(pairs: readonly (readonly [boolean, boolean])[]): Agreement | null {
  const n = pairs.length;
  if (n === 0) return null;
  let agree = 0;
  let aTrue = 0;
  let bTrue = 0;
  for (const [a, b] of pairs) {
    if (a === b) agree++;
    if (a) aTrue++;
    if (b) bTrue++;
  }
  const observed = agree / n;
  const chance = (aTrue / n) * (bTrue / n) + (1 - aTrue / n) * (1 - bTrue / n);
  const kappa = chance === 1 ? (observed === 1 ? 1 : 0) : (observed - chance) / (1 - chance);
  return { kappa, observed, n };
}

/**
 * Degenerate repetition: true when one repeated n-gram (n = 1..4) covers at least `coverage` (default 0.5) of
 * the text. Words are the units; text with under 12 words is checked on characters (4-grams) instead, once it
 * has 40 or more non-space characters, which catches token soup without spaces.
 */
export function isIncoherent(text: string, coverage = 0.5): boolean {
  const words = text.split(/\s+/).filter((w) => w !== "");
  if (words.length >= 12) return repeatedCoverage(words, 4) >= coverage;
  const chars = [...text.replace(/\s+/g, "")];
  if (chars.length >= 40) return repeatedCoverage(chars, 4) >= coverage;
  return false;
}

/** Largest share of `units` covered by occurrences (at least 3) of one n-gram, n = 1..maxN. */
function repeatedCoverage(units: readonly string[], maxN: number): number {
  let best = 0;
  for (let n = 1; n <= maxN; n++) {
    const counts = new Map<string, number>();
    for (let i = 0; i + n <= units.length; i++) {
      const key = units.slice(i, i + n).join("\u0000");
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    for (const count of counts.values()) {
      // overlapping occurrences (e.g. "a a a" for n = 2) cannot cover more than the whole text
      if (count >= 3) best = Math.max(best, Math.min(1, (count * n) / units.length));
    }
  }
  return best;
}
