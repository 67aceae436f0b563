// Candidate cleaning: what the reviser said around its rewrite ("Here is the revised answer:", wrapping
// quotes, code fences, sign-offs) is cut away; empty output and plain copies of the original are rejected.

export interface CleanContext {
  /** The user's query of the sample. */
  query: string;
  /** The text the reviser was asked to revise (the parent). */
  parent: string;
  /** The sample's original response. */
  original: string;
}

export type CleanResult = { ok: true; text: string } | { ok: false; reason: string };

/** Replaceable: the model organism and users with other revisers plug in their own. */
export type CandidateCleaner = (text: string, context: CleanContext) => CleanResult;

// Openers a chat model puts before the text it was asked for. Each pattern eats one opener with its colon.
const LEADING_META: RegExp[] = [
  /^(sure|certainly|of course|okay|ok|absolutely|great)\s*[,!.:]\s*/i,
  /^(here|below)\s+(is|are|'s)\b[^\n:]{0,120}:\s*/i,
  /^here'?s\b[^\n:]{0,120}:\s*/i,
  /^(the\s+)?(revised|rewritten|new|alternative|improved|updated)\s+(answer|response|version|text)\b[^\n:]{0,60}:\s*/i,
  /^(answer|response)\s*:\s*/i,
];

// Closers: a last paragraph that talks about the rewrite instead of answering.
const TRAILING_META =
  /\n\s*(i hope (this|that)|let me know|feel free to|note:|\(note|this (revised|rewritten|new) (answer|response|version)|i have (revised|rewritten)|in this (revision|rewrite|version))[^\n]*$/i;

const QUOTE_PAIRS: [string, string][] = [
  ['"', '"'],
  ["\u201c", "\u201d"],
  ["'", "'"],
  ["\u00ab", "\u00bb"],
];

function normalizeSpace(text: string): string {
  return text.replace(/\s+/g, " ").trim().toLowerCase();
}

function stripWrapping(text: string): string {
  let out = text.trim();
  for (let changed = true; changed;) {
    changed = false;
    const fence = /^```[\w-]*\n([\s\S]*?)\n?```$/.exec(out);
    if (fence) {
      out = fence[1].trim();
      changed = true;
    }
    for (const [open, close] of QUOTE_PAIRS) {
      const inner = out.slice(open.length, out.length - close.length);
      // Only a pair that wraps the whole text: no unmatched quote of the same kind inside.
      if (out.length > 2 && out.startsWith(open) && out.endsWith(close) && !inner.includes(close)) {
        out = inner.trim();
        changed = true;
      }
    }
  }
  return out;
}

/** The default cleaner. */
export const cleanCandidate: CandidateCleaner = (raw, context) => {
  let text = raw.replace(/\r\n/g, "\n").trim();
  for (let changed = true; changed;) {
    changed = false;
    for (const pattern of LEADING_META) {
      const next = text.replace(pattern, "");
      if (next !== text) {
        text = next.trim();
        changed = true;
      }
    }
    const stripped = stripWrapping(text);
    if (stripped !== text) {
      text = stripped;
      changed = true;
    }
  }
  for (let m = TRAILING_META.exec(text); m; m = TRAILING_META.exec(text))
    text = text.slice(0, m.index).trim();
  text = stripWrapping(text);
  if (text.length === 0) return { ok: false, reason: "empty" };
  if (
    normalizeSpace(text) === normalizeSpace(context.parent) ||
    normalizeSpace(text) === normalizeSpace(context.original)
  )
    return { ok: false, reason: "copy" };
  return { ok: true, text };
};
