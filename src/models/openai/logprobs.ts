// Reading response log-probs out of OpenAI-compatible answers: vLLM's `prompt_logprobs` (per prompt token, a
// map keyed by token id) and legacy completions `echo` + `logprobs`. Pure functions; no HTTP here.

import { UnavailableError } from "../../util/errors.js";

/** Length of the longest common prefix of two token lists. */
export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** exp(-mean); Infinity for an empty list (as LogprobsResult requires). */
export function perplexityOf(logprobs: readonly number[]): number {
  if (logprobs.length === 0) return Infinity;
  let sum = 0;
  for (const lp of logprobs) sum += lp;
  return Math.exp(-sum / logprobs.length);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Log-probs of `tokens[from..]` out of a vLLM completions answer made with `prompt_logprobs` and the prompt
 * given as those token ids. vLLM's shape: choices[0].prompt_logprobs is a list, one entry per prompt token,
 * null for the first, else an object keyed by token id (as a string) whose values carry `logprob`; the
 * prompt's own token is always among the keys. Anything else throws: wrong numbers are never returned.
 */
export function parseVllmPromptLogprobs(answer: unknown, tokens: readonly number[], from: number): number[] {
  const where = "vLLM completions answer (prompt_logprobs)";
  const choice = isRecord(answer) && Array.isArray(answer.choices) ? answer.choices[0] : undefined;
  const list = isRecord(choice) ? choice.prompt_logprobs : undefined;
  if (!Array.isArray(list)) {
    throw new UnavailableError(
      `${where}: choices[0].prompt_logprobs is missing (this server does not return prompt log-probs)`,
      {
        hint: "this server does not return prompt log-probs; use a vLLM server, or the llamacpp or native backend",
      },
    );
  }
  if (list.length !== tokens.length) {
    throw new UnavailableError(
      `${where}: ${list.length} prompt_logprobs entries for a prompt of ${tokens.length} tokens`,
      {
        hint: "the server tokenized the prompt differently from /tokenize; report this with the server version",
      },
    );
  }
  const out: number[] = [];
  for (let i = from; i < tokens.length; i++) {
    const entry = list[i];
    if (i === 0) {
      // The first token has no context; it cannot be scored.
      throw new UnavailableError(
        `${where}: the response starts at the first prompt token and cannot be scored`,
        {
          hint: "give a non-empty prompt or conversation before the response",
        },
      );
    }
    const value = isRecord(entry) ? entry[String(tokens[i])] : undefined;
    const logprob = isRecord(value) ? value.logprob : typeof value === "number" ? value : undefined;
    if (typeof logprob !== "number" || Number.isNaN(logprob) || logprob > 1e-6) {
      throw new UnavailableError(
        `${where}: entry ${i} has no log-prob for prompt token ${tokens[i]} (got ${JSON.stringify(entry)?.slice(0, 200)})`,
        { hint: "the server's prompt_logprobs format is not the one buckle knows; use the native backend" },
      );
    }
    out.push(Math.min(0, logprob));
  }
  return out;
}

/** One scored token of an echo answer: its text, its character offset in prompt+response, its log-prob. */
export interface EchoToken {
  text: string;
  offset: number;
  logprob: number | null;
}

/**
 * Tokens of a completions answer made with `echo: true, logprobs: 0`: choices[0].logprobs.{tokens,
 * token_logprobs, text_offset}. Checks that the prompt really came back (first log-prob null, text starting
 * with the prompt) — servers that ignore `echo` fail here instead of giving numbers for the wrong tokens.
 */
export function parseEchoLogprobs(answer: unknown, fullText: string): EchoToken[] {
  const where = "completions answer (echo + logprobs)";
  const choice = isRecord(answer) && Array.isArray(answer.choices) ? answer.choices[0] : undefined;
  const lp = isRecord(choice) ? choice.logprobs : undefined;
  const tokens = isRecord(lp) ? lp.tokens : undefined;
  const values = isRecord(lp) ? lp.token_logprobs : undefined;
  const offsets = isRecord(lp) ? lp.text_offset : undefined;
  const text = isRecord(choice) ? choice.text : undefined;
  if (
    !Array.isArray(tokens) ||
    !Array.isArray(values) ||
    !Array.isArray(offsets) ||
    tokens.length !== values.length ||
    tokens.length !== offsets.length ||
    typeof text !== "string"
  ) {
    throw new UnavailableError(
      `${where}: choices[0].logprobs has no tokens/token_logprobs/text_offset lists`,
      {
        hint: "this server does not echo prompt log-probs; use a vLLM server, or the llamacpp or native backend",
      },
    );
  }
  if (!text.startsWith(fullText) || tokens.length === 0 || values[0] !== null) {
    throw new UnavailableError(`${where}: the server did not echo the prompt with its log-probs`, {
      hint: "this server does not echo prompt log-probs; use a vLLM server, or the llamacpp or native backend",
    });
  }
  return tokens.map((t, i) => {
    const v = values[i];
    const o = offsets[i];
    if (typeof t !== "string" || typeof o !== "number" || (v !== null && typeof v !== "number")) {
      throw new UnavailableError(`${where}: malformed token ${i}: ${JSON.stringify([t, v, o])}`);
    }
    return { text: t, offset: o, logprob: v };
  });
}

/**
 * The echo tokens that belong to the response: those ending after the prompt's last character (a token
 * that straddles the boundary counts as response, matching the token-prefix rule of the vLLM route).
 * Only the tokens that fall inside prompt+response are kept (generated tokens after it are dropped).
 */
export function echoResponseTokens(
  tokens: readonly EchoToken[],
  promptChars: number,
  fullChars: number,
): EchoToken[] {
  const out: EchoToken[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const start = tokens[i].offset;
    const end = i + 1 < tokens.length ? tokens[i + 1].offset : start + tokens[i].text.length;
    if (start >= fullChars) break;
    if (end > promptChars) out.push(tokens[i]);
  }
  return out;
}

/** vLLM's `return_tokens_as_token_ids` renders tokens as "token_id:<n>"; undefined for anything else. */
export function tokenIdFromText(text: string): number | undefined {
  const m = /^token_id:(\d+)$/.exec(text);
  return m ? Number(m[1]) : undefined;
}
