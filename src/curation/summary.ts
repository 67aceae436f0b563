// The numbers a curation run reports: perplexity and helpfulness before and after, seed phrases used,
// filter drop rates and lengths, computed from the per-sample results (nothing here calls a model).

import { responseOf } from "../data/sample.js";
import type { Candidate } from "./select.js";
import type { CuratedSample, CurateResult } from "./curate.js";

export interface Stat {
  mean: number | null;
  median: number | null;
  n: number;
}

export interface CurationSummary {
  samples: number;
  changed: number;
  unchanged: number;
  objective: string;
  perplexity: { before: Stat; after: Stat };
  helpfulness: { before: Stat; after: Stat; unparsedOriginals: number } | null;
  readability: { before: Stat; after: Stat };
  /** How often each seed phrase occurs in the final texts (phrases never used are left out). */
  phrasesUsed: Record<string, number>;
  candidates: {
    generated: number;
    survived: number;
    /** Candidates failing each check, over all generated (a candidate can fail several filter checks). */
    failed: Record<string, { count: number; rate: number }>;
    /** Share of generated candidates kept out of selection by cleaning or the filter. */
    dropRate: number;
  };
  /** Rounds in which no candidate of a sample survived and the beam was kept. */
  carriedRounds: number;
  length: {
    originalChars: Stat;
    curatedChars: Stat;
    originalWords: Stat;
    curatedWords: Stat;
    /** Mean curated chars / mean original chars. */
    charRatio: number | null;
  };
}

function stat(values: readonly (number | null | undefined)[]): Stat {
  const v = values
    .filter((x): x is number => typeof x === "number" && Number.isFinite(x))
    .sort((a, b) => a - b);
  if (v.length === 0) return { mean: null, median: null, n: 0 };
  const round = (x: number) => Math.round(x * 10000) / 10000;
  const mid = Math.floor(v.length / 2);
  return {
    mean: round(v.reduce((a, b) => a + b, 0) / v.length),
    median: round(v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2),
    n: v.length,
  };
}

const words = (text: string) => (text.match(/\S+/g) ?? []).length;

function finalScore<K extends "perplexity" | "helpfulness" | "readability">(s: CuratedSample, key: K) {
  return s.final ? s.final[key] : s.originalScores[key];
}

export function summarizeCuration(result: Omit<CurateResult, "summary">): CurationSummary {
  const { samples } = result;
  const judged = result.models.judge !== null;
  const phraseCounts: Record<string, number> = {};
  for (const s of samples)
    for (const p of s.final?.phrasesUsed ?? []) phraseCounts[p] = (phraseCounts[p] ?? 0) + 1;
  const all: Candidate[] = samples.flatMap((s) => s.rounds.flatMap((r) => r.candidates));
  const failed: Record<string, { count: number; rate: number }> = {};
  for (const c of all)
    for (const reason of new Set(c.failed))
      failed[reason] = { count: (failed[reason]?.count ?? 0) + 1, rate: 0 };
  for (const f of Object.values(failed))
    f.rate = all.length ? Math.round((f.count / all.length) * 10000) / 10000 : 0;
  const survived = all.filter((c) => c.failed.length === 0 && c.text !== null).length;
  const originalText = (s: CuratedSample) => responseOf(s.original) ?? "";
  const curatedText = (s: CuratedSample) => responseOf(s.curated) ?? "";
  const oc = stat(samples.map((s) => originalText(s).length));
  const cc = stat(samples.map((s) => curatedText(s).length));
  return {
    samples: samples.length,
    changed: samples.filter((s) => s.changed).length,
    unchanged: samples.filter((s) => !s.changed).length,
    objective: result.config.objective,
    perplexity: {
      before: stat(samples.map((s) => s.originalScores.perplexity)),
      after: stat(samples.map((s) => finalScore(s, "perplexity"))),
    },
    helpfulness: judged
      ? {
          before: stat(samples.map((s) => s.originalScores.helpfulness)),
          after: stat(samples.map((s) => finalScore(s, "helpfulness"))),
          unparsedOriginals: samples.filter((s) => s.originalScores.helpfulnessParsed === false).length,
        }
      : null,
    readability: {
      before: stat(samples.map((s) => s.originalScores.readability)),
      after: stat(samples.map((s) => finalScore(s, "readability"))),
    },
    phrasesUsed: Object.fromEntries(Object.entries(phraseCounts).sort((a, b) => b[1] - a[1])),
    candidates: {
      generated: all.length,
      survived,
      failed,
      dropRate: all.length ? Math.round(((all.length - survived) / all.length) * 10000) / 10000 : 0,
    },
    carriedRounds: samples.reduce((n, s) => n + s.rounds.filter((r) => r.carried).length, 0),
    length: {
      originalChars: oc,
      curatedChars: cc,
      originalWords: stat(samples.map((s) => words(originalText(s)))),
      curatedWords: stat(samples.map((s) => words(curatedText(s)))),
      charRatio: oc.mean && cc.mean !== null ? Math.round((cc.mean / oc.mean) * 10000) / 10000 : null,
    },
  };
}
