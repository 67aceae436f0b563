// The llamacpp backend: a LanguageModel over node-llama-cpp (prebuilt binaries only), generating and scoring
// batches spread over the parallel sequences of one context, with buckle's tokenizer and template building the ids.

import { existsSync, statSync } from "node:fs";
import { randomInt } from "node:crypto";
import type {
  ControlledEvaluateInputItem,
  LlamaContext,
  LlamaContextSequence,
  LlamaModel,
  SequenceEvaluateOptions,
  Token,
} from "node-llama-cpp";
import { ggufLoraFileFor } from "../../engine/adapters/index.js";
import { openGGUF } from "../../formats/gguf/index.js";
import { specFromGGUF } from "../../formats/model-gguf.js";
import type { ModelSpec } from "../../formats/model-spec.js";
import { cacheDir } from "../../util/fs.js";
import { loadTokenizerAndTemplate } from "../../formats/load.js";
import type { ChatTemplate } from "../../formats/chat/index.js";
import type { Tokenizer } from "../../formats/tokenizer/index.js";
import { StopStringMatcher } from "../../engine/sampling.js";
import { stopTokenIds } from "../../engine/generate.js";
import { InputError } from "../../util/errors.js";
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
import { checkSampling, promptIds, scoredIds, type ScoredIds } from "../requests.js";
import { acquireLlama, fileIdentity, releaseLlama, type GpuSetting } from "./runtime.js";

export interface LlamaCppAdapter {
  /** A GGUF LoRA adapter (buckle's writeGGUFLora or llama.cpp's convert_lora_to_gguf.py). */
  path: string;
  /** Multiplies the adapter's own alpha / rank; default 1. */
  scale?: number;
}

export interface LlamaCppOptions {
  /** A GGUF model file. */
  modelPath: string;
  /** LoRA adapters applied (unmerged) to every request. */
  adapters?: LlamaCppAdapter[];
  /** CPU threads for decoding; default node-llama-cpp's choice (the machine's math cores). */
  threads?: number;
  /** "auto" (default) offloads to a GPU when a prebuilt GPU binary and a device are present; false stays on CPU. */
  gpu?: GpuSetting;
  /** Tokens each sequence holds (prompt + response); default min(model's training context, 2048). */
  contextSize?: number;
  /** Sequences decoded together in one context; a batch is spread over them. Default 4. */
  parallel?: number;
  /** Keep the KV cache in f32 instead of f16 (exact log-probs, more memory). Default false. */
  kvCacheF32?: boolean;
  /** llama.cpp flash attention; default false (its CPU kernel moves logits by ~1e-3). */
  flashAttention?: boolean;
}

/** Last tokens of a request's history that the repeat penalty looks at (llama.cpp's repeat_last_n default). */
const REPEAT_LAST_N = 64;

/** Load `modelPath` into node-llama-cpp and serve it as a LanguageModel. */
export async function createLlamaCppModel(options: LlamaCppOptions): Promise<LanguageModel> {
  const parallel = options.parallel ?? 4;
  if (!(Number.isInteger(parallel) && parallel >= 1 && parallel <= 256))
    throw new InputError(`llamacpp: parallel must be an integer in [1, 256], got ${parallel}`);
  if (options.threads !== undefined && !(Number.isInteger(options.threads) && options.threads >= 1))
    throw new InputError(`llamacpp: threads must be a positive integer, got ${options.threads}`);
  if (
    options.contextSize !== undefined &&
    !(Number.isInteger(options.contextSize) && options.contextSize >= 16)
  )
    throw new InputError(`llamacpp: contextSize must be an integer >= 16, got ${options.contextSize}`);
  const gpu = options.gpu ?? "auto";
  if (gpu !== "auto" && gpu !== false)
    throw new InputError(`llamacpp: gpu must be "auto" or false, got ${String(gpu)}`);
  checkFile(options.modelPath, "model", "pass the path of a .gguf model file");
  // PEFT directories are converted to GGUF LoRA once (cached); GGUF files are checked to be adapters.
  const spec = options.adapters?.length ? readModelSpec(options.modelPath) : undefined;
  const adapters = (options.adapters ?? []).map((a, i) => {
    const scale = a.scale ?? 1;
    if (!Number.isFinite(scale))
      throw new InputError(`llamacpp: adapter ${i} (${a.path}) scale must be a finite number`);
    return { path: ggufLoraFileFor(a.path, spec as ModelSpec, cacheDir("adapters")), scale };
  });

  const { tokenizer, template } = loadTokenizerAndTemplate(options.modelPath);
  const idParts = [`llamacpp:${fileIdentity(options.modelPath)}`];
  for (const a of adapters) idParts.push(`lora:${fileIdentity(a.path)}*${a.scale}`);

  const llama = await acquireLlama(gpu);
  let model: LlamaModel | undefined;
  let context: LlamaContext | undefined;
  try {
    model = await llama.loadModel({ modelPath: options.modelPath, gpuLayers: gpu === false ? 0 : "auto" });
    const contextSize = options.contextSize ?? Math.min(model.trainContextSize || 2048, 2048);
    context = await model.createContext({
      sequences: parallel,
      contextSize,
      ...(options.threads !== undefined ? { threads: { ideal: options.threads, min: options.threads } } : {}),
      flashAttention: options.flashAttention ?? false,
      ...(options.kvCacheF32
        ? { experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" }
        : {}),
      ...(adapters.length > 0
        ? { lora: { adapters: adapters.map((a) => ({ filePath: a.path, scale: a.scale })) } }
        : {}),
      failedCreationRemedy: false,
    });
    const sequences = Array.from({ length: parallel }, () => context!.getSequence());
    return new LlamaCppModel(gpu, model, context, sequences, tokenizer, template, {
      id: idParts.join("+"),
      backend: "llamacpp",
      chatTemplate: template.name,
      contextSize: context.contextSize,
      capabilities: { logprobs: true, seeds: true, training: false },
    });
  } catch (err) {
    await context?.dispose();
    await model?.dispose();
    await releaseLlama(gpu);
    throw err;
  }
}

function checkFile(path: string, what: string, hint: string): void {
  if (typeof path !== "string" || path === "")
    throw new InputError(`llamacpp: no ${what} path given`, { hint });
  if (!existsSync(path)) throw new InputError(`llamacpp: ${what} file ${path} does not exist`, { hint });
  if (!statSync(path).isFile()) throw new InputError(`llamacpp: ${what} ${path} is not a file`, { hint });
}

/** One generation request while it holds a sequence. */
interface Job {
  index: number;
  request: GenerateRequest;
  ids: number[];
  budget: number;
  seed: number;
  /** Index of the sequence in the context (its id). */
  slot: number;
  seq: LlamaContextSequence;
  it?: AsyncGenerator<Token, void, void | Token | Token[]>;
  /** Prompt and generated tokens, for the repeat penalty. */
  history: number[];
  tokens: number[];
  text: string;
  matcher: StopStringMatcher;
  utf8: TextDecoder;
}

class LlamaCppModel implements LanguageModel {
  private readonly stopTokens: Set<number>;
  /** Batches run one at a time: each one uses every sequence. */
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;

  constructor(
    private readonly gpu: GpuSetting,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly sequences: LlamaContextSequence[],
    private readonly tokenizer: Tokenizer,
    private readonly template: ChatTemplate,
    private readonly modelInfo: ModelInfo,
  ) {
    this.stopTokens = new Set(stopTokenIds(tokenizer, template));
  }

  info(): ModelInfo {
    return { ...this.modelInfo, capabilities: { ...this.modelInfo.capabilities } };
  }

  generate(requests: readonly GenerateRequest[], options: BatchOptions = {}): Promise<GenerateResult[]> {
    this.checkOpen();
    // Tokenize and check everything before any work starts, so a bad request fails the batch at once.
    const ctx = this.context.contextSize;
    const prepared = requests.map((request, index) => {
      checkSampling(request.sampling, index);
      const ids = promptIds(request, index, this.tokenizer, this.template);
      if (ids.length >= ctx - 1) {
        throw new InputError(
          `generate request ${index}: the prompt has ${ids.length} tokens; each sequence holds ${ctx}`,
          { hint: "shorten the prompt or create the model with a larger contextSize" },
        );
      }
      return { ids, budget: Math.min(request.sampling.maxTokens, ctx - 1 - ids.length) };
    });
    return this.exclusive(() => this.runGenerate(requests, prepared, options));
  }

  logprobs(requests: readonly LogprobsRequest[], options: LogprobsOptions = {}): Promise<LogprobsResult[]> {
    this.checkOpen();
    const ctx = this.context.contextSize;
    const prepared = requests.map((request, index) => {
      const s = scoredIds(request, index, this.tokenizer, this.template);
      if (s.end > ctx - 1) {
        throw new InputError(
          `logprobs request ${index}: prompt and response take ${s.end} tokens; each sequence holds ${ctx}`,
          { hint: "shorten the texts or create the model with a larger contextSize" },
        );
      }
      return s;
    });
    return this.exclusive(() => this.runLogprobs(requests, prepared, options));
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.queue.catch(() => undefined);
    await this.context.dispose();
    await this.model.dispose();
    await releaseLlama(this.gpu);
  }

  private checkOpen(): void {
    if (this.disposed) throw new InputError(`${this.modelInfo.id}: the model was disposed`);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Lockstep scheduler: every step asks each busy sequence for one token at the same moment, so llama.cpp
   * decodes all of them in one batch (left to itself, node-llama-cpp dispatches whichever sequences are ready
   * first and most decode calls carry only some of them). A freed sequence takes the next request at once; its
   * prompt is decoded in the same step as the others' single tokens, after the longest prefix the sequence's
   * KV cache already holds.
   */
  private async runGenerate(
    requests: readonly GenerateRequest[],
    prepared: { ids: number[]; budget: number }[],
    options: BatchOptions,
  ): Promise<GenerateResult[]> {
    const results: GenerateResult[] = new Array(requests.length);
    // Slots (sequence indexes) not in use, lowest first.
    const free = this.sequences.map((_, slot) => slot);
    let active: Job[] = [];
    let next = 0;
    const report = (job: Job, finishReason: FinishReason) => {
      const result: GenerateResult = {
        ...(job.request.id !== undefined ? { id: job.request.id } : {}),
        text: job.text,
        tokens: job.tokens,
        finishReason,
        promptTokens: job.ids.length,
      };
      results[job.index] = result;
      options.onResult?.(job.index, result);
    };
    try {
      while (active.length > 0 || next < requests.length) {
        if (options.signal?.aborted) break;
        while (free.length > 0 && next < requests.length) {
          const job = this.newJob(requests[next], next, prepared[next], free.shift()!);
          next++;
          await this.startJob(job);
          active.push(job);
        }
        // Queue the sequences in id order: a decode batch whose sequences arrive out of order ran about twice
        // as slowly here (measured with node-llama-cpp 3.22.1, 4 sequences, same tokens).
        active.sort((a, b) => a.slot - b.slot);
        const steps = await Promise.all(active.map((job) => job.it!.next()));
        const still: Job[] = [];
        for (let k = 0; k < active.length; k++) {
          const job = active[k];
          const step = steps[k];
          const reason = step.done ? "eos" : this.advance(job, step.value, options);
          if (reason === undefined) {
            still.push(job);
            continue;
          }
          await job.it!.return();
          job.it = undefined;
          free.push(job.slot);
          free.sort((a, b) => a - b);
          report(job, reason);
        }
        active = still;
      }
    } finally {
      for (const job of active) await job.it?.return();
    }
    // Cancelled: the text so far for requests that had started, nothing for the rest.
    for (const job of active) {
      this.release(job, options);
      report(job, "cancelled");
    }
    for (let i = next; i < requests.length; i++) {
      const result: GenerateResult = {
        ...(requests[i].id !== undefined ? { id: requests[i].id } : {}),
        text: "",
        tokens: [],
        finishReason: "cancelled",
        promptTokens: prepared[i].ids.length,
      };
      results[i] = result;
      options.onResult?.(i, result);
    }
    return results;
  }

  private newJob(
    request: GenerateRequest,
    index: number,
    prep: { ids: number[]; budget: number },
    slot: number,
  ): Job {
    const s = request.sampling;
    return {
      index,
      request,
      ids: prep.ids,
      budget: prep.budget,
      // Unseeded sampling gets a fresh seed; greedy decoding never draws.
      seed: s.seed !== undefined ? s.seed >>> 0 : randomInt(0, 2 ** 32 - 1),
      slot,
      seq: this.sequences[slot],
      history: [...prep.ids],
      tokens: [],
      text: "",
      matcher: new StopStringMatcher(s.stop ?? []),
      utf8: new TextDecoder("utf-8"),
    };
  }

  private async startJob(job: Job): Promise<void> {
    const keep = await reusePrefix(job.seq, job.ids, job.ids.length - 1);
    job.it = job.seq.evaluate(job.ids.slice(keep) as Token[], this.evaluateOptions(job));
  }

  /** llama.cpp sampler settings for a request: its chain runs penalty -> top-k -> top-p -> min-p -> temperature -> draw. */
  private evaluateOptions(job: Job): SequenceEvaluateOptions {
    const s = job.request.sampling;
    const sampled = s.temperature > 0;
    const penalty = s.repeatPenalty ?? 1;
    const options = {
      temperature: s.temperature,
      // node-llama-cpp fills an absent topK with 40 and topP with 0.95; null removes the sampler instead
      // (top-k over the whole vocabulary would sort it at every token).
      topK: sampled && s.topK ? s.topK : null,
      topP: sampled && s.topP !== undefined && s.topP < 1 ? s.topP : null,
      minP: sampled ? (s.minP ?? 0) : 0,
      seed: job.seed,
      repeatPenalty:
        penalty !== 1
          ? {
              punishTokens: () => job.history.slice(-REPEAT_LAST_N) as Token[],
              penalty,
              maxPunishTokens: REPEAT_LAST_N,
            }
          : undefined,
      yieldEogToken: true,
    };
    return options as unknown as SequenceEvaluateOptions;
  }

  /** Take one sampled token; returns why the request ends, or undefined while it goes on. */
  private advance(job: Job, token: number, options: BatchOptions): FinishReason | undefined {
    if (this.stopTokens.has(token)) {
      this.release(job, options);
      return "eos";
    }
    job.tokens.push(token);
    job.history.push(token);
    const m = job.matcher.push(job.utf8.decode(this.tokenizer.tokenBytes(token), { stream: true }));
    this.emit(job, m.text, options);
    if (m.stopped) return "stop";
    if (job.tokens.length >= job.budget) {
      this.release(job, options);
      return "length";
    }
    return undefined;
  }

  /** Flush text held back for a possible stop string or an unfinished UTF-8 character. */
  private release(job: Job, options: BatchOptions): void {
    const tail = job.utf8.decode();
    const m = tail ? job.matcher.push(tail) : { text: "", stopped: false };
    this.emit(job, m.text + (m.stopped ? "" : job.matcher.flush()), options);
  }

  private emit(job: Job, text: string, options: BatchOptions): void {
    if (text === "") return;
    job.text += text;
    options.onToken?.(job.index, text);
  }

  /**
   * Every sequence works through the queue of requests; each request's log-probs come from one call that
   * evaluates its tokens (after any prefix the sequence already holds) and reads the positions before each
   * response token, so llama.cpp decodes many positions per call and the sequences' calls share batches.
   */
  private async runLogprobs(
    requests: readonly LogprobsRequest[],
    prepared: ScoredIds[],
    options: LogprobsOptions,
  ): Promise<LogprobsResult[]> {
    const results: LogprobsResult[] = new Array(requests.length);
    let next = 0;
    let failed = false;
    const worker = async (seq: LlamaContextSequence) => {
      while (!failed && !options.signal?.aborted && next < requests.length) {
        const i = next++;
        const { tokens, logprobs } = await scoreOnSequence(seq, prepared[i]);
        const mean = logprobs.reduce((a, b) => a + b, 0) / logprobs.length;
        const result: LogprobsResult = {
          ...(requests[i].id !== undefined ? { id: requests[i].id } : {}),
          tokens,
          logprobs,
          perplexity: logprobs.length === 0 ? Infinity : Math.exp(-mean),
        };
        results[i] = result;
        options.onResult?.(i, result);
      }
    };
    const settled = await Promise.allSettled(
      this.sequences.slice(0, Math.max(1, Math.min(this.sequences.length, requests.length))).map((seq) =>
        worker(seq).catch((err: unknown) => {
          failed = true;
          throw err;
        }),
      ),
    );
    for (const s of settled) if (s.status === "rejected") throw s.reason;
    if (options.signal?.aborted && next < requests.length) throw abortError(options.signal);
    return results;
  }
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("the batch was cancelled", "AbortError");
}

/**
 * Drop what the sequence holds after the longest common prefix with `ids` (but keep at most `limit` tokens, so
 * the positions that must be decoded again are) and return how many tokens were kept.
 */
async function reusePrefix(seq: LlamaContextSequence, ids: number[], limit: number): Promise<number> {
  const { firstDifferentIndex } = seq.compareContextTokens(ids as Token[]);
  const keep = Math.max(0, Math.min(firstDifferentIndex, limit));
  if (keep < seq.nextTokenIndex)
    await seq.eraseContextTokenRanges([{ start: keep, end: seq.nextTokenIndex }]);
  return keep;
}

/**
 * Log-probs of ids[start, end) through controlledEvaluate. Each scored position asks for the greedy token, the
 * total logit weight sum(exp(logit - max)) and the logits of the target and the greedy token only, then
 * log p(target) = logit[target] - logit[greedy] - ln(weight): no full-vocabulary transfer per position.
 */
async function scoreOnSequence(
  seq: LlamaContextSequence,
  s: ScoredIds,
): Promise<{ tokens: number[]; logprobs: number[] }> {
  const tokens = s.ids.slice(s.start, s.end);
  if (tokens.length === 0) return { tokens, logprobs: [] };
  const first = s.start - 1;
  const last = s.end - 2;
  const keep = await reusePrefix(seq, s.ids.slice(0, last + 1), first);
  const input: ControlledEvaluateInputItem[] = [];
  for (let p = keep; p <= last; p++) {
    const token = s.ids[p] as Token;
    if (p < first) {
      input.push(token);
      continue;
    }
    input.push([
      token,
      {
        generateNext: {
          token: true,
          totalLogitWeight: true,
          logits: { filter: { tokens: [s.ids[p + 1] as Token], includeSelected: true } },
          options: { temperature: 0 },
        },
      },
    ]);
  }
  const out = await seq.controlledEvaluate(input);
  const logprobs: number[] = [];
  for (let p = first; p <= last; p++) {
    const next = out[p - keep]?.next;
    const target = s.ids[p + 1];
    const greedy = next?.token;
    const weight = next?.totalLogitWeight;
    const lt = next?.logits?.get(target as Token);
    const lg = greedy === undefined || greedy === null ? undefined : next?.logits?.get(greedy);
    if (lt === undefined || lg === undefined || weight === undefined || !(weight > 0)) {
      throw new Error(`llama.cpp returned no logits for position ${p} (token ${target})`);
    }
    logprobs.push(lt - lg - Math.log(weight));
  }
  return { tokens, logprobs };
}

function readModelSpec(path: string): ModelSpec {
  const file = openGGUF(path);
  try {
    return specFromGGUF(file);
  } finally {
    file.close();
  }
}
