// The revision task as the curation engine sees it: the prompt template, the seed phrases and candidate cleaning
// (src/curation runs the beam search itself).

import { REVISION_TEMPLATE, SEED_PHRASES } from "./language.js";

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
