// Fine-tuning a world model on a list of Samples with buckle's engine (the ExHarm/AOA attacks and the
// defences use this), merged into a new GGUF that every backend, llama.cpp included, loads as a plain model.

import { join } from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import type { Sample } from "../data/sample.js";
import {
  ensureFastKernels,
  loadModelWeights,
  train,
  type LoraConfig,
  type TrainProgress,
} from "../engine/index.js";
import { mergeLoraIntoGGUF } from "../engine/adapters/index.js";
import { loadTokenizerAndTemplate } from "../formats/load.js";
import { InputError } from "../util/errors.js";
import { trainExamples, writeWeightsLike } from "./organism.js";

export interface WorldFineTuneOptions {
  seed: number;
  learningRate: number;
  epochs: number;
  batchSize?: number;
  /** LoRA settings; omit for full fine-tuning. */
  lora?: LoraConfig;
  onProgress?: (p: TrainProgress) => void;
  /** Engine threads when the kernels are not started yet (default 1, as for buildOrganism). */
  threads?: number;
}

/** The LoRA most fine-tuning services would use on a tiny model: rank 8 on every projection. */
export const WORLD_ATTACK_LORA: LoraConfig = {
  rank: 8,
  alpha: 16,
  dropout: 0,
  targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
};

export interface WorldFineTuneResult {
  modelPath: string;
  seconds: number;
  finalLoss: number;
}

/** Fine-tune `basePath` on `samples` and write the merged model to `outPath` (atomically). */
export async function fineTuneWorldModel(
  basePath: string,
  samples: readonly Sample[],
  outPath: string,
  options: WorldFineTuneOptions,
): Promise<WorldFineTuneResult> {
  if (samples.length === 0) throw new InputError("fine-tuning needs at least one sample");
  await ensureFastKernels(options.threads ?? 1);
  const started = Date.now();
  const { tokenizer, template } = loadTokenizerAndTemplate(basePath);
  const model = loadModelWeights(basePath, { keep: "f32" });
  const data = trainExamples(samples, tokenizer, template);
  const result = await train(
    model,
    data,
    {
      seed: options.seed,
      lora: options.lora,
      fullFineTune: options.lora === undefined,
      learningRate: options.learningRate,
      schedule: "constant",
      batchSize: options.batchSize ?? 8,
      epochs: options.epochs,
    },
    { onProgress: options.onProgress },
  );
  if (result.lora) {
    mergeLoraIntoGGUF(basePath, result.lora, outPath);
  } else {
    writeWeightsLike(basePath, model, outPath);
  }
  const tail = result.history.slice(-5);
  return {
    modelPath: outPath,
    seconds: (Date.now() - started) / 1000,
    finalLoss: tail.reduce((s, p) => s + p.loss, 0) / Math.max(1, tail.length),
  };
}

/** A fresh temporary directory for fine-tuned models; call the returned function to remove it. */
export function scratchDir(prefix = "buckle-world-"): {
  dir: string;
  path: (name: string) => string;
  remove: () => void;
} {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    path: (name) => join(dir, name),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
