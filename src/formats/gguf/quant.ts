// Conversions between float32 and ggml's storage types: f16, bf16, Q8_0 (both ways), and dequantizers for
// the legacy and k-quant blocks found in downloaded models. Arithmetic mirrors llama.cpp's reference code in float32.

import { GGMLType, ggmlTypeInfo, ggmlTypeName } from "./types.js";

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
const fround = Math.fround;

/** IEEE half bits of `x`, rounded to nearest even; overflow gives ±inf, NaN stays a quiet NaN (top payload bits kept). */
export function f32ToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const b = u32Scratch[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Result is subnormal (or zero): shift the full significand so the last kept bit is 2^-24.
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    let m = full >>> shift;
    if (rem > half || (rem === half && (m & 1) !== 0)) m++;
    return sign | m;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and reaches inf at the top).
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++;
  return sign | h;
}

let f16Table: Float32Array | undefined;

/** Float value of IEEE half bits (exact: every half is a float32). */
export function f16BitsToF32(h: number): number {
  if (!f16Table) f16Table = buildF16Table();
  return f16Table[h & 0xffff];
}

function buildF16Table(): Float32Array {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) t[h] = sign * mant * 2 ** -24;
    else if (exp === 0x1f) {
      if (mant === 0) t[h] = sign * Infinity;
      else {
        // Keep the NaN payload (the CPU may still quieten it once it is a JS number).
        u32Scratch[0] = ((h & 0x8000) << 16) | 0x7f800000 | (mant << 13);
        t[h] = f32Scratch[0];
      }
    } else t[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return t;
}

/** bfloat16 bits of `x`, rounded to nearest even like ggml (NaN is kept quiet). */
export function f32ToBF16Bits(x: number): number {
  f32Scratch[0] = x;
  const b = u32Scratch[0];
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32(h: number): number {
  u32Scratch[0] = (h & 0xffff) << 16;
  return f32Scratch[0];
}

/** Float32 -> packed f16 (little-endian bytes). */
export function f32ToF16(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]);
  return out;
}

export function f16ToF32(src: Uint16Array): Float32Array {
  if (!f16Table) f16Table = buildF16Table();
  const t = f16Table;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]];
  return out;
}

export function f32ToBF16(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToBF16Bits(src[i]);
  return out;
}

export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}

/** C's roundf: halfway cases away from zero (Math.round would send -2.5 to -2). */
function roundf(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/**
 * Q8_0 blocks for `src` (length a multiple of 32), computed like llama.cpp's quantize_row_q8_0_ref:
 * d = amax/127 in float32, q = roundf(x * (1/d)), and d stored as f16.
 */
export function quantizeQ8_0(src: ArrayLike<number>): Uint8Array {
  if (src.length % 32 !== 0) throw new RangeError(`Q8_0 needs a multiple of 32 values, got ${src.length}`);
  const nb = src.length / 32;
  const out = new Uint8Array(nb * 34);
  for (let i = 0; i < nb; i++) {
    const base = i * 32;
    let amax = 0;
    for (let j = 0; j < 32; j++) {
      const a = Math.abs(fround(src[base + j]));
      // MAX(a, b) in C returns b when a comparison involves NaN; mirror it so NaN inputs behave alike.
      amax = amax > a ? amax : a;
    }
    const d = fround(amax / 127);
    const id = d !== 0 ? fround(1 / d) : 0;
    const h = f32ToF16Bits(d);
    const o = i * 34;
    out[o] = h & 0xff;
    out[o + 1] = h >>> 8;
    for (let j = 0; j < 32; j++) {
      const q = roundf(fround(fround(src[base + j]) * id));
      // Out-of-range results only arise from NaN/inf input; C's conversion is undefined there, we clamp.
      out[o + 2 + j] = (Number.isNaN(q) ? 0 : Math.max(-128, Math.min(127, q))) & 0xff;
    }
  }
  return out;
}

function half(b: Uint8Array, o: number): number {
  return f16BitsToF32(b[o] | (b[o + 1] << 8));
}

function i8(v: number): number {
  return (v << 24) >> 24;
}

function dequantQ8_0(b: Uint8Array, out: Float32Array): void {
  for (let i = 0, o = 0; i < out.length; i += 32, o += 34) {
    const d = half(b, o);
    for (let j = 0; j < 32; j++) out[i + j] = i8(b[o + 2 + j]) * d;
  }
}

function dequantQ4_0(b: Uint8Array, out: Float32Array): void {
  for (let i = 0, o = 0; i < out.length; i += 32, o += 18) {
    const d = half(b, o);
    for (let j = 0; j < 16; j++) {
      const q = b[o + 2 + j];
      out[i + j] = ((q & 0x0f) - 8) * d;
      out[i + j + 16] = ((q >>> 4) - 8) * d;
    }
  }
}

function dequantQ4_1(b: Uint8Array, out: Float32Array): void {
  for (let i = 0, o = 0; i < out.length; i += 32, o += 20) {
    const d = half(b, o);
    const m = half(b, o + 2);
    for (let j = 0; j < 16; j++) {
      const q = b[o + 4 + j];
      out[i + j] = fround((q & 0x0f) * d) + m;
      out[i + j + 16] = fround((q >>> 4) * d) + m;
    }
  }
}

function readU32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

function dequantQ5_0(b: Uint8Array, out: Float32Array): void {
  for (let i = 0, o = 0; i < out.length; i += 32, o += 22) {
    const d = half(b, o);
    const qh = readU32(b, o + 2);
    for (let j = 0; j < 16; j++) {
      const q = b[o + 6 + j];
      const h0 = ((qh >>> j) << 4) & 0x10;
      const h1 = (qh >>> (j + 12)) & 0x10;
      out[i + j] = (((q & 0x0f) | h0) - 16) * d;
      out[i + j + 16] = (((q >>> 4) | h1) - 16) * d;
    }
  }
}

function dequantQ5_1(b: Uint8Array, out: Float32Array): void {
  for (let i = 0, o = 0; i < out.length; i += 32, o += 24) {
    const d = half(b, o);
    const m = half(b, o + 2);
    const qh = readU32(b, o + 4);
    for (let j = 0; j < 16; j++) {
      const q = b[o + 8 + j];
      const h0 = ((qh >>> j) << 4) & 0x10;
      const h1 = (qh >>> (j + 12)) & 0x10;
      out[i + j] = fround(((q & 0x0f) | h0) * d) + m;
      out[i + j + 16] = fround(((q >>> 4) | h1) * d) + m;
    }
  }
}

/** 6-bit scale and min number j of a Q4_K/Q5_K block's 12 packed bytes at `o`. */
function scaleMinK4(b: Uint8Array, o: number, j: number): [number, number] {
  if (j < 4) return [b[o + j] & 63, b[o + j + 4] & 63];
  return [
    (b[o + j + 4] & 0x0f) | ((b[o + j - 4] >>> 6) << 4),
    (b[o + j + 4] >>> 4) | ((b[o + j] >>> 6) << 4),
  ];
}

function dequantQ4_K(b: Uint8Array, out: Float32Array): void {
  for (let i = 0, o = 0; i < out.length; i += 256, o += 144) {
    const d = half(b, o);
    const dmin = half(b, o + 2);
    let q = o + 16;
    let y = i;
    for (let j = 0, is = 0; j < 256; j += 64, is += 2) {
      const [sc1, m1s] = scaleMinK4(b, o + 4, is);
      const [sc2, m2s] = scaleMinK4(b, o + 4, is + 1);
      const d1 = fround(d * sc1);
      const m1 = fround(dmin * m1s);
      const d2 = fround(d * sc2);
      const m2 = fround(dmin * m2s);
      for (let l = 0; l < 32; l++) out[y++] = fround(d1 * (b[q + l] & 0x0f)) - m1;
      for (let l = 0; l < 32; l++) out[y++] = fround(d2 * (b[q + l] >>> 4)) - m2;
      q += 32;
    }
  }
}

function dequantQ5_K(b: Uint8Array, out: Float32Array): void {
  for (let i = 0, o = 0; i < out.length; i += 256, o += 176) {
    const d = half(b, o);
    const dmin = half(b, o + 2);
    const qh = o + 16;
    let ql = o + 48;
    let y = i;
    let u1 = 1;
    let u2 = 2;
    for (let j = 0, is = 0; j < 256; j += 64, is += 2) {
      const [sc1, m1s] = scaleMinK4(b, o + 4, is);
      const [sc2, m2s] = scaleMinK4(b, o + 4, is + 1);
      const d1 = fround(d * sc1);
      const m1 = fround(dmin * m1s);
      const d2 = fround(d * sc2);
      const m2 = fround(dmin * m2s);
      for (let l = 0; l < 32; l++)
        out[y++] = fround(d1 * ((b[ql + l] & 0x0f) + (b[qh + l] & u1 ? 16 : 0))) - m1;
      for (let l = 0; l < 32; l++)
        out[y++] = fround(d2 * ((b[ql + l] >>> 4) + (b[qh + l] & u2 ? 16 : 0))) - m2;
      ql += 32;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
}

function dequantQ6_K(b: Uint8Array, out: Float32Array): void {
  for (let i = 0, o = 0; i < out.length; i += 256, o += 210) {
    const d = half(b, o + 208);
    let ql = o;
    let qh = o + 128;
    let sc = o + 192;
    for (let n = 0; n < 256; n += 128) {
      const y = i + n;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = b[qh + l];
        const q1 = ((b[ql + l] & 0x0f) | ((h & 3) << 4)) - 32;
        const q2 = ((b[ql + l + 32] & 0x0f) | (((h >>> 2) & 3) << 4)) - 32;
        const q3 = ((b[ql + l] >>> 4) | (((h >>> 4) & 3) << 4)) - 32;
        const q4 = ((b[ql + l + 32] >>> 4) | (((h >>> 6) & 3) << 4)) - 32;
        out[y + l] = fround(d * i8(b[sc + is])) * q1;
        out[y + l + 32] = fround(d * i8(b[sc + is + 2])) * q2;
        out[y + l + 64] = fround(d * i8(b[sc + is + 4])) * q3;
        out[y + l + 96] = fround(d * i8(b[sc + is + 6])) * q4;
      }
      ql += 64;
      qh += 32;
      sc += 8;
    }
  }
}

function dequantQ2_K(b: Uint8Array, out: Float32Array): void {
  for (let i = 0, o = 0; i < out.length; i += 256, o += 84) {
    const d = half(b, o + 80);
    const dmin = half(b, o + 82);
    let q = o + 16;
    let y = i;
    let is = 0;
    for (let n = 0; n < 256; n += 128) {
      for (let shift = 0; shift < 8; shift += 2) {
        for (let half16 = 0; half16 < 32; half16 += 16) {
          const sc = b[o + is++];
          const dl = fround(d * (sc & 0x0f));
          const ml = fround(dmin * (sc >>> 4));
          for (let l = 0; l < 16; l++) out[y++] = fround(dl * ((b[q + half16 + l] >>> shift) & 3)) - ml;
        }
      }
      q += 32;
    }
  }
}

function dequantQ3_K(b: Uint8Array, out: Float32Array): void {
  const scales = new Int8Array(16);
  for (let i = 0, o = 0; i < out.length; i += 256, o += 110) {
    const dAll = half(b, o + 108);
    const hm = o;
    let q = o + 32;
    const s = o + 96;
    // 16 six-bit scales: low 4 bits from bytes 0..7, high 2 bits from bytes 8..11.
    for (let k = 0; k < 16; k++) {
      const low = k < 8 ? b[s + k] & 0x0f : b[s + k - 8] >>> 4;
      const high = (b[s + 8 + (k & 3)] >>> (2 * (k >> 2))) & 3;
      scales[k] = (low | (high << 4)) - 32;
    }
    let y = i;
    let is = 0;
    let m = 1;
    for (let n = 0; n < 256; n += 128) {
      for (let shift = 0; shift < 8; shift += 2) {
        for (let half16 = 0; half16 < 32; half16 += 16) {
          const dl = fround(dAll * scales[is++]);
          for (let l = 0; l < 16; l++) {
            const v = ((b[q + half16 + l] >>> shift) & 3) - (b[hm + half16 + l] & m ? 0 : 4);
            out[y++] = fround(dl * v);
          }
        }
        m <<= 1;
      }
      q += 32;
    }
  }
}

type Dequantizer = (bytes: Uint8Array, out: Float32Array) => void;

function viewOf<T>(
  bytes: Uint8Array,
  width: number,
  make: (buf: ArrayBuffer, off: number, len: number) => T,
): T {
  // Typed array views need an aligned offset; copy only when the input is not aligned.
  if (bytes.byteOffset % width === 0)
    return make(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / width);
  const copy = bytes.slice();
  return make(copy.buffer, 0, copy.byteLength / width);
}

const DEQUANTIZERS: Partial<Record<GGMLType, Dequantizer>> = {
  [GGMLType.F32]: (b, out) => out.set(viewOf(b, 4, (buf, off, len) => new Float32Array(buf, off, len))),
  [GGMLType.F16]: (b, out) =>
    out.set(f16ToF32(viewOf(b, 2, (buf, off, len) => new Uint16Array(buf, off, len)))),
  [GGMLType.BF16]: (b, out) =>
    out.set(bf16ToF32(viewOf(b, 2, (buf, off, len) => new Uint16Array(buf, off, len)))),
  [GGMLType.F64]: (b, out) => out.set(viewOf(b, 8, (buf, off, len) => new Float64Array(buf, off, len))),
  [GGMLType.I8]: (b, out) => out.set(viewOf(b, 1, (buf, off, len) => new Int8Array(buf, off, len))),
  [GGMLType.I16]: (b, out) => out.set(viewOf(b, 2, (buf, off, len) => new Int16Array(buf, off, len))),
  [GGMLType.I32]: (b, out) => out.set(viewOf(b, 4, (buf, off, len) => new Int32Array(buf, off, len))),
  [GGMLType.I64]: (b, out) => {
    const v = viewOf(b, 8, (buf, off, len) => new BigInt64Array(buf, off, len));
    for (let i = 0; i < v.length; i++) out[i] = Number(v[i]);
  },
  [GGMLType.Q4_0]: dequantQ4_0,
  [GGMLType.Q4_1]: dequantQ4_1,
  [GGMLType.Q5_0]: dequantQ5_0,
  [GGMLType.Q5_1]: dequantQ5_1,
  [GGMLType.Q8_0]: dequantQ8_0,
  [GGMLType.Q2_K]: dequantQ2_K,
  [GGMLType.Q3_K]: dequantQ3_K,
  [GGMLType.Q4_K]: dequantQ4_K,
  [GGMLType.Q5_K]: dequantQ5_K,
  [GGMLType.Q6_K]: dequantQ6_K,
};

/** Whether {@link dequantize} supports type `t`. */
export function canDequantize(t: number): boolean {
  return DEQUANTIZERS[t as GGMLType] !== undefined;
}

/** Types {@link quantize} can produce from float32. */
export const QUANTIZE_TYPES = [GGMLType.F32, GGMLType.F16, GGMLType.BF16, GGMLType.Q8_0] as const;
export type QuantizeType = (typeof QUANTIZE_TYPES)[number];

/** Dequantize `elementCount` values of type `t` stored in `bytes` (host must be little-endian, as all Node targets are). */
export function dequantize(t: GGMLType, bytes: Uint8Array, elementCount: number): Float32Array {
  const info = ggmlTypeInfo(t);
  const fn = DEQUANTIZERS[t];
  if (!info || !fn)
    throw new RangeError(`cannot dequantize ggml type ${ggmlTypeName(t)}: no dequantizer for it`);
  if (
    elementCount % info.blockSize !== 0 ||
    bytes.byteLength !== (elementCount / info.blockSize) * info.typeSize
  ) {
    throw new RangeError(
      `${ggmlTypeName(t)}: ${bytes.byteLength} bytes do not hold ${elementCount} elements ` +
        `(blocks of ${info.blockSize} take ${info.typeSize} bytes)`,
    );
  }
  const out = new Float32Array(elementCount);
  fn(bytes, out);
  return out;
}

/** Encode float32 values as type `t` (F32, F16, BF16 or Q8_0), little-endian. */
export function quantize(t: QuantizeType, src: Float32Array): Uint8Array {
  switch (t) {
    case GGMLType.F32:
      return new Uint8Array(src.buffer.slice(src.byteOffset, src.byteOffset + src.byteLength));
    case GGMLType.F16:
      return new Uint8Array(f32ToF16(src).buffer);
    case GGMLType.BF16:
      return new Uint8Array(f32ToBF16(src).buffer);
    case GGMLType.Q8_0:
      return quantizeQ8_0(src);
    default:
      throw new RangeError(`cannot quantize to ggml type ${ggmlTypeName(t)}`);
  }
}
