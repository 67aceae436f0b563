// Byte-level BPE pre-tokenization exactly as llama.cpp does it: its Unicode 15.1 category tables,
// its hand-written splitters for the gpt2/llama3/qwen2 patterns and its "collapsed" regex fallback.

import { InputError } from "../../util/errors.js";

// ---------------------------------------------------------------------------------------------
// Code point categories
// ---------------------------------------------------------------------------------------------

/** Category bits of a code point (one of the first eight, plus WHITESPACE). */
export const CpFlag = {
  UNDEFINED: 0x001,
  NUMBER: 0x002,
  LETTER: 0x004,
  SEPARATOR: 0x008,
  MARK: 0x010,
  PUNCTUATION: 0x020,
  SYMBOL: 0x040,
  CONTROL: 0x080,
  WHITESPACE: 0x100,
} as const;

const CATEGORY_MASK = 0xff;

// llama.cpp's tables are generated from Unicode 15.1; Node's ICU is usually newer. These are the
// code points assigned in Unicode 16.0 and 17.0 (DerivedAge), which llama.cpp still sees as
// unassigned (Cn), so classifying them with a newer \p{..} would split text differently.
// Flat [first, last, first, last, ...], ascending.
const NEWER_THAN_15_1 = new Uint32Array([
  0x88f, 0x88f, 0x897, 0x897, 0xc5c, 0xc5c, 0xcdc, 0xcdc, 0x1acf, 0x1add, 0x1ae0, 0x1aeb, 0x1b4e, 0x1b4f,
  0x1b7f, 0x1b7f, 0x1c89, 0x1c8a, 0x20c1, 0x20c1, 0x2427, 0x2429, 0x2b96, 0x2b96, 0x31e4, 0x31e5, 0xa7cb,
  0xa7cf, 0xa7d2, 0xa7d2, 0xa7d4, 0xa7d4, 0xa7da, 0xa7dc, 0xa7f1, 0xa7f1, 0xfbc3, 0xfbd2, 0xfd90, 0xfd91,
  0xfdc8, 0xfdce, 0x105c0, 0x105f3, 0x10940, 0x10959, 0x10d40, 0x10d65, 0x10d69, 0x10d85, 0x10d8e, 0x10d8f,
  0x10ec2, 0x10ec7, 0x10ed0, 0x10ed8, 0x10efa, 0x10efc, 0x11380, 0x11389, 0x1138b, 0x1138b, 0x1138e, 0x1138e,
  0x11390, 0x113b5, 0x113b7, 0x113c0, 0x113c2, 0x113c2, 0x113c5, 0x113c5, 0x113c7, 0x113ca, 0x113cc, 0x113d5,
  0x113d7, 0x113d8, 0x113e1, 0x113e2, 0x116d0, 0x116e3, 0x11b60, 0x11b67, 0x11bc0, 0x11be1, 0x11bf0, 0x11bf9,
  0x11db0, 0x11ddb, 0x11de0, 0x11de9, 0x11f5a, 0x11f5a, 0x13460, 0x143fa, 0x16100, 0x16139, 0x16d40, 0x16d79,
  0x16ea0, 0x16eb8, 0x16ebb, 0x16ed3, 0x16ff2, 0x16ff6, 0x187f8, 0x187ff, 0x18cff, 0x18cff, 0x18d09, 0x18d1e,
  0x18d80, 0x18df2, 0x1cc00, 0x1ccfc, 0x1cd00, 0x1ceb3, 0x1ceba, 0x1ced0, 0x1cee0, 0x1cef0, 0x1e5d0, 0x1e5fa,
  0x1e5ff, 0x1e5ff, 0x1e6c0, 0x1e6de, 0x1e6e0, 0x1e6f5, 0x1e6fe, 0x1e6ff, 0x1f6d8, 0x1f6d8, 0x1f777, 0x1f77a,
  0x1f8b2, 0x1f8bb, 0x1f8c0, 0x1f8c1, 0x1f8d0, 0x1f8d8, 0x1fa54, 0x1fa57, 0x1fa89, 0x1fa8a, 0x1fa8e, 0x1fa8f,
  0x1fabe, 0x1fabe, 0x1fac6, 0x1fac6, 0x1fac8, 0x1fac8, 0x1facd, 0x1facd, 0x1fadc, 0x1fadc, 0x1fadf, 0x1fadf,
  0x1fae9, 0x1faea, 0x1faef, 0x1faef, 0x1fbcb, 0x1fbef, 0x1fbfa, 0x1fbfa, 0x2b73a, 0x2b73f, 0x2cea2, 0x2cead,
  0x323b0, 0x33479,
]);

function newerThanTables(cp: number): boolean {
  let lo = 0;
  let hi = NEWER_THAN_15_1.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < NEWER_THAN_15_1[2 * mid]) hi = mid - 1;
    else if (cp > NEWER_THAN_15_1[2 * mid + 1]) lo = mid + 1;
    else return true;
  }
  return false;
}

const RE_L = /\p{L}/u;
const RE_N = /\p{N}/u;
const RE_P = /\p{P}/u;
const RE_S = /\p{S}/u;
const RE_M = /\p{M}/u;
const RE_Z = /\p{Z}/u;
const RE_C = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}]/u;
// llama.cpp's \s set is Unicode White_Space (includes U+0085, excludes U+FEFF, unlike JS \s).
const RE_WS = /\p{White_Space}/u;

// Filled lazily: 0 means "not computed yet" (every real code point has a category bit).
let flagCache: Uint16Array | undefined;

function computeFlags(cp: number): number {
  if (cp > 0x10ffff) return CpFlag.UNDEFINED;
  const s = String.fromCodePoint(cp);
  let f: number;
  if (newerThanTables(cp)) f = CpFlag.UNDEFINED;
  else if (RE_L.test(s)) f = CpFlag.LETTER;
  else if (RE_N.test(s)) f = CpFlag.NUMBER;
  else if (RE_P.test(s)) f = CpFlag.PUNCTUATION;
  else if (RE_S.test(s)) f = CpFlag.SYMBOL;
  else if (RE_M.test(s)) f = CpFlag.MARK;
  else if (RE_Z.test(s)) f = CpFlag.SEPARATOR;
  else if (RE_C.test(s)) f = CpFlag.CONTROL;
  else f = CpFlag.UNDEFINED;
  if (RE_WS.test(s)) f |= CpFlag.WHITESPACE;
  return f;
}

/** llama.cpp's category flags of a code point (see CpFlag). */
export function cpFlags(cp: number): number {
  if (cp > 0x10ffff) return CpFlag.UNDEFINED;
  const cache = (flagCache ??= new Uint16Array(0x110000));
  let f = cache[cp];
  if (f === 0) cache[cp] = f = computeFlags(cp);
  return f;
}

/** Code points of `text`; unpaired surrogates become U+FFFD, as they do on the way to UTF-8. */
export function codePoints(text: string): Uint32Array {
  const out = new Uint32Array(text.length);
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        out[n++] = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        continue;
      }
    }
    out[n++] = c >= 0xd800 && c <= 0xdfff ? 0xfffd : c;
  }
  return out.subarray(0, n);
}

// ---------------------------------------------------------------------------------------------
// Hand-written splitters. llama.cpp does not run these patterns through a regex engine but through
// code with its own edge cases (e.g. "\s+(?!\S)" only backs off one whitespace when another code
// point follows); these mirror that code, not the regex.
// ---------------------------------------------------------------------------------------------

const OUT = -1;
const CH_APOS = 0x27;
const CH_SPACE = 0x20;
const CH_CR = 0x0d;
const CH_LF = 0x0a;

type Splitter = (cpts: Uint32Array, segments: number[]) => number[];

/** Context of one segment: code point and flags at a position, or OUT / 0 outside it. */
function segmentView(cpts: Uint32Array, ini: number, end: number) {
  return {
    cpt: (pos: number): number => (pos >= ini && pos < end ? cpts[pos] : OUT),
    flags: (pos: number): number => (pos >= ini && pos < end ? cpFlags(cpts[pos]) : 0),
  };
}

/** One segment being split: its bounds, its view, and `add(e)`, which cuts a word ending at `e`. */
interface SegmentScan {
  ini: number;
  end: number;
  cpt: (pos: number) => number;
  flags: (pos: number) => number;
  /** Emits the code points since the previous cut as a word (when any) and returns their count. */
  add: (e: number) => number;
}

/** A Splitter that runs `scan` over each segment in turn. */
function perSegment(scan: (seg: SegmentScan) => void): Splitter {
  return (cpts, segments) => {
    const out: number[] = [];
    let start = 0;
    for (const len of segments) {
      const ini = start;
      const end = start + len;
      start = end;
      let prev = ini;
      const add = (e: number): number => {
        const n = e - prev;
        if (n > 0) out.push(n);
        prev = e;
        return n;
      };
      scan({ ini, end, ...segmentView(cpts, ini, end), add });
    }
    return out;
  };
}

/**
 * Where the final "\s+(?!\S)|\s+" alternatives of the GPT-2 style patterns end a word that starts
 * at `pos` with `nws` whitespace code points: one short of the run when more text follows it, else
 * the whole run, else (no whitespace) the single code point at `pos`.
 */
function trailingAlternativesEnd(pos: number, nws: number, cpt: (p: number) => number): number {
  if (nws > 1 && cpt(pos + nws) !== OUT) return pos + nws - 1;
  return nws > 0 ? pos + nws : pos + 1;
}

function lowerAscii(cp: number): number {
  return cp >= 0x41 && cp <= 0x5a ? cp + 32 : cp;
}

/** Length of a contraction ('s 't 're 've 'm 'll 'd) at `pos`, 0 if none. */
function contraction(cpt: (p: number) => number, pos: number, end: number, caseless: boolean): number {
  if (cpt(pos) !== CH_APOS || pos + 1 >= end) return 0;
  const lc = caseless ? lowerAscii : (c: number) => c;
  const a = lc(cpt(pos + 1));
  if (a === 0x73 || a === 0x74 || a === 0x6d || a === 0x64) return 2; // s t m d
  if (pos + 2 < end) {
    const b = lc(cpt(pos + 2));
    if ((a === 0x72 && b === 0x65) || (a === 0x76 && b === 0x65) || (a === 0x6c && b === 0x6c)) return 3;
  }
  return 0;
}

const WLN = CpFlag.WHITESPACE | CpFlag.LETTER | CpFlag.NUMBER;

/** 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
const splitGpt2: Splitter = perSegment(({ ini, end, cpt, flags, add }) => {
  for (let pos = ini; pos < end;) {
    const c = cpt(pos);
    const k = contraction(cpt, pos, end, false);
    if (k > 0) {
      pos += add(pos + k);
      continue;
    }
    let f2 = c === CH_SPACE ? flags(pos + 1) : flags(pos);
    if (f2 & CpFlag.LETTER) {
      if (c === CH_SPACE) pos++;
      while (f2 & CpFlag.LETTER) f2 = flags(++pos);
      add(pos);
      continue;
    }
    if (f2 & CpFlag.NUMBER) {
      if (c === CH_SPACE) pos++;
      while (f2 & CpFlag.NUMBER) f2 = flags(++pos);
      add(pos);
      continue;
    }
    if (!(f2 & WLN) && f2 !== 0) {
      if (c === CH_SPACE) pos++;
      while (!(f2 & WLN) && f2 !== 0) f2 = flags(++pos);
      add(pos);
      continue;
    }
    let nws = 0;
    while (flags(pos + nws) & CpFlag.WHITESPACE) nws++;
    pos = trailingAlternativesEnd(pos, nws, cpt);
    add(pos);
  }
});

/**
 * The Llama 3 / Qwen2 / Qwen3.5 family:
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxDigits}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * with `marks` adding \p{M} to the letter runs (Qwen3.5).
 */
function llama3LikeSplitter(maxDigits: number, marks: boolean): Splitter {
  const wordish = CpFlag.LETTER | (marks ? CpFlag.MARK : 0);
  const notPunct = WLN | (marks ? CpFlag.MARK : 0);
  return perSegment(({ ini, end, cpt, flags, add }) => {
    for (let pos = ini; pos < end;) {
      const c = cpt(pos);
      const f = flags(pos);
      const k = contraction(cpt, pos, end, true);
      if (k > 0) {
        pos += add(pos + k);
        continue;
      }
      if (!(c === CH_CR || c === CH_LF || f & CpFlag.NUMBER)) {
        if (f & wordish || flags(pos + 1) & wordish) {
          pos++;
          while (flags(pos) & wordish) pos++;
          add(pos);
          continue;
        }
      }
      if (f & CpFlag.NUMBER) {
        let groupStart = pos;
        while (flags(pos) & CpFlag.NUMBER) {
          if (++pos - groupStart >= maxDigits) {
            add(pos);
            groupStart = pos;
          }
        }
        add(pos);
        continue;
      }
      let f2 = c === CH_SPACE ? flags(pos + 1) : f;
      // llama.cpp tests the flags of the code point itself here, not of the one after the space.
      if (!(f2 & notPunct) && f !== 0) {
        if (c === CH_SPACE) pos++;
        while (!(f2 & notPunct) && f2 !== 0) f2 = flags(++pos);
        let c2 = cpt(pos);
        while (c2 === CH_CR || c2 === CH_LF) c2 = cpt(++pos);
        add(pos);
        continue;
      }
      let nws = 0;
      let lastNewlineEnd = 0;
      while (flags(pos + nws) & CpFlag.WHITESPACE) {
        const c2 = cpt(pos + nws);
        if (c2 === CH_CR || c2 === CH_LF) lastNewlineEnd = pos + nws + 1;
        nws++;
      }
      if (lastNewlineEnd > 0) {
        pos = lastNewlineEnd;
        add(pos);
        continue;
      }
      pos = trailingAlternativesEnd(pos, nws, cpt);
      add(pos);
    }
  });
}

const CUSTOM_SPLITTERS = new Map<string, Splitter>([
  ["'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)", splitGpt2],
  [
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    llama3LikeSplitter(3, false),
  ],
  [
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    llama3LikeSplitter(3, false),
  ],
  [
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    llama3LikeSplitter(1, false),
  ],
  [
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    llama3LikeSplitter(1, true),
  ],
]);

// ---------------------------------------------------------------------------------------------
// Generic patterns. llama.cpp runs them through std::regex on a "collapsed" text where every
// non-ASCII code point is replaced by one byte standing for its category, and \p{..} in the
// pattern by a class of that byte plus the ASCII members. Doing the same here (JS regexes are
// ECMAScript too) reproduces its results, including what the collapse loses.
// ---------------------------------------------------------------------------------------------

const COLLAPSE_WS = 0x0b;
const COLLAPSE_OTHER = 0xd0;
const COLLAPSE_BYTE: Record<number, number> = {
  [CpFlag.NUMBER]: 0xd1,
  [CpFlag.LETTER]: 0xd2,
  [CpFlag.PUNCTUATION]: 0xd3,
  [CpFlag.MARK]: 0xd4,
  [CpFlag.SYMBOL]: 0xd5,
};
const CATEGORY_OF_PROPERTY: Record<string, number> = {
  "\\p{N}": CpFlag.NUMBER,
  "\\p{L}": CpFlag.LETTER,
  "\\p{P}": CpFlag.PUNCTUATION,
  "\\p{M}": CpFlag.MARK,
  "\\p{S}": CpFlag.SYMBOL,
  "\\p{Lu}": CpFlag.LETTER,
  "\\p{Ll}": CpFlag.LETTER,
  "\\p{Lt}": CpFlag.LETTER,
  "\\p{Lm}": CpFlag.LETTER,
  "\\p{Lo}": CpFlag.LETTER,
};

function hex2(n: number): string {
  return "\\x" + n.toString(16).padStart(2, "0");
}

/** Class body for one category in collapsed text: its marker byte plus its ASCII members. */
function collapsedClassBody(category: number): string {
  let body = hex2(COLLAPSE_BYTE[category]);
  for (let c = 0x21; c < 0x7f; c++) if ((cpFlags(c) & CATEGORY_MASK) === category) body += hex2(c);
  return body;
}

function usesCategories(expr: string): boolean {
  return Object.keys(CATEGORY_OF_PROPERTY).some((p) => expr.includes(p));
}

function collapsePattern(expr: string): RegExp {
  for (const ch of expr) {
    if (ch.codePointAt(0)! >= 0x80) {
      throw new InputError(`pre-tokenizer regex mixes Unicode categories and non-ASCII characters: ${expr}`);
    }
  }
  let out = "";
  let inside = false;
  for (let i = 0; i < expr.length; i++) {
    const ch = expr[i];
    if (ch === "[" && (i === 0 || expr[i - 1] !== "\\")) {
      out += "[";
      inside = true;
      continue;
    }
    if (inside && ch === "]" && expr[i - 1] !== "\\") {
      out += "]";
      inside = false;
      continue;
    }
    if (ch === "\\" && expr[i + 1] === "p" && expr[i + 2] === "{") {
      const close = expr.indexOf("}", i + 3);
      if (close !== -1 && close <= i + 10) {
        const category = CATEGORY_OF_PROPERTY[expr.slice(i, close + 1)];
        if (category !== undefined) {
          const body = collapsedClassBody(category);
          out += inside ? body : `[${body}]`;
          i = close;
          continue;
        }
      }
    }
    out += ch;
  }
  return new RegExp(out, "g");
}

/** std::wregex in the "C" locale: \s is ASCII whitespace only. */
function widePattern(expr: string): RegExp {
  let out = "";
  let inside = false;
  for (let i = 0; i < expr.length; i++) {
    const ch = expr[i];
    if (ch === "\\" && i + 1 < expr.length) {
      const nx = expr[i + 1];
      if (nx === "s") out += inside ? "\\t\\n\\v\\f\\r " : "[\\t\\n\\v\\f\\r ]";
      else if (nx === "S") out += inside ? "\\0-\\x08\\x0e-\\x1f\\x21-\\u{10ffff}" : "[^\\t\\n\\v\\f\\r ]";
      else out += ch + nx;
      i++;
      continue;
    }
    if (ch === "[") inside = true;
    else if (ch === "]") inside = false;
    out += ch;
  }
  return new RegExp(out, "gu");
}

function regexSplitter(expr: string): Splitter {
  if (usesCategories(expr)) {
    const re = collapsePattern(expr);
    return (cpts, segments) => {
      let collapsed = "";
      for (let i = 0; i < cpts.length; i++) {
        const cp = cpts[i];
        if (cp < 0x80) collapsed += String.fromCharCode(cp);
        else {
          const f = cpFlags(cp);
          const b =
            f & CpFlag.WHITESPACE ? COLLAPSE_WS : (COLLAPSE_BYTE[f & CATEGORY_MASK] ?? COLLAPSE_OTHER);
          collapsed += String.fromCharCode(b);
        }
      }
      // One UTF-16 unit per code point, so string indices are code point indices.
      return splitSegments(re, segments, (s, e) => ({ text: collapsed.slice(s, e), toCp: undefined }));
    };
  }
  const re = widePattern(expr);
  return (cpts, segments) =>
    splitSegments(re, segments, (s, e) => {
      let text = "";
      const toCp: number[] = [];
      for (let i = s; i < e; i++) {
        let cp = cpts[i];
        if (cp > 0x7f && cpFlags(cp) & CpFlag.WHITESPACE) cp = COLLAPSE_WS;
        const piece = String.fromCodePoint(cp);
        for (let k = 0; k < piece.length; k++) toCp.push(i - s);
        text += piece;
      }
      toCp.push(e - s);
      return { text, toCp };
    });
}

/** Matches become pieces, and so do the gaps between them, segment by segment. */
function splitSegments(
  re: RegExp,
  segments: number[],
  view: (start: number, end: number) => { text: string; toCp: number[] | undefined },
): number[] {
  const out: number[] = [];
  let start = 0;
  for (const len of segments) {
    const { text, toCp } = view(start, start + len);
    const cp = (i: number) => (toCp ? toCp[i] : i);
    re.lastIndex = 0;
    let done = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const s = cp(m.index);
      const e = cp(m.index + m[0].length);
      if (s > done) out.push(s - done);
      if (e > s) out.push(e - s);
      done = e;
      if (m[0].length === 0) re.lastIndex++;
    }
    if (done < len) out.push(len - done);
    start += len;
  }
  return out;
}

const splitterCache = new Map<string, Splitter>();

function splitterFor(expr: string): Splitter {
  let s = CUSTOM_SPLITTERS.get(expr) ?? splitterCache.get(expr);
  if (!s) {
    s = regexSplitter(expr);
    splitterCache.set(expr, s);
  }
  return s;
}

/**
 * Split `cpts` by the pattern list, each pattern refining the pieces of the one before.
 * Returns piece lengths in code points.
 */
export function splitCodePoints(cpts: Uint32Array, exprs: readonly string[]): number[] {
  let segments = cpts.length > 0 ? [cpts.length] : [];
  for (const expr of exprs) {
    if (segments.length === 0) break;
    segments = splitterFor(expr)(cpts, segments);
  }
  return segments;
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizer variants (GGUF tokenizer.ggml.pre)
// ---------------------------------------------------------------------------------------------

const RE_GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const RE_LLAMA3 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const RE_QWEN2 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const RE_QWEN35 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** How one `pre` value pre-tokenizes and which llama.cpp flags come with it. */
export interface PreTokenizerSpec {
  /** Patterns applied in turn, each splitting the pieces of the previous one. */
  patterns: readonly string[];
  /** llama.cpp's clean_spaces: detokenize removes spaces before punctuation and contractions. */
  cleanSpaces: boolean;
  /** A whole pre-tokenized word that is itself a token is emitted without merging. */
  ignoreMerges: boolean;
  /** add_bos when the GGUF has no tokenizer.ggml.add_bos_token. */
  addBos: boolean;
  /** The default BOS id (11) does not apply. */
  noDefaultBos: boolean;
}

function spec(patterns: readonly string[], opts: Partial<Omit<PreTokenizerSpec, "patterns">> = {}) {
  return {
    patterns,
    cleanSpaces: opts.cleanSpaces ?? true,
    ignoreMerges: opts.ignoreMerges ?? false,
    addBos: opts.addBos ?? false,
    noDefaultBos: opts.noDefaultBos ?? false,
  };
}

const LLAMA3 = spec([RE_LLAMA3], { ignoreMerges: true, addBos: true });
const LLAMA3_PLAIN = spec([RE_LLAMA3]);
const GPT2 = spec([RE_GPT2]);
const GPT2_RAW = spec([RE_GPT2], { cleanSpaces: false });
const QWEN2 = spec([RE_QWEN2], { cleanSpaces: false });
const STARCODER_PATTERNS = ["\\p{N}", RE_GPT2];
const STARCODER = spec(STARCODER_PATTERNS);
const STARCODER_RAW = spec(STARCODER_PATTERNS, { cleanSpaces: false });
const DEEPSEEK3_PATTERNS = [
  "\\p{N}{1,3}",
  "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
  "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
];
const PORO_PATTERNS = [" ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+"];

const PRE_TOKENIZERS = new Map<string, PreTokenizerSpec>([
  ["default", spec(["[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"])],
  ...[
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
  ].map((n) => [n, LLAMA3] as const),
  ["dbrx", LLAMA3_PLAIN],
  ["smaug-bpe", LLAMA3_PLAIN],
  ["glm4", spec([RE_LLAMA3], { noDefaultBos: true })],
  ["chatglm-bpe", spec([RE_LLAMA3], { noDefaultBos: true })],
  [
    "deepseek-llm",
    spec(
      [
        "[\r\n]",
        "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\u{10400}-\u{1044f}\u{104b0}-\u{104d3}\u{104d8}-\u{104fb}\u{10c80}-\u{10cb2}\u{10cc0}-\u{10cf2}\u{118a0}-\u{118df}\u{1e900}-\u{1e943}]+",
        "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+",
        "\\s+$",
        "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+",
        "\\p{N}+",
      ],
      { cleanSpaces: false },
    ),
  ],
  [
    "deepseek-coder",
    spec(["[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", "\\p{N}"], {
      cleanSpaces: false,
    }),
  ],
  ...["deepseek-v3", "hunyuan-dense", "hy_v4", "joyai-llm"].map(
    (n) => [n, spec(DEEPSEEK3_PATTERNS, { cleanSpaces: false })] as const,
  ),
  [
    "falcon",
    spec([
      "[\\p{P}\\$\\+<=>\\^~\\|`]+",
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
      "[0-9][0-9][0-9]",
    ]),
  ],
  ...["starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"].map(
    (n) => [n, STARCODER] as const,
  ),
  ["command-r", STARCODER_RAW],
  ["smollm", STARCODER_RAW],
  ...[
    "gpt-2",
    "phi-2",
    "jina-es",
    "jina-de",
    "gigachat",
    "a.x-4.0",
    "mellum",
    "exaone4",
    "mpt",
    "olmo",
    "jais",
  ].map((n) => [n, GPT2] as const),
  ["trillion", GPT2_RAW],
  ["granite-docling", GPT2_RAW],
  ...["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "hunyuan", "solar-open"].map(
    (n) => [n, QWEN2] as const,
  ),
  ["stablelm2", spec([RE_QWEN2])],
  ["qwen35", spec([RE_QWEN35], { cleanSpaces: false })],
  ["poro-chat", spec(PORO_PATTERNS, { cleanSpaces: false })],
  ["bloom", spec(PORO_PATTERNS)],
  ["gpt3-finnish", spec(PORO_PATTERNS)],
  ["viking", spec([...PORO_PATTERNS, "\\p{N}"], { cleanSpaces: false })],
]);

/** The `pre` values this implementation reproduces. */
export function supportedPreTokenizers(): string[] {
  return [...PRE_TOKENIZERS.keys()];
}

/** Look up a `pre` value; a missing one means "default", as in llama.cpp. */
export function preTokenizerSpec(pre: string | undefined, where = "vocabulary"): PreTokenizerSpec {
  const name = pre === undefined || pre === "" ? "default" : pre;
  const found = PRE_TOKENIZERS.get(name);
  if (!found) {
    throw new InputError(`${where}: unsupported BPE pre-tokenizer "${name}" (tokenizer.ggml.pre)`, {
      hint: `supported: ${supportedPreTokenizers().join(", ")}`,
    });
  }
  return found;
}
