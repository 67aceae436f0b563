// The model interfaces every layer above leans on: LanguageModel (generation and response log-probs)
// and the request/response shapes. Backends (native, llamacpp, openai) implement them; nothing here runs.

import type { ChatMessage } from "../formats/chat/index.js";

/** Sampling settings of one generation request (llama.cpp semantics; temperature 0 = greedy). */
export interface Sampling {
  temperature: number;
  topP?: number;
  topK?: number;
  minP?: number;
  repeatPenalty?: number;
  /** Maximum new tokens. */
  maxTokens: number;
  /** Stop strings: generation ends before the first occurrence; the text returned excludes it. */
  stop?: string[];
  /** Seed for this request; backends that cannot honour seeds say so in info().capabilities. */
  seed?: number;
}

export interface GenerateRequest {
  /** A chat, rendered with the model's template (generation prompt added)... */
  messages?: ChatMessage[];
  /** ...or a raw prompt text used as is (no template). Exactly one of messages / prompt. */
  prompt?: string;
  sampling: Sampling;
  /** Caller's id, echoed back; handy for caches and progress. */
  id?: string;
}

export type FinishReason = "stop" | "length" | "eos" | "cancelled";

export interface GenerateResult {
  id?: string;
  text: string;
  /** Generated token ids, where the backend reports them. */
  tokens?: number[];
  finishReason: FinishReason;
  /** Tokens in the prompt as the backend counted them. */
  promptTokens?: number;
}

export interface LogprobsRequest {
  /** The conversation before the response (rendered with the model's chat template)... */
  messages?: ChatMessage[];
  /** ...or a raw prompt text (no template). Exactly one of messages / prompt. */
  prompt?: string;
  /** The response whose tokens are scored, given the prompt. */
  response: string;
  id?: string;
}

export interface LogprobsResult {
  id?: string;
  /** Token ids of the response (the assistant content span under the chat template). */
  tokens: number[];
  /** log p(token | everything before it), natural log, one per response token. */
  logprobs: number[];
  /** exp(-mean logprob); Infinity for an empty response. */
  perplexity: number;
}

export interface ModelInfo {
  /** Stable identity used in caches and records: backend, model file/name, adapter, content hash where known. */
  id: string;
  backend: "native" | "llamacpp" | "openai";
  /** Name of the chat template in use ("buckle-fallback-chatml" when the model has none). */
  chatTemplate: string;
  contextSize: number;
  capabilities: { logprobs: boolean; seeds: boolean; training: boolean };
}

export interface BatchOptions {
  /** Called as each request finishes (in completion order) and for streamed text when supported. */
  onResult?: (index: number, result: GenerateResult) => void;
  onToken?: (index: number, text: string) => void;
  /** Stop early; finished results are kept and unfinished ones end with finishReason "cancelled". */
  signal?: AbortSignal;
}

export interface LogprobsOptions {
  onResult?: (index: number, result: LogprobsResult) => void;
  signal?: AbortSignal;
}

/**
 * A language model behind any backend. Batches are the unit of work: a backend spreads a batch over its
 * parallel capacity (sequences of one context, HTTP connections, ...) and returns results in request order.
 */
export interface LanguageModel {
  info(): ModelInfo;
  generate(requests: readonly GenerateRequest[], options?: BatchOptions): Promise<GenerateResult[]>;
  logprobs(requests: readonly LogprobsRequest[], options?: LogprobsOptions): Promise<LogprobsResult[]>;
  /** Free native memory, contexts, workers and sockets. */
  dispose(): Promise<void>;
}

/** One-shot chat helper for judges and revisers: a single conversation, greedy unless told otherwise. */
export async function chat(
  model: LanguageModel,
  messages: ChatMessage[],
  sampling: Partial<Sampling> = {},
): Promise<string> {
  const [result] = await model.generate([
    { messages, sampling: { temperature: 0, maxTokens: 512, ...sampling } },
  ]);
  return result.text;
}
