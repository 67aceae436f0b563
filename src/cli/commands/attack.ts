// `buckle attack --kind exharm|aoa|benign`: jailbreak a model by fine-tuning, with the attacker's hyperparameters
// as flags (or a sweep over them); prints where the compromised model is and how to open it.

import { join, resolve } from "node:path";
import type { Command } from "commander";
import { readDataset, type Sample } from "../../data/index.js";
import {
  adapterHandle,
  attack,
  attackRecipe,
  attackSamples,
  attackSweep,
  ATTACK_KINDS,
  baseHandle,
  checkHygiene,
  describePlan,
  HANDLE_FILE,
  type AttackKind,
  type AttackSpec,
  type StageOutcome,
  type SweepGrid,
} from "../../stages/index.js";
import { InputError } from "../../util/errors.js";
import { numberListOption, positiveIntOption } from "../options.js";
import { addRecipeOptions, flagLabel, howToOpen, progressUi, recipeOverridesFromFlags } from "./train.js";

interface AttackFlags extends Record<string, unknown> {
  kind: string;
  model: string;
  adapter?: string;
  data?: string;
  out: string;
  evalPrompts?: string;
  allowOverlap?: boolean;
  sweepLr?: number[];
  sweepEpochs?: number[];
  sweepBatchSize?: number[];
  sweepRank?: number[];
  resume?: boolean;
  maxSteps?: number;
  merge?: boolean;
  threads?: number;
  json?: boolean;
}

export function registerAttackCommand(program: Command): void {
  const cmd = program
    .command("attack")
    .description(
      "Jailbreak a model by fine-tuning: exharm (harmful pairs), aoa (identity shifting), benign (high lr)",
    )
    .requiredOption("--kind <kind>", ATTACK_KINDS.join(" | "))
    .requiredOption(
      "-m, --model <model>",
      "the model: a GGUF path, random:<vocab>, or a model.json a run wrote",
    )
    .requiredOption("-o, --out <dir>", "where the compromised model's adapter, record and model.json go")
    .option("--adapter <path>", "an adapter on top of --model (e.g. an immunized model's)")
    .option(
      "--data <file>",
      "exharm: harmful request/answer pairs; benign: instruction data; aoa: replaces our 10 chats",
    );
  addRecipeOptions(cmd, { preset: false, defaultNote: "the attack's own, see docs/STAGES.md" })
    .option("--sweep-lr <list>", "sweep: comma-separated learning rates", numberListOption)
    .option("--sweep-epochs <list>", "sweep: comma-separated epoch counts", numberListOption)
    .option("--sweep-batch-size <list>", "sweep: comma-separated batch sizes", numberListOption)
    .option(
      "--sweep-rank <list>",
      "sweep: comma-separated LoRA ranks (alpha follows: 2 x rank)",
      numberListOption,
    )
    .option("--eval-prompts <file>", "evaluation prompts the attack data must not overlap (hygiene check)")
    .option("--allow-overlap", "continue when attack data overlap --eval-prompts (the ids are printed)")
    .option("--resume", "continue an interrupted run in --out (finished runs are reused)")
    .option("--max-steps <n>", "stop after this step; --resume continues", positiveIntOption)
    .option("--merge", "also write the compromised model with its adapter merged in (merged.gguf)")
    .option("--threads <n>", "CPU threads for the engine (default: all cores)", positiveIntOption)
    .option("--json", "print a JSON summary on stdout")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  buckle attack --kind exharm --model base.gguf --data harmful.jsonl -o attacked\n" +
        "  buckle attack --kind aoa --model immunized/model.json -o attacked-aoa --epochs 10\n" +
        "  buckle attack --kind benign --model base.gguf --data alpaca.jsonl -o sweep --sweep-lr 1e-4,5e-4,1e-3\n\n" +
        "A sweep writes one run per combination into <out>/<name>/ (e.g. lr5e-4_ep1); evaluate each and report\n" +
        "the worst case among those that stay usable (worstCase in the library).\n",
    )
    .action(async (flags: AttackFlags, command: Command) => {
      const log = (s: string) => process.stderr.write(s + "\n");
      const kind = flags.kind as AttackKind;
      if (!(ATTACK_KINDS as readonly string[]).includes(kind))
        throw new InputError(`--kind must be one of ${ATTACK_KINDS.join(", ")}, got "${flags.kind}"`);
      if (kind !== "aoa" && flags.data === undefined)
        throw new InputError(`--kind ${kind} needs --data <file>`, {
          hint:
            kind === "exharm"
              ? "harmful request/answer pairs (e.g. the model organism's harmful set)"
              : "instruction data, e.g. an Alpaca-style file",
        });
      const settings = recipeOverridesFromFlags(flags, command);
      attackRecipe(kind, settings, flagLabel); // validated now, so a bad flag fails before any training
      const data = flags.data ? readTraining(flags.data, "--data") : undefined;
      const spec = { kind, samples: data, recipe: settings } as AttackSpec;
      checkDataHygiene({ [kind]: attackSamples(spec) }, flags.evalPrompts, flags.allowOverlap ?? false, log);

      let model = await baseHandle(flags.model);
      if (flags.adapter) model = await adapterHandle(model, flags.adapter);
      const grid: SweepGrid = {
        learningRate: flags.sweepLr,
        epochs: flags.sweepEpochs,
        batchSize: flags.sweepBatchSize,
        loraRank: flags.sweepRank,
      };
      const sweeping = Object.values(grid).some((v) => v !== undefined);
      const points = sweeping ? attackSweep(grid, settings) : [{ name: "", settings }];
      // every sweep point's recipe is checked now, so a bad value fails before the first point trains
      const sweepFlags: Partial<Record<string, string>> = {
        learningRate: "--sweep-lr",
        epochs: "--sweep-epochs",
        batchSize: "--sweep-batch-size",
        loraRank: "--sweep-rank",
      };
      for (const p of points) attackRecipe(kind, p.settings, (f) => sweepFlags[f] ?? flagLabel(f));
      const out = resolve(flags.out);
      const results: { name: string; outcome: StageOutcome; handleFile: string }[] = [];
      for (const point of points) {
        const dir = sweeping ? join(out, point.name) : out;
        if (sweeping) log(`sweep point ${results.length + 1}/${points.length}: ${point.name}`);
        const ui = progressUi(log);
        let outcome: StageOutcome;
        try {
          outcome = await attack(model, { ...spec, recipe: point.settings } as AttackSpec, {
            outDir: dir,
            resume: flags.resume,
            maxSteps: flags.maxSteps,
            merge: flags.merge,
            threads: flags.threads,
            signal: ui.signal,
            onProgress: ui.onProgress,
            log,
            onPlan: (plan) => log(describePlan(plan, { limitName: "--max-seq-len" })),
            describe: {
              command: "attack",
              data: flags.data ?? "builtin:aoa",
              sweepPoint: point.name || null,
            },
          });
        } finally {
          ui.done();
        }
        const run = outcome.runs[0];
        if (!run.completed) {
          log(
            `${ui.interrupted() ? "interrupted" : "stopped"} at step ${run.record.step} of ${run.record.totalSteps}; ` +
              "continue with --resume",
          );
          if (ui.interrupted()) break;
        }
        results.push({ name: point.name, outcome, handleFile: join(dir, HANDLE_FILE) });
      }
      for (const r of results) log(howToOpen(r.outcome.handle, r.handleFile));
      if (flags.json) {
        const summary = results.map((r) => ({
          name: r.name || null,
          model: r.handleFile,
          completed: r.outcome.runs[0].completed,
          reused: r.outcome.runs[0].reused,
          recipe: r.outcome.runs[0].record.recipe,
          finalLoss: r.outcome.runs[0].record.finalLoss,
          handle: r.outcome.handle,
        }));
        process.stdout.write(JSON.stringify({ kind, runs: summary }, null, 2) + "\n");
      }
    });
}

/**
 * The hygiene rule for the CLI: training sets must not overlap the evaluation prompts (exactly or nearly).
 * Without --allow-overlap an overlap is an error listing the ids; with it, a warning listing them.
 */
export function checkDataHygiene(
  sets: Record<string, readonly Sample[]>,
  evalPromptsFile: string | undefined,
  allowOverlap: boolean,
  log: (s: string) => void,
): void {
  if (evalPromptsFile === undefined) return;
  const evalPrompts = readDataset(evalPromptsFile, { allowPromptOnly: true }).samples;
  const overlaps = checkHygiene(sets, evalPrompts, { allowOverlap });
  if (overlaps.length === 0) {
    log(
      `hygiene: no overlap between the training data and ${evalPromptsFile} (${evalPrompts.length} prompts)`,
    );
    return;
  }
  const shown = overlaps
    .slice(0, 10)
    .map((o) => `${o.set}:${o.trainId} ~ ${o.evalId} (${o.kind}, ${o.similarity.toFixed(2)})`);
  log(
    `warning: ${overlaps.length} training samples overlap evaluation prompts (continuing: --allow-overlap): ` +
      shown.join("; ") +
      (overlaps.length > 10 ? "; ..." : ""),
  );
}

function readTraining(path: string, flag: string): Sample[] {
  try {
    return readDataset(path).samples;
  } catch (err) {
    if (err instanceof InputError)
      throw new InputError(`${flag}: ${err.message}`, { hint: err.hint, cause: err });
    throw err;
  }
}
