// `buckle defend --stage pre|in|post|all`: fine-tune with curated data at one customization stage (or all three)
// through the stages library; prints where the resulting model is and how to open it.

import { dirname, join, resolve } from "node:path";
import type { Command } from "commander";
import { readDataset, type Sample } from "../../data/index.js";
import {
  adapterHandle,
  allStage,
  baseHandle,
  describePlan,
  HANDLE_FILE,
  immunize,
  mixIn,
  restore,
  type StageOutcome,
  type StageRun,
} from "../../stages/index.js";
import { InputError } from "../../util/errors.js";
import { intOption, numberOption, positiveIntOption } from "../options.js";
import { addRecipeOptions, howToOpen, progressUi, recipeFromFlags } from "./train.js";
import { checkDataHygiene } from "./attack.js";

const STAGES = ["pre", "in", "post", "all"] as const;
type Stage = (typeof STAGES)[number];

interface DefendFlags extends Record<string, unknown> {
  stage: string;
  model: string;
  adapter?: string;
  curated: string;
  customer?: string;
  harmful?: string;
  mixRatio?: number;
  mixCount?: number;
  out: string;
  evalData?: string;
  evalPrompts?: string;
  allowOverlap?: boolean;
  resume?: boolean;
  maxSteps?: number;
  merge?: boolean;
  threads?: number;
  json?: boolean;
}

export function registerDefendCommand(program: Command): void {
  const cmd = program
    .command("defend")
    .description(
      "Fine-tune with curated data at a customization stage: pre (immunize), in (mix into the job), post (restore), or all",
    )
    .requiredOption("--stage <stage>", "pre | in | post | all")
    .requiredOption(
      "-m, --model <model>",
      "the model: a GGUF path, random:<vocab>, or a model.json a run wrote",
    )
    .requiredOption("--curated <file>", "the curated samples (any dataset format with responses)")
    .requiredOption("-o, --out <dir>", "where the adapters, records and model.json go")
    .option("--adapter <path>", "an adapter on top of --model (the compromised model of the post stage)")
    .option("--customer <file>", "in/all: the customer's fine-tuning data")
    .option("--harmful <file>", "in/all: harmful data hidden in the job")
    .option(
      "--mix-ratio <x>",
      "in/all: curated samples per customer+harmful sample (round half up); default the whole curated set",
      numberOption,
    )
    .option("--mix-count <n>", "in/all: exactly this many curated samples", intOption);
  addRecipeOptions(cmd)
    .option("--eval-data <file>", "held-out chats whose loss is reported during training")
    .option("--eval-prompts <file>", "evaluation prompts the training data must not overlap (hygiene check)")
    .option("--allow-overlap", "continue when training data overlap --eval-prompts (the ids are printed)")
    .option("--resume", "continue an interrupted run in --out (finished stages are reused)")
    .option("--max-steps <n>", "stop each stage after this step; --resume continues", positiveIntOption)
    .option("--merge", "also write the final model with its adapter merged in (merged.gguf)")
    .option("--threads <n>", "CPU threads for the engine (default: all cores)", positiveIntOption)
    .option("--json", "print a JSON summary on stdout")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  buckle defend --stage pre --model base.gguf --curated curated.jsonl -o immunized\n" +
        "  buckle defend --stage in --model immunized/model.json --curated curated.jsonl \\\n" +
        "      --customer job.jsonl --harmful harmful.jsonl --mix-ratio 1 -o customized\n" +
        "  buckle defend --stage post --model base.gguf --adapter attacked/adapter.gguf --curated curated.jsonl -o restored\n" +
        "  buckle defend --stage all --model base.gguf --curated curated.jsonl --harmful harmful.jsonl -o all --preset paper\n\n" +
        "docs/STAGES.md has each stage's recipe, the mixing rule and the presets.\n",
    )
    .action(async (flags: DefendFlags, command: Command) => {
      const log = (s: string) => process.stderr.write(s + "\n");
      const stage = flags.stage as Stage;
      if (!(STAGES as readonly string[]).includes(stage))
        throw new InputError(`--stage must be one of ${STAGES.join(", ")}, got "${flags.stage}"`);
      const mixes = stage === "in" || stage === "all";
      if (!mixes) {
        for (const f of ["customer", "harmful", "mixRatio", "mixCount"] as const)
          if (flags[f] !== undefined)
            throw new InputError(`--${kebab(f)} is for --stage in or all, not ${stage}`);
      } else if (flags.customer === undefined && flags.harmful === undefined) {
        throw new InputError(`--stage ${stage} needs the customization data: --customer and/or --harmful`);
      }
      if (flags.mixRatio !== undefined && flags.mixCount !== undefined)
        throw new InputError("give --mix-ratio or --mix-count, not both");
      const recipe = recipeFromFlags(flags, command);

      const curated = trainingSet(flags.curated, "--curated");
      const customer = flags.customer ? trainingSet(flags.customer, "--customer") : undefined;
      const harmful = flags.harmful ? trainingSet(flags.harmful, "--harmful") : undefined;
      const sets: Record<string, readonly Sample[]> = { curated };
      if (customer) sets.customer = customer;
      if (harmful) sets.harmful = harmful;
      checkDataHygiene(sets, flags.evalPrompts, flags.allowOverlap ?? false, log);

      let model = await baseHandle(flags.model);
      if (flags.adapter) model = await adapterHandle(model, flags.adapter);
      if (stage === "post" && !model.adapter && !model.peftDir)
        log(
          "note: --stage post on a model without an adapter: training it as it is (a merged compromised model?)",
        );
      const out = resolve(flags.out);
      const ui = progressUi(log);
      const run: StageRun = {
        outDir: out,
        resume: flags.resume,
        maxSteps: flags.maxSteps,
        merge: flags.merge,
        threads: flags.threads,
        evalSamples: flags.evalData ? trainingSet(flags.evalData, "--eval-data") : undefined,
        signal: ui.signal,
        onProgress: ui.onProgress,
        log,
        onPlan: (plan) => log(describePlan(plan, { limitName: "--max-seq-len" })),
        describe: {
          command: "defend",
          files: { curated: flags.curated, customer: flags.customer ?? null, harmful: flags.harmful ?? null },
        },
      };
      const data = { curated, customer, harmful, ratio: flags.mixRatio, count: flags.mixCount };
      let outcome: StageOutcome;
      try {
        if (stage === "pre") outcome = await immunize(model, curated, recipe, run);
        else if (stage === "in") outcome = await mixIn(model, data, recipe, run);
        else if (stage === "post") outcome = await restore(model, curated, recipe, run);
        else outcome = await allStage(model, data, recipe, run);
      } finally {
        ui.done();
      }
      if (outcome.mix) {
        const c = outcome.mix.counts;
        log(
          `mixture: ${c.customer} customer + ${c.harmful} harmful + ${c.curated} curated (${outcome.mix.rule})`,
        );
      }
      const finished = outcome.runs.every((r) => r.completed);
      const handleFile =
        stage === "all" && finished
          ? join(out, HANDLE_FILE)
          : join(outcome.handle.record ? dirname(outcome.handle.record) : out, HANDLE_FILE);
      if (!finished) {
        const last = outcome.runs[outcome.runs.length - 1].record;
        log(
          `${ui.interrupted() ? "interrupted" : "stopped"} at step ${last.step} of ${last.totalSteps}` +
            `${stage === "all" ? ` (stage ${last.stage})` : ""}; continue with --resume`,
        );
      }
      log(howToOpen(outcome.handle, handleFile));
      if (flags.json) {
        process.stdout.write(
          JSON.stringify(
            {
              stage,
              completed: finished,
              model: handleFile,
              handle: outcome.handle,
              mix: outcome.mix
                ? { counts: outcome.mix.counts, rule: outcome.mix.rule, seed: outcome.mix.seed }
                : null,
              runs: outcome.runs.map((r) => ({
                stage: r.record.stage,
                reused: r.reused,
                completed: r.completed,
                step: r.record.step,
                totalSteps: r.record.totalSteps,
                finalLoss: r.record.finalLoss,
                record: r.handle.record,
              })),
            },
            null,
            2,
          ) + "\n",
        );
      }
    });
}

/** A dataset file that must have responses; the flag names it in errors. */
function trainingSet(path: string, flag: string): Sample[] {
  try {
    return readDataset(path).samples;
  } catch (err) {
    if (err instanceof InputError)
      throw new InputError(`${flag}: ${err.message}`, { hint: err.hint, cause: err });
    throw err;
  }
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
