// Small pieces both tokenizers need that are not about special tokens: id checks, BOS/EOS lookup,
// UTF-8 of code points and byte concatenation.

import { InputError } from "../../util/errors.js";

/** Throws an InputError unless `id` is a token id of a vocabulary of `vocabSize` tokens. */
export function checkTokenId(id: number, vocabSize: number): void {
  if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
    throw new InputError(`token id ${id} is outside the vocabulary (0..${vocabSize - 1})`);
  }
}

/** The BOS or EOS id that addSpecial asks for; an InputError when the vocabulary has none. */
export function boundaryToken(kind: "BOS" | "EOS", id: number | undefined): number {
  if (id === undefined)
    throw new InputError(`the vocabulary asks for ${kind === "BOS" ? "a" : "an"} ${kind} token but has none`);
  return id;
}

/** UTF-8 of code points (no spread into String.fromCodePoint: words can be arbitrarily long). */
export function utf8OfCodePoints(cpts: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(cpts.length * 4);
  let n = 0;
  for (let i = 0; i < cpts.length; i++) {
    const c = cpts[i];
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

/** The bytes of `parts` end to end, in a fresh array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
