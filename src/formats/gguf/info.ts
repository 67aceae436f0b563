// JSON-able summary of a GGUF file for `buckle model info --json`: header, metadata (long arrays cut short),
// tensor table and totals. 64-bit integers become numbers when exact, else decimal strings.

import type { GGUFFile } from "./reader.js";
import {
  GGUFValueType,
  ggmlTypeName,
  ggufValueTypeName,
  type GGUFArrayValue,
  type GGUFValue,
} from "./types.js";

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface GGUFInfoMetadataEntry {
  /** Value type name ("u32", "string", "array"...). */
  type: string;
  /** For arrays: the item type name. */
  itemType?: string;
  /** For arrays: the item count. */
  length?: number;
  /** The value; for arrays of at most `maxArrayItems` items, all of them. */
  value?: JsonValue;
  /** For longer arrays: the first `maxArrayItems` items instead of `value`. */
  head?: JsonValue[];
}

export interface GGUFInfoTensor {
  name: string;
  /** PyTorch order. */
  shape: number[];
  type: string;
  bytes: number;
  /** Relative to the data section. */
  offset: number;
}

export interface GGUFInfo {
  path: string;
  version: number;
  alignment: number;
  fileSize: number;
  dataOffset: number;
  metadata: Record<string, GGUFInfoMetadataEntry>;
  tensors: GGUFInfoTensor[];
  totals: {
    tensorCount: number;
    parameterCount: number;
    tensorBytes: number;
    byType: Record<string, { count: number; elements: number; bytes: number }>;
  };
}

function jsonNumber(v: number | bigint): JsonValue {
  if (typeof v === "bigint") {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(v)
      : v.toString();
  }
  // JSON has no NaN/Infinity; keep them visible as strings.
  return Number.isFinite(v) ? v : String(v);
}

function arrayItems(a: GGUFArrayValue, limit: number, maxArrayItems: number): JsonValue[] {
  const out: JsonValue[] = [];
  const n = Math.min(a.value.length, limit);
  for (let i = 0; i < n; i++) {
    const item = a.value[i];
    if (typeof item === "object" && item !== null)
      out.push(arrayEntry(item, maxArrayItems) as unknown as JsonValue);
    else if (typeof item === "string" || typeof item === "boolean") out.push(item);
    else out.push(jsonNumber(item));
  }
  return out;
}

function arrayEntry(a: GGUFArrayValue, maxArrayItems: number): GGUFInfoMetadataEntry {
  const length = a.value.length;
  const base = { type: "array", itemType: ggufValueTypeName(a.itemType), length };
  if (length <= maxArrayItems) return { ...base, value: arrayItems(a, length, maxArrayItems) };
  return { ...base, head: arrayItems(a, maxArrayItems, maxArrayItems) };
}

function entry(v: GGUFValue, maxArrayItems: number): GGUFInfoMetadataEntry {
  if (v.type === GGUFValueType.ARRAY) return arrayEntry(v, maxArrayItems);
  const value: JsonValue =
    typeof v.value === "string" || typeof v.value === "boolean" ? v.value : jsonNumber(v.value);
  return { type: ggufValueTypeName(v.type), value };
}

/** A JSON-able description of an open GGUF file. */
export function ggufInfo(file: GGUFFile, opts: { maxArrayItems?: number } = {}): GGUFInfo {
  const maxArrayItems = Math.max(0, opts.maxArrayItems ?? 8);
  const metadata: Record<string, GGUFInfoMetadataEntry> = {};
  for (const [k, v] of file.metadata) metadata[k] = entry(v, maxArrayItems);
  const byType: GGUFInfo["totals"]["byType"] = {};
  let parameterCount = 0;
  let tensorBytes = 0;
  const tensors = file.tensors.map((t) => {
    const type = ggmlTypeName(t.type);
    const agg = (byType[type] ??= { count: 0, elements: 0, bytes: 0 });
    agg.count++;
    agg.elements += t.elementCount;
    agg.bytes += t.byteSize;
    parameterCount += t.elementCount;
    tensorBytes += t.byteSize;
    return { name: t.name, shape: t.shape.slice(), type, bytes: t.byteSize, offset: t.offset };
  });
  return {
    path: file.path,
    version: file.version,
    alignment: file.alignment,
    fileSize: file.fileSize,
    dataOffset: file.dataOffset,
    metadata,
    tensors,
    totals: { tensorCount: tensors.length, parameterCount, tensorBytes, byType },
  };
}
