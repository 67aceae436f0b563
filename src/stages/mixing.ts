// The in-attack mixture: customer data + harmful data + a seeded choice of curated samples, shuffled under the
// seed. A pure function, so the exact counts, the ratio rule and the order can be pinned down by tests.

import type { Sample } from "../data/sample.js";
import { InputError } from "../util/errors.js";
import { Rng } from "../util/random.js";

export type MixPart = "customer" | "harmful" | "curated";

export interface MixSpec {
  /** The customer's own fine-tuning data (benign). */
  customer?: readonly Sample[];
  /** Harmful (attack) data hidden in the customization job. */
  harmful?: readonly Sample[];
  /** The curated pool that curated samples are drawn from. */
  curated: readonly Sample[];
  /**
   * Curated samples per fine-tuning sample: round(ratio x (|customer| + |harmful|)) curated samples, rounded half
   * up. 1 = as many curated samples as customer and harmful ones together.
   */
  ratio?: number;
  /** Exactly this many curated samples (instead of ratio). Neither given: the whole curated pool. */
  count?: number;
  /** Picks the curated subset and orders the mixture. */
  seed: number;
}

export interface MixResult {
  /** The training set, shuffled. */
  samples: Sample[];
  /** Which input each sample of `samples` came from. */
  parts: MixPart[];
  counts: Record<MixPart, number>;
  /** Ids of the curated samples chosen, in the order they were drawn. */
  curatedIds: string[];
  seed: number;
  rule: string;
}

/**
 * Mix curated samples into a customization job. The curated subset is the first n of a seeded permutation of the
 * pool (so a smaller count is always a subset of a larger one under the same seed); then the whole mixture is
 * shuffled with the same random stream. Every customer and harmful sample is kept exactly once.
 */
export function mixSamples(spec: MixSpec): MixResult {
  const customer = spec.customer ?? [];
  const harmful = spec.harmful ?? [];
  const pool = spec.curated;
  if (spec.ratio !== undefined && spec.count !== undefined)
    throw new InputError("give a mixing ratio or a count of curated samples, not both");
  if (!Number.isInteger(spec.seed)) throw new InputError(`mixing seed must be an integer, got ${spec.seed}`);
  let n: number;
  let rule: string;
  if (spec.count !== undefined) {
    if (!Number.isInteger(spec.count) || spec.count < 0)
      throw new InputError(`curated count must be a whole number >= 0, got ${spec.count}`);
    n = spec.count;
    rule = `count ${n}`;
  } else if (spec.ratio !== undefined) {
    if (!(spec.ratio >= 0) || !Number.isFinite(spec.ratio))
      throw new InputError(`mixing ratio must be a number >= 0, got ${spec.ratio}`);
    n = Math.floor(spec.ratio * (customer.length + harmful.length) + 0.5);
    rule = `ratio ${spec.ratio} x (${customer.length} customer + ${harmful.length} harmful), rounded half up`;
  } else {
    n = pool.length;
    rule = "the whole curated pool";
  }
  if (n > pool.length) {
    throw new InputError(`the mixture needs ${n} curated samples but the curated set has ${pool.length}`, {
      hint: "lower the ratio or count, or curate more samples (curated samples are never repeated)",
    });
  }
  if (customer.length + harmful.length + n === 0) throw new InputError("the mixture is empty");

  const rng = new Rng(spec.seed);
  const drawn = rng.shuffle(pool.map((_, i) => i)).slice(0, n);
  const entries: { sample: Sample; part: MixPart }[] = [
    ...customer.map((sample) => ({ sample, part: "customer" as const })),
    ...harmful.map((sample) => ({ sample, part: "harmful" as const })),
    ...drawn.map((i) => ({ sample: pool[i], part: "curated" as const })),
  ];
  rng.shuffle(entries);
  return {
    samples: entries.map((e) => e.sample),
    parts: entries.map((e) => e.part),
    counts: { customer: customer.length, harmful: harmful.length, curated: n },
    curatedIds: drawn.map((i) => pool[i].id),
    seed: spec.seed,
    rule,
  };
}
