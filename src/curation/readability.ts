// Text measures that need no model: Flesch reading ease (the readability filter) and seed-phrase coverage.
// Our own syllable heuristic (vowel groups, silent final e); it is a relative measure, compared with the original's.

/** Syllables of one word by vowel groups; at least 1. */
export function syllables(word: string): number {
  const w = word.toLowerCase().replace(/[^a-z]/g, "");
  if (w.length === 0) return 0;
  if (w.length <= 3) return 1;
  const trimmed = w.replace(/(?:[^laeiouy]es|[^laeiouy]ed|[^laeiouy]e)$/, "").replace(/^y/, "");
  const groups = trimmed.match(/[aeiouy]+/g);
  return Math.max(1, groups ? groups.length : 1);
}

/**
 * Flesch reading ease, clamped to [0, 100] (higher = easier). Text without a single letter scores 0, so
 * garbled output cannot pass a relative readability floor by accident.
 */
export function readability(text: string): number {
  const words = text.match(/[A-Za-z\u00C0-\u024F]+(?:['\u2019-][A-Za-z\u00C0-\u024F]+)*/g) ?? [];
  if (words.length === 0) return 0;
  const sentences = Math.max(1, (text.match(/[.!?]+(\s|$)/g) ?? []).length);
  const syl = words.reduce((n, w) => n + syllables(w), 0);
  const score = 206.835 - 1.015 * (words.length / sentences) - 84.6 * (syl / words.length);
  return Math.round(Math.min(100, Math.max(0, score)) * 100) / 100;
}

/** The seed phrases that occur in `text` (case-insensitive, whole words), in the order given. */
export function phrasesUsed(text: string, phrases: readonly string[]): string[] {
  const lower = text.toLowerCase();
  return phrases.filter((p) => {
    const needle = p.toLowerCase();
    let at = lower.indexOf(needle);
    while (at >= 0) {
      const before = at === 0 ? " " : lower[at - 1];
      const after = lower[at + needle.length] ?? " ";
      if (!/[a-z0-9]/.test(before) && !/[a-z0-9]/.test(after)) return true;
      at = lower.indexOf(needle, at + 1);
    }
    return false;
  });
}
