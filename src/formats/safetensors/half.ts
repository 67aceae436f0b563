// Byte-level f16/bf16 encoding for safetensors data, on top of the scalar conversions in the GGUF quant module.
// Works on little-endian byte arrays, as stored in files, so results do not depend on the host's byte order.

import {
  bf16BitsToF32,
  bf16ToF32,
  f16BitsToF32,
  f16ToF32,
  f32ToBF16Bits,
  f32ToF16Bits,
} from "../gguf/quant.js";

export { bf16BitsToF32, f16BitsToF32, f32ToBF16Bits, f32ToF16Bits };

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A Uint16Array over `bytes` when the host order and alignment allow a view; undefined otherwise. */
function u16View(bytes: Uint8Array): Uint16Array | undefined {
  if (!littleEndianHost || bytes.byteOffset % 2 !== 0) return undefined;
  return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 1);
}

/** Decode little-endian half floats from `bytes` (length must be even). */
export function decodeF16(bytes: Uint8Array): Float32Array {
  const view = u16View(bytes);
  if (view) return f16ToF32(view);
  const out = new Float32Array(bytes.length >>> 1);
  for (let i = 0, j = 0; i < out.length; i++, j += 2) out[i] = f16BitsToF32(bytes[j] | (bytes[j + 1] << 8));
  return out;
}

export function decodeBF16(bytes: Uint8Array): Float32Array {
  const view = u16View(bytes);
  if (view) return bf16ToF32(view);
  const out = new Float32Array(bytes.length >>> 1);
  for (let i = 0, j = 0; i < out.length; i++, j += 2) out[i] = bf16BitsToF32(bytes[j] | (bytes[j + 1] << 8));
  return out;
}

/** Encode into `out` (2 bytes per element, little-endian) starting at byte 0. */
export function encodeF16(src: Float32Array, out: Uint8Array): void {
  for (let i = 0, j = 0; i < src.length; i++, j += 2) {
    const h = f32ToF16Bits(src[i]);
    out[j] = h & 0xff;
    out[j + 1] = h >>> 8;
  }
}

export function encodeBF16(src: Float32Array, out: Uint8Array): void {
  for (let i = 0, j = 0; i < src.length; i++, j += 2) {
    const h = f32ToBF16Bits(src[i]);
    out[j] = h & 0xff;
    out[j + 1] = h >>> 8;
  }
}
