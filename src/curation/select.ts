// The quality filter and the selection rule of the beam search, as pure functions over scored candidates,
// so the rule that decides which rewrites survive can be read, tested and recorded in one place.

import type { Verdict } from "../evaluation/types.js";

export type Objective = "ppl-max" | "ppl-min";

/** One rewrite produced in a round, with everything that decided its fate. */
export interface Candidate {
  /** Unique within its sample: r<round>.b<beam slot>.s<setting index>.n<sample index>. */
  id: string;
  round: number;
  /** Id of the text it revises: "original" or a candidate id of the previous round. */
  parent: string;
  beamSlot: number;
  setting: { index: number; temperature: number; topP: number };
  sampleIndex: number;
  /** The generation seed (derived from run seed, sample, round, parent slot, setting, sample index). */
  seed: number;
  /** Seed phrases offered in this request's prompt. */
  phrases: string[];
  /** The reviser's output as generated. */
  raw: string;
  finishReason: string;
  /** The cleaned text; null when cleaning rejected the output. */
  text: string | null;
  /** Response perplexity under the scorer, conditioned on the query (null: not scored, or not finite). */
  perplexity: number | null;
  /** The helpfulness verdict (undefined: no judge, or the candidate was rejected before judging). */
  verdict?: Verdict;
  /** 0-5 helpfulness (null: no judge, not judged, or unparseable verdict). */
  helpfulness: number | null;
  readability: number | null;
  /** Seed phrases found in the cleaned text. */
  phrasesUsed: string[];
  /** Every check the candidate failed, in order: cleaning reasons, then filter reasons. Empty = survivor. */
  failed: string[];
}

/** The original response's scores: the filter's thresholds are fractions of these. */
export interface ReferenceScores {
  perplexity: number | null;
  helpfulness: number | null;
  /** False when a judge ran and its verdict on the original could not be parsed. */
  helpfulnessParsed: boolean | null;
  readability: number;
}

export interface FilterThresholds {
  /** Candidates need a parsed verdict (a judge is in use). */
  requireVerdict: boolean;
  /** Minimum helpfulness; null = no numeric floor. */
  helpfulness: number | null;
  /** Minimum readability; null = no floor. */
  readability: number | null;
}

/** Thresholds relative to the original: ratio x the original's score; a missing original score turns that floor off. */
export function filterThresholds(
  reference: ReferenceScores,
  ratios: { helpfulnessRatio: number; readabilityRatio: number },
  judged: boolean,
): FilterThresholds {
  return {
    requireVerdict: judged,
    helpfulness:
      judged && reference.helpfulness !== null && ratios.helpfulnessRatio > 0
        ? ratios.helpfulnessRatio * reference.helpfulness
        : null,
    readability: ratios.readabilityRatio > 0 ? ratios.readabilityRatio * reference.readability : null,
  };
}

/** The filter checks a scored candidate fails (empty: it passes). */
export function filterFailures(
  c: Pick<Candidate, "perplexity" | "verdict" | "helpfulness" | "readability">,
  t: FilterThresholds,
): string[] {
  const failed: string[] = [];
  if (c.perplexity === null || !Number.isFinite(c.perplexity)) failed.push("unscorable");
  if (t.requireVerdict) {
    if (c.verdict === undefined || !c.verdict.parsed || c.helpfulness === null)
      failed.push("helpfulness-unparsed");
    else if (t.helpfulness !== null && c.helpfulness < t.helpfulness) failed.push("helpfulness");
  }
  if (t.readability !== null && (c.readability ?? 0) < t.readability) failed.push("readability");
  return failed;
}

/** The selection rule in words, recorded in every output. */
export function selectionRule(objective: Objective, beamWidth: number): string {
  const order = objective === "ppl-max" ? "highest" : "lowest";
  return (
    `Each round, among the candidates that pass cleaning and the filter (duplicates of an earlier candidate's text ` +
    `in the same sample and round removed), keep the ${beamWidth} with the ${order} response perplexity under the ` +
    `scorer; ties go to higher helpfulness, then to the earlier candidate id (beam slot, setting, sample index). ` +
    `When none survive, the previous beam is kept unchanged. The final text is the first member of the last beam ` +
    `(the ${order}-perplexity survivor of the last round that had survivors, or the original if none ever did).`
  );
}

/** Candidates in selection order: objective on perplexity, then helpfulness (higher first), then generation order. */
export function rankCandidates<T extends Pick<Candidate, "perplexity" | "helpfulness">>(
  survivors: readonly T[],
  objective: Objective,
): T[] {
  const sign = objective === "ppl-max" ? -1 : 1;
  return survivors
    .map((c, order) => ({ c, order }))
    .sort((a, b) => {
      const pa = a.c.perplexity ?? NaN;
      const pb = b.c.perplexity ?? NaN;
      if (pa !== pb) return sign * (pa - pb);
      const ha = a.c.helpfulness ?? -Infinity;
      const hb = b.c.helpfulness ?? -Infinity;
      if (ha !== hb) return hb - ha;
      return a.order - b.order;
    })
    .map((x) => x.c);
}

/**
 * The next beam: the top `beamWidth` survivors (failed empty, distinct text), best first by `rankCandidates`.
 * Returns an empty list when none survive (the caller keeps the previous beam).
 */
export function selectBeam(
  candidates: readonly Candidate[],
  objective: Objective,
  beamWidth: number,
): Candidate[] {
  const seen = new Set<string>();
  const survivors: Candidate[] = [];
  for (const c of candidates) {
    if (c.failed.length > 0 || c.text === null) continue;
    if (seen.has(c.text)) continue;
    seen.add(c.text);
    survivors.push(c);
  }
  return rankCandidates(survivors, objective).slice(0, beamWidth);
}
