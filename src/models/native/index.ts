// The `native` backend: buckle's own TypeScript engine behind the LanguageModel interface.
// Slower than llama.cpp for inference, but the one backend that can also train.

import { resolve } from "node:path";
import {
  ensureFastKernels,
  loadModelWeights,
  scoreTokens,
  type EngineWeights,
  type LoraWeights,
} from "../../engine/index.js";
import { readLoraAdapter } from "../../engine/adapters/index.js";
import { generate as engineGenerate, type GenerateRequest as EngineRequest } from "../../engine/generate.js";
import type { ChatTemplate } from "../../formats/chat/index.js";
import { loadTokenizerAndTemplate } from "../../formats/load.js";
import type { Tokenizer } from "../../formats/tokenizer/index.js";
import { InputError } from "../../util/errors.js";
import { fileIdentity } from "../identity.js";
import { checkSampling, perplexityOf, promptIds, scoredIds } from "../requests.js";
import type {
  BatchOptions,
  FinishReason,
  GenerateRequest,
  GenerateResult,
  LanguageModel,
  LogprobsOptions,
  LogprobsRequest,
  LogprobsResult,
  ModelInfo,
} from "../types.js";

export interface NativeModelOptions {
  /** A GGUF file or a Hugging Face checkpoint directory. */
  modelPath: string;
  /** At most one LoRA adapter (GGUF LoRA or PEFT directory), applied unmerged; scale multiplies alpha/rank. */
  adapters?: { path: string; scale?: number }[];
  /** Sequences generated together per batch (bounds KV-cache memory). Default 16. */
  parallel?: number;
  /** CPU threads for the engine's kernels (started once per process; default: all cores). */
  threads?: number;
  /** Tokens scored per forward pass when computing log-probs (bounds activation memory). Default 4096. */
  scoreTokensPerPass?: number;
}

class NativeModel implements LanguageModel {
  constructor(
    private readonly weights: EngineWeights,
    private readonly tokenizer: Tokenizer,
    private readonly template: ChatTemplate,
    private readonly lora: LoraWeights | undefined,
    private readonly modelInfo: ModelInfo,
    private readonly parallel: number,
    private readonly scoreBudget: number,
  ) {}

  info(): ModelInfo {
    return this.modelInfo;
  }

  async generate(
    requests: readonly GenerateRequest[],
    options: BatchOptions = {},
  ): Promise<GenerateResult[]> {
    requests.forEach((r, i) => checkSampling(r.sampling, i));
    const prepared: EngineRequest[] = requests.map((r, i) => ({
      promptIds: promptIds(r, i, this.tokenizer, this.template),
      sampling: {
        temperature: r.sampling.temperature,
        topK: r.sampling.topK,
        topP: r.sampling.topP,
        minP: r.sampling.minP,
        repeatPenalty: r.sampling.repeatPenalty,
      },
      maxTokens: r.sampling.maxTokens,
      stop: r.sampling.stop,
      // Requests without a seed get their index: reproducible, and different across a batch.
      seed: r.sampling.seed ?? i,
    }));
    const results: GenerateResult[] = new Array(requests.length);
    for (let from = 0; from < prepared.length; from += this.parallel) {
      const chunk = prepared.slice(from, from + this.parallel);
      if (options.signal?.aborted) {
        for (let j = 0; j < chunk.length; j++) {
          results[from + j] = { id: requests[from + j].id, text: "", tokens: [], finishReason: "cancelled" };
        }
        continue;
      }
      const out = await engineGenerate(this.weights, this.tokenizer, chunk, {
        lora: this.lora,
        template: this.template,
        signal: options.signal,
        onToken: options.onToken
          ? (e) => {
              if (e.text !== "") options.onToken?.(from + e.request, e.text);
            }
          : undefined,
      });
      out.forEach((o, j) => {
        const index = from + j;
        const finishReason: FinishReason = o.finishReason === "aborted" ? "cancelled" : o.finishReason;
        results[index] = {
          id: requests[index].id,
          text: o.text,
          tokens: o.tokens,
          finishReason,
          promptTokens: chunk[j].promptIds.length,
        };
        options.onResult?.(index, results[index]);
      });
    }
    return results;
  }

  async logprobs(
    requests: readonly LogprobsRequest[],
    options: LogprobsOptions = {},
  ): Promise<LogprobsResult[]> {
    const spans = requests.map((r, i) => scoredIds(r, i, this.tokenizer, this.template));
    const results: LogprobsResult[] = new Array(requests.length);
    let i = 0;
    while (i < spans.length) {
      if (options.signal?.aborted) throw new InputError("logprobs cancelled");
      // Group requests so one forward pass holds about `scoreBudget` tokens.
      let j = i;
      let tokens = 0;
      while (j < spans.length && (j === i || tokens + spans[j].end <= this.scoreBudget))
        tokens += spans[j++].end;
      const group = spans.slice(i, j);
      const scored = scoreTokens(this.weights, group, { lora: this.lora });
      group.forEach((s, k) => {
        const logprobs = Array.from(scored[k]);
        const index = i + k;
        results[index] = {
          id: requests[index].id,
          tokens: s.ids.slice(s.start, s.end),
          logprobs,
          perplexity: perplexityOf(logprobs),
        };
        options.onResult?.(index, results[index]);
      });
      // Yield so progress can render between passes.
      await new Promise((r) => setImmediate(r));
      i = j;
    }
    return results;
  }

  async dispose(): Promise<void> {}
}

/** Load a model (and adapter) into the native engine. */
export async function createNativeModel(options: NativeModelOptions): Promise<LanguageModel> {
  const path = resolve(options.modelPath);
  const adapters = options.adapters ?? [];
  if (adapters.length > 1) {
    throw new InputError("the native backend applies one LoRA adapter at a time", {
      hint: "merge the others into the base first (buckle train --merge, or mergeLoraIntoGGUF)",
    });
  }
  await ensureFastKernels(options.threads);
  const weights = loadModelWeights(path);
  const { tokenizer, template } = loadTokenizerAndTemplate(path);
  let lora: LoraWeights | undefined;
  if (adapters.length === 1) {
    const a = adapters[0];
    lora = readLoraAdapter(a.path, weights.spec);
    if (a.scale !== undefined && a.scale !== 1)
      lora = { ...lora, config: { ...lora.config, alpha: lora.config.alpha * a.scale } };
  }
  const adapterId = adapters
    .map((a) => `+lora:${fileIdentity(a.path)}${a.scale !== undefined && a.scale !== 1 ? `*${a.scale}` : ""}`)
    .join("");
  const info: ModelInfo = {
    id: `native:${fileIdentity(path)}${adapterId}`,
    backend: "native",
    chatTemplate: template.name,
    contextSize: weights.spec.contextLength,
    capabilities: { logprobs: true, seeds: true, training: true },
  };
  return new NativeModel(
    weights,
    tokenizer,
    template,
    lora,
    info,
    Math.max(1, options.parallel ?? 16),
    Math.max(1, options.scoreTokensPerPass ?? 4096),
  );
}
