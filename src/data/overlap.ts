// Data hygiene: finds samples in one set that repeat (exactly or nearly) samples of another, e.g. attack
// prompts that leak into an evaluation set. Near duplicates are word 3-gram Jaccard matches, found exactly.
//
// Near matches use prefix filtering (a set-similarity join): shingles are ordered rarest first, and two sets
// with Jaccard >= t must share a shingle among the first |x| - ceil(t*|x|) + 1 of either, so only those are
// indexed and probed; every candidate is then verified with the exact Jaccard. No true match is missed.

import { InputError } from "../util/errors.js";
import { responseOf, type Sample } from "./sample.js";

export interface Overlap {
  aId: string;
  bId: string;
  kind: "exact" | "near";
  /** Jaccard similarity of the shingle sets (1 for exact). */
  similarity: number;
}

export interface OverlapOptions {
  /** Jaccard threshold on word 3-gram shingles of the normalised text. Default 0.7 */
  threshold?: number;
  /** Which text to compare: the user turns ("prompt", default), the final answer, or both. */
  field?: "prompt" | "response" | "both";
}

/** Lowercase (NFKC), punctuation and symbols to spaces, whitespace collapsed. */
export function normaliseText(text: string): string {
  return text
    .normalize("NFKC")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, " ")
    .trim();
}

/** Word 3-grams of normalised text; texts under 3 words use their words (marked so the two never mix). */
export function shingles(normalised: string): string[] {
  const words = normalised === "" ? [] : normalised.split(" ");
  if (words.length < 3) return [...new Set(words.map((w) => `1:${w}`))];
  const grams = new Set<string>();
  for (let i = 0; i + 2 < words.length; i++) grams.add(`${words[i]} ${words[i + 1]} ${words[i + 2]}`);
  return [...grams];
}

function textOf(sample: Sample, field: NonNullable<OverlapOptions["field"]>): string {
  const prompt = sample.messages
    .filter((m) => m.role === "user")
    .map((m) => m.content)
    .join("\n");
  if (field === "prompt") return prompt;
  const response = responseOf(sample) ?? "";
  return field === "response" ? response : `${prompt}\n${response}`;
}

interface Prepared {
  normalised: string[];
  /** Shingle ids of each text, rarest first. */
  sets: Int32Array[];
}

function validateThreshold(options: OverlapOptions): number {
  const threshold = options.threshold ?? 0.7;
  if (!Number.isFinite(threshold) || threshold <= 0 || threshold > 1)
    throw new InputError(`overlap threshold must be in (0, 1], got ${threshold}`, {
      hint: "it is a Jaccard similarity of word 3-grams; 0.7 flags close paraphrases",
    });
  const field = options.field ?? "prompt";
  if (field !== "prompt" && field !== "response" && field !== "both")
    throw new InputError(`unknown overlap field "${String(field)}"`, {
      hint: 'use "prompt", "response" or "both"',
    });
  return threshold;
}

/** Normalise and shingle both sides with shared ids, ordering each set rarest shingle first. */
function prepare(
  a: readonly Sample[],
  b: readonly Sample[],
  field: NonNullable<OverlapOptions["field"]>,
): [Prepared, Prepared] {
  const ids = new Map<string, number>();
  const freq: number[] = [];
  const side = (samples: readonly Sample[]): { normalised: string[]; raw: number[][] } => {
    const normalised = samples.map((s) => normaliseText(textOf(s, field)));
    const raw = normalised.map((text) =>
      shingles(text).map((g) => {
        let id = ids.get(g);
        if (id === undefined) {
          id = freq.length;
          ids.set(g, id);
          freq.push(0);
        }
        freq[id]++;
        return id;
      }),
    );
    return { normalised, raw };
  };
  const sa = side(a);
  const sb = side(b);
  const order = (set: number[]): Int32Array =>
    Int32Array.from(set.sort((x, y) => freq[x] - freq[y] || x - y));
  return [
    { normalised: sa.normalised, sets: sa.raw.map(order) },
    { normalised: sb.normalised, sets: sb.raw.map(order) },
  ];
}

const prefixLength = (size: number, threshold: number): number =>
  size === 0 ? 0 : size - Math.ceil(threshold * size - 1e-9) + 1;

/** Every (i, j) pair of exact or near matches, as indices. `skip` drops pairs (used for self-joins). */
function join(
  pa: Prepared,
  pb: Prepared,
  threshold: number,
  skip: (i: number, j: number) => boolean,
): { i: number; j: number; kind: Overlap["kind"]; similarity: number }[] {
  const exactB = new Map<string, number[]>();
  pb.normalised.forEach((text, j) => {
    if (text === "") return;
    const list = exactB.get(text);
    if (list) list.push(j);
    else exactB.set(text, [j]);
  });
  const postings = new Map<number, number[]>();
  pb.sets.forEach((set, j) => {
    const p = prefixLength(set.length, threshold);
    for (let k = 0; k < p; k++) {
      const list = postings.get(set[k]);
      if (list) list.push(j);
      else postings.set(set[k], [j]);
    }
  });
  const seenBy = new Int32Array(pb.sets.length).fill(-1);
  const members = new Set<number>();
  const found: { i: number; j: number; kind: Overlap["kind"]; similarity: number }[] = [];
  pa.sets.forEach((setA, i) => {
    const text = pa.normalised[i];
    if (text === "") return;
    const exact = new Set(exactB.get(text) ?? []);
    for (const j of exact) if (!skip(i, j)) found.push({ i, j, kind: "exact", similarity: 1 });
    members.clear();
    for (const s of setA) members.add(s);
    const sizeA = setA.length;
    const p = prefixLength(sizeA, threshold);
    for (let k = 0; k < p; k++) {
      const list = postings.get(setA[k]);
      if (!list) continue;
      for (const j of list) {
        if (seenBy[j] === i) continue;
        seenBy[j] = i;
        if (exact.has(j) || skip(i, j)) continue;
        const setB = pb.sets[j];
        // Size filter: J <= min/max, so sets of very different sizes cannot reach the threshold.
        if (Math.min(sizeA, setB.length) < threshold * Math.max(sizeA, setB.length) - 1e-9) continue;
        let shared = 0;
        for (const s of setB) if (members.has(s)) shared++;
        const similarity = shared / (sizeA + setB.length - shared);
        if (similarity >= threshold - 1e-12) found.push({ i, j, kind: "near", similarity });
      }
    }
  });
  return found.sort((x, y) => x.i - y.i || x.j - y.j);
}

/**
 * Pairs (a sample of `a`, a sample of `b`) whose texts are equal after normalisation ("exact") or whose
 * word 3-gram sets have Jaccard similarity >= threshold ("near"), ordered by a's then b's order.
 * Samples whose text is empty in the chosen field (e.g. no response) never match.
 */
export function findOverlaps(
  a: readonly Sample[],
  b: readonly Sample[],
  options: OverlapOptions = {},
): Overlap[] {
  const threshold = validateThreshold(options);
  const [pa, pb] = prepare(a, b, options.field ?? "prompt");
  return join(pa, pb, threshold, () => false).map(({ i, j, kind, similarity }) => ({
    aId: a[i].id,
    bId: b[j].id,
    kind,
    similarity,
  }));
}

/** Exact and near duplicates inside one set: each pair once, `aId` the earlier sample. */
export function findDuplicates(samples: readonly Sample[], options: OverlapOptions = {}): Overlap[] {
  const threshold = validateThreshold(options);
  const [prepared] = prepare(samples, [], options.field ?? "prompt");
  return join(prepared, prepared, threshold, (i, j) => j <= i).map(({ i, j, kind, similarity }) => ({
    aId: samples[i].id,
    bId: samples[j].id,
    kind,
    similarity,
  }));
}
