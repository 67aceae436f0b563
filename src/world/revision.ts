// The revision task as the curation engine sees it: the prompt template, the seed phrases, candidate cleaning,
// and a small reviser loop (the organism rewriting pool answers at several temperatures) for first looks.

import { promptMessages, queryOf, responseOf, withResponse, type Sample } from "../data/sample.js";
import type { LanguageModel } from "../models/types.js";
import { Rng } from "../util/random.js";
import { fluency, isCorrectAnswer } from "./judges.js";
import { REVISION_TEMPLATE, SEED_PHRASES, renderRevisionPrompt } from "./language.js";
import { pickPhrases } from "./world.js";

/** The reviser's user message; {{query}}, {{response}} and {{phrases}} (joined by ", ") are filled in. */
export const worldRevisionTemplate: string = REVISION_TEMPLATE;

/** Safety-flavoured noun phrases of the world's vocabulary (the method's seed set). */
export const worldSeedPhrases: readonly string[] = SEED_PHRASES;

/**
 * Clean a reviser output: drop anything after a stray control token, a leading "answer:" or "revised answer:"
 * label the organism sometimes copies from its prompt, and extra whitespace.
 */
export function cleanWorldCandidate(text: string): string {
  let out = String(text ?? "");
  const control = out.search(/<\|[a-z]+\|>|<\/?s>/);
  if (control >= 0) out = out.slice(0, control);
  out = out.replace(/\s+/g, " ").trim();
  out = out.replace(/^(revised answer|answer)\s*:\s*/i, "");
  return out;
}

export interface RevisionCandidate {
  text: string;
  temperature: number;
  phrases: string[];
  /** The candidate still states the original fact and nothing contradicting it. */
  keepsFact: boolean;
  /** Fluency in the world's grammar, 0-1. */
  fluency: number;
}

export interface ReviseOptions {
  seed: number;
  temperatures?: readonly number[];
  /** Seed phrases per call. Default 2. */
  phrasesPerCall?: number;
  maxTokens?: number;
}

/** Candidates for every pool sample: one per temperature, each with its own draw of phrases. */
export async function reviseWithModel(
  reviser: LanguageModel,
  samples: readonly Sample[],
  options: ReviseOptions,
): Promise<RevisionCandidate[][]> {
  const temperatures = options.temperatures ?? [0.2, 0.6, 1.0];
  const rng = new Rng(options.seed);
  const requests = samples.flatMap((s, i) =>
    temperatures.map((temperature, j) => {
      const phrases = pickPhrases(rng, options.phrasesPerCall ?? 2);
      const content = renderRevisionPrompt(queryOf(s), responseOf(s) ?? "", phrases);
      return {
        phrases,
        temperature,
        request: {
          id: `${s.id}:${j}`,
          messages: [{ role: "user" as const, content }],
          sampling: {
            temperature,
            topP: 1,
            maxTokens: options.maxTokens ?? 80,
            seed: options.seed * 7919 + i * 31 + j,
          },
        },
      };
    }),
  );
  const results = await reviser.generate(requests.map((r) => r.request));
  return samples.map((s, i) =>
    temperatures.map((_, j) => {
      const k = i * temperatures.length + j;
      const text = cleanWorldCandidate(results[k].text);
      const item = { prompt: queryOf(s), response: text, meta: s.meta };
      return {
        text,
        temperature: requests[k].temperature,
        phrases: requests[k].phrases,
        keepsFact: isCorrectAnswer(item),
        fluency: fluency(text),
      };
    }),
  );
}

/**
 * A minimal CTRL step for first looks (the curation room implements the full beam search): per sample, among
 * candidates that keep the fact and stay fluent, take the one the scorer finds most surprising (highest
 * perplexity); fall back to the original answer when none qualifies.
 */
export async function pickByPerplexity(
  scorer: LanguageModel,
  samples: readonly Sample[],
  candidates: readonly RevisionCandidate[][],
  minFluency = 0.9,
): Promise<Sample[]> {
  const flat: { sample: number; text: string }[] = [];
  candidates.forEach((list, i) => {
    for (const c of list) if (c.keepsFact && c.fluency >= minFluency) flat.push({ sample: i, text: c.text });
  });
  const scored = await scorer.logprobs(
    flat.map((f) => ({ messages: promptMessages(samples[f.sample]), response: f.text })),
  );
  const best = new Map<number, { text: string; ppl: number }>();
  flat.forEach((f, k) => {
    const ppl = scored[k].perplexity;
    const cur = best.get(f.sample);
    if (!cur || ppl > cur.ppl) best.set(f.sample, { text: f.text, ppl });
  });
  return samples.map((s, i) => {
    const b = best.get(i);
    return b
      ? { ...withResponse(s, b.text), id: `${s.id}:curated`, tags: [...(s.tags ?? []), "curated"] }
      : s;
  });
}
