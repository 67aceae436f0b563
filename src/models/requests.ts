// Request -> token ids with buckle's own tokenizer and chat template, so every backend conditions on and scores
// exactly the same tokens; also the request checks (one of messages / prompt, sampling ranges) every backend shares.

import { renderWithSpans, tokenizeChat, type ChatMessage, type ChatTemplate } from "../formats/chat/index.js";
import { alignTokens, charToByteTable, floorIndex } from "../formats/chat/spans.js";
import type { Tokenizer } from "../formats/tokenizer/index.js";
import { InputError } from "../util/errors.js";
import type { GenerateRequest, LogprobsRequest, Sampling } from "./types.js";

/** Token ids of a generation prompt: the chat rendered with its generation prompt, or the raw prompt as is. */
export function promptIds(
  request: GenerateRequest,
  index: number,
  tokenizer: Tokenizer,
  template: ChatTemplate,
): number[] {
  const source = checkSource(request, index, "generate");
  const text =
    source.messages !== undefined
      ? template.render(source.messages, { addGenerationPrompt: true })
      : source.prompt;
  return tokenizeChat(text, tokenizer).ids;
}

export interface ScoredIds {
  /** The whole sequence: prompt (or conversation) followed by the response tokens. */
  ids: number[];
  /** The response's tokens are ids[start, end); every one of them has at least one token before it. */
  start: number;
  end: number;
}

/**
 * Token ids of a log-prob request and where the response lies in them. With messages: the conversation plus an
 * assistant turn holding the response, rendered by the chat template; the response is that turn's content span
 * (end-of-turn tokens are not scored). With a raw prompt: prompt + response tokenized as one text (so the
 * boundary tokenizes as it would in a real continuation); the response starts at the first token that carries
 * any of its bytes.
 */
export function scoredIds(
  request: LogprobsRequest,
  index: number,
  tokenizer: Tokenizer,
  template: ChatTemplate,
): ScoredIds {
  const source = checkSource(request, index, "logprobs");
  if (typeof request.response !== "string")
    throw new InputError(`logprobs request ${index}: response must be a string`);
  let ids: number[];
  let start: number;
  let end: number;
  if (source.messages !== undefined) {
    const messages: ChatMessage[] = [...source.messages, { role: "assistant", content: request.response }];
    const spans = renderWithSpans(template, messages, tokenizer);
    const span = spans.assistantSpans[spans.assistantSpans.length - 1];
    ids = spans.ids;
    start = span.contentStart;
    end = span.contentEnd;
  } else {
    const text = source.prompt + request.response;
    const tokenized = tokenizeChat(text, tokenizer);
    ids = tokenized.ids;
    const align = alignTokens(text, ids, tokenizer, tokenized.added, "raw prompt");
    const toByte = charToByteTable(text);
    start = request.response === "" ? ids.length : floorIndex(align, toByte[source.prompt.length]);
    end = ids.length;
  }
  if (start === 0 && end > 0) {
    throw new InputError(
      `logprobs request ${index}: nothing comes before the response, so its first token cannot be scored`,
      { hint: "give a non-empty prompt (this vocabulary adds no BOS token)" },
    );
  }
  return { ids, start, end };
}

type Source = { messages: ChatMessage[]; prompt?: undefined } | { messages?: undefined; prompt: string };

function checkSource(
  request: GenerateRequest | LogprobsRequest,
  index: number,
  what: "generate" | "logprobs",
): Source {
  const hasMessages = request.messages !== undefined;
  const hasPrompt = request.prompt !== undefined;
  if (hasMessages === hasPrompt) {
    throw new InputError(
      `${what} request ${index}${request.id ? ` (id ${request.id})` : ""}: give exactly one of messages or prompt`,
      { hint: "messages for a chat rendered with the model's template, prompt for raw text" },
    );
  }
  if (hasMessages) {
    if (!Array.isArray(request.messages))
      throw new InputError(`${what} request ${index}: messages must be an array of {role, content}`);
    return { messages: request.messages };
  }
  if (typeof request.prompt !== "string")
    throw new InputError(`${what} request ${index}: prompt must be a string`);
  return { prompt: request.prompt };
}

/** Throws InputError naming the request and the field when a sampling setting is out of range. */
export function checkSampling(s: Sampling, index: number): void {
  const bad = (field: string, want: string, got: unknown): never => {
    throw new InputError(`generate request ${index}: sampling.${field} must be ${want}, got ${String(got)}`);
  };
  if (s === undefined || s === null) bad("", "given", s);
  if (!(Number.isFinite(s.temperature) && s.temperature >= 0))
    bad("temperature", "a number >= 0", s.temperature);
  if (!(Number.isInteger(s.maxTokens) && s.maxTokens >= 1)) bad("maxTokens", "an integer >= 1", s.maxTokens);
  if (s.topP !== undefined && !(s.topP > 0 && s.topP <= 1)) bad("topP", "in (0, 1]", s.topP);
  if (s.topK !== undefined && !(Number.isInteger(s.topK) && s.topK >= 0))
    bad("topK", "an integer >= 0", s.topK);
  if (s.minP !== undefined && !(s.minP >= 0 && s.minP <= 1)) bad("minP", "in [0, 1]", s.minP);
  if (s.repeatPenalty !== undefined && !(Number.isFinite(s.repeatPenalty) && s.repeatPenalty > 0))
    bad("repeatPenalty", "a number > 0", s.repeatPenalty);
  if (s.seed !== undefined && !Number.isInteger(s.seed)) bad("seed", "an integer", s.seed);
  if (s.stop !== undefined) {
    if (!Array.isArray(s.stop)) bad("stop", "an array of strings", s.stop);
    for (const stop of s.stop)
      if (typeof stop !== "string" || stop === "") bad("stop", "non-empty strings", stop);
  }
}

/** exp(-mean log-prob); Infinity when nothing was scored. */
export function perplexityOf(logprobs: ArrayLike<number>): number {
  if (logprobs.length === 0) return Infinity;
  let sum = 0;
  for (let i = 0; i < logprobs.length; i++) sum += logprobs[i];
  return Math.exp(-sum / logprobs.length);
}
