// SentencePiece-style tokenizer (GGUF tokenizer.ggml.model "llama") that reproduces llama.cpp's SPM
// path id for id: special-token partitioning, space escaping, score-greedy bigram merging, byte fallback.

import { InputError } from "../../util/errors.js";
import {
  TokenType,
  type DecodeOptions,
  type EncodeOptions,
  type Tokenizer,
  type VocabData,
} from "./types.js";

/**
 * llama.cpp's per-token attribute bits (llama_token_attr). GGUF only stores a token type; llama.cpp
 * derives these from it and then patches some by token text and model name, which changes how the
 * text is split around special tokens, so both tokenizers need the same derived bits.
 */
export const TokenAttr = {
  Undefined: 0,
  Unknown: 1 << 0,
  Unused: 1 << 1,
  Normal: 1 << 2,
  Control: 1 << 3,
  UserDefined: 1 << 4,
  Byte: 1 << 5,
  Normalized: 1 << 6,
  Lstrip: 1 << 7,
  Rstrip: 1 << 8,
  SingleWord: 1 << 9,
} as const;

/**
 * VocabData plus the GGUF `general.name`: llama.cpp keys a few per-token quirks on the model name
 * (e.g. Phi-3 strips the whitespace that follows its chat tokens). Kept outside VocabData's
 * declaration because that contract is shared; vocabDataFromGGUF fills it in.
 */
export interface NamedVocabData extends VocabData {
  /** general.name of the GGUF file, when known. */
  name?: string;
}

// Token texts llama.cpp promotes to control tokens whatever their stored type says (EOT/EOM/EOG
// look-alikes, FIM markers), because converters often leave them "normal" or "user-defined".
const CONTROL_BY_TEXT = new Set([
  "<|eot_id|>",
  "<|im_end|>",
  "<|end|>",
  "<|return|>",
  "<|call|>",
  "<|flush|>",
  "<|calls|>",
  "<end_of_turn>",
  "<|endoftext|>",
  "</s>",
  "<|eom_id|>",
  "<EOT>",
  "_<EOT>",
  "[EOT]",
  "[EOS]",
  "<|end_of_text|>",
  "<end_of_utterance>",
  "<eos>",
  "<turn|>",
  "<|tool_response>",
  "<｜end▁of▁sentence｜>",
  "[e~[",
]);
const FIM_TEXTS: readonly (readonly string[])[] = [
  [
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
  ],
  [
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
  ],
  [
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
  ],
  ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
  ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"],
  ["<|file_sep|>"],
];

/** The token text llama.cpp uses: empty strings are renamed so that every token stays addressable. */
export function llamaTokenTexts(tokens: readonly string[]): string[] {
  return tokens.map((t, i) => (t === "" ? `[EMPTY_${i}]` : t));
}

/**
 * llama.cpp's attribute bits for every token (see TokenAttr), including its text- and name-based
 * corrections. `texts` are the tokens after llamaTokenTexts.
 */
export function llamaTokenAttributes(vocab: NamedVocabData, texts: readonly string[]): Uint16Array {
  const n = texts.length;
  const attrs = new Uint16Array(n);
  const types = vocab.tokenTypes;
  for (let i = 0; i < n; i++) {
    if (!types) {
      attrs[i] = TokenAttr.Normal;
      continue;
    }
    switch (types[i]) {
      case TokenType.Unknown:
        attrs[i] = TokenAttr.Unknown;
        break;
      case TokenType.Unused:
        attrs[i] = TokenAttr.Unused;
        break;
      case TokenType.Normal:
        attrs[i] = TokenAttr.Normal;
        break;
      case TokenType.Control:
        attrs[i] = TokenAttr.Control;
        break;
      case TokenType.UserDefined:
        attrs[i] = TokenAttr.UserDefined;
        break;
      case TokenType.Byte:
        attrs[i] = TokenAttr.Byte;
        break;
      default:
        attrs[i] = TokenAttr.Undefined;
    }
  }
  const byText = new Map<string, number>();
  for (let i = 0; i < n; i++) byText.set(texts[i], i);

  // An explicit FIM id in the file switches off the text search for that role in llama.cpp, but
  // VocabData does not carry FIM ids, so every role is searched; the first listed text found wins.
  for (const names of FIM_TEXTS) {
    for (const name of names) {
      const id = byText.get(name);
      if (id !== undefined) {
        attrs[id] |= TokenAttr.Control;
        break;
      }
    }
  }
  for (const [text, id] of byText) if (CONTROL_BY_TEXT.has(text)) attrs[id] |= TokenAttr.Control;

  // gpt-oss chat markers are always rendered, so llama.cpp turns them into plain user-defined tokens.
  for (const text of ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"]) {
    const id = byText.get(text);
    if (id !== undefined) attrs[id] = TokenAttr.UserDefined;
  }
  // In harmony-style vocabularies "<|end|>" ends a message, not generation: llama.cpp demotes it.
  const has = (t: string): boolean => byText.has(t);
  const hasCall = has("<|call|>") || has("<|calls|>");
  if (has("<|end|>") && ((has("<|return|>") && hasCall) || (hasCall && has("<|flush|>")))) {
    attrs[byText.get("<|end|>") as number] = TokenAttr.UserDefined;
  }
  if (has("<|tool_response>") && has("</s>")) attrs[byText.get("</s>") as number] = TokenAttr.Normal;

  const name = (vocab.name ?? "").toLowerCase();
  if (name.includes("phi-3") || name.includes("phi3")) {
    // Phi-3's tokenizer.json declares rstrip on its added tokens; llama.cpp hard-codes the same.
    for (let i = 0; i < n; i++) {
      if (attrs[i] & (TokenAttr.Control | TokenAttr.UserDefined | TokenAttr.Unknown))
        attrs[i] |= TokenAttr.Rstrip;
    }
    const eos = byText.get("</s>");
    if (eos !== undefined) attrs[eos] |= TokenAttr.Rstrip;
    for (const t of ["<unk>", "<s>", "<|endoftext|>"]) {
      const id = byText.get(t);
      if (id !== undefined) attrs[id] &= ~TokenAttr.Rstrip;
    }
  } else if (name.includes("modern-bert")) {
    const id = byText.get("[MASK]");
    if (id !== undefined) attrs[id] |= TokenAttr.Lstrip;
  } else if (/jina-v2-(de|es|code)/.test(vocab.pre ?? "")) {
    const id = byText.get("<mask>");
    if (id !== undefined) attrs[id] |= TokenAttr.Lstrip;
  }
  return attrs;
}

/** A special token that is searched for in raw text, longest first (llama.cpp's order). */
export interface SpecialMatcher {
  id: number;
  text: string;
  attr: number;
}

/**
 * Control, user-defined and unknown tokens sorted by UTF-8 length, longest first. llama.cpp's sort
 * is not stable; ties are broken here by id, which only matters for equal-length tokens that overlap.
 */
export function specialMatchers(texts: readonly string[], attrs: Uint16Array): SpecialMatcher[] {
  const out: (SpecialMatcher & { bytes: number })[] = [];
  for (let id = 0; id < texts.length; id++) {
    const attr = attrs[id];
    if (attr & (TokenAttr.Control | TokenAttr.UserDefined | TokenAttr.Unknown)) {
      out.push({ id, text: texts[id], attr, bytes: Buffer.byteLength(texts[id], "utf8") });
    }
  }
  out.sort((a, b) => b.bytes - a.bytes || a.id - b.id);
  return out.map(({ id, text, attr }) => ({ id, text, attr }));
}

/** A piece of input after special-token partitioning: raw text, or an already-known token id. */
export type Fragment = { token: number; text?: undefined } | { token?: undefined; text: string };

// C isspace() in the "C" locale: llama.cpp strips only these around lstrip/rstrip tokens.
function isCSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/**
 * Split `text` around special tokens the way llama.cpp's tokenizer_st_partition does: each special
 * token in turn (longest first) is cut out of every remaining raw fragment, leftmost occurrence first.
 * Without parseSpecial, control and unknown tokens stay text but user-defined tokens are still cut out.
 */
export function partitionSpecial(
  text: string,
  specials: readonly SpecialMatcher[],
  parseSpecial: boolean,
): Fragment[] {
  if (text === "") return [];
  let frags: Fragment[] = [{ text }];
  for (const sp of specials) {
    if (!parseSpecial && sp.attr & (TokenAttr.Control | TokenAttr.Unknown)) continue;
    let hit = false;
    for (const f of frags) {
      if (f.text !== undefined && f.text.includes(sp.text)) {
        hit = true;
        break;
      }
    }
    if (!hit) continue;
    const next: Fragment[] = [];
    const lstrip = (sp.attr & TokenAttr.Lstrip) !== 0;
    const rstrip = (sp.attr & TokenAttr.Rstrip) !== 0;
    for (const f of frags) {
      if (f.text === undefined) {
        next.push(f);
        continue;
      }
      const s = f.text;
      let base = 0;
      while (true) {
        const m = s.indexOf(sp.text, base);
        if (m < 0) {
          if (base < s.length) next.push(base === 0 ? f : { text: s.slice(base) });
          break;
        }
        if (m > base) {
          let end = m;
          if (lstrip) while (end > base && isCSpace(s.charCodeAt(end - 1))) end--;
          if (end > base) next.push({ text: s.slice(base, end) });
        }
        next.push({ token: sp.id });
        base = m + sp.text.length;
        if (rstrip) while (base < s.length && isCSpace(s.charCodeAt(base))) base++;
      }
    }
    frags = next;
  }
  return frags;
}

/** UTF-8 bytes of one code point, appended to `out`. */
function pushUtf8(cp: number, out: number[]): void {
  if (cp < 0x80) out.push(cp);
  else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
  else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8");
const SPACE_MARK = "\u2581";
const LONE_SURROGATE = /\p{Cs}/u;

/** Max-heap of candidate merges in flat arrays; ordered like llama.cpp's llm_bigram_spm comparator. */
class BigramHeap {
  private score: number[] = [];
  private left: number[] = [];
  private right: number[] = [];
  private size: number[] = [];
  length = 0;

  clear(): void {
    this.length = 0;
  }

  // Higher score first; on equal scores the leftmost pair, which makes merging deterministic.
  private before(i: number, j: number): boolean {
    const a = this.score[i];
    const b = this.score[j];
    return a > b || (a === b && this.left[i] < this.left[j]);
  }

  private swap(i: number, j: number): void {
    let t = this.score[i];
    this.score[i] = this.score[j];
    this.score[j] = t;
    t = this.left[i];
    this.left[i] = this.left[j];
    this.left[j] = t;
    t = this.right[i];
    this.right[i] = this.right[j];
    this.right[j] = t;
    t = this.size[i];
    this.size[i] = this.size[j];
    this.size[j] = t;
  }

  push(score: number, left: number, right: number, size: number): void {
    let i = this.length++;
    this.score[i] = score;
    this.left[i] = left;
    this.right[i] = right;
    this.size[i] = size;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Removes the top entry, leaving it readable through topLeft/topRight/topSize until the next push. */
  pop(): void {
    const last = --this.length;
    this.swap(0, last);
    let i = 0;
    while (true) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < last && this.before(l, best)) best = l;
      if (r < last && this.before(r, best)) best = r;
      if (best === i) break;
      this.swap(i, best);
      i = best;
    }
  }

  get poppedLeft(): number {
    return this.left[this.length];
  }
  get poppedRight(): number {
    return this.right[this.length];
  }
  get poppedSize(): number {
    return this.size[this.length];
  }
}

export class SpmTokenizer implements Tokenizer {
  readonly kind = "spm" as const;
  readonly vocab: NamedVocabData;
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly unkId: number | undefined;
  /** Whether encode() puts a space before text at the start and after special tokens (and decode drops it). */
  readonly addSpacePrefix: boolean;
  readonly addBos: boolean;
  readonly addEos: boolean;

  private readonly texts: string[];
  private readonly attrs: Uint16Array;
  private readonly scores: Float32Array;
  private readonly textToId = new Map<string, number>();
  private readonly byteToId = new Int32Array(256).fill(-1);
  private readonly specials: SpecialMatcher[];
  private readonly pieces: Uint8Array[];
  private readonly heap = new BigramHeap();

  constructor(vocab: NamedVocabData) {
    const n = vocab.tokens.length;
    if (n === 0)
      throw new InputError("SentencePiece vocabulary has no tokens (tokenizer.ggml.tokens is empty)");
    this.vocab = vocab;
    this.vocabSize = n;
    this.texts = llamaTokenTexts(vocab.tokens);
    for (let i = 0; i < n; i++) this.textToId.set(this.texts[i], i);

    // llama.cpp's SPM defaults: <unk>=0, <s>=1, </s>=2, unless the file says otherwise (in range).
    const pick = (id: number | undefined, fallback: number): number | undefined =>
      id !== undefined && id >= 0 && id < n ? id : fallback < n ? fallback : undefined;
    this.bosId = pick(vocab.bosId, 1);
    this.eosId = pick(vocab.eosId, 2);
    this.unkId = pick(vocab.unkId, 0);
    this.addSpacePrefix = vocab.addSpacePrefix ?? true;
    this.addBos = vocab.addBos ?? true;
    this.addEos = vocab.addEos ?? false;

    this.scores = new Float32Array(n);
    if (vocab.scores) this.scores.set(vocab.scores.subarray(0, n));
    this.attrs = llamaTokenAttributes(vocab, this.texts);
    this.specials = specialMatchers(this.texts, this.attrs);

    const hex = "0123456789ABCDEF";
    for (let b = 0; b < 256; b++) {
      // Byte fallback prefers <0xXX> and, like llama.cpp, accepts a token that is the raw character.
      const id =
        this.textToId.get(`<0x${hex[b >> 4]}${hex[b & 15]}>`) ?? this.textToId.get(String.fromCharCode(b));
      if (id !== undefined) this.byteToId[b] = id;
    }

    this.pieces = this.texts.map((text, id) => this.piece(text, this.attrs[id]));
  }

  // What one token prints as when special tokens are rendered (llama.cpp token_to_piece, special=true).
  private piece(text: string, attr: number): Uint8Array {
    if (attr & (TokenAttr.Unknown | TokenAttr.Control | TokenAttr.UserDefined)) return utf8.encode(text);
    if (attr & TokenAttr.Normal) return utf8.encode(text.replaceAll(SPACE_MARK, " "));
    if (attr & TokenAttr.Byte) {
      const v = parseInt(text.slice(3, 5), 16);
      return Uint8Array.of(Number.isNaN(v) ? 0 : v & 0xff);
    }
    // Unused and undefined-type tokens print nothing in llama.cpp.
    return new Uint8Array(0);
  }

  encode(text: string, options?: EncodeOptions): number[] {
    // llama.cpp sees the UTF-8 of the text, where a lone surrogate has already become U+FFFD.
    if (LONE_SURROGATE.test(text)) text = utf8Decoder.decode(utf8.encode(text));
    const addSpecial = options?.addSpecial ?? true;
    const parseSpecial = options?.parseSpecial ?? false;
    const out: number[] = [];
    if (addSpecial && this.addBos) {
      if (this.bosId === undefined) throw new InputError("the vocabulary asks for a BOS token but has none");
      out.push(this.bosId);
    }
    // A space prefix goes before the text at the start and after every special token.
    let prevSpecial = true;
    for (const f of partitionSpecial(text, this.specials, parseSpecial)) {
      if (f.text === undefined) {
        out.push(f.token);
        prevSpecial = true;
      } else {
        const raw = this.addSpacePrefix && prevSpecial ? " " + f.text : f.text;
        this.encodeEscaped(raw.replaceAll(" ", SPACE_MARK), out);
        prevSpecial = false;
      }
    }
    if (addSpecial && this.addEos) {
      if (this.eosId === undefined) throw new InputError("the vocabulary asks for an EOS token but has none");
      out.push(this.eosId);
    }
    return out;
  }

  // llama.cpp's llm_tokenizer_spm_session: start from single code points, repeatedly merge the
  // adjacent pair whose concatenation is the best-scoring vocabulary entry, then map every symbol to
  // its token or, failing that, to its UTF-8 bytes as <0xXX> tokens.
  private encodeEscaped(s: string, out: number[]): void {
    const start: number[] = [];
    const len: number[] = [];
    for (let i = 0; i < s.length;) {
      const c = s.charCodeAt(i);
      const w = c >= 0xd800 && c <= 0xdbff ? 2 : 1;
      start.push(i);
      len.push(w);
      i += w;
    }
    const count = start.length;
    if (count === 0) return;
    const prev = new Int32Array(count);
    const next = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < count ? i + 1 : -1;
    }
    const heap = this.heap;
    heap.clear();
    const tryAdd = (l: number, r: number): void => {
      if (l < 0 || r < 0) return;
      const size = len[l] + len[r];
      const id = this.textToId.get(s.slice(start[l], start[l] + size));
      if (id === undefined) return;
      heap.push(this.scores[id], l, r, size);
    };
    for (let i = 1; i < count; i++) tryAdd(i - 1, i);
    while (heap.length > 0) {
      heap.pop();
      const l = heap.poppedLeft;
      const r = heap.poppedRight;
      // Stale entries (a side already merged elsewhere) no longer add up to the pair's length.
      if (len[l] === 0 || len[r] === 0 || len[l] + len[r] !== heap.poppedSize) continue;
      len[l] += len[r];
      len[r] = 0;
      next[l] = next[r];
      if (next[r] >= 0) prev[next[r]] = l;
      tryAdd(prev[l], l);
      tryAdd(l, next[l]);
    }
    for (let i = 0; i !== -1; i = next[i]) {
      const piece = s.slice(start[i], start[i] + len[i]);
      const id = this.textToId.get(piece);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      // A merged symbol is always a vocabulary entry, so only single code points reach here.
      const bytes: number[] = [];
      pushUtf8(piece.codePointAt(0) as number, bytes);
      for (const b of bytes) {
        const bid = this.byteToId[b];
        if (bid >= 0) out.push(bid);
        else if (this.unkId !== undefined) out.push(this.unkId);
        else
          throw new InputError(
            `cannot encode byte 0x${b.toString(16)}: the vocabulary has no byte or unknown token`,
          );
      }
    }
  }

  decode(ids: readonly number[], options?: DecodeOptions): string {
    const skipSpecial = options?.skipSpecial ?? false;
    const parts: Uint8Array[] = [];
    let total = 0;
    // llama.cpp drops one leading space of the first token only (the one encode added), even when
    // that first token prints nothing.
    let removeSpace = this.addSpacePrefix;
    for (const id of ids) {
      this.checkId(id);
      if (skipSpecial && this.attrs[id] & (TokenAttr.Unknown | TokenAttr.Control)) {
        removeSpace = false;
        continue;
      }
      let p = this.pieces[id];
      if (removeSpace && p.length > 0 && p[0] === 0x20) p = p.subarray(1);
      removeSpace = false;
      parts.push(p);
      total += p.length;
    }
    const buf = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      buf.set(p, o);
      o += p.length;
    }
    return utf8Decoder.decode(buf);
  }

  tokenBytes(id: number): Uint8Array {
    this.checkId(id);
    return this.pieces[id].slice();
  }

  tokenText(id: number): string {
    this.checkId(id);
    return this.texts[id];
  }

  isSpecial(id: number): boolean {
    this.checkId(id);
    return (this.attrs[id] & (TokenAttr.Control | TokenAttr.UserDefined)) !== 0;
  }

  /** llama.cpp's attribute bits of a token (TokenAttr). */
  tokenAttr(id: number): number {
    this.checkId(id);
    return this.attrs[id];
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new InputError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
  }
}
