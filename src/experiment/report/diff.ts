// Word-level diff of an original response and its curated rewrite, for the report's before/after view.
// A longest-common-subsequence over words and punctuation; whitespace rides along with the token before it.

export interface DiffPart {
  op: "same" | "del" | "ins";
  text: string;
}

/**
 * Words (letters, digits, apostrophes, hyphens) and single punctuation marks, each with its trailing
 * whitespace; leading whitespace is its own token so the tokens concatenate back to the text.
 */
export function wordTokens(text: string): string[] {
  return text.match(/^\s+|[\p{L}\p{N}\p{M}'’-]+\s*|[^\s\p{L}\p{N}\p{M}'’-]\s*/gu) ?? [];
}

// Above this many LCS cells (about 2000 x 2000 words) the diff degrades to "all deleted, all inserted".
const MAX_CELLS = 4_000_000;

/**
 * The word diff turning `before` into `after`: the "same" and "ins" parts concatenate to exactly `after`; the
 * "same" and "del" parts give `before` up to whitespace. Words compare without their trailing whitespace.
 */
export function wordDiff(before: string, after: string): DiffPart[] {
  const a = wordTokens(before);
  const b = wordTokens(after);
  const parts: DiffPart[] = [];
  const push = (op: DiffPart["op"], text: string) => {
    const last = parts[parts.length - 1];
    if (last && last.op === op) last.text += text;
    else parts.push({ op, text });
  };
  if (a.length * b.length > MAX_CELLS) {
    if (before) push("del", before);
    if (after) push("ins", after);
    return parts;
  }
  const key = (t: string) => t.trimEnd();
  const ak = a.map(key);
  const bk = b.map(key);
  // lcs[i][j] = length of the LCS of a[i:] and b[j:], flattened row-major with stride b.length + 1.
  const stride = b.length + 1;
  const lcs = new Uint32Array((a.length + 1) * stride);
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i * stride + j] =
        ak[i] === bk[j]
          ? lcs[(i + 1) * stride + j + 1] + 1
          : Math.max(lcs[(i + 1) * stride + j], lcs[i * stride + j + 1]);
    }
  }
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (ak[i] === bk[j]) {
      // A kept word keeps the new text's spacing so the "after" view reads exactly like the curated text.
      push("same", b[j]);
      i++;
      j++;
    } else if (lcs[(i + 1) * stride + j] >= lcs[i * stride + j + 1]) push("del", a[i++]);
    else push("ins", b[j++]);
  }
  while (i < a.length) push("del", a[i++]);
  while (j < b.length) push("ins", b[j++]);
  return parts;
}
