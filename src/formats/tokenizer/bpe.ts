// Byte-level BPE tokenizer (GGUF tokenizer.ggml.model "gpt2": GPT-2, Llama 3, Qwen2, StarCoder, ...)
// reproducing llama.cpp's llm_tokenizer_bpe: same pre-tokenization, merge order, special tokens and detokenizer.

import { InputError } from "../../util/errors.js";
import { boundaryToken, checkTokenId, concatBytes, utf8OfCodePoints } from "./common.js";
import { codePoints, preTokenizerSpec, splitCodePoints, type PreTokenizerSpec } from "./pretokenize.js";
import { LlamaSpecialTokens } from "./special.js";
import type { DecodeOptions, EncodeOptions, Tokenizer, VocabData } from "./types.js";

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

  private readonly special: LlamaSpecialTokens;
  /** Token texts as llama.cpp holds them (empty ones renamed "[EMPTY_i]"). */
  private readonly texts: string[];
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
    this.special = new LlamaSpecialTokens(vocab);
    this.texts = this.special.texts;
    this.pieces = new Array(n);

    for (let i = 0; i < n; i++) this.symOf.set(this.texts[i], i);

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
    if (addSpecial && this.addBos) out.push(boundaryToken("BOS", this.bosId));
    for (const frag of this.special.partition(text, parseSpecial)) {
      if (frag.text === undefined) out.push(frag.token);
      else this.encodeText(frag.text, out);
    }
    if (addSpecial && this.addEos) out.push(boundaryToken("EOS", this.eosId));
    return out;
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
    const skipSpecial = options?.skipSpecial ?? false;
    const parts: Uint8Array[] = [];
    for (const id of ids) {
      this.checkId(id);
      if (skipSpecial && this.special.isHidden(id)) continue;
      parts.push(this.tokenBytes(id));
    }
    let buf = concatBytes(parts);
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
    return this.special.piece(id, normalPiece);
  }

  tokenText(id: number): string {
    this.checkId(id);
    return this.vocab.tokens[id];
  }

  isSpecial(id: number): boolean {
    this.checkId(id);
    return this.special.isSpecial(id);
  }

  private checkId(id: number): void {
    checkTokenId(id, this.vocabSize);
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

/** A normal token's bytes: its text through the GPT-2 byte table. */
function normalPiece(text: string): Uint8Array {
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
