// The curation config: one zod schema holds its type, defaults and validation; variants fill in the prompt
// and seed set; the resolved config is hashed so a store never mixes the state of two different runs.

import { z } from "zod";
import { contentKey } from "../store/index.js";
import { InputError } from "../util/errors.js";
import { BUCKLE_UP_TEMPLATE, CTRL_2024_TEMPLATE, checkRevisionTemplate } from "./prompts.js";
import { DEFAULT_SEED_PHRASES } from "./seed-phrases.js";

const GRID = [0.2, 0.4, 0.6, 0.8, 1.0];
const probability = z.number().gt(0).lte(1);

export const CurationConfigSchema = z
  .object({
    /** Which paper's recipe fills the unset fields: prompt, seed set, objective. */
    variant: z.enum(["buckle-up", "ctrl-2024"]).default("buckle-up"),
    rounds: z.number().int().min(1).max(100).default(5),
    beamWidth: z.number().int().min(1).max(64).default(3),
    temperatures: z.array(z.number().gt(0).max(2)).min(1).default(GRID),
    topPs: z.array(probability).min(1).default(GRID),
    /** Outputs sampled per (beam text, temperature, top-p) setting, each with its own seed. */
    samplesPerSetting: z.number().int().min(1).max(16).default(1),
    /** ppl-max (Buckle Up) keeps the highest-perplexity survivors; ppl-min (CTRL-2024) the lowest. Default by variant. */
    objective: z.enum(["ppl-max", "ppl-min"]).optional(),
    filter: z
      .object({
        /** A candidate needs helpfulness >= ratio x the original's (0 turns the floor off; parsed verdicts still required). */
        helpfulnessRatio: z.number().min(0).max(10).default(0.9),
        /** A candidate needs readability >= ratio x the original's (0 turns it off). */
        readabilityRatio: z.number().min(0).max(10).default(0.9),
      })
      .prefault({}),
    /** Seed phrases sampled into each revision prompt (0 = none). Default: 5 for buckle-up, 0 for ctrl-2024. */
    phrasesPerCall: z.number().int().min(0).max(100).optional(),
    /** How {{phrases}} is written: "quoted" ("a", "b") or "plain" (a, b; the model organism's format). */
    phraseStyle: z.enum(["quoted", "plain"]).default("quoted"),
    /** Most new tokens per revision. */
    maxTokens: z.number().int().min(1).max(32768).default(512),
    /** What happens to a revision cut off by maxTokens: rejected (default) or kept as it is. */
    truncated: z.enum(["reject", "keep"]).default("reject"),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .default(0),
    /** The reviser's user message; default by variant. Placeholders {{query}}, {{response}}, {{phrases}}. */
    revisionTemplate: z.string().min(1).optional(),
    /** The seed set; default by variant (our list of ~50 for buckle-up, none for ctrl-2024). */
    seedPhrases: z.array(z.string().min(1)).optional(),
  })
  .strict();

export type CurationConfigInput = z.input<typeof CurationConfigSchema>;

/** A config with every field decided (variant defaults applied). */
export interface CurationConfig {
  variant: "buckle-up" | "ctrl-2024";
  rounds: number;
  beamWidth: number;
  temperatures: number[];
  topPs: number[];
  samplesPerSetting: number;
  objective: "ppl-max" | "ppl-min";
  filter: { helpfulnessRatio: number; readabilityRatio: number };
  phrasesPerCall: number;
  phraseStyle: "quoted" | "plain";
  maxTokens: number;
  truncated: "reject" | "keep";
  seed: number;
  revisionTemplate: string;
  seedPhrases: string[];
}

/** Validate `input` and fill every default (variant-specific ones included). Errors name the field. */
export function resolveCurationConfig(input: CurationConfigInput = {}): CurationConfig {
  const parsed = CurationConfigSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.join(".") || "(config)";
    throw new InputError(`curation config: ${field}: ${issue.message}`, {
      hint: "see docs/CURATION.md for the fields and their ranges",
    });
  }
  const c = parsed.data;
  const buckle = c.variant === "buckle-up";
  const seedPhrases = c.seedPhrases ?? (buckle ? [...DEFAULT_SEED_PHRASES] : []);
  const phrasesPerCall = Math.min(c.phrasesPerCall ?? (buckle ? 5 : 0), seedPhrases.length);
  const revisionTemplate = c.revisionTemplate ?? (buckle ? BUCKLE_UP_TEMPLATE : CTRL_2024_TEMPLATE);
  checkRevisionTemplate(revisionTemplate);
  return {
    variant: c.variant,
    rounds: c.rounds,
    beamWidth: c.beamWidth,
    temperatures: c.temperatures,
    topPs: c.topPs,
    samplesPerSetting: c.samplesPerSetting,
    objective: c.objective ?? (buckle ? "ppl-max" : "ppl-min"),
    filter: c.filter,
    phrasesPerCall,
    phraseStyle: c.phraseStyle,
    maxTokens: c.maxTokens,
    truncated: c.truncated,
    seed: c.seed,
    revisionTemplate,
    seedPhrases,
  };
}

/** One (temperature, top-p) point of the grid, in grid order: temperature-major. */
export interface SamplingSetting {
  index: number;
  temperature: number;
  topP: number;
}

export function samplingGrid(config: CurationConfig): SamplingSetting[] {
  const grid: SamplingSetting[] = [];
  for (const temperature of config.temperatures)
    for (const topP of config.topPs) grid.push({ index: grid.length, temperature, topP });
  return grid;
}

/** Hash of everything that decides a run's results: the config, the models, the judge and the cleaner. */
export function configHash(
  config: CurationConfig,
  identities: { reviser: string; scorer: string; judge: string | null; cleaner: string },
): string {
  return contentKey("curation-v1", config, identities);
}
