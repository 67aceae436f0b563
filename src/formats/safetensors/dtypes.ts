// The safetensors element types buckle understands, their sizes, and decoding raw little-endian bytes to f32.
// Types the format defines but buckle does not handle (unsigned 16-64 bit, 8/6/4-bit floats, complex) are named so errors can say "unsupported" rather than "unknown".

import { decodeBF16, decodeF16 } from "./half.js";

export type SafetensorsDtype = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

export const DTYPE_SIZES: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export const SUPPORTED_DTYPES = Object.keys(DTYPE_SIZES) as SafetensorsDtype[];

/** Defined by the safetensors format but not readable here. */
export const KNOWN_UNSUPPORTED_DTYPES: readonly string[] = [
  "U16",
  "U32",
  "U64",
  "F8_E4M3",
  "F8_E5M2",
  "F8_E8M0",
  "F6_E2M3",
  "F6_E3M2",
  "F4",
  "C64",
];

export function isSupportedDtype(s: string): s is SafetensorsDtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_SIZES, s);
}

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Decode `bytes` (a fresh buffer whose length is a multiple of the element size) to f32.
 * For F32 on little-endian hosts this is a zero-copy view over `bytes`.
 */
export function decodeToF32(dtype: SafetensorsDtype, bytes: Uint8Array): Float32Array {
  const size = DTYPE_SIZES[dtype];
  const n = bytes.length / size;
  switch (dtype) {
    case "F16":
      return decodeF16(bytes);
    case "BF16":
      return decodeBF16(bytes);
    case "U8":
      return Float32Array.from(bytes);
    case "BOOL": {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = bytes[i] ? 1 : 0;
      return out;
    }
    case "I8":
      return Float32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, n));
  }
  if (littleEndianHost) {
    // Typed-array views need alignment; a fresh buffer at offset 0 has it, anything else goes through a copy.
    const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
    switch (dtype) {
      case "F32":
        return new Float32Array(aligned.buffer, aligned.byteOffset, n);
      case "F64":
        return Float32Array.from(new Float64Array(aligned.buffer, aligned.byteOffset, n));
      case "I16":
        return Float32Array.from(new Int16Array(aligned.buffer, aligned.byteOffset, n));
      case "I32":
        return Float32Array.from(new Int32Array(aligned.buffer, aligned.byteOffset, n));
      case "I64": {
        const src = new BigInt64Array(aligned.buffer, aligned.byteOffset, n);
        const out = new Float32Array(n);
        for (let i = 0; i < n; i++) out[i] = Number(src[i]);
        return out;
      }
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * size;
    switch (dtype) {
      case "F32":
        out[i] = view.getFloat32(o, true);
        break;
      case "F64":
        out[i] = view.getFloat64(o, true);
        break;
      case "I16":
        out[i] = view.getInt16(o, true);
        break;
      case "I32":
        out[i] = view.getInt32(o, true);
        break;
      case "I64":
        out[i] = Number(view.getBigInt64(o, true));
        break;
    }
  }
  return out;
}
