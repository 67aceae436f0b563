// The defences curation is measured against (METHOD.md §5): NoDef (train as is), RandDrop-p, PPLDrop-p,
// Uncurated (raw commonsense data in the curated set's place) and SafetyData (harmful queries with refusals).

import { promptMessages, queryOf, responseOf, type Sample } from "../data/sample.js";
import type { LanguageModel } from "../models/index.js";
import { InputError } from "../util/errors.js";
import { Rng } from "../util/random.js";
import { DEFAULT_REFUSALS } from "./data/refusals.js";

export const BASELINE_NAMES = ["nodef", "randdrop", "ppldrop", "uncurated", "safetydata"] as const;
export type BaselineName = (typeof BASELINE_NAMES)[number];

/** How many of n samples a drop share p removes: round(p x n), rounded half up. */
export function dropCount(n: number, p: number): number {
  if (!(p >= 0 && p <= 1)) throw new InputError(`the drop share must be in [0, 1], got ${p}`);
  return Math.floor(p * n + 0.5);
}

export interface DropResult {
  /** The samples kept, in their original order. */
  kept: Sample[];
  dropped: Sample[];
}

/** RandDrop-p: drop round(p x n) samples chosen uniformly under the seed; the rest keep their order. */
export function randDrop(samples: readonly Sample[], p: number, seed: number): DropResult {
  const k = dropCount(samples.length, p);
  const order = new Rng(seed).shuffle(samples.map((_, i) => i));
  const drop = new Set(order.slice(0, k));
  return {
    kept: samples.filter((_, i) => !drop.has(i)),
    dropped: samples.filter((_, i) => drop.has(i)),
  };
}

export interface PplDropResult extends DropResult {
  /** Perplexity of each input sample's response given its prompt, in input order. */
  perplexities: number[];
}

export interface PplDropOptions {
  /** Requests per logprobs call (progress and memory granularity). Default 32. */
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

/**
 * PPLDrop-p: score each sample's response given its prompt under `model` (the model being fine-tuned) and drop
 * the round(p x n) samples with the highest perplexity; ties keep the earlier sample. The rest keep their order.
 */
export async function pplDrop(
  model: LanguageModel,
  samples: readonly Sample[],
  p: number,
  options: PplDropOptions = {},
): Promise<PplDropResult> {
  const k = dropCount(samples.length, p);
  const requests = samples.map((s) => {
    const response = responseOf(s);
    if (response === undefined)
      throw new InputError(`${s.id}: no assistant response to score`, {
        hint: "PPLDrop scores fine-tuning samples; each needs a final assistant message",
      });
    return { id: s.id, messages: promptMessages(s), response };
  });
  const batch = Math.max(1, options.batchSize ?? 32);
  const perplexities: number[] = [];
  for (let i = 0; i < requests.length; i += batch) {
    options.signal?.throwIfAborted();
    const results = await model.logprobs(requests.slice(i, i + batch), { signal: options.signal });
    for (const r of results) perplexities.push(r.perplexity);
    options.onProgress?.(perplexities.length, requests.length);
  }
  // NaN (an unscoreable response) sorts as the highest perplexity: it is what PPLDrop would distrust most.
  const key = (i: number) => (Number.isNaN(perplexities[i]) ? Infinity : perplexities[i]);
  const ranked = samples.map((_, i) => i).sort((a, b) => key(b) - key(a) || a - b);
  const drop = new Set(ranked.slice(0, k));
  return {
    kept: samples.filter((_, i) => !drop.has(i)),
    dropped: samples.filter((_, i) => drop.has(i)),
    perplexities,
  };
}

/** Uncurated: n raw samples drawn without replacement from the commonsense pool under the seed. */
export function uncurated(pool: readonly Sample[], n: number, seed: number): Sample[] {
  if (!Number.isInteger(n) || n < 0)
    throw new InputError(`uncurated: n must be a whole number >= 0, got ${n}`);
  if (n > pool.length)
    throw new InputError(`uncurated: asked for ${n} samples but the pool has ${pool.length}`, {
      hint: "use a larger commonsense pool or a smaller n (samples are never repeated)",
    });
  return new Rng(seed)
    .shuffle(pool.map((_, i) => i))
    .slice(0, n)
    .map((i) => ({ ...pool[i], tags: [...(pool[i].tags ?? []), "uncurated"] }));
}

/**
 * SafetyData: each harmful query paired with a refusal drawn under the seed (default: our shipped refusals).
 * The query is the sample's last user message; any system message is kept.
 */
export function safetyData(
  harmfulQueries: readonly Sample[],
  refusals: readonly string[] = DEFAULT_REFUSALS,
  seed = 1,
): Sample[] {
  if (refusals.length === 0) throw new InputError("safetyData: no refusals to pair the queries with");
  const rng = new Rng(seed);
  return harmfulQueries.map((q) => {
    if (queryOf(q).trim() === "") throw new InputError(`${q.id}: no user query to refuse`);
    return {
      id: `safety:${q.id}`,
      source: q.source,
      tags: [...(q.tags ?? []).filter((t) => t !== "harmful"), "safety-data", "refusal"],
      messages: [...promptMessages(q), { role: "assistant", content: rng.pick(refusals) }],
    };
  });
}
