// The one record every dataset format converts to and from: an id, a chat (system?, user, assistant turns),
// where it came from, and free-form tags. Curation, stages and evaluation all pass Samples around.

import type { ChatMessage } from "../formats/chat/index.js";

export interface Sample {
  /** Stable id: from the file when it has one, else "<file basename>:<line>" (or a caller's choice). */
  id: string;
  /** The chat; training data ends with an assistant message, prompt sets with a user message. */
  messages: ChatMessage[];
  /** Where it came from: a file path, "world:<kind>", "builtin:<name>", ... */
  source?: string;
  /** Labels: "harmful", "benign", a harm category, "curated", ... */
  tags?: string[];
  /** Anything else a format carried (category, label, original fields) that should survive a round trip. */
  meta?: Record<string, unknown>;
}

/** The last user message's text (the query), or "" when there is none. */
export function queryOf(sample: Sample): string {
  for (let i = sample.messages.length - 1; i >= 0; i--)
    if (sample.messages[i].role === "user") return sample.messages[i].content;
  return "";
}

/** The final assistant message's text (the response), or undefined for a prompt-only sample. */
export function responseOf(sample: Sample): string | undefined {
  const last = sample.messages[sample.messages.length - 1];
  return last?.role === "assistant" ? last.content : undefined;
}

/** The messages before the final assistant message (the prompt a response is conditioned on). */
export function promptMessages(sample: Sample): ChatMessage[] {
  const last = sample.messages[sample.messages.length - 1];
  return last?.role === "assistant" ? sample.messages.slice(0, -1) : sample.messages.slice();
}

/** A copy of `sample` whose final assistant message is `response` (appended when it has none). */
export function withResponse(sample: Sample, response: string): Sample {
  return { ...sample, messages: [...promptMessages(sample), { role: "assistant", content: response }] };
}
