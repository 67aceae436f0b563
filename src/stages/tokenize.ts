// Turns Samples into the engine's TrainExamples: each chat rendered with the model's template, the loss on the
// assistant answers and their end-of-turn tokens only, chats longer than the limit truncated and reported.

import { createHash } from "node:crypto";
import type { Sample } from "../data/sample.js";
import { renderWithSpans, type ChatTemplate } from "../formats/chat/index.js";
import type { Tokenizer } from "../formats/tokenizer/index.js";
import type { TrainExample } from "../engine/index.js";
import { InputError } from "../util/errors.js";

export interface TokenizedSamples {
  examples: TrainExample[];
  /** Ids of the samples behind `examples`, in the same order. */
  ids: string[];
  /** Samples cut at the length limit (with their full length), and samples dropped because no assistant token was left. */
  truncated: { id: string; tokens: number }[];
  dropped: { id: string }[];
  /** All tokens, and the tokens the loss covers. */
  tokens: number;
  targets: number;
}

/**
 * Render every sample with the template; the loss covers each assistant answer and its end-of-turn tokens
 * (contentStart..turnEnd). Samples longer than maxLen keep their first maxLen tokens.
 */
export function tokenizeSamples(
  samples: readonly Sample[],
  tokenizer: Tokenizer,
  template: ChatTemplate,
  maxLen: number,
): TokenizedSamples {
  const out: TokenizedSamples = { examples: [], ids: [], truncated: [], dropped: [], tokens: 0, targets: 0 };
  for (const sample of samples) {
    if (!sample.messages.some((m) => m.role === "assistant" && m.content.trim() !== "")) {
      throw new InputError(`${sample.id}: no assistant message with text; there is nothing to learn from`, {
        hint: "training samples need an assistant answer",
      });
    }
    let rendered;
    try {
      rendered = renderWithSpans(template, sample.messages, tokenizer);
    } catch (err) {
      if (err instanceof InputError)
        throw new InputError(`${sample.id}: ${err.message}`, { hint: err.hint, cause: err });
      throw err;
    }
    let ids = rendered.ids;
    if (ids.length > maxLen) {
      out.truncated.push({ id: sample.id, tokens: ids.length });
      ids = ids.slice(0, maxLen);
    }
    const spans = rendered.assistantSpans
      .map((s) => ({ start: s.contentStart, end: Math.min(s.turnEnd, ids.length) }))
      .filter((s) => s.end > s.start);
    if (spans.length === 0) {
      out.dropped.push({ id: sample.id });
      continue;
    }
    out.examples.push({ ids, spans });
    out.ids.push(sample.id);
    out.tokens += ids.length;
    out.targets += spans.reduce((s, sp) => s + sp.end - Math.max(1, sp.start), 0);
  }
  return out;
}

/** sha256 of the samples' chats in order (what training sees; ids, sources and tags do not count). */
export function samplesHash(samples: readonly Sample[]): string {
  const h = createHash("sha256");
  for (const s of samples) h.update(JSON.stringify(s.messages.map((m) => [m.role, m.content]))).update("\n");
  return h.digest("hex");
}
