// The report document: one JSON file (report-data.json) that an experiment run collects and the renderers read.
// The zod schema is the single source of truth for its fields, their ranges and the validation errors.

import { z } from "zod";
import { InputError } from "../../util/errors.js";

/** One measured quantity with its 95% confidence interval, the number of items behind it, and per-seed values. */
function metricSchema(min = -Infinity, max = Infinity) {
  const bounded = () => z.number().min(min).max(max);
  return z
    .object({
      value: bounded(),
      /** [lo, hi] of the 95% confidence interval, on the same scale as value. */
      ci95: z.tuple([bounded(), bounded()]),
      /** Items behind the value (prompts x seeds). */
      n: z.number().int().nonnegative(),
      /** The value of each seed, in the order of run.seeds. */
      perSeed: z.array(bounded()).optional(),
    })
    .strict()
    .refine((m) => m.ci95[0] <= m.ci95[1], {
      message: "ci95 must be [lo, hi] with lo <= hi",
      path: ["ci95"],
    });
}

const RateSchema = metricSchema(0, 1);
export type Metric = z.infer<typeof RateSchema>;

/**
 * The metrics a cell can carry. Rates are fractions in [0, 1] (rendered as percentages); scores are on the
 * rubric's own scale. Every metric is optional so a partial run (safety judged, helpfulness not yet) renders.
 */
export const MetricsSchema = z
  .object({
    /** Safety rate: share of harmful prompts answered safely (higher is better). */
    sr: RateSchema.optional(),
    /** Mean 1-5 safety score of the rubric judge (5 = fully safe). */
    sSafe: metricSchema(1, 5).optional(),
    /** Mean 0-5 helpfulness on benign prompts (mean of relevance, clarity, comprehensiveness, usefulness). */
    sHelp: metricSchema(0, 5).optional(),
    /** Share of harmful prompts whose answer got the most harmful score (Qi et al.'s harmfulness rate). */
    harmfulRate: RateSchema.optional(),
    /** Attack success rate by refusal keywords: share of harmful prompts answered without a refusal phrase. */
    keywordAsr: RateSchema.optional(),
    /** Share of harmful prompts the model refused (SR also counts harmless answers that do not refuse). */
    refusalRate: RateSchema.optional(),
    /** Share of items where the keyword judge and the rubric judge disagree about safety. */
    judgeDisagreement: RateSchema.optional(),
    /** Share of safe-but-scary prompts (XSTest-style) that the model refused (lower is better). */
    overRefusal: RateSchema.optional(),
    /** Utility score in [0, 1] from a second, judge-free measure (e.g. exact-match accuracy on benign tasks). */
    utility: RateSchema.optional(),
  })
  .strict();
export type Metrics = z.infer<typeof MetricsSchema>;
export type MetricKey = keyof Metrics;

/** How each metric is labelled and formatted; the order is the order of the report's secondary tables. */
export const METRIC_INFO: Record<
  MetricKey,
  { label: string; kind: "rate" | "score"; range: [number, number]; higherIsBetter: boolean; about: string }
> = {
  sr: { label: "SR", kind: "rate", range: [0, 1], higherIsBetter: true, about: "safety rate (judge)" },
  sSafe: {
    label: "S_SAFE",
    kind: "score",
    range: [1, 5],
    higherIsBetter: true,
    about: "mean safety score 1-5",
  },
  sHelp: {
    label: "S_HELP",
    kind: "score",
    range: [0, 5],
    higherIsBetter: true,
    about: "mean helpfulness 0-5",
  },
  harmfulRate: {
    label: "Harmful",
    kind: "rate",
    range: [0, 1],
    higherIsBetter: false,
    about: "share scored most harmful",
  },
  keywordAsr: {
    label: "Keyword ASR",
    kind: "rate",
    range: [0, 1],
    higherIsBetter: false,
    about: "attack success by refusal keywords",
  },
  refusalRate: {
    label: "Refused",
    kind: "rate",
    range: [0, 1],
    higherIsBetter: true,
    about: "refused harmful prompts",
  },
  judgeDisagreement: {
    label: "Judges disagree",
    kind: "rate",
    range: [0, 1],
    higherIsBetter: false,
    about: "keyword vs rubric judge",
  },
  overRefusal: {
    label: "Over-refusal",
    kind: "rate",
    range: [0, 1],
    higherIsBetter: false,
    about: "refused safe-but-scary prompts",
  },
  utility: {
    label: "Utility",
    kind: "rate",
    range: [0, 1],
    higherIsBetter: true,
    about: "judge-free utility score",
  },
};

const VerdictSchema = z
  .object({
    judge: z.string().min(1),
    parsed: z.boolean(),
    safe: z.boolean().optional(),
    refused: z.boolean().optional(),
    score: z.number().optional(),
    scale: z.tuple([z.number(), z.number()]).optional(),
    aspects: z.record(z.string(), z.number()).optional(),
    categories: z.array(z.string()).optional(),
    rationale: z.string(),
  })
  .strict();

const ModelSchema = z
  .object({
    /** What the model does in the run: "base", "reviser", "scorer", "safety judge", ... */
    role: z.string().min(1),
    /** The model reference as given (see docs/MODEL-REFS.md). */
    ref: z.string().min(1),
    /** The backend's content identity (ModelInfo.id), when known. */
    id: z.string().optional(),
  })
  .strict();

const RunSchema = z
  .object({
    name: z.string().min(1),
    /** ISO 8601 time the run started. */
    created: z.iso.datetime({ offset: true }),
    /** Hash of the resolved config: two runs with the same hash asked for the same experiment. */
    configHash: z.string().min(1),
    /** Versions of buckle, Node, node-llama-cpp, llama.cpp, ... */
    versions: z.record(z.string(), z.string()),
    seeds: z.array(z.number().int()).min(1),
    models: z.array(ModelSchema),
    /** True when the run used buckle's built-in smoke data: the report carries a visible label. */
    smokeData: z.boolean(),
    /** True for made-up documents (tests, the screenshot): the report says it is not a measurement. */
    illustrative: z.boolean().optional(),
    /** The command line that started the run. */
    command: z.string().optional(),
    /** The resolved experiment config, shown verbatim in the reproducibility section. */
    config: z.json().optional(),
    /** Every prompt template the run used (reviser, judges, attack formats), by name. */
    promptTemplates: z.array(z.object({ name: z.string().min(1), text: z.string() }).strict()).optional(),
    /** Datasets the run read, with their size and content hash. */
    datasets: z
      .array(
        z
          .object({
            role: z.string().min(1),
            name: z.string().min(1),
            rows: z.number().int().nonnegative(),
            hash: z.string().optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict();

const CellSchema = z
  .object({
    /** Row: NoDef, RandDrop-50%, PPLDrop-50%, Uncurated, SafetyData, Pre, In, Post, All (or another name). */
    defence: z.string().min(1),
    /** Column: ExHarm, AOA, Benign, ... ("none" for no attack). */
    attack: z.string().min(1),
    metrics: MetricsSchema,
  })
  .strict();
export type Cell = z.infer<typeof CellSchema>;

export const METRIC_KEYS = Object.keys(METRIC_INFO) as [MetricKey, ...MetricKey[]];

/** Adds an issue for every value outside `key`'s range (series whose metric is named by a field). */
function checkRange(
  key: MetricKey,
  metrics: { metric: Metric; path: PropertyKey[] }[],
  ctx: z.RefinementCtx,
): void {
  const [lo, hi] = METRIC_INFO[key].range;
  for (const { metric, path } of metrics) {
    const values = [metric.value, ...metric.ci95, ...(metric.perSeed ?? [])];
    if (values.some((v) => v < lo || v > hi))
      ctx.addIssue({
        code: "custom",
        message: `values must lie in ${key}'s range [${lo}, ${hi}] (rates are fractions, not percentages)`,
        path: [...path, "metric"],
      });
  }
}

const StageEntrySchema = z
  .object({ stage: z.string().min(1), attack: z.string().min(1), metric: metricSchema() })
  .strict();

const StageComparisonSchema = z
  .object({
    /** Which metric the entries hold (their values are on that metric's scale). */
    metric: z.enum(METRIC_KEYS),
    entries: z.array(StageEntrySchema).min(1),
  })
  .strict()
  .superRefine((s, ctx) =>
    checkRange(
      s.metric,
      s.entries.map((e, i) => ({ metric: e.metric, path: ["entries", i] })),
      ctx,
    ),
  );

const CurationRoundsSchema = z
  .object({
    metric: z.enum(METRIC_KEYS),
    series: z
      .array(
        z
          .object({
            /** e.g. "Post / ExHarm". */
            label: z.string().min(1),
            points: z
              .array(z.object({ round: z.number().int().nonnegative(), metric: metricSchema() }).strict())
              .min(1),
          })
          .strict(),
      )
      .min(1),
  })
  .strict()
  .superRefine((c, ctx) =>
    checkRange(
      c.metric,
      c.series.flatMap((s, i) =>
        s.points.map((p, j) => ({ metric: p.metric, path: ["series", i, "points", j] })),
      ),
      ctx,
    ),
  );

export const TEXT_KINDS = ["safe", "harmful", "commonsense"] as const;
export const PPL_MODELS = ["robust", "compromised"] as const;

const PerplexitySchema = z
  .object({
    samples: z
      .array(
        z
          .object({
            model: z.enum(PPL_MODELS),
            kind: z.enum(TEXT_KINDS),
            /** Per-text perplexities of the response tokens. */
            values: z.array(z.number().positive()).min(1),
          })
          .strict(),
      )
      .min(1),
    /** Which models "robust" and "compromised" were, e.g. "base" and "base + ExHarm LoRA". */
    modelLabels: z.object({ robust: z.string(), compromised: z.string() }).partial().strict().optional(),
  })
  .strict();

const LossCurveSchema = z
  .object({
    /** The training job, e.g. "attack ExHarm, seed 1" or "Pre-attack curation fine-tune". */
    job: z.string().min(1),
    stage: z.string().optional(),
    points: z
      .array(
        z
          .object({
            step: z.number().int().nonnegative(),
            loss: z.number().nonnegative(),
            evalLoss: z.number().nonnegative().optional(),
          })
          .strict(),
      )
      .min(1),
  })
  .strict();

const ExampleSchema = z
  .object({
    defence: z.string().min(1),
    attack: z.string().min(1),
    /** harmful (safety eval), benign (helpfulness), borderline (over-refusal). */
    promptKind: z.enum(["harmful", "benign", "borderline"]),
    seed: z.number().int().optional(),
    prompt: z.string(),
    /** The model's answer: untrusted text, always escaped. */
    answer: z.string(),
    verdicts: z.array(VerdictSchema),
  })
  .strict();
export type ExampleAnswer = z.infer<typeof ExampleSchema>;

const CuratedSchema = z
  .object({
    id: z.string().min(1),
    query: z.string(),
    original: z.string(),
    curated: z.string(),
    scores: z
      .object({
        perplexityBefore: z.number().positive(),
        perplexityAfter: z.number().positive(),
        helpfulnessBefore: z.number().min(0).max(5),
        helpfulnessAfter: z.number().min(0).max(5),
        readabilityBefore: z.number().optional(),
        readabilityAfter: z.number().optional(),
      })
      .strict(),
    /** Seed phrases that appear in the curated text. */
    phrasesUsed: z.array(z.string()),
    /** The round that produced the text and the sampling setting it came from. */
    round: z.number().int().nonnegative().optional(),
    sampling: z.object({ temperature: z.number(), topP: z.number() }).strict().optional(),
  })
  .strict();
export type CuratedSampleReport = z.infer<typeof CuratedSchema>;

export const ReportDataSchema = z
  .object({
    /** Version of this document's shape; renderers refuse versions they do not know. */
    schemaVersion: z.literal(1),
    run: RunSchema,
    cells: z.array(CellSchema).min(1),
    stageComparison: StageComparisonSchema.optional(),
    curationRounds: CurationRoundsSchema.optional(),
    perplexity: PerplexitySchema.optional(),
    lossCurves: z.array(LossCurveSchema).optional(),
    examples: z.array(ExampleSchema).optional(),
    curated: z.array(CuratedSchema).optional(),
    timings: z
      .array(
        z
          .object({
            phase: z.string().min(1),
            seconds: z.number().nonnegative(),
            items: z.number().int().nonnegative().optional(),
          })
          .strict(),
      )
      .optional(),
    notes: z
      .array(z.object({ level: z.enum(["info", "warning"]), text: z.string().min(1) }).strict())
      .optional(),
  })
  .strict()
  .superRefine((d, ctx) => {
    const seen = new Map<string, number>();
    d.cells.forEach((c, i) => {
      const key = `${c.defence}\u0000${c.attack}`;
      const first = seen.get(key);
      if (first !== undefined)
        ctx.addIssue({
          code: "custom",
          message: `duplicate cell (${c.defence}, ${c.attack}); cells[${first}] has the same defence and attack`,
          path: ["cells", i],
        });
      else seen.set(key, i);
    });
    const seeds = d.run.seeds.length;
    d.cells.forEach((c, i) => {
      for (const [key, m] of Object.entries(c.metrics) as [MetricKey, Metric | undefined][]) {
        if (m?.perSeed && m.perSeed.length !== seeds)
          ctx.addIssue({
            code: "custom",
            message: `has ${m.perSeed.length} values but run.seeds has ${seeds}`,
            path: ["cells", i, "metrics", key, "perSeed"],
          });
      }
    });
  });

export type ReportData = z.infer<typeof ReportDataSchema>;

/** "cells[2].metrics.sr.ci95[0]" from a zod issue path. */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out === "" ? "(document)" : out;
}

/**
 * Validate a parsed JSON value as a report document. Throws an InputError that names every bad field by path
 * (at most 20), prefixed with `source` (usually the file name).
 */
export function parseReportData(value: unknown, source = "report data"): ReportData {
  const result = ReportDataSchema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues;
  const lines = issues.slice(0, 20).map((i) => `  ${formatIssuePath(i.path)}: ${i.message}`);
  if (issues.length > 20) lines.push(`  ... and ${issues.length - 20} more`);
  throw new InputError(`${source} is not a valid report document:\n${lines.join("\n")}`, {
    hint: "see docs/REPORT.md for the fields of report-data.json",
  });
}
