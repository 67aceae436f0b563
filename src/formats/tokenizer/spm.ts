// SentencePiece-style tokenizer (GGUF tokenizer.ggml.model "llama") that reproduces llama.cpp's SPM
// path id for id: special-token partitioning, space escaping, score-greedy bigram merging, byte fallback.

import { InputError } from "../../util/errors.js";
import { boundaryToken, checkTokenId, concatBytes, utf8OfCodePoints } from "./common.js";
import { LlamaSpecialTokens } from "./special.js";
import type { DecodeOptions, EncodeOptions, Tokenizer, VocabData } from "./types.js";

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
  readonly vocab: VocabData;
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly unkId: number | undefined;
  /** Whether encode() puts a space before text at the start and after special tokens (and decode drops it). */
  readonly addSpacePrefix: boolean;
  readonly addBos: boolean;
  readonly addEos: boolean;

  private readonly special: LlamaSpecialTokens;
  private readonly texts: string[];
  private readonly scores: Float32Array;
  private readonly textToId = new Map<string, number>();
  private readonly byteToId = new Int32Array(256).fill(-1);
  private readonly pieces: Uint8Array[];
  private readonly heap = new BigramHeap();

  constructor(vocab: VocabData) {
    const n = vocab.tokens.length;
    if (n === 0)
      throw new InputError("SentencePiece vocabulary has no tokens (tokenizer.ggml.tokens is empty)");
    this.vocab = vocab;
    this.vocabSize = n;
    this.special = new LlamaSpecialTokens(vocab);
    this.texts = this.special.texts;
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

    const hex = "0123456789ABCDEF";
    for (let b = 0; b < 256; b++) {
      // Byte fallback prefers <0xXX> and, like llama.cpp, accepts a token that is the raw character.
      const id =
        this.textToId.get(`<0x${hex[b >> 4]}${hex[b & 15]}>`) ?? this.textToId.get(String.fromCharCode(b));
      if (id !== undefined) this.byteToId[b] = id;
    }

    // Normal tokens print with ▁ turned back into spaces.
    const normal = (t: string): Uint8Array => utf8.encode(t.replaceAll(SPACE_MARK, " "));
    this.pieces = this.texts.map((_, id) => this.special.piece(id, normal));
  }

  encode(text: string, options?: EncodeOptions): number[] {
    // llama.cpp sees the UTF-8 of the text, where a lone surrogate has already become U+FFFD.
    if (LONE_SURROGATE.test(text)) text = utf8Decoder.decode(utf8.encode(text));
    const addSpecial = options?.addSpecial ?? true;
    const parseSpecial = options?.parseSpecial ?? false;
    const out: number[] = [];
    if (addSpecial && this.addBos) out.push(boundaryToken("BOS", this.bosId));
    // A space prefix goes before the text at the start and after every special token.
    let prevSpecial = true;
    for (const f of this.special.partition(text, parseSpecial)) {
      if (f.text === undefined) {
        out.push(f.token);
        prevSpecial = true;
      } else {
        const raw = this.addSpacePrefix && prevSpecial ? " " + f.text : f.text;
        this.encodeEscaped(raw.replaceAll(" ", SPACE_MARK), out);
        prevSpecial = false;
      }
    }
    if (addSpecial && this.addEos) out.push(boundaryToken("EOS", this.eosId));
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
      for (const b of utf8OfCodePoints([piece.codePointAt(0) as number])) {
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
    // llama.cpp drops one leading space of the first token only (the one encode added), even when
    // that first token prints nothing.
    let removeSpace = this.addSpacePrefix;
    for (const id of ids) {
      this.checkId(id);
      if (skipSpecial && this.special.isHidden(id)) {
        removeSpace = false;
        continue;
      }
      let p = this.pieces[id];
      if (removeSpace && p.length > 0 && p[0] === 0x20) p = p.subarray(1);
      removeSpace = false;
      parts.push(p);
    }
    return utf8Decoder.decode(concatBytes(parts));
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
    return this.special.isSpecial(id);
  }

  /** llama.cpp's attribute bits of a token (TokenAttr). */
  tokenAttr(id: number): number {
    this.checkId(id);
    return this.special.attrs[id];
  }

  private checkId(id: number): void {
    checkTokenId(id, this.vocabSize);
  }
}
