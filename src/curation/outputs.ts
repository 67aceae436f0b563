// A curation run's files: the curated dataset in the input's format family, provenance.jsonl (one line per
// sample: original, final text, lineage, scores, settings, models, templates, config hash), summary.json, config.json.

import { join } from "node:path";
import { writeDataset, type DatasetContainer, type DatasetFormat } from "../data/index.js";
import { writeFileAtomic } from "../util/fs.js";
import { InputError } from "../util/errors.js";
import { queryOf, responseOf } from "../data/sample.js";
import type { CuratedSample, CurateResult } from "./curate.js";
import type { Candidate } from "./select.js";

export interface CurationOutputFiles {
  curated: string;
  provenance: string;
  summary: string;
  config: string;
}

/** A candidate as provenance shows it (the raw output only when cleaning changed it). */
function candidateRecord(c: Candidate): Record<string, unknown> {
  return {
    id: c.id,
    round: c.round,
    parent: c.parent,
    setting: c.setting,
    seed: c.seed,
    phrasesOffered: c.phrases,
    text: c.text,
    ...(c.raw !== c.text ? { raw: c.raw } : {}),
    finishReason: c.finishReason,
    perplexity: c.perplexity,
    helpfulness: c.helpfulness,
    ...(c.verdict ? { verdict: c.verdict } : {}),
    readability: c.readability,
    phrasesUsed: c.phrasesUsed,
    failed: c.failed,
  };
}

/** One provenance line for a curated sample. */
export function provenanceRecord(s: CuratedSample, result: CurateResult): Record<string, unknown> {
  return {
    id: s.original.id,
    changed: s.changed,
    query: queryOf(s.original),
    original: { response: responseOf(s.original), ...s.originalScores },
    final: s.final
      ? { response: s.final.text, candidate: s.final.id, round: s.final.round, ...candidateRecord(s.final) }
      : { response: responseOf(s.original), candidate: "original" },
    lineage: s.lineage.map(candidateRecord),
    rounds: s.rounds.map((r) => ({
      round: r.round,
      beam: r.beam,
      carried: r.carried,
      generated: r.candidates.length,
      survived: r.candidates.filter((c) => c.failed.length === 0 && c.text !== null).length,
      thresholds: r.thresholds,
    })),
    settings: {
      variant: result.config.variant,
      objective: result.config.objective,
      rounds: result.config.rounds,
      beamWidth: result.config.beamWidth,
      filter: result.config.filter,
      seed: result.config.seed,
    },
    models: result.models,
    templates: { revision: result.config.revisionTemplate },
    selectionRule: result.selectionRule,
    configHash: result.configHash,
  };
}

const EXTENSIONS: Record<DatasetContainer, string> = {
  jsonl: "jsonl",
  json: "json",
  csv: "csv",
  text: "txt",
};

/**
 * Write the run's outputs into `outDir` (the store usually lives there too). The curated set keeps the input's
 * format and container (curated.jsonl / .json / .csv); all files are written atomically.
 */
export function writeCurationOutputs(
  outDir: string,
  result: CurateResult,
  input: DatasetFormat | { format: DatasetFormat; container?: DatasetContainer },
): CurationOutputFiles {
  const { format, container } = typeof input === "string" ? { format: input, container: undefined } : input;
  if (format === "prompts")
    throw new InputError("a prompt list has no responses to curate", {
      hint: "use a dataset of (query, response) pairs",
    });
  const box = format === "csv" ? "csv" : container === "json" ? "json" : "jsonl";
  const files: CurationOutputFiles = {
    curated: join(outDir, `curated.${EXTENSIONS[box]}`),
    provenance: join(outDir, "provenance.jsonl"),
    summary: join(outDir, "summary.json"),
    config: join(outDir, "config.json"),
  };
  writeDataset(
    files.curated,
    result.samples.map((s) => s.curated),
    format,
    box === "csv" ? {} : { container: box },
  );
  writeFileAtomic(
    files.provenance,
    result.samples.map((s) => JSON.stringify(provenanceRecord(s, result)) + "\n").join(""),
  );
  const summary = {
    ...result.summary,
    selectionRule: result.selectionRule,
    configHash: result.configHash,
    models: result.models,
    requested: result.requested,
    computed: result.computed,
    cache: result.cache,
  };
  writeFileAtomic(files.summary, JSON.stringify(summary, null, 2) + "\n");
  writeFileAtomic(
    files.config,
    JSON.stringify({ configHash: result.configHash, models: result.models, config: result.config }, null, 2) +
      "\n",
  );
  return files;
}
