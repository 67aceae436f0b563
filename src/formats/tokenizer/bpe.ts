// Byte-level BPE tokenizer (GGUF tokenizer.ggml.model "gpt2": GPT-2, Llama 3, Qwen2, StarCoder, ...)
// reproducing llama.cpp's llm_tokenizer_bpe: same pre-tokenization, merge order, special tokens and detokenizer.

import { InputError } from "../../util/errors.js";
import { codePoints, preTokenizerSpec, splitCodePoints, type PreTokenizerSpec } from "./pretokenize.js";
import {
  TokenType,
  type DecodeOptions,
  type EncodeOptions,
  type Tokenizer,
  type VocabData,
} from "./types.js";

/** llama.cpp token attributes (llama_token_attr), derived from token types plus its overrides. */
const Attr = {
  Undefined: 0,
  Unknown: 1 << 0,
  Unused: 1 << 1,
  Normal: 1 << 2,
  Control: 1 << 3,
  UserDefined: 1 << 4,
  Byte: 1 << 5,
} as const;

const ATTR_OF_TYPE: Record<number, number> = {
  [TokenType.Normal]: Attr.Normal,
  [TokenType.Unknown]: Attr.Unknown,
  [TokenType.Control]: Attr.Control,
  [TokenType.UserDefined]: Attr.UserDefined,
  [TokenType.Unused]: Attr.Unused,
  [TokenType.Byte]: Attr.Byte,
};

// llama.cpp promotes these texts to control tokens when the GGUF does not name the matching id
// (eot, eom, fim_*); otherwise a chat template's end marker would be split as plain text.
const EOT_TEXTS = [
  "<|eot_id|>",
  "<|im_end|>",
  "<|end|>",
  "<end_of_turn>",
  "<|endoftext|>",
  "<|end_of_text|>",
  "<EOT>",
  "_<EOT>",
  "[EOT]",
  "<｜end▁of▁sentence｜>",
  "<end_of_utterance>",
];
const EOM_TEXTS = ["<|eom_id|>"];
const FIM_TEXTS = [
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
// End-of-generation texts: always promoted to control, whatever the GGUF says.
const EOG_TEXTS = [
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
];
// gpt-oss markers llama.cpp always renders, so they become user-defined.
const ALWAYS_RENDERED = ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"];

/** GPT-2's reversible byte <-> printable character table. */
function byteToCharTable(): string[] {
  const table: string[] = new Array(256);
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable(b) ? b : 256 + n++);
  return table;
}

const BYTE_TO_CHAR = byteToCharTable();
const CHAR_TO_BYTE = new Map<number, number>(BYTE_TO_CHAR.map((c, b) => [c.charCodeAt(0), b]));

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8");

/** Word -> ids entries kept before the cache is dropped and refilled. */
const WORD_CACHE_LIMIT = 100_000;

export interface BpeDecodeOptions extends DecodeOptions {
  /**
   * Apply llama.cpp's clean_spaces (" ." -> ".", " 's" -> "'s", ...). Defaults to the vocabulary's
   * llama.cpp setting, so decode() equals llama_detokenize; false gives the plain concatenation of tokenBytes().
   */
  cleanSpaces?: boolean;
}

export class BpeTokenizer implements Tokenizer {
  readonly kind = "bpe" as const;
  readonly vocab: VocabData;
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly addBos: boolean;
  readonly addEos: boolean;
  readonly pre: PreTokenizerSpec;

  /** Token texts as llama.cpp holds them (empty ones renamed "[EMPTY_i]"). */
  private readonly texts: string[];
  private readonly attrs: Uint8Array;
  /**
   * Merge symbols: ids below vocabSize are tokens; above are strings that merges produce but the
   * vocabulary lacks (they survive merging and fall back to single bytes at the end). For token
   * texts the last of duplicates wins, as in llama.cpp's token_to_id.
   */
  private readonly symText: string[];
  private readonly symOf = new Map<string, number>();
  private readonly byteSym = new Int32Array(256);
  /** (left symbol, right symbol) -> merge rank. */
  private readonly ranks: PairTable;
  private readonly mergeResult: Int32Array;
  /** Special tokens in matching order: longest UTF-8 text first. */
  private readonly specials: number[];
  private readonly wordCache = new Map<string, readonly number[]>();
  private readonly pieces: (Uint8Array | undefined)[];

  constructor(vocab: VocabData) {
    if (vocab.model !== "gpt2") {
      throw new InputError(
        `BpeTokenizer needs a byte-level BPE vocabulary (model "gpt2"), got "${vocab.model}"`,
      );
    }
    if (!vocab.merges) throw new InputError(`BPE vocabulary without merges (tokenizer.ggml.merges)`);
    this.vocab = vocab;
    this.pre = preTokenizerSpec(vocab.pre);
    const n = vocab.tokens.length;
    this.vocabSize = n;
    this.texts = vocab.tokens.map((t, i) => (t === "" ? `[EMPTY_${i}]` : t));
    this.pieces = new Array(n);

    this.attrs = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      this.attrs[i] = vocab.tokenTypes ? (ATTR_OF_TYPE[vocab.tokenTypes[i]] ?? Attr.Undefined) : Attr.Normal;
      this.symOf.set(this.texts[i], i);
    }
    const promote = (texts: readonly string[]) => {
      for (const t of texts) {
        const id = this.tokenId(t);
        if (id !== undefined) this.attrs[id] |= Attr.Control;
      }
    };
    if (vocab.eotId === undefined) promote(EOT_TEXTS);
    if (vocab.eomId === undefined) promote(EOM_TEXTS);
    for (const group of FIM_TEXTS) promote(group);
    promote(EOG_TEXTS);
    const has = (t: string) => this.tokenId(t) !== undefined;
    const setAttr = (t: string, a: number) => {
      const id = this.tokenId(t);
      if (id !== undefined) this.attrs[id] = a;
    };
    for (const t of ALWAYS_RENDERED) setAttr(t, Attr.UserDefined);
    // llama.cpp's workarounds: "<|end|>" is not an end marker in harmony/solar-open vocabularies,
    // "</s>" is plain text in Gemma 4's.
    if (
      has("<|end|>") &&
      ((has("<|return|>") && has("<|call|>")) || (has("<|calls|>") && has("<|flush|>")))
    ) {
      setAttr("<|end|>", Attr.UserDefined);
    }
    if (has("<|tool_response>") && has("</s>")) setAttr("</s>", Attr.Normal);

    // BOS/EOS: GGUF values, else llama.cpp's defaults for BPE vocabularies (id 11 when it exists).
    const fallback = this.pre.noDefaultBos || n <= 11 ? undefined : 11;
    this.bosId = validId(vocab.bosId, n) ?? (vocab.bosId === undefined ? fallback : undefined);
    this.eosId = validId(vocab.eosId, n) ?? (vocab.eosId === undefined && n > 11 ? 11 : undefined);
    this.addBos = vocab.addBos ?? this.pre.addBos;
    this.addEos = vocab.addEos ?? false;

    // Symbols: vocabulary ids first, then every other string the merges mention.
    this.symText = this.texts.slice();
    for (let b = 0; b < 256; b++) this.byteSym[b] = this.intern(BYTE_TO_CHAR[b]);
    const merges = vocab.merges;
    const lefts = new Int32Array(merges.length).fill(-1);
    const rights = new Int32Array(merges.length);
    // Merge results are interned when first used: most merges never fire in a session.
    this.mergeResult = new Int32Array(merges.length).fill(-1);
    for (let r = 0; r < merges.length; r++) {
      const m = merges[r];
      // llama.cpp splits at the first space after the first character; no space: never matches.
      const sp = m.indexOf(" ", 1);
      if (sp < 0) continue;
      lefts[r] = this.intern(m.slice(0, sp));
      rights[r] = this.intern(m.slice(sp + 1));
    }
    this.ranks = new PairTable(merges.length);
    for (let r = 0; r < merges.length; r++) {
      // Duplicates: the first (lowest) rank stays, like std::unordered_map::emplace.
      if (lefts[r] >= 0) this.ranks.setIfAbsent(lefts[r], rights[r], r);
    }

    const specials: number[] = [];
    for (let i = 0; i < n; i++) {
      if (this.attrs[i] & (Attr.Control | Attr.UserDefined | Attr.Unknown)) specials.push(i);
    }
    const byteLen = specials.map((id) => utf8Encoder.encode(this.texts[id]).length);
    const order = specials
      .map((_, k) => k)
      .sort((x, y) => byteLen[y] - byteLen[x] || specials[x] - specials[y]);
    this.specials = order.map((k) => specials[k]);
  }

  /** llama.cpp's text_to_token. */
  private tokenId(text: string): number | undefined {
    const id = this.symOf.get(text);
    return id !== undefined && id < this.vocabSize ? id : undefined;
  }

  private intern(s: string): number {
    let id = this.symOf.get(s);
    if (id === undefined) {
      id = this.symText.length;
      this.symText.push(s);
      this.symOf.set(s, id);
    }
    return id;
  }

  encode(text: string, options?: EncodeOptions): number[] {
    const addSpecial = options?.addSpecial ?? true;
    const parseSpecial = options?.parseSpecial ?? false;
    const out: number[] = [];
    if (addSpecial && this.addBos) {
      if (this.bosId === undefined) throw new InputError("vocabulary asks for a BOS token but has none");
      out.push(this.bosId);
    }
    for (const frag of this.partition(text, parseSpecial)) {
      if (typeof frag === "number") out.push(frag);
      else this.encodeText(frag, out);
    }
    if (addSpecial && this.addEos) {
      if (this.eosId === undefined) throw new InputError("vocabulary asks for an EOS token but has none");
      out.push(this.eosId);
    }
    return out;
  }

  /**
   * llama.cpp's tokenizer_st_partition: special tokens, longest first, cut the text into raw
   * fragments and token ids. User-defined tokens are cut out even when parseSpecial is false.
   */
  private partition(text: string, parseSpecial: boolean): (string | number)[] {
    if (text === "") return [];
    let frags: (string | number)[] = [text];
    for (const id of this.specials) {
      if (!parseSpecial && this.attrs[id] & (Attr.Control | Attr.Unknown)) continue;
      const tok = this.texts[id];
      if (!text.includes(tok)) continue;
      const next: (string | number)[] = [];
      for (const f of frags) {
        if (typeof f === "number") {
          next.push(f);
          continue;
        }
        let from = 0;
        for (let at = f.indexOf(tok); at >= 0; at = f.indexOf(tok, from)) {
          if (at > from) next.push(f.slice(from, at));
          next.push(id);
          from = at + tok.length;
        }
        if (from < f.length) next.push(from === 0 ? f : f.slice(from));
      }
      frags = next;
    }
    return frags;
  }

  private encodeText(text: string, out: number[]): void {
    const cpts = codePoints(text);
    const lengths = splitCodePoints(cpts, this.pre.patterns);
    // Code point index -> UTF-16 index, to slice words out of `text` as cache keys.
    let cp = 0;
    let u = 0;
    for (const len of lengths) {
      const startU = u;
      for (let k = 0; k < len; k++, cp++) u += cpts[cp] > 0xffff ? 2 : 1;
      const word = text.slice(startU, u);
      let ids = this.wordCache.get(word);
      if (ids === undefined) {
        ids = this.encodeWord(cpts.subarray(cp - len, cp));
        if (this.wordCache.size >= WORD_CACHE_LIMIT) this.wordCache.clear();
        this.wordCache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  private encodeWord(cpts: Uint32Array): number[] {
    const bytes = utf8OfCodePoints(cpts);
    if (this.pre.ignoreMerges) {
      let mapped = "";
      for (const b of bytes) mapped += BYTE_TO_CHAR[b];
      const id = this.tokenId(mapped);
      if (id !== undefined) return [id];
    }
    const syms = this.mergeBytes(bytes);
    const out: number[] = [];
    for (const s of syms) {
      if (s < this.vocabSize) {
        out.push(s);
        continue;
      }
      // Not a token: llama.cpp looks up each UTF-8 byte of the mapped text on its own, which
      // can only find the printable ASCII ones.
      for (const ch of this.symText[s]) {
        if (ch.charCodeAt(0) >= 0x80) continue;
        const id = this.tokenId(ch);
        if (id !== undefined) out.push(id);
      }
    }
    return out;
  }

  /** BPE over one word's bytes: lowest rank first, leftmost on ties (llama.cpp's queue order). */
  private mergeBytes(bytes: Uint8Array): number[] {
    const n = bytes.length;
    const sym = new Int32Array(n);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      sym[i] = this.byteSym[bytes[i]];
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    if (n < 2) return Array.from(sym);
    // Min-heap of rank * n + left position.
    const heap: number[] = [];
    const push = (key: number) => {
      let i = heap.length;
      heap.push(key);
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (heap[p] <= key) break;
        heap[i] = heap[p];
        i = p;
      }
      heap[i] = key;
    };
    const pop = (): number => {
      const top = heap[0];
      const last = heap.pop()!;
      if (heap.length > 0) {
        let i = 0;
        const len = heap.length;
        while (true) {
          const l = 2 * i + 1;
          if (l >= len) break;
          const r = l + 1;
          const c = r < len && heap[r] < heap[l] ? r : l;
          if (heap[c] >= last) break;
          heap[i] = heap[c];
          i = c;
        }
        heap[i] = last;
      }
      return top;
    };
    const rankAt = (left: number): number => {
      const right = next[left];
      if (right < 0) return -1;
      return this.ranks.get(sym[left], sym[right]);
    };
    for (let i = 0; i + 1 < n; i++) {
      const r = rankAt(i);
      if (r >= 0) push(r * n + i);
    }
    while (heap.length > 0) {
      const key = pop();
      const rank = Math.floor(key / n);
      const left = key - rank * n;
      // Stale entries: the left symbol was absorbed or the pair changed since it was queued.
      if (sym[left] < 0 || rankAt(left) !== rank) continue;
      const right = next[left];
      let merged = this.mergeResult[rank];
      if (merged < 0) {
        merged = this.intern(this.symText[sym[left]] + this.symText[sym[right]]);
        this.mergeResult[rank] = merged;
      }
      sym[left] = merged;
      sym[right] = -1;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      if (prev[left] >= 0) {
        const r = rankAt(prev[left]);
        if (r >= 0) push(r * n + prev[left]);
      }
      const r = rankAt(left);
      if (r >= 0) push(r * n + left);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(sym[i]);
    return out;
  }

  decode(ids: readonly number[], options?: BpeDecodeOptions): string {
    const special = !(options?.skipSpecial ?? false);
    const parts: Uint8Array[] = [];
    let total = 0;
    for (const id of ids) {
      this.checkId(id);
      if (!special && this.attrs[id] & (Attr.Control | Attr.Unknown)) continue;
      const p = this.tokenBytes(id);
      parts.push(p);
      total += p.length;
    }
    let buf: Uint8Array = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      buf.set(p, o);
      o += p.length;
    }
    if (options?.cleanSpaces ?? this.pre.cleanSpaces) buf = cleanSpaces(buf);
    return utf8Decoder.decode(buf);
  }

  tokenBytes(id: number): Uint8Array {
    this.checkId(id);
    let p = this.pieces[id];
    if (p === undefined) this.pieces[id] = p = this.piece(id);
    return p;
  }

  /** llama.cpp's token_to_piece with special = true. */
  private piece(id: number): Uint8Array {
    const attr = this.attrs[id];
    const text = this.texts[id];
    if (attr & (Attr.Control | Attr.Unknown | Attr.UserDefined)) return utf8Encoder.encode(text);
    if (attr & Attr.Normal) {
      const bytes: number[] = [];
      for (const ch of text) {
        const b = CHAR_TO_BYTE.get(ch.codePointAt(0)!);
        if (b !== undefined) {
          bytes.push(b);
          continue;
        }
        // llama.cpp's marker for a character outside the byte table.
        const hex = Array.from(utf8Encoder.encode(ch), (x) => x.toString(16).padStart(2, "0")).join("");
        bytes.push(...utf8Encoder.encode(`[UNK_BYTE_0x${hex}${text}]`));
      }
      return Uint8Array.from(bytes);
    }
    if (attr & Attr.Byte) return Uint8Array.of(parseInt(text.slice(3, 5), 16) & 0xff);
    return new Uint8Array(0);
  }

  tokenText(id: number): string {
    this.checkId(id);
    return this.vocab.tokens[id];
  }

  isSpecial(id: number): boolean {
    this.checkId(id);
    return (this.attrs[id] & (Attr.Control | Attr.UserDefined)) !== 0;
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new InputError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
  }
}

/** Open-addressing hash map from a pair of non-negative int32 to a non-negative int32. */
class PairTable {
  private readonly keyA: Int32Array;
  private readonly keyB: Int32Array;
  private readonly values: Int32Array;
  private readonly mask: number;

  constructor(capacity: number) {
    let size = 16;
    while (size < capacity * 2) size *= 2;
    this.mask = size - 1;
    this.keyA = new Int32Array(size).fill(-1);
    this.keyB = new Int32Array(size);
    this.values = new Int32Array(size);
  }

  private slot(a: number, b: number): number {
    let i = (Math.imul(a, 0x9e3779b1) ^ Math.imul(b, 0x85ebca77)) & this.mask;
    while (this.keyA[i] !== -1 && (this.keyA[i] !== a || this.keyB[i] !== b)) i = (i + 1) & this.mask;
    return i;
  }

  setIfAbsent(a: number, b: number, value: number): void {
    const i = this.slot(a, b);
    if (this.keyA[i] !== -1) return;
    this.keyA[i] = a;
    this.keyB[i] = b;
    this.values[i] = value;
  }

  /** The value, or -1. */
  get(a: number, b: number): number {
    const i = this.slot(a, b);
    return this.keyA[i] === -1 ? -1 : this.values[i];
  }
}

/** UTF-8 of code points (no spread into String.fromCodePoint: words can be arbitrarily long). */
function utf8OfCodePoints(cpts: Uint32Array): Uint8Array {
  const out = new Uint8Array(cpts.length * 4);
  let n = 0;
  for (const c of cpts) {
    if (c < 0x80) out[n++] = c;
    else if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 0x3f);
    } else if (c < 0x10000) {
      out[n++] = 0xe0 | (c >> 12);
      out[n++] = 0x80 | ((c >> 6) & 0x3f);
      out[n++] = 0x80 | (c & 0x3f);
    } else {
      out[n++] = 0xf0 | (c >> 18);
      out[n++] = 0x80 | ((c >> 12) & 0x3f);
      out[n++] = 0x80 | ((c >> 6) & 0x3f);
      out[n++] = 0x80 | (c & 0x3f);
    }
  }
  return out.subarray(0, n);
}

function validId(id: number | undefined, n: number): number | undefined {
  return id !== undefined && id >= 0 && id < n ? id : undefined;
}

const SP = 0x20;
const APOS = 0x27;

/** llama.cpp's detokenizer clean-up: three in-place passes over the bytes, quirks included. */
function cleanSpaces(input: Uint8Array): Uint8Array {
  const t = Uint8Array.from(input);
  // Pass 1: " ?", " !", " .", " ," lose the space.
  let n = t.length;
  let total = n ? 1 : 0;
  for (let i = 1; i < n; i++) {
    const x = t[i];
    if (t[i - 1] === SP && (x === 0x3f || x === 0x21 || x === 0x2e || x === 0x2c)) total--;
    t[total++] = x;
  }
  // Pass 2: " ' " becomes "'"; the dropped space is zeroed, so it never counts as a space again.
  n = total;
  total = n ? 1 : 0;
  for (let i = 1; i < n; i++) {
    const x = t[i];
    if (x === APOS && i + 1 < n && t[i - 1] === SP && t[i + 1] === SP) {
      total--;
      t[++i] = 0;
    }
    t[total++] = x;
  }
  // Pass 3: " 's", " 'm", " 're", " 've" lose the space.
  n = total;
  total = n ? 1 : 0;
  for (let i = 1; i < n; i++) {
    const x = t[i];
    if (t[i - 1] === SP && x === APOS && i + 1 < n) {
      const x1 = t[i + 1];
      if (x1 === 0x73 || x1 === 0x6d) total--;
      else if (i + 2 < n) {
        const x2 = t[i + 2];
        if ((x1 === 0x72 && x2 === 0x65) || (x1 === 0x76 && x2 === 0x65)) total--;
      }
    }
    t[total++] = x;
  }
  return t.subarray(0, total);
}
