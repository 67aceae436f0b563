// Training recipes: one zod schema for every hyperparameter of a LoRA SFT run, the named presets (`default`,
// `paper`, and the attack defaults), and the translation to the engine's TrainConfig.

import { z } from "zod";
import { LORA_TARGETS, type LoraTarget, type TrainConfig } from "../engine/index.js";
import { InputError } from "../util/errors.js";

const SCHEDULES = ["constant", "cosine", "linear"] as const;
const TARGETS = LORA_TARGETS as unknown as [LoraTarget, ...LoraTarget[]];

const positive = z.number({ error: "must be a number" }).positive({ error: "must be positive" });
const positiveInt = z.int({ error: "must be an integer" }).positive({ error: "must be positive" });
const nonNegative = z.number({ error: "must be a number" }).min(0, { error: "must be >= 0" });
const nonNegativeInt = z.int({ error: "must be an integer" }).min(0, { error: "must be >= 0" });

/** Every setting of a LoRA SFT run with the loss on the assistant's tokens only. The optimizer is AdamW. */
export const TrainRecipeSchema = z
  .object({
    /** Peak learning rate (after warmup). */
    learningRate: positive,
    /** Passes over the training data. */
    epochs: positive,
    /** Sequences per micro-batch. */
    batchSize: positiveInt,
    /** Micro-batches per optimizer step (effective batch = batchSize x gradAccumSteps). */
    gradAccumSteps: positiveInt,
    schedule: z.enum(SCHEDULES, { error: "must be constant, cosine or linear" }),
    warmupSteps: nonNegativeInt,
    /** Decoupled (AdamW) weight decay on the LoRA factors. */
    weightDecay: nonNegative,
    /** Clip the global gradient norm to this; 0 = off. */
    maxGradNorm: nonNegative,
    loraRank: positiveInt,
    /** LoRA scale = alpha / rank. */
    loraAlpha: positive,
    loraDropout: z
      .number({ error: "must be a number" })
      .min(0, { error: "must be in [0, 1)" })
      .lt(1, { error: "must be in [0, 1)" }),
    targets: z
      .array(z.enum(TARGETS, { error: `must be some of ${LORA_TARGETS.join(",")}` }))
      .min(1, { error: "must name at least one projection" }),
    /** Longer chats keep their first maxSeqLen tokens (and are reported). */
    maxSeqLen: z.int({ error: "must be an integer" }).min(2, { error: "must be at least 2" }),
    /** Adapter init, data order and dropout all derive from this seed. */
    seed: z.int({ error: "must be an integer" }),
    /** Evaluate the held-out set every N steps (0 = at the start and the end only). */
    evalEvery: nonNegativeInt,
    /** Write a resumable checkpoint every N steps (and at the last step). */
    checkpointEvery: positiveInt,
  })
  .strict();

export type TrainRecipe = z.infer<typeof TrainRecipeSchema>;
export type RecipeField = keyof TrainRecipe;

export const PRESET_NAMES = ["default", "paper"] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

/**
 * The named recipes. docs/STAGES.md says why each value is what it is; in short:
 * - `paper`: the Buckle Up paper's fine-tuning recipe (batch 10, lr 5e-5, AdamW, 50 epochs); its schedule is
 *   not stated, so we take Hugging Face Trainer's default (linear decay, no warmup). An independent
 *   reimplementation found that 50 epochs collapse the model (over-refusal, garbled text): use it to reproduce.
 * - `default`: the same batch and optimizer, 3 epochs at lr 1e-4 with cosine decay and a short warmup: enough
 *   passes for a few hundred curated examples to move the model, few enough that it does not memorise them.
 */
/** What both presets share: batch 10, AdamW with clipping, LoRA r16 on every projection. */
const SHARED: Omit<TrainRecipe, "learningRate" | "epochs" | "schedule" | "warmupSteps"> = {
  batchSize: 10,
  gradAccumSteps: 1,
  weightDecay: 0,
  maxGradNorm: 1,
  loraRank: 16,
  loraAlpha: 32,
  loraDropout: 0.05,
  targets: [...LORA_TARGETS],
  maxSeqLen: 512,
  seed: 1,
  evalEvery: 0,
  checkpointEvery: 50,
};

export const PRESETS: Readonly<Record<PresetName, TrainRecipe>> = {
  default: { ...SHARED, learningRate: 1e-4, epochs: 3, schedule: "cosine", warmupSteps: 5 },
  paper: { ...SHARED, learningRate: 5e-5, epochs: 50, schedule: "linear", warmupSteps: 0 },
};

export interface ResolveRecipeOptions {
  /** The preset the overrides apply to; default "default". */
  preset?: string;
  /** How a field is named in error messages (the CLI passes its flag names); default the field name. */
  label?: (field: RecipeField) => string;
}

/** A preset with `overrides` on top, validated; errors name the field (or flag), its value and the rule. */
export function resolveRecipe(
  overrides: Partial<TrainRecipe> = {},
  options: ResolveRecipeOptions = {},
): TrainRecipe {
  const presetName = options.preset ?? "default";
  if (!(PRESET_NAMES as readonly string[]).includes(presetName)) {
    throw new InputError(`unknown preset "${presetName}"`, { hint: `use one of ${PRESET_NAMES.join(", ")}` });
  }
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return parseRecipe({ ...PRESETS[presetName as PresetName], ...defined }, options.label);
}

/** Validate a whole recipe (e.g. one read back from a record). */
export function parseRecipe(input: unknown, label: (field: RecipeField) => string = (f) => f): TrainRecipe {
  const parsed = TrainRecipeSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = String(issue.path[0] ?? "");
  if (issue.code === "unrecognized_keys") {
    throw new InputError(`unknown recipe field(s) ${issue.keys.join(", ")}`, {
      hint: `recipe fields are ${Object.keys(TrainRecipeSchema.shape).join(", ")}`,
    });
  }
  const value = (input as Record<string, unknown>)?.[field];
  const shown = issue.path.length > 1 && Array.isArray(value) ? value[issue.path[1] as number] : value;
  throw new InputError(
    `${label(field as RecipeField)} ${issue.message}, got ${JSON.stringify(shown) ?? String(shown)}`,
  );
}

/** The engine's TrainConfig for a recipe (checkpoints go to checkpointDir). */
export function trainConfigOf(recipe: TrainRecipe, checkpointDir?: string): TrainConfig {
  return {
    seed: recipe.seed,
    lora: {
      rank: recipe.loraRank,
      alpha: recipe.loraAlpha,
      dropout: recipe.loraDropout,
      targets: [...recipe.targets],
    },
    learningRate: recipe.learningRate,
    schedule: recipe.schedule,
    warmupSteps: recipe.warmupSteps,
    weightDecay: recipe.weightDecay,
    maxGradNorm: recipe.maxGradNorm,
    batchSize: recipe.batchSize,
    gradAccumSteps: recipe.gradAccumSteps,
    epochs: recipe.epochs,
    evalEvery: recipe.evalEvery,
    checkpointEvery: recipe.checkpointEvery,
    checkpointDir,
  };
}

/** Optimizer steps a recipe takes on `examples` training examples. */
export function stepsFor(recipe: TrainRecipe, examples: number): number {
  return Math.ceil((recipe.epochs * examples) / (recipe.batchSize * recipe.gradAccumSteps));
}
