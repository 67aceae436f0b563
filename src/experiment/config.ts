// The experiment config: one zod schema is the single source of its type, defaults and error messages. A config
// names the model, the data, the curation, the attacks, the defences, the training recipe and the evaluation.

import { readFileSync, existsSync } from "node:fs";
import { z } from "zod";
import { parse as parseYaml } from "yaml";
import { InputError } from "../util/errors.js";

/** A data source: a dataset file path, or "world:<split>" (the model organism's splits). */
const Source = z.string().min(1, { error: "must name a file or world:<split>" });

const Count = z.int({ error: "must be an integer" }).min(1, { error: "must be at least 1" });
const Rate = z.number({ error: "must be a number" }).gt(0, { error: "must be in (0, 1]" }).lte(1, {
  error: "must be in (0, 1]",
});

const RecipeOverrides = z.record(z.string(), z.unknown(), { error: "must be an object of recipe fields" });

export const DEFENCES = [
  "nodef",
  "randdrop",
  "ppldrop",
  "uncurated",
  "uncurated-post",
  "safetydata",
  "pre",
  "in",
  "post",
  "all",
] as const;
export type DefenceKind = (typeof DEFENCES)[number];

const Defence = z.union([
  z.enum(DEFENCES, { error: `must be one of ${DEFENCES.join(", ")} (or {kind, p} for the drop baselines)` }),
  z
    .object({
      kind: z.enum(DEFENCES, { error: `must be one of ${DEFENCES.join(", ")}` }),
      /** Share dropped by randdrop / ppldrop. */
      p: Rate.optional(),
      /** Row label in the report. */
      name: z.string().min(1).optional(),
    })
    .strict(),
]);

const Attack = z
  .object({
    /** Column label in the report (e.g. "ExHarm"). */
    name: z.string().min(1),
    kind: z.enum(["exharm", "aoa", "benign"], { error: "must be exharm, aoa or benign" }),
    /** Attack data; AOA defaults to the shipped identity-shifting chats (or world:aoa for the organism). */
    data: Source.optional(),
    /** Use this many attack samples (the first ones). */
    count: Count.optional(),
    /** Attack recipe fields on top of the attack's defaults (learningRate, epochs, batchSize, loraRank, ...). */
    recipe: RecipeOverrides.optional(),
    /** Harmful eval prompts for this attack; default evaluation.harmful (AOA uses world:evalHarmfulAoa on the organism). */
    evalHarmful: Source.optional(),
  })
  .strict();

const Model = z.union([
  z.object({ ref: z.string().min(1, { error: "must be a model reference" }) }).strict(),
  z
    .object({
      organism: z
        .object({ seed: z.int().min(0).default(1), size: z.enum(["tiny", "small"]).default("tiny") })
        .strict()
        .prefault({}),
    })
    .strict(),
]);

export const ExperimentConfigSchema = z
  .object({
    name: z.string().min(1).default("experiment"),
    /** One full matrix per seed (curation, training and evaluation seeds derive from it). */
    seeds: z.array(z.int().min(0)).min(1).default([1]),
    model: Model,
    /** Backend that generates evaluation answers: native (our engine) or llamacpp. */
    backend: z.enum(["native", "llamacpp"]).default("llamacpp"),
    threads: z.int().min(1).optional(),
    data: z
      .object({
        /** The commonsense pool curation draws from. */
        pool: Source,
        /** The customer's benign fine-tuning data, mixed with the attack data (optional). */
        customer: Source.optional(),
        customerCount: Count.optional(),
        /** Harmful queries with refusals for the SafetyData baseline. */
        safety: Source.optional(),
      })
      .strict(),
    curation: z
      .object({
        count: Count.optional(),
        rate: Rate.optional(),
        strategy: z.enum(["stride", "random"]).default("stride"),
        /** Reviser model reference; default the defended model. */
        reviser: z.string().min(1).optional(),
        /** "exact" (the organism's judge), "none", or "helpfulness:<model ref>". */
        judge: z.string().min(1).default("exact"),
        /** The post-attack stage curates with the compromised model as scorer (the paper), or reuses the base's. */
        postScorer: z.enum(["compromised", "base"]).default("compromised"),
        /** Curation settings (rounds, beamWidth, temperatures, topPs, objective, ...): docs/CURATION.md. */
        settings: z.record(z.string(), z.unknown()).default({}),
      })
      .strict()
      .prefault({}),
    attacks: z.array(Attack).min(1),
    defences: z.array(Defence).min(1),
    training: z
      .object({
        preset: z.enum(["default", "paper"]).default("default"),
        /** Recipe fields for the defence stages (pre, post, the in-attack job's extra data). */
        recipe: RecipeOverrides.default({}),
        /** In-attack mixing: curated samples per customization sample, or an exact count. */
        mixRatio: z.number().gt(0).optional(),
        mixCount: Count.optional(),
      })
      .strict()
      .prefault({}),
    evaluation: z
      .object({
        harmful: Source,
        benign: Source.optional(),
        overRefusal: Source.optional(),
        /** Judges: "exact" (organism), "keyword", "safety:<ref>", "helpfulness:<ref>", "strongreject:<ref>", "llamaguard:<ref>". */
        judges: z.array(z.string().min(1)).min(1).default(["keyword"]),
        maxTokens: z.int().min(1).default(64),
        samplesPerPrompt: z.int().min(1).default(1),
        temperature: z.number().min(0).default(0),
        /** Prompts per set at most (the first ones). */
        limit: Count.optional(),
      })
      .strict(),
    /** Steps running at once. */
    concurrency: z.int().min(1).max(16).default(1),
  })
  .strict();

export type ExperimentConfigInput = z.input<typeof ExperimentConfigSchema>;
export type ExperimentConfig = z.output<typeof ExperimentConfigSchema>;
export type DefenceSpec = z.output<typeof Defence>;

/** A defence's normalised form: kind, drop share and report label. */
export function defenceOf(spec: DefenceSpec): { kind: DefenceKind; p?: number; name: string } {
  const d = typeof spec === "string" ? { kind: spec } : spec;
  const p =
    d.kind === "randdrop" || d.kind === "ppldrop" ? ("p" in d && d.p !== undefined ? d.p : 0.5) : undefined;
  const labels: Record<DefenceKind, string> = {
    nodef: "NoDef",
    randdrop: "RandDrop",
    ppldrop: "PPLDrop",
    uncurated: "Uncurated",
    "uncurated-post": "Uncurated (post)",
    safetydata: "SafetyData",
    pre: "Pre-attack",
    in: "In-attack",
    post: "Post-attack",
    all: "All-stage",
  };
  const name =
    ("name" in d && d.name) ||
    (p !== undefined ? `${labels[d.kind]}-${Math.round(p * 100)}%` : labels[d.kind]);
  return { kind: d.kind, p, name };
}

/** Validate a parsed config; errors name the field's path and what was expected. */
export function parseExperimentConfig(input: unknown, file = "config"): ExperimentConfig {
  const parsed = ExperimentConfigSchema.safeParse(input);
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 5).map((issue) => {
      const path = issue.path.length ? issue.path.join(".") : "(top level)";
      return `${path}: ${issue.message}`;
    });
    throw new InputError(`${file}: invalid experiment config:\n  ${lines.join("\n  ")}`, {
      hint: "see docs/EXPERIMENTS.md for every field; examples/ has complete configs",
    });
  }
  const c = parsed.data;
  if (c.curation.count !== undefined && c.curation.rate !== undefined)
    throw new InputError(`${file}: curation: give count or rate, not both`);
  if (c.training.mixRatio !== undefined && c.training.mixCount !== undefined)
    throw new InputError(`${file}: training: give mixRatio or mixCount, not both`);
  const names = new Set<string>();
  for (const a of c.attacks) {
    if (names.has(a.name)) throw new InputError(`${file}: attacks: two attacks are named "${a.name}"`);
    names.add(a.name);
  }
  const rows = new Set<string>();
  for (const d of c.defences) {
    const { name } = defenceOf(d);
    if (rows.has(name)) throw new InputError(`${file}: defences: "${name}" is listed twice`);
    rows.add(name);
  }
  return c;
}

/** Read a YAML or JSON config file. */
export function readExperimentConfig(path: string): ExperimentConfig {
  if (!existsSync(path)) throw new InputError(`no such config file: ${path}`);
  const text = readFileSync(path, "utf8");
  let value: unknown;
  try {
    value = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new InputError(
      `${path}: not valid ${/\.json$/i.test(path) ? "JSON" : "YAML"}: ${(err as Error).message}`,
    );
  }
  return parseExperimentConfig(value, path);
}
