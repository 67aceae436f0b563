// `buckle train`: LoRA fine-tuning of a GGUF model on an SFT dataset through the stages library (loss on the
// assistant's tokens only), progress on stderr, resumable checkpoints, adapters out as GGUF LoRA and PEFT.
// Also the flag plumbing `buckle defend` and `buckle attack` share: recipe flags, datasets, progress, Ctrl-C.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { readSftFile } from "../../data/sft.js";
import type { Sample } from "../../data/sample.js";
import { latestCheckpoint, LORA_TARGETS, type LoraTarget, type TrainProgress } from "../../engine/index.js";
import {
  baseHandle,
  describePlan,
  nativeTrainer,
  PRESET_NAMES,
  resolveRecipe,
  type ModelHandle,
  type RecipeField,
  type TrainOutcome,
  type TrainRecipe,
} from "../../stages/index.js";
import { InputError } from "../../util/errors.js";
import { intOption, numberOption, positiveIntOption } from "../options.js";

/** The recipe flags: field, flag, commander attribute, description, parser. */
const RECIPE_FLAGS: [RecipeField, string, string, string, ((v: string) => number) | undefined][] = [
  ["loraRank", "--lora-rank <n>", "loraRank", "LoRA rank", intOption],
  ["loraAlpha", "--lora-alpha <x>", "loraAlpha", "LoRA alpha (scale = alpha / rank)", numberOption],
  ["loraDropout", "--lora-dropout <p>", "loraDropout", "dropout on the adapters' input", numberOption],
  [
    "targets",
    "--targets <list>",
    "targets",
    `comma-separated projections, or "all" (${LORA_TARGETS.join(",")})`,
    undefined,
  ],
  ["learningRate", "--lr <x>", "lr", "peak learning rate", numberOption],
  ["epochs", "--epochs <n>", "epochs", "passes over the data", numberOption],
  ["batchSize", "--batch-size <n>", "batchSize", "sequences per micro-batch", intOption],
  ["gradAccumSteps", "--grad-accum <n>", "gradAccum", "micro-batches per optimizer step", intOption],
  ["maxSeqLen", "--max-seq-len <n>", "maxSeqLen", "longer chats are truncated (and reported)", intOption],
  ["schedule", "--schedule <name>", "schedule", "constant | cosine | linear (after warmup)", undefined],
  ["warmupSteps", "--warmup-steps <n>", "warmupSteps", "linear warmup steps", intOption],
  ["weightDecay", "--weight-decay <x>", "weightDecay", "AdamW weight decay", numberOption],
  ["maxGradNorm", "--clip <x>", "clip", "clip the global gradient norm (0 = off)", numberOption],
  ["seed", "--seed <n>", "seed", "seed of the adapter init, data order, dropout (and mixing)", intOption],
  [
    "evalEvery",
    "--eval-every <n>",
    "evalEvery",
    "evaluation interval in steps (0 = start and end only)",
    intOption,
  ],
  [
    "checkpointEvery",
    "--checkpoint-every <n>",
    "checkpointEvery",
    "checkpoint interval in steps (the last step always writes one)",
    intOption,
  ],
];

const FLAG_OF = Object.fromEntries(RECIPE_FLAGS.map(([f, flag]) => [f, flag.split(" ")[0]])) as Record<
  RecipeField,
  string
>;

/** `buckle train`'s own defaults (a general one-pass SFT); defend and attack take theirs from --preset. */
const TRAIN_DEFAULTS: Partial<Record<RecipeField, number | string>> = {
  loraRank: 16,
  loraAlpha: 32,
  loraDropout: 0.05,
  targets: "all",
  learningRate: 2e-4,
  epochs: 1,
  batchSize: 4,
  gradAccumSteps: 1,
  maxSeqLen: 512,
  schedule: "cosine",
  warmupSteps: 0,
  weightDecay: 0,
  maxGradNorm: 1,
  seed: 1,
  evalEvery: 0,
  checkpointEvery: 50,
};

export interface RecipeOptionsSpec {
  /** Commander defaults (buckle train); without them a flag left out takes the preset's value. */
  defaults?: Partial<Record<RecipeField, number | string>>;
  /** Offer --preset (default true). */
  preset?: boolean;
  /** Where unset values come from, for the help text; default "from --preset". */
  defaultNote?: string;
}

/** Add the recipe flags (and --preset) to a command. */
export function addRecipeOptions(cmd: Command, spec: RecipeOptionsSpec = {}): Command {
  const { defaults } = spec;
  if (spec.preset ?? true)
    cmd.option(
      "--preset <name>",
      `start from a named recipe: ${PRESET_NAMES.join(" | ")}` +
        (defaults ? " (replaces the defaults below)" : ` (default: "default")`),
    );
  for (const [field, flag, , description, parse] of RECIPE_FLAGS) {
    const text = defaults ? description : `${description} (default: ${spec.defaultNote ?? "from --preset"})`;
    const d = defaults?.[field];
    if (parse) cmd.option(flag, text, parse, d as number | undefined);
    else cmd.option(flag, text, d as string | undefined);
  }
  return cmd;
}

/** How a recipe field is named in errors: its flag. */
export function flagLabel(field: RecipeField): string {
  return FLAG_OF[field] ?? field;
}

/** The recipe fields the flags set. Commander defaults count only when no --preset was given. */
export function recipeOverridesFromFlags(flags: Record<string, unknown>, cmd: Command): Partial<TrainRecipe> {
  const overrides: Record<string, unknown> = {};
  for (const [field, , attr] of RECIPE_FLAGS) {
    const value = flags[attr];
    if (value === undefined) continue;
    if (flags.preset !== undefined && cmd.getOptionValueSource(attr) === "default") continue;
    overrides[field] = field === "targets" ? parseTargets(value as string) : value;
  }
  return overrides as Partial<TrainRecipe>;
}

/** The recipe the flags ask for: --preset (default "default") with every flag the user typed on top. */
export function recipeFromFlags(flags: Record<string, unknown>, cmd: Command): TrainRecipe {
  return resolveRecipe(recipeOverridesFromFlags(flags, cmd), {
    preset: (flags.preset as string | undefined) ?? "default",
    label: flagLabel,
  });
}

function parseTargets(list: string): LoraTarget[] {
  if (list.trim() === "all") return [...LORA_TARGETS];
  const names = list
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  for (const n of names) {
    if (!(LORA_TARGETS as readonly string[]).includes(n)) {
      throw new InputError(`--targets: unknown projection "${n}"`, {
        hint: `use "all" or some of ${LORA_TARGETS.join(",")}`,
      });
    }
  }
  if (names.length === 0) throw new InputError("--targets is empty");
  return [...new Set(names)] as LoraTarget[];
}

/** A training file's rows as Samples (ids "<file>:<line>", meta.line), with the file's sha256. */
export function readTrainingFile(path: string): { samples: Sample[]; sha256: string } {
  const rows = readSftFile(path);
  const samples = rows.map((r) => ({
    id: `${r.file}:${r.line}`,
    messages: r.messages,
    source: r.file,
    meta: { line: r.line, format: r.format },
  }));
  return { samples, sha256: createHash("sha256").update(readFileSync(path)).digest("hex") };
}

/** Progress lines on stderr, Ctrl-C as a clean stop after the current step. */
export function progressUi(log: (s: string) => void): {
  onProgress: (p: TrainProgress) => void;
  signal: AbortSignal;
  interrupted: () => boolean;
  done: () => void;
} {
  const controller = new AbortController();
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
    log("interrupt: stopping after the current step");
    controller.abort();
  };
  process.once("SIGINT", onSigint);
  const started = Date.now();
  let steps = 0;
  return {
    onProgress: (p) => {
      steps++;
      log(progressLine(p, (Date.now() - started) / steps / 1000));
    },
    signal: controller.signal,
    interrupted: () => interrupted,
    done: () => process.removeListener("SIGINT", onSigint),
  };
}

/** How to use a trained model, for the end of a command's output. */
export function howToOpen(handle: ModelHandle, handleFile: string): string {
  const adapter = handle.adapter ?? handle.peftDir;
  return (
    `model: ${handleFile}\n` +
    `  base ${handle.gguf}${adapter ? `\n  adapter ${adapter}` : ""}${handle.merged ? `\n  merged ${handle.merged}` : ""}\n` +
    `  open it: buckle generate --model ${handle.gguf}${adapter ? ` --adapter ${adapter}` : ""} --prompt "..."` +
    `  (library: openHandle(readHandle("${handleFile}")))`
  );
}

interface TrainFlags extends Record<string, unknown> {
  threads?: number;
  model: string;
  data: string;
  output: string;
  evalData?: string;
  resume?: boolean;
  maxSteps?: number;
  merge?: string;
  json?: boolean;
}

export function registerTrainCommand(program: Command): void {
  const cmd = program
    .command("train")
    .description("Fine-tune a LoRA adapter on a chat dataset (loss on the assistant's tokens only)")
    .requiredOption("-m, --model <file.gguf>", "the base model")
    .requiredOption(
      "-d, --data <file>",
      "training data: JSONL or JSON (OpenAI messages, prompt/response, Alpaca)",
    )
    .requiredOption("-o, --output <dir>", "where the adapter, config and checkpoints go");
  addRecipeOptions(cmd, { defaults: TRAIN_DEFAULTS })
    .option(
      "--eval-data <file>",
      "held-out data, evaluated at the start, every --eval-every steps and the end",
    )
    .option("--resume", "continue from the latest checkpoint in <dir>/checkpoints")
    .option(
      "--max-steps <n>",
      "stop after this step (the schedule still spans the whole run); --resume continues",
      positiveIntOption,
    )
    .option("--merge <out.gguf>", "also write the base model with the adapter merged in")
    .option("--json", "print a JSON summary on stdout")
    .option("--threads <n>", "CPU threads for the engine (default: all cores)", positiveIntOption)
    .addHelpText(
      "after",
      "\nExamples:\n  buckle train --model tiny.gguf --data chats.jsonl -o out --epochs 3 --lr 1e-3\n" +
        "  buckle train --model tiny.gguf --data chats.jsonl -o out --epochs 3 --lr 1e-3 --resume\n\n" +
        "Writes <dir>/adapter.gguf (llama.cpp LoRA), <dir>/peft/ (PEFT), <dir>/train-config.json, <dir>/model.json\n" +
        "(the model handle) and <dir>/checkpoints/. Progress goes to stderr; Ctrl-C stops after the current step.\n",
    )
    .action(async (flags: TrainFlags, command: Command) => {
      const log = (s: string) => process.stderr.write(s + "\n");
      const recipe = recipeFromFlags(flags, command);
      const out = resolve(flags.output);
      const checkpointDir = join(out, "checkpoints");
      if (flags.resume && !latestCheckpoint(checkpointDir)) {
        throw new InputError(`--resume: no checkpoint in ${checkpointDir}`, {
          hint: "run without --resume to start training",
        });
      }
      const data = readTrainingFile(flags.data);
      const evalData = flags.evalData ? readTrainingFile(flags.evalData) : undefined;
      const base = await baseHandle(flags.model);
      const lineOf = (id: string) => id.slice(id.lastIndexOf(":") + 1);
      const ui = progressUi(log);
      let outcome: TrainOutcome;
      try {
        outcome = await nativeTrainer.train(base, data.samples, recipe, {
          outDir: out,
          resume: flags.resume,
          evalSamples: evalData?.samples,
          maxSteps: flags.maxSteps,
          merge: flags.merge,
          threads: flags.threads,
          signal: ui.signal,
          onProgress: ui.onProgress,
          stage: "train",
          log,
          dataInfo: { path: resolve(flags.data), fileSha256: data.sha256 },
          onPlan: (plan) =>
            log(
              describePlan(plan, {
                limitName: "--max-seq-len",
                listPrefix: "lines ",
                label: lineOf,
                dataName: `training data ${flags.data}`,
                evalDataName: `eval data ${flags.evalData}`,
              }),
            ),
        });
      } finally {
        ui.done();
      }
      const { record } = outcome;
      if (!outcome.completed) {
        log(
          `${ui.interrupted() ? "interrupted" : "stopped"} at step ${record.step} of ${record.totalSteps}; ` +
            `latest checkpoint: ${latestCheckpoint(checkpointDir) ?? "none"}; continue with --resume` +
            (flags.merge ? " (--merge is written when training completes)" : ""),
        );
      }
      const merged = record.outputs.merged;
      log(
        `wrote ${join(out, "adapter.gguf")}, ${join(out, "peft")}/, ${join(out, "train-config.json")}` +
          `${merged ? `, ${merged}` : ""}`,
      );
      if (flags.json) process.stdout.write(JSON.stringify({ output: out, ...record }, null, 2) + "\n");
    });
}

export function progressLine(p: TrainProgress, secondsPerStep: number): string {
  const eta = Math.round(secondsPerStep * (p.totalSteps - p.step));
  const tps =
    p.tokensPerSecond >= 1000 ? `${(p.tokensPerSecond / 1000).toFixed(1)}k` : p.tokensPerSecond.toFixed(0);
  const evalPart = p.evalLoss === undefined ? "" : `  eval ${p.evalLoss.toFixed(4)}`;
  return (
    `step ${p.step}/${p.totalSteps}  epoch ${p.epoch + 1}  loss ${p.loss.toFixed(4)}${evalPart}  ` +
    `lr ${p.lr.toExponential(2)}  ${tps} tok/s  ETA ${formatDuration(eta)}`
  );
}

function formatDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const mm = String(m).padStart(h ? 2 : 1, "0");
  return `${h ? `${h}:` : ""}${mm}:${String(s).padStart(2, "0")}`;
}
