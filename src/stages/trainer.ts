// The Trainer interface (base handle + samples + recipe -> trained handle) and its native-engine implementation:
// LoRA SFT with response-only loss, resumable checkpoints, eval loss, GGUF LoRA + PEFT out, optional merge.

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import type { Sample } from "../data/sample.js";
import { mergeLoraIntoGGUF, writeGGUFLora, writePeftAdapter } from "../engine/adapters/index.js";
import {
  ensureFastKernels,
  kernelChoice,
  type KernelChoice,
  latestCheckpoint,
  loadModelWeights,
  train as engineTrain,
  type TrainConfig,
  type TrainProgress,
  type TrainResult,
} from "../engine/index.js";
import { loadTokenizerAndTemplate } from "../formats/load.js";
import { BuckleError, InputError } from "../util/errors.js";
import { writeFileAtomic } from "../util/fs.js";
import { packageVersion } from "../util/version.js";
import { foldedGGUF, HANDLE_FILE, writeHandle, type ModelHandle } from "./handle.js";
import { parseRecipe, stepsFor, trainConfigOf, type TrainRecipe } from "./recipe.js";
import { samplesHash, tokenizeSamples, type TokenizedSamples } from "./tokenize.js";

/** The JSON record written next to every adapter. */
export const RECORD_FILE = "train-config.json";

export interface TrainRun {
  /** Where the adapter, its record, the handle and the checkpoints go. */
  outDir: string;
  onProgress?: (p: TrainProgress) => void;
  /** Notes for a person (truncation warnings, the plan); default: none. */
  log?: (line: string) => void;
  /** Stop after the current step; the run is then resumable. */
  signal?: AbortSignal;
  /**
   * Continue an earlier run in outDir: a completed run with the same recipe and data is returned as is, a
   * stopped one continues from its latest checkpoint, and an empty outDir starts fresh.
   */
  resume?: boolean;
  /** Held-out samples whose loss is reported at the start, every recipe.evalEvery steps and at the end. */
  evalSamples?: readonly Sample[];
  /** Stop after this step (the schedule still spans the whole run); resume continues. */
  maxSteps?: number;
  /** Also write the base with the adapter merged in: true = <outDir>/merged.gguf, or a path. */
  merge?: boolean | string;
  /** Engine threads (default: all cores). */
  threads?: number;
  /** What made this model ("pre", "attack:aoa", ...), recorded in the handle. */
  stage?: string;
  /** Extra facts recorded under "run" (stage inputs, mixing counts, source files). */
  describe?: Record<string, unknown>;
  /** Extra facts recorded under "data" (e.g. the source file and its sha256). */
  dataInfo?: Record<string, unknown>;
  /** Called once the data are tokenized, before the first step; default: a summary through `log`. */
  onPlan?: (plan: TrainPlan) => void;
}

/** What a run is about to do, for progress displays. */
export interface TrainPlan {
  /** The GGUF being trained (after folding in any earlier adapter). */
  gguf: string;
  arch: string;
  template: string;
  data: TokenizedSamples;
  evalData?: TokenizedSamples;
  rows: number;
  maxSeqLen: number;
  totalSteps: number;
  /** Sequences per optimizer step. */
  perStep: number;
  /** The checkpoint the run continues from. */
  resumeFrom?: string;
}

export interface TrainOutcome {
  handle: ModelHandle;
  /** The JSON record written to <outDir>/train-config.json. */
  record: TrainRecord;
  completed: boolean;
  /** True when a completed earlier run was reused (resume) instead of training again. */
  reused: boolean;
  tokenized?: TokenizedSamples;
}

export interface Trainer {
  readonly name: string;
  train(
    base: ModelHandle,
    samples: readonly Sample[],
    recipe: TrainRecipe,
    run: TrainRun,
  ): Promise<TrainOutcome>;
}

export interface TrainRecord {
  buckle: string;
  node: string;
  trainer: string;
  /** The engine's kernel set (and BLAS library, or why none) this training ran on. */
  kernels?: KernelChoice;
  stage: string | null;
  completed: boolean;
  step: number;
  totalSteps: number;
  model: { ref: string; path: string; arch: string; vocabSize: number; foldedFrom: ModelHandle | null };
  template: string;
  recipe: TrainRecipe;
  data: Record<string, unknown> & { sha256: string; examples: number };
  evalData: Record<string, unknown> | null;
  maxSeqLen: number;
  config: TrainConfig;
  seeds: { train: number; note: string };
  finalLoss: number | null;
  evals: { step: number; loss: number }[];
  history: TrainProgress[];
  outputs: { adapter: string; peft: string; checkpoint: string | null; merged: string | null };
  run: Record<string, unknown> | null;
}

/** Our own engine: trains on CPU (or wherever its kernels run); fine for small models and the model organism. */
export const nativeTrainer: Trainer = {
  name: "native",
  train: trainNative,
};

async function trainNative(
  base: ModelHandle,
  samples: readonly Sample[],
  recipeIn: TrainRecipe,
  run: TrainRun,
): Promise<TrainOutcome> {
  const recipe = parseRecipe(recipeIn);
  const log = run.log ?? (() => {});
  if (run.maxSteps !== undefined && !(run.maxSteps >= 1))
    throw new InputError(`maxSteps must be at least 1, got ${run.maxSteps}`);
  if (samples.length === 0) throw new InputError("no training samples");
  const out = resolve(run.outDir);
  const checkpointDir = join(out, "checkpoints");
  const dataSha = samplesHash(samples);

  if (run.resume) {
    const reused = completedRun(out, recipe, dataSha);
    if (reused) {
      log(`${out}: reusing the completed run (same recipe and data)`);
      return reused;
    }
  } else if (latestCheckpoint(checkpointDir)) {
    throw new InputError(`${checkpointDir} already holds checkpoints of an earlier run`, {
      hint: "pass --resume (resume: true) to continue that run, or choose another output directory",
    });
  }
  const resumeFrom = run.resume ? latestCheckpoint(checkpointDir) : undefined;
  mkdirSync(out, { recursive: true });

  // A model that already carries an adapter is folded into a new GGUF first: the new LoRA stacks on top.
  const gguf = foldedGGUF(base, join(out, "base-merged.gguf"));
  await ensureFastKernels(run.threads);
  const model = loadModelWeights(gguf);
  const { tokenizer, template } = loadTokenizerAndTemplate(gguf);
  const spec = model.spec;
  let maxLen = recipe.maxSeqLen;
  if (maxLen > spec.contextLength) {
    log(
      `note: maxSeqLen ${maxLen} is above the model's context ${spec.contextLength}; using ${spec.contextLength}`,
    );
    maxLen = spec.contextLength;
  }
  const data = tokenizeSamples(samples, tokenizer, template, maxLen);
  if (data.examples.length === 0)
    throw new InputError(`no training sample has assistant tokens within maxSeqLen ${maxLen}`);
  const evalData = run.evalSamples?.length
    ? tokenizeSamples(run.evalSamples, tokenizer, template, maxLen)
    : undefined;
  const config = trainConfigOf(recipe, checkpointDir);
  const plan: TrainPlan = {
    gguf,
    arch: spec.arch,
    template: template.name,
    data,
    evalData,
    rows: samples.length,
    maxSeqLen: maxLen,
    totalSteps: stepsFor(recipe, data.examples.length),
    perStep: recipe.batchSize * recipe.gradAccumSteps,
    resumeFrom,
  };
  (run.onPlan ?? ((p: TrainPlan) => log(describePlan(p))))(plan);
  mkdirSync(checkpointDir, { recursive: true });

  const controller = new AbortController();
  const onAbort = () => controller.abort();
  run.signal?.addEventListener("abort", onAbort, { once: true });
  if (run.signal?.aborted) controller.abort();
  let result: TrainResult;
  try {
    result = await engineTrain(model, data.examples, config, {
      evalSet: evalData?.examples,
      resumeFrom,
      signal: controller.signal,
      onProgress: (p) => {
        run.onProgress?.(p);
        if (run.maxSteps !== undefined && p.step >= run.maxSteps) controller.abort();
      },
    });
  } finally {
    run.signal?.removeEventListener("abort", onAbort);
  }
  const lora = result.lora;
  if (!lora) throw new BuckleError("training returned no adapter");

  const adapterPath = join(out, "adapter.gguf");
  const peftDir = join(out, "peft");
  writeGGUFLora(adapterPath, lora, spec, { baseName: basename(gguf).replace(/\.gguf$/i, "") });
  writePeftAdapter(peftDir, lora, { baseModel: gguf, spec });
  const completed = result.step >= result.totalSteps;
  let merged: string | undefined;
  if (run.merge && completed) {
    const target = typeof run.merge === "string" ? run.merge : join(out, "merged.gguf");
    merged = mergeLoraIntoGGUF(gguf, lora, target).path;
  }
  const lastCheckpoint = latestCheckpoint(checkpointDir);
  const last = result.history[result.history.length - 1];
  const record: TrainRecord = {
    buckle: packageVersion(),
    node: process.version,
    trainer: "native",
    kernels: kernelChoice(),
    stage: run.stage ?? null,
    completed,
    step: result.step,
    totalSteps: result.totalSteps,
    model: {
      ref: base.ref,
      path: gguf,
      arch: spec.arch,
      vocabSize: spec.vocabSize,
      foldedFrom: gguf === base.gguf ? null : base,
    },
    template: template.name,
    recipe,
    data: { ...run.dataInfo, ...datasetRecord(samples.length, dataSha, data) },
    evalData:
      evalData && run.evalSamples
        ? datasetRecord(run.evalSamples.length, samplesHash(run.evalSamples), evalData)
        : null,
    maxSeqLen: maxLen,
    config: { ...config, checkpointDir: "checkpoints" },
    seeds: { train: config.seed, note: "adapter init, data order and dropout all derive from this seed" },
    finalLoss: last?.loss ?? null,
    evals: result.evals,
    history: result.history,
    outputs: {
      adapter: "adapter.gguf",
      peft: "peft",
      checkpoint: lastCheckpoint ? join("checkpoints", basename(lastCheckpoint)) : null,
      merged: merged ?? null,
    },
    run: run.describe ?? null,
  };
  writeFileAtomic(join(out, RECORD_FILE), JSON.stringify(record, null, 2) + "\n");
  const handle: ModelHandle = {
    ref: gguf,
    gguf,
    adapter: adapterPath,
    peftDir,
    ...(merged ? { merged } : {}),
    stage: run.stage ?? "train",
    record: join(out, RECORD_FILE),
    completed,
    parent: base,
  };
  writeHandle(join(out, HANDLE_FILE), handle);
  return { handle, record, completed, reused: false, tokenized: data };
}

/** The outcome of a completed run in `out` trained with this recipe on these data, if there is one. */
function completedRun(out: string, recipe: TrainRecipe, dataSha: string): TrainOutcome | undefined {
  const recordPath = join(out, RECORD_FILE);
  const handlePath = join(out, HANDLE_FILE);
  if (!existsSync(recordPath) || !existsSync(handlePath)) return undefined;
  const record = JSON.parse(readFileSync(recordPath, "utf8")) as TrainRecord;
  if (!record.completed) return undefined;
  if (JSON.stringify(record.recipe) !== JSON.stringify(recipe) || record.data?.sha256 !== dataSha) {
    throw new InputError(`${out} holds a completed run with a different recipe or different data`, {
      hint: "choose another output directory, or remove the old run",
    });
  }
  const handle = JSON.parse(readFileSync(handlePath, "utf8")) as ModelHandle;
  return { handle, record, completed: true, reused: true };
}

function datasetRecord(rows: number, sha256: string, d: TokenizedSamples): TrainRecord["data"] {
  return {
    sha256,
    rows,
    examples: d.examples.length,
    tokens: d.tokens,
    targetTokens: d.targets,
    truncated: d.truncated.length,
    dropped: d.dropped.length,
  };
}

export interface DescribePlanOptions {
  /** Name of the length limit in the warning; default "maxSeqLen". */
  limitName?: string;
  /** How a sample is named in the truncation list; default its id. */
  label?: (id: string) => string;
  /** Text before the list of truncated samples (e.g. "lines "); default "". */
  listPrefix?: string;
  /** How the two data sets are named; default "training data" and "eval data". */
  dataName?: string;
  evalDataName?: string;
}

/** A summary of a plan: what is trained on what, and which chats were cut at the length limit. */
export function describePlan(p: TrainPlan, options: DescribePlanOptions = {}): string {
  const label = options.label ?? ((id: string) => id);
  const lines = [
    `training ${basename(p.gguf)} (${p.arch}, template ${p.template}) on ${p.data.examples.length} chats ` +
      `(${p.data.tokens} tokens, ${p.data.targets} trained): ${p.totalSteps} steps of ${p.perStep} sequences` +
      (p.resumeFrom ? `, resuming from ${basename(p.resumeFrom)}` : ""),
  ];
  const cut = (what: string, d: TokenizedSamples | undefined) => {
    if (!d || d.truncated.length === 0) return;
    const rows = d.examples.length + d.dropped.length;
    const items = d.truncated.slice(0, 5).map((t) => `${label(t.id)} (${t.tokens} tokens)`);
    lines.push(
      `warning: ${what}: ${d.truncated.length} of ${rows} chats are longer than ${options.limitName ?? "maxSeqLen"} ` +
        `${p.maxSeqLen} and were truncated (${options.listPrefix ?? ""}${items.join(", ")}` +
        `${d.truncated.length > 5 ? ", ..." : ""})` +
        (d.dropped.length ? `; ${d.dropped.length} had no assistant token left and were dropped` : ""),
    );
  };
  cut(options.dataName ?? "training data", p.data);
  cut(options.evalDataName ?? "eval data", p.evalData);
  return lines.join("\n");
}
