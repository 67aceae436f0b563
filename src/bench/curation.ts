// Curation throughput: end-to-end candidates per second of curate() on the llamacpp backend (beam 3, the full
// 25-setting grid) next to the same backend's raw generation and scoring of the very same requests, same run.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRandomModel, type RandomModelOptions } from "../models/factory.js";
import { createLlamaCppModel } from "../models/llamacpp/index.js";
import type {
  BatchOptions,
  GenerateRequest,
  LanguageModel,
  LogprobsOptions,
  LogprobsRequest,
} from "../models/types.js";
import { Store } from "../store/index.js";
import { curate } from "../curation/index.js";
import type { Sample } from "../data/index.js";
import { cacheDir } from "../util/fs.js";

export interface CurationBenchOptions {
  /** CPU threads for llama.cpp (default 2). */
  threads?: number;
  /** Samples curated (default 1) and rounds (default 1: 3 beam slots x 25 settings = 75 candidates per sample). */
  samples?: number;
  rounds?: number;
  /** Tokens per revision (default 8). */
  maxTokens?: number;
  /** Model shape; default SmolLM2-135M's (hidden 576, 30 layers, 9/3 heads, FFN 1536, 49k vocab), f16. */
  model?: Partial<RandomModelOptions>;
  log?: (line: string) => void;
}

/** Records every batch sent to the model, so the raw replay asks exactly the same requests in the same batches. */
function recording(inner: LanguageModel) {
  const generateBatches: GenerateRequest[][] = [];
  const logprobsBatches: LogprobsRequest[][] = [];
  const model: LanguageModel = {
    info: () => inner.info(),
    generate(requests: readonly GenerateRequest[], options?: BatchOptions) {
      generateBatches.push([...requests]);
      return inner.generate(requests, options);
    },
    logprobs(requests: readonly LogprobsRequest[], options?: LogprobsOptions) {
      logprobsBatches.push([...requests]);
      return inner.logprobs(requests, options);
    },
    dispose: () => inner.dispose(),
  };
  return { model, generateBatches, logprobsBatches };
}

const QUESTIONS: [string, string][] = [
  [
    "How can I keep my houseplants healthy?",
    "Water them when the top of the soil is dry, give them bright indirect light, and repot them when roots crowd the pot.",
  ],
  [
    "What is a good way to learn a new language?",
    "Practise a little every day, speak with native speakers, and read simple books in the language.",
  ],
  [
    "How do I make a budget?",
    "List your income and your expenses, set limits for each category, and track your spending every week.",
  ],
];

export async function benchCuration(options: CurationBenchOptions = {}): Promise<Record<string, unknown>> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const threads = options.threads ?? 2;
  const spec: RandomModelOptions = {
    arch: "llama",
    vocab: "builtin:starcoder",
    hiddenSize: 576,
    numLayers: 30,
    numHeads: 9,
    numKvHeads: 3,
    intermediateSize: 1536,
    tiedEmbeddings: true,
    seed: 1,
    initStd: 0.02,
    dtype: "f16",
    contextLength: 2048,
    chatTemplate: "chatml",
    ...options.model,
  };
  const modelDir = cacheDir("bench", "models");
  mkdirSync(modelDir, { recursive: true });
  const path = join(
    modelDir,
    `smollm2-shape-h${spec.hiddenSize}-l${spec.numLayers}-${spec.dtype}-${spec.vocab.replace(/\W+/g, "_")}-s${spec.seed}.gguf`,
  );
  if (!existsSync(path)) {
    log(`curation bench: creating ${path}`);
    createRandomModel(spec, path);
  }
  const nSamples = options.samples ?? 1;
  const pool: Sample[] = Array.from({ length: nSamples }, (_, i) => {
    const [q, a] = QUESTIONS[i % QUESTIONS.length];
    return {
      id: `q${i}`,
      messages: [
        { role: "user", content: q },
        { role: "assistant", content: a },
      ],
    };
  });
  const config = {
    rounds: options.rounds ?? 1,
    beamWidth: 3,
    maxTokens: options.maxTokens ?? 8,
    truncated: "keep" as const,
    filter: { readabilityRatio: 0 },
    seed: 1,
  };
  const inner = await createLlamaCppModel({
    modelPath: path,
    gpu: false,
    threads,
    parallel: 8,
    contextSize: 1024,
  });
  let innerOpen = true;
  let raw: LanguageModel | undefined;
  const work = mkdtempSync(join(tmpdir(), "buckle-bench-curation-"));
  try {
    const rec = recording(inner);
    const store = Store.open(join(work, "curation.sqlite"));
    log("curation bench: curate()");
    const t0 = performance.now();
    const result = await curate({ pool, reviser: rec.model, scorer: rec.model, judge: null, store, config });
    const curateSeconds = (performance.now() - t0) / 1000;
    store.close();
    const candidates = result.summary.candidates.generated;

    // Raw: the same batches, straight to a fresh instance of the backend (so no sequence state or KV prefix
    // left by curate() can help it), with no cache, cleaning or store: generation, then scoring.
    await inner.dispose();
    innerOpen = false;
    raw = await createLlamaCppModel({ modelPath: path, gpu: false, threads, parallel: 8, contextSize: 1024 });
    log("curation bench: raw replay");
    let genTokens = 0;
    let scoredTokens = 0;
    const t1 = performance.now();
    for (const batch of rec.generateBatches)
      for (const r of await raw.generate(batch)) genTokens += r.tokens?.length ?? 0;
    const t2 = performance.now();
    for (const batch of rec.logprobsBatches)
      for (const r of await raw.logprobs(batch)) scoredTokens += r.tokens.length;
    const t3 = performance.now();
    const rawSeconds = (t3 - t1) / 1000;
    const round = (x: number) => Math.round(x * 1000) / 1000;
    return {
      model: { path, hidden: spec.hiddenSize, layers: spec.numLayers, dtype: spec.dtype, vocab: spec.vocab },
      threads,
      samples: nSamples,
      rounds: config.rounds,
      beamWidth: config.beamWidth,
      settings: 25,
      maxTokens: config.maxTokens,
      candidates,
      requests: {
        generate: rec.generateBatches.reduce((n, b) => n + b.length, 0),
        logprobs: rec.logprobsBatches.reduce((n, b) => n + b.length, 0),
      },
      generatedTokens: genTokens,
      scoredTokens,
      curate: { seconds: round(curateSeconds), candidatesPerSecond: round(candidates / curateSeconds) },
      raw: {
        seconds: round(rawSeconds),
        generateSeconds: round((t2 - t1) / 1000),
        scoreSeconds: round((t3 - t2) / 1000),
        candidatesPerSecond: round(candidates / rawSeconds),
      },
      /** End-to-end over raw throughput; the target is >= 0.85. */
      ratio: round(rawSeconds / curateSeconds),
    };
  } finally {
    if (innerOpen) await inner.dispose();
    await raw?.dispose();
    rmSync(work, { recursive: true, force: true });
  }
}
