// Which tokens a log-probs request scores, decided once for every backend: the same request gives the same
// token ids under native, llamacpp and openai, so their perplexities can be compared.

import { renderWithSpans, type ChatTemplate } from "../formats/chat/index.js";
import type { Tokenizer } from "../formats/tokenizer/index.js";
import { InputError } from "../util/errors.js";
import type { LogprobsRequest } from "./types.js";

export interface ScoredSpan {
  /** The whole sequence fed to the model. */
  ids: number[];
  /** The response's tokens are ids[start, end). */
  start: number;
  end: number;
}

/**
 * With `messages`: the chat plus the response as the assistant's answer, rendered with the model's template;
 * the response tokens are the answer's content span (its end-of-turn marker is not scored).
 * With a raw `prompt`: the prompt's ids (BOS as the vocabulary says) followed by the response's own ids
 * (no BOS), so the boundary is exact even where joint tokenization would merge across it.
 */
export function responseSpan(
  tokenizer: Tokenizer,
  template: ChatTemplate,
  request: LogprobsRequest,
  where: string,
): ScoredSpan {
  if ((request.messages === undefined) === (request.prompt === undefined)) {
    throw new InputError(`${where}: give exactly one of messages or prompt`);
  }
  if (request.messages !== undefined) {
    const rendered = renderWithSpans(
      template,
      [...request.messages, { role: "assistant", content: request.response }],
      tokenizer,
    );
    const span = rendered.assistantSpans[rendered.assistantSpans.length - 1];
    return { ids: rendered.ids, start: span.contentStart, end: span.contentEnd };
  }
  const promptIds = tokenizer.encode(request.prompt ?? "", { addSpecial: true });
  const responseIds = tokenizer.encode(request.response, { addSpecial: false });
  if (promptIds.length === 0) {
    throw new InputError(`${where}: the prompt has no tokens, so the first response token has no context`, {
      hint: "give a non-empty prompt, or use a vocabulary that adds BOS",
    });
  }
  return {
    ids: [...promptIds, ...responseIds],
    start: promptIds.length,
    end: promptIds.length + responseIds.length,
  };
}

/** exp(-mean log-prob); Infinity when nothing was scored. */
export function perplexityOf(logprobs: ArrayLike<number>): number {
  if (logprobs.length === 0) return Infinity;
  let sum = 0;
  for (let i = 0; i < logprobs.length; i++) sum += logprobs[i];
  return Math.exp(-sum / logprobs.length);
}
