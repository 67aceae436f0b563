// GGUF value types, ggml tensor types with their block geometry, and the typed metadata value model.
// Shared by the reader, the writer, the quantizers and the fuzzer; no I/O here.

/** Metadata value type ids, as stored in GGUF files. */
export enum GGUFValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

const VALUE_TYPE_NAMES = [
  "u8",
  "i8",
  "u16",
  "i16",
  "u32",
  "i32",
  "f32",
  "bool",
  "string",
  "array",
  "u64",
  "i64",
  "f64",
];

/** Short name of a value type ("u32", "string", ...); "type#N" for an unknown id. */
export function ggufValueTypeName(t: number): string {
  return VALUE_TYPE_NAMES[t] ?? `type#${t}`;
}

export function isGGUFValueType(t: number): t is GGUFValueType {
  return Number.isInteger(t) && t >= 0 && t <= 12;
}

/** Bytes per item for fixed-size value types; undefined for STRING and ARRAY. */
export function ggufValueTypeSize(t: GGUFValueType): number | undefined {
  switch (t) {
    case GGUFValueType.UINT8:
    case GGUFValueType.INT8:
    case GGUFValueType.BOOL:
      return 1;
    case GGUFValueType.UINT16:
    case GGUFValueType.INT16:
      return 2;
    case GGUFValueType.UINT32:
    case GGUFValueType.INT32:
    case GGUFValueType.FLOAT32:
      return 4;
    case GGUFValueType.UINT64:
    case GGUFValueType.INT64:
    case GGUFValueType.FLOAT64:
      return 8;
    default:
      return undefined;
  }
}

type NumberValueType =
  | GGUFValueType.UINT8
  | GGUFValueType.INT8
  | GGUFValueType.UINT16
  | GGUFValueType.INT16
  | GGUFValueType.UINT32
  | GGUFValueType.INT32
  | GGUFValueType.FLOAT32
  | GGUFValueType.FLOAT64;

/** A scalar metadata value; 64-bit integers are bigints so no value is silently rounded. */
export type GGUFScalarValue =
  | { type: NumberValueType; value: number }
  | { type: GGUFValueType.UINT64 | GGUFValueType.INT64; value: bigint }
  | { type: GGUFValueType.BOOL; value: boolean }
  | { type: GGUFValueType.STRING; value: string };

/** How array items are held in memory, per item type: typed arrays for numbers (compact for 150k-entry vocabularies). */
export interface GGUFArrayItems {
  [GGUFValueType.UINT8]: Uint8Array;
  [GGUFValueType.INT8]: Int8Array;
  [GGUFValueType.UINT16]: Uint16Array;
  [GGUFValueType.INT16]: Int16Array;
  [GGUFValueType.UINT32]: Uint32Array;
  [GGUFValueType.INT32]: Int32Array;
  [GGUFValueType.FLOAT32]: Float32Array;
  [GGUFValueType.BOOL]: boolean[];
  [GGUFValueType.STRING]: string[];
  [GGUFValueType.ARRAY]: GGUFArrayValue[];
  [GGUFValueType.UINT64]: BigUint64Array;
  [GGUFValueType.INT64]: BigInt64Array;
  [GGUFValueType.FLOAT64]: Float64Array;
}

/**
 * An array value. `value` is a typed array for numeric items, boolean[] / string[] otherwise, and for nested
 * arrays a list of array values (each with its own item type, as GGUF allows).
 */
export type GGUFArrayValue = {
  [K in keyof GGUFArrayItems]: { type: GGUFValueType.ARRAY; itemType: K; value: GGUFArrayItems[K] };
}[keyof GGUFArrayItems];

/** A metadata value with its exact GGUF type, so a read-then-write round trip is lossless. */
export type GGUFValue = GGUFScalarValue | GGUFArrayValue;

/** Terse builders for metadata values: `gv.u32(3)`, `gv.strArr(["a"])`, ... */
export const gv = {
  u8: (value: number): GGUFValue => ({ type: GGUFValueType.UINT8, value }),
  i8: (value: number): GGUFValue => ({ type: GGUFValueType.INT8, value }),
  u16: (value: number): GGUFValue => ({ type: GGUFValueType.UINT16, value }),
  i16: (value: number): GGUFValue => ({ type: GGUFValueType.INT16, value }),
  u32: (value: number): GGUFValue => ({ type: GGUFValueType.UINT32, value }),
  i32: (value: number): GGUFValue => ({ type: GGUFValueType.INT32, value }),
  f32: (value: number): GGUFValue => ({ type: GGUFValueType.FLOAT32, value }),
  f64: (value: number): GGUFValue => ({ type: GGUFValueType.FLOAT64, value }),
  u64: (value: number | bigint): GGUFValue => ({ type: GGUFValueType.UINT64, value: BigInt(value) }),
  i64: (value: number | bigint): GGUFValue => ({ type: GGUFValueType.INT64, value: BigInt(value) }),
  bool: (value: boolean): GGUFValue => ({ type: GGUFValueType.BOOL, value }),
  str: (value: string): GGUFValue => ({ type: GGUFValueType.STRING, value }),
  strArr: (items: readonly string[]): GGUFArrayValue => ({
    type: GGUFValueType.ARRAY,
    itemType: GGUFValueType.STRING,
    value: [...items],
  }),
  boolArr: (items: readonly boolean[]): GGUFArrayValue => ({
    type: GGUFValueType.ARRAY,
    itemType: GGUFValueType.BOOL,
    value: [...items],
  }),
  u8Arr: (items: ArrayLike<number>): GGUFArrayValue => ({
    type: GGUFValueType.ARRAY,
    itemType: GGUFValueType.UINT8,
    value: Uint8Array.from(items),
  }),
  u32Arr: (items: ArrayLike<number>): GGUFArrayValue => ({
    type: GGUFValueType.ARRAY,
    itemType: GGUFValueType.UINT32,
    value: Uint32Array.from(items),
  }),
  i32Arr: (items: ArrayLike<number>): GGUFArrayValue => ({
    type: GGUFValueType.ARRAY,
    itemType: GGUFValueType.INT32,
    value: Int32Array.from(items),
  }),
  f32Arr: (items: ArrayLike<number>): GGUFArrayValue => ({
    type: GGUFValueType.ARRAY,
    itemType: GGUFValueType.FLOAT32,
    value: Float32Array.from(items),
  }),
  f64Arr: (items: ArrayLike<number>): GGUFArrayValue => ({
    type: GGUFValueType.ARRAY,
    itemType: GGUFValueType.FLOAT64,
    value: Float64Array.from(items),
  }),
  u64Arr: (items: ArrayLike<number | bigint>): GGUFArrayValue => ({
    type: GGUFValueType.ARRAY,
    itemType: GGUFValueType.UINT64,
    value: BigUint64Array.from(Array.from(items, (x) => BigInt(x))),
  }),
  i64Arr: (items: ArrayLike<number | bigint>): GGUFArrayValue => ({
    type: GGUFValueType.ARRAY,
    itemType: GGUFValueType.INT64,
    value: BigInt64Array.from(Array.from(items, (x) => BigInt(x))),
  }),
  /** An array of arrays (GGUF allows nesting; each inner array keeps its own item type). */
  arrArr: (items: readonly GGUFArrayValue[]): GGUFArrayValue => ({
    type: GGUFValueType.ARRAY,
    itemType: GGUFValueType.ARRAY,
    value: [...items],
  }),
};

/** ggml tensor types, with llama.cpp's ids (gaps are ids llama.cpp retired). */
export enum GGMLType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
  Q2_0 = 42,
}

/** Storage geometry of a ggml type: `blockSize` elements take `typeSize` bytes. */
export interface GGMLTypeInfo {
  name: string;
  blockSize: number;
  typeSize: number;
}

const QK_K = 256;

// Block layouts follow ggml-common.h; every size is checked by the tests against llama.cpp's table.
const TYPE_INFO: Record<number, GGMLTypeInfo> = {
  [GGMLType.F32]: { name: "F32", blockSize: 1, typeSize: 4 },
  [GGMLType.F16]: { name: "F16", blockSize: 1, typeSize: 2 },
  [GGMLType.Q4_0]: { name: "Q4_0", blockSize: 32, typeSize: 2 + 16 },
  [GGMLType.Q4_1]: { name: "Q4_1", blockSize: 32, typeSize: 2 + 2 + 16 },
  [GGMLType.Q5_0]: { name: "Q5_0", blockSize: 32, typeSize: 2 + 4 + 16 },
  [GGMLType.Q5_1]: { name: "Q5_1", blockSize: 32, typeSize: 2 + 2 + 4 + 16 },
  [GGMLType.Q8_0]: { name: "Q8_0", blockSize: 32, typeSize: 2 + 32 },
  [GGMLType.Q8_1]: { name: "Q8_1", blockSize: 32, typeSize: 2 + 2 + 32 },
  [GGMLType.Q2_K]: { name: "Q2_K", blockSize: QK_K, typeSize: 2 + 2 + QK_K / 16 + QK_K / 4 },
  [GGMLType.Q3_K]: { name: "Q3_K", blockSize: QK_K, typeSize: 2 + QK_K / 4 + QK_K / 8 + 12 },
  [GGMLType.Q4_K]: { name: "Q4_K", blockSize: QK_K, typeSize: 2 + 2 + QK_K / 2 + 12 },
  [GGMLType.Q5_K]: { name: "Q5_K", blockSize: QK_K, typeSize: 2 + 2 + QK_K / 2 + QK_K / 8 + 12 },
  [GGMLType.Q6_K]: { name: "Q6_K", blockSize: QK_K, typeSize: 2 + QK_K / 2 + QK_K / 4 + QK_K / 16 },
  [GGMLType.Q8_K]: { name: "Q8_K", blockSize: QK_K, typeSize: 4 + QK_K + QK_K / 8 },
  [GGMLType.IQ2_XXS]: { name: "IQ2_XXS", blockSize: QK_K, typeSize: 2 + QK_K / 4 },
  [GGMLType.IQ2_XS]: { name: "IQ2_XS", blockSize: QK_K, typeSize: 2 + QK_K / 4 + QK_K / 32 },
  [GGMLType.IQ3_XXS]: { name: "IQ3_XXS", blockSize: QK_K, typeSize: 2 + QK_K / 4 + QK_K / 8 },
  [GGMLType.IQ1_S]: { name: "IQ1_S", blockSize: QK_K, typeSize: 2 + QK_K / 8 + QK_K / 16 },
  [GGMLType.IQ4_NL]: { name: "IQ4_NL", blockSize: 32, typeSize: 2 + 16 },
  [GGMLType.IQ3_S]: { name: "IQ3_S", blockSize: QK_K, typeSize: 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4 },
  [GGMLType.IQ2_S]: { name: "IQ2_S", blockSize: QK_K, typeSize: 2 + QK_K / 4 + QK_K / 16 },
  [GGMLType.IQ4_XS]: { name: "IQ4_XS", blockSize: QK_K, typeSize: 2 + 2 + QK_K / 2 + QK_K / 64 },
  [GGMLType.I8]: { name: "I8", blockSize: 1, typeSize: 1 },
  [GGMLType.I16]: { name: "I16", blockSize: 1, typeSize: 2 },
  [GGMLType.I32]: { name: "I32", blockSize: 1, typeSize: 4 },
  [GGMLType.I64]: { name: "I64", blockSize: 1, typeSize: 8 },
  [GGMLType.F64]: { name: "F64", blockSize: 1, typeSize: 8 },
  [GGMLType.IQ1_M]: { name: "IQ1_M", blockSize: QK_K, typeSize: QK_K / 8 + QK_K / 16 + QK_K / 32 },
  [GGMLType.BF16]: { name: "BF16", blockSize: 1, typeSize: 2 },
  [GGMLType.TQ1_0]: { name: "TQ1_0", blockSize: QK_K, typeSize: 2 + 4 * 13 },
  [GGMLType.TQ2_0]: { name: "TQ2_0", blockSize: QK_K, typeSize: 2 + 64 },
  [GGMLType.MXFP4]: { name: "MXFP4", blockSize: 32, typeSize: 1 + 16 },
  [GGMLType.NVFP4]: { name: "NVFP4", blockSize: 64, typeSize: 4 + 32 },
  [GGMLType.Q1_0]: { name: "Q1_0", blockSize: 128, typeSize: 2 + 16 },
  [GGMLType.Q2_0]: { name: "Q2_0", blockSize: 64, typeSize: 2 + 16 },
};

/** Block geometry of a ggml type id, or undefined when the id is not a known type. */
export function ggmlTypeInfo(t: number): GGMLTypeInfo | undefined {
  return Number.isInteger(t) ? TYPE_INFO[t] : undefined;
}

/** All ggml type ids this module knows the geometry of. */
export function knownGGMLTypes(): GGMLType[] {
  return Object.keys(TYPE_INFO).map(Number) as GGMLType[];
}

/** Name of a ggml type ("Q8_0"), or "type#N" for an unknown id. */
export function ggmlTypeName(t: number): string {
  return ggmlTypeInfo(t)?.name ?? `type#${t}`;
}

/** ggml type from its name (case-insensitive), e.g. "q8_0" -> GGMLType.Q8_0. */
export function ggmlTypeFromName(name: string): GGMLType | undefined {
  const upper = name.toUpperCase();
  for (const [id, info] of Object.entries(TYPE_INFO)) if (info.name === upper) return Number(id) as GGMLType;
  return undefined;
}

/** Bytes taken by `elementCount` elements of type `t`; undefined if the type is unknown or the count is not whole blocks. */
export function ggmlByteSize(t: number, elementCount: number): number | undefined {
  const info = ggmlTypeInfo(t);
  if (!info || elementCount % info.blockSize !== 0) return undefined;
  return (elementCount / info.blockSize) * info.typeSize;
}
