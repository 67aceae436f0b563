// The model organism: a tiny llama-family model on the world's own vocabulary, pretrained on the world's
// documents and aligned on its SFT set by buckle's engine, written as a GGUF and cached by config hash.

import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Sample } from "../data/sample.js";
import {
  ensureFastKernels,
  loadModelWeights,
  train,
  type EngineWeights,
  type TrainConfig,
  type TrainExample,
  type TrainProgress,
} from "../engine/index.js";
import { canonicalTensors } from "../engine/testing.js";
import { renderWithSpans, type ChatTemplate } from "../formats/chat/index.js";
import { loadTokenizerAndTemplate } from "../formats/load.js";
import { GGMLType, openGGUF, writeGGUF } from "../formats/gguf/index.js";
import type { Tokenizer } from "../formats/tokenizer/index.js";
import { createRandomModel } from "../models/factory.js";
import { contentKey } from "../store/index.js";
import { InputError } from "../util/errors.js";
import { cacheDir, writeFileAtomic } from "../util/fs.js";
import { createWorld, type World } from "./world.js";
import { buildWorldVocab, worldWords, writeWorldVocabGGUF } from "./vocab.js";

export type OrganismSize = "tiny" | "small";

export interface OrganismConfig {
  /** Bumped whenever the world, the vocabulary or the recipe changes, so old caches are not reused. */
  recipeVersion: number;
  seed: number;
  size: OrganismSize;
  model: { hiddenSize: number; numLayers: number; numHeads: number; numKvHeads: number; intermediateSize: number; contextLength: number };
  pretrain: { epochs: number; learningRate: number; batchSize: number; warmupSteps: number };
  align: { epochs: number; learningRate: number; batchSize: number; warmupSteps: number; replayDocuments: number };
} // prettier-ignore

export const ORGANISM_RECIPE_VERSION = 3;

const SIZES: Record<OrganismSize, OrganismConfig["model"]> = {
  tiny: {
    hiddenSize: 64,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 4,
    intermediateSize: 192,
    contextLength: 128,
  },
  small: {
    hiddenSize: 128,
    numLayers: 4,
    numHeads: 4,
    numKvHeads: 4,
    intermediateSize: 352,
    contextLength: 128,
  },
};

/** The recipe for `seed` and `size` (its hash names the cache entry). */
export function organismConfig(seed: number, size: OrganismSize = "tiny"): OrganismConfig {
  if (!(size in SIZES))
    throw new InputError(`organism size must be tiny or small, got ${JSON.stringify(size)}`);
  return {
    recipeVersion: ORGANISM_RECIPE_VERSION,
    seed,
    size,
    model: SIZES[size],
    pretrain: { epochs: 30, learningRate: 3e-3, batchSize: 16, warmupSteps: 20 },
    align: { epochs: 10, learningRate: 1.5e-3, batchSize: 16, warmupSteps: 10, replayDocuments: 150 },
  };
}

export function configHash(config: OrganismConfig): string {
  return contentKey("buckle-world-organism", config).slice(0, 16);
}

// ---------------------------------------------------------------------------------------------------------
// Tokenizing samples for training.

/** A document (raw text, one assistant message): BOS + text + EOS, loss on every token. */
export function documentExample(sample: Sample, tokenizer: Tokenizer): TrainExample {
  const text = sample.messages.map((m) => m.content).join(" ");
  const ids = tokenizer.encode(text);
  if (tokenizer.eosId !== undefined) ids.push(tokenizer.eosId);
  return { ids };
}

/** A chat: loss on the assistant answers and their end-of-turn tokens. */
export function chatExample(sample: Sample, tokenizer: Tokenizer, template: ChatTemplate): TrainExample {
  const r = renderWithSpans(template, sample.messages, tokenizer);
  return { ids: r.ids, spans: r.assistantSpans.map((s) => ({ start: s.contentStart, end: s.turnEnd })) };
}

/** Training examples for samples: documents as raw text, chats through the template. */
export function trainExamples(
  samples: readonly Sample[],
  tokenizer: Tokenizer,
  template: ChatTemplate,
): TrainExample[] {
  return samples.map((s) =>
    s.tags?.includes("document") ? documentExample(s, tokenizer) : chatExample(s, tokenizer, template),
  );
}

/** Write full-fine-tuned f32 weights back into a copy of `basePath` (same metadata and tokenizer). */
export function writeWeightsLike(basePath: string, model: EngineWeights, outPath: string): void {
  const values = canonicalTensors(model);
  const base = openGGUF(basePath);
  try {
    const tensors = base.tensors.map((info) => {
      const data = values.get(info.name);
      if (!data) throw new InputError(`${basePath}: no trained values for tensor ${info.name}`);
      return { name: info.name, shape: info.shape, type: GGMLType.F32, data };
    });
    writeGGUF(outPath, { metadata: base.metadata, tensors });
  } finally {
    base.close();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Building.

export interface OrganismTimings {
  /** Wall-clock seconds of each phase. */
  pretrainSeconds: number;
  alignSeconds: number;
  totalSeconds: number;
  /** Process CPU seconds (user + system, all threads) spent building. */
  cpuSeconds: number;
  pretrainTokens: number;
  alignTokens: number;
}

export interface OrganismProgress {
  phase: "pretrain" | "align";
  progress: TrainProgress;
}

export interface BuildOrganismOptions {
  seed: number;
  size?: OrganismSize;
  /** Where cached organisms live; default cacheDir("world"). */
  cacheDir?: string;
  /** Rebuild even when the cache holds this config. */
  force?: boolean;
  onProgress?: (p: OrganismProgress) => void;
  /**
   * Engine threads. Default 1: for matrices this small a second thread gains little on a shared 2-core
   * machine, and two multi-threaded runs here hung with every thread waiting (see docs/WORLD.md).
   */
  threads?: number;
}

export interface Organism {
  /** The aligned model (GGUF with the world's tokenizer and chat template). */
  modelPath: string;
  /** The pretrained (not yet aligned) model. */
  basePath: string;
  /** The vocab-only GGUF. */
  vocabPath: string;
  config: OrganismConfig;
  configHash: string;
  world: World;
  parameters: number;
  timings: OrganismTimings;
  /** True when the files came from the cache. */
  cached: boolean;
  finalLoss: { pretrain: number; align: number };
}

interface OrganismRecord {
  config: OrganismConfig;
  configHash: string;
  parameters: number;
  timings: OrganismTimings;
  finalLoss: { pretrain: number; align: number };
}

function cpuSecondsNow(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function tokenCount(examples: readonly TrainExample[]): number {
  return examples.reduce((s, e) => s + e.ids.length, 0);
}

/**
 * Build (or load from the cache) the organism for `seed`: vocabulary, random init, pretraining, alignment.
 * The cache entry is a directory named by the config hash, written under a temporary name and renamed.
 */
export async function buildOrganism(options: BuildOrganismOptions): Promise<Organism> {
  const config = organismConfig(options.seed, options.size ?? "tiny");
  const hash = configHash(config);
  const root = options.cacheDir ?? cacheDir("world");
  const dir = join(root, hash);
  const world = createWorld(config.seed);
  const paths = {
    modelPath: join(dir, "organism.gguf"),
    basePath: join(dir, "pretrained.gguf"),
    vocabPath: join(dir, "vocab.gguf"),
  };
  const recordPath = join(dir, "organism.json");
  if (!options.force && existsSync(recordPath)) {
    const record = JSON.parse(readFileSync(recordPath, "utf8")) as OrganismRecord;
    return { ...paths, ...record, world, cached: true };
  }

  const started = Date.now();
  const cpuStart = cpuSecondsNow();
  const work = `${dir}.tmp-${process.pid}-${Date.now()}`;
  mkdirSync(work, { recursive: true });
  try {
    await ensureFastKernels(options.threads ?? 1);
    const vocabPath = join(work, "vocab.gguf");
    writeWorldVocabGGUF(vocabPath, buildWorldVocab(worldWords()));
    const initPath = join(work, "init.gguf");
    const created = createRandomModel(
      { arch: "llama", vocab: vocabPath, seed: config.seed, tiedEmbeddings: true, name: `buckle-safetyworld-${config.size}`, ...config.model },
      initPath,
    ); // prettier-ignore
    const { tokenizer, template } = loadTokenizerAndTemplate(initPath);
    const model = loadModelWeights(initPath, { keep: "f32" });

    const pretrainData = trainExamples(world.pretrain, tokenizer, template);
    const t0 = Date.now();
    const pre = await train(model, pretrainData, phaseConfig(config.seed, config.pretrain), {
      onProgress: (p) => options.onProgress?.({ phase: "pretrain", progress: p }),
    });
    const pretrainSeconds = (Date.now() - t0) / 1000;
    const basePath = join(work, "pretrained.gguf");
    writeWeightsLike(initPath, model, basePath);

    // Alignment: the SFT set plus some documents replayed so knowledge is not washed out.
    const replay = world.pretrain.slice(0, config.align.replayDocuments);
    const alignData = trainExamples([...world.align, ...replay], tokenizer, template);
    const t1 = Date.now();
    const aligned = await train(model, alignData, phaseConfig(config.seed + 1, config.align), {
      onProgress: (p) => options.onProgress?.({ phase: "align", progress: p }),
    });
    const alignSeconds = (Date.now() - t1) / 1000;
    writeWeightsLike(initPath, model, join(work, "organism.gguf"));
    rmSync(initPath, { force: true });

    const lastLoss = (h: TrainProgress[]) =>
      h.slice(-5).reduce((s, p) => s + p.loss, 0) / Math.max(1, Math.min(5, h.length));
    const record: OrganismRecord = {
      config,
      configHash: hash,
      parameters: created.parameters,
      timings: {
        pretrainSeconds,
        alignSeconds,
        totalSeconds: (Date.now() - started) / 1000,
        cpuSeconds: cpuSecondsNow() - cpuStart,
        pretrainTokens: tokenCount(pretrainData) * config.pretrain.epochs,
        alignTokens: tokenCount(alignData) * config.align.epochs,
      },
      finalLoss: { pretrain: lastLoss(pre.history), align: lastLoss(aligned.history) },
    };
    writeFileAtomic(join(work, "organism.json"), JSON.stringify(record, null, 2) + "\n");
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
    return { ...paths, ...record, world, cached: false };
  } catch (err) {
    rmSync(work, { recursive: true, force: true });
    throw err;
  }
}

function phaseConfig(seed: number, phase: OrganismConfig["pretrain"]): TrainConfig {
  return {
    seed,
    fullFineTune: true,
    learningRate: phase.learningRate,
    schedule: "cosine",
    warmupSteps: phase.warmupSteps,
    minLrRatio: 0.1,
    weightDecay: 0.01,
    batchSize: phase.batchSize,
    epochs: phase.epochs,
  };
}
