// Text generation on the native engine: many requests decoded together through one KV cache, one batched
// decode step for every live sequence, seeded sampling per request, end-of-turn tokens and stop strings.

import type { ChatTemplate } from "../formats/chat/index.js";
import { renderWithSpans } from "../formats/chat/index.js";
import type { Tokenizer } from "../formats/tokenizer/index.js";
import { InputError } from "../util/errors.js";
import { Rng } from "../util/random.js";
import { decode, KVCache, type EngineWeights } from "./forward.js";
import { sampleToken, StopStringMatcher, type SamplingParams } from "./sampling.js";
import type { LoraWeights } from "./types.js";

export interface GenerateRequest {
  /** The prompt's token ids (BOS and chat template included: nothing is added). */
  promptIds: readonly number[];
  sampling: SamplingParams;
  /** Most tokens to generate (fewer when the model's context runs out first). */
  maxTokens: number;
  /** Generation ends before the first occurrence of any of these, even when it spans several tokens. */
  stop?: readonly string[];
  /** Seeds this request's own random stream: the same request and seed give the same output. */
  seed: number;
}

/**
 * "eos": an end-of-sequence or end-of-turn token; "stop": a stop string; "length": maxTokens or the context
 * ran out; "aborted": the signal fired (the text so far is returned).
 */
export type FinishReason = "eos" | "stop" | "length" | "aborted";

export interface GenerateResult {
  /** The generated text, cut before a stop string; end-of-turn tokens are not shown. */
  text: string;
  /** Every sampled token except a final end-of-sequence/end-of-turn token. */
  tokens: number[];
  finishReason: FinishReason;
}

export interface TokenEvent {
  /** Index of the request in the `requests` array. */
  request: number;
  /** The sampled token; absent on the last event of an aborted request, which only releases held text. */
  token?: number;
  /** Text that became final with this token ("" while a possible stop string or a UTF-8 character is pending). */
  text: string;
}

export interface GenerateOptions {
  /** An adapter applied unmerged to every request. */
  lora?: LoraWeights;
  /** Called for every sampled token, in request order within a step. */
  onToken?: (event: TokenEvent) => void;
  /** Ends every request after the current step; results say finishReason "aborted". */
  signal?: AbortSignal;
  /** Adds the template's end-of-turn tokens (<|im_end|>, <|eot_id|>, </s>, ...) to the stop tokens. */
  template?: ChatTemplate;
  /** Replaces the default stop tokens (tokenizer EOS/EOT/EOM, plus the template's end-of-turn tokens). */
  stopTokens?: Iterable<number>;
}

/**
 * Token ids that end a generation: the tokenizer's EOS, EOT and EOM tokens, and, with a template, the special
 * tokens the template writes after an assistant message (found by rendering one, so any template works).
 */
export function stopTokenIds(tokenizer: Tokenizer, template?: ChatTemplate): number[] {
  const ids = new Set<number>();
  for (const id of [tokenizer.eosId, tokenizer.vocab.eotId, tokenizer.vocab.eomId])
    if (id !== undefined) ids.add(id);
  if (template) {
    const rendered = renderWithSpans(
      template,
      [
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello" },
      ],
      tokenizer,
    );
    for (const span of rendered.assistantSpans) {
      for (let t = span.contentEnd; t < span.turnEnd; t++) {
        if (tokenizer.isSpecial(rendered.ids[t])) ids.add(rendered.ids[t]);
      }
    }
  }
  return [...ids].sort((a, b) => a - b);
}

interface Live {
  index: number;
  slot: number;
  history: number[];
  tokens: number[];
  rng: Rng;
  budget: number;
  matcher: StopStringMatcher;
  utf8: TextDecoder;
  text: string;
  finish?: FinishReason;
}

/**
 * Generate a continuation for every request. Prompts are prefilled in one batch (identical prompts only
 * once, then copied in the cache), after which each step samples one token per live sequence and decodes all
 * of them in one batched call. Each request's draws come from its own Rng(seed), so a request's output does
 * not depend on which other requests run beside it.
 */
export async function generate(
  model: EngineWeights,
  tokenizer: Tokenizer,
  requests: readonly GenerateRequest[],
  options: GenerateOptions = {},
): Promise<GenerateResult[]> {
  const ctx = model.spec.contextLength;
  requests.forEach((r, i) => {
    if (r.promptIds.length === 0) throw new InputError(`request ${i}: the prompt has no tokens`);
    if (r.promptIds.length >= ctx) {
      throw new InputError(
        `request ${i}: the prompt has ${r.promptIds.length} tokens; the model's context is ${ctx}`,
        { hint: "shorten the prompt" },
      );
    }
    if (!(Number.isInteger(r.maxTokens) && r.maxTokens >= 1))
      throw new InputError(`request ${i}: maxTokens must be a positive integer, got ${r.maxTokens}`);
  });
  if (requests.length === 0) return [];
  const stopTokens = new Set(options.stopTokens ?? stopTokenIds(tokenizer, options.template));
  const budget = requests.map((r) => Math.min(r.maxTokens, ctx - r.promptIds.length));
  const maxLen = Math.max(...requests.map((r, i) => r.promptIds.length + budget[i]));
  const cache = new KVCache(model, requests.length, maxLen);
  const live: Live[] = requests.map((r, i) => ({
    index: i,
    slot: i,
    history: [...r.promptIds],
    tokens: [],
    rng: new Rng(r.seed),
    budget: budget[i],
    matcher: new StopStringMatcher(r.stop ?? []),
    utf8: new TextDecoder("utf-8"),
    text: "",
  }));
  const V = model.output.rows;
  const decodeOpts = options.lora ? { lora: options.lora } : {};

  // Prefill: each distinct prompt once; copies share its cache rows and logits.
  const firstWithPrompt = new Map<string, number>();
  const owner = requests.map((r, i) => {
    const key = r.promptIds.join(",");
    const j = firstWithPrompt.get(key);
    if (j !== undefined) return j;
    firstWithPrompt.set(key, i);
    return i;
  });
  const uniques = [...firstWithPrompt.values()];
  const prefill = decode(
    model,
    cache,
    uniques.map((i) => ({ seq: i, tokens: requests[i].promptIds })),
    decodeOpts,
  );
  let logits: Float32Array[] = requests.map((_, i) => {
    const row = uniques.indexOf(owner[i]);
    if (owner[i] !== i) cache.copy(owner[i], i);
    return prefill.subarray(row * V, (row + 1) * V);
  });

  let active = live;
  while (active.length > 0) {
    if (options.signal?.aborted) {
      for (const s of active) finish(s, "aborted", options);
      break;
    }
    const next: Live[] = [];
    active.forEach((s, k) => {
      const token = sampleToken(logits[k], requests[s.index].sampling, s.rng, s.history);
      const step = advance(s, token, tokenizer, stopTokens.has(token));
      s.text += step.text;
      options.onToken?.({ request: s.index, token, text: step.text });
      if (step.done) s.finish = step.reason;
      else next.push(s);
    });
    active = next;
    if (active.length === 0) break;
    const out = decode(
      model,
      cache,
      active.map((s) => ({ seq: s.slot, tokens: [s.history[s.history.length - 1]] })),
      decodeOpts,
    );
    logits = active.map((_, k) => out.subarray(k * V, (k + 1) * V));
    // Let the event loop run between steps (abort signals, streamed output).
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return live.map((s) => ({ text: s.text, tokens: s.tokens, finishReason: s.finish ?? "length" }));
}

/** Feed one sampled token to a sequence's stopping rules: the text it makes final, and whether it ends here. */
function advance(
  s: Live,
  token: number,
  tokenizer: Tokenizer,
  isStopToken: boolean,
): { text: string; done: boolean; reason?: FinishReason } {
  if (isStopToken) return { text: release(s, ""), done: true, reason: "eos" };
  s.tokens.push(token);
  s.history.push(token);
  const m = s.matcher.push(s.utf8.decode(tokenizer.tokenBytes(token), { stream: true }));
  if (m.stopped) return { text: m.text, done: true, reason: "stop" };
  if (s.tokens.length >= s.budget) return { text: release(s, m.text), done: true, reason: "length" };
  return { text: m.text, done: false };
}

/** `text` plus everything still held back (an unfinished UTF-8 character, a partial stop string). */
function release(s: Live, text: string): string {
  const tail = s.utf8.decode();
  const m = tail ? s.matcher.push(tail) : { text: "", stopped: false };
  return text + m.text + s.matcher.flush();
}

/** End a sequence early: release held-back text (no stop string can complete any more). */
function finish(s: Live, reason: FinishReason, options: GenerateOptions): void {
  s.finish = reason;
  const rest = release(s, "");
  s.text += rest;
  if (rest) options.onToken?.({ request: s.index, text: rest });
}
