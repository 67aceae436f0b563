// GGUF v3 writer: validates metadata and tensors, lays out aligned offsets up front, then streams tensor data
// one tensor at a time into a temp file that is renamed into place (readers never see half a file).

import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { InputError } from "../../util/errors.js";
import { tempPathFor } from "../../util/fs.js";
import { quantize, QUANTIZE_TYPES, type QuantizeType } from "./quant.js";
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAX_ARRAY_DEPTH, GGUF_MAX_DIMS } from "./reader.js";
import {
  GGMLType,
  GGUFValueType,
  ggmlTypeInfo,
  ggmlTypeName,
  ggufValueTypeName,
  ggufValueTypeSize,
  isGGUFValueType,
  type GGUFArrayValue,
  type GGUFValue,
} from "./types.js";

/** One tensor to write. `shape` is PyTorch order (slowest dimension first); it is stored reversed, as ggml wants. */
export interface GGUFTensorInput {
  name: string;
  shape: readonly number[];
  /** F32, F16, BF16 or Q8_0 when `data` is float32; any known type when `data` is raw bytes already in that type. */
  type: GGMLType;
  /** Float32 values (row-major, PyTorch order), raw bytes in `type`, or a function producing either when written. */
  data: Float32Array | Uint8Array | (() => Float32Array | Uint8Array);
}

export interface GGUFWriteOptions {
  metadata: Map<string, GGUFValue> | readonly (readonly [string, GGUFValue])[];
  tensors?: readonly GGUFTensorInput[];
  /**
   * Data alignment (a power of two). When given it wins over a general.alignment entry in `metadata` (which is then
   * rewritten to match); when not, general.alignment is used, else 32. A non-default alignment is always recorded.
   */
  alignment?: number;
}

export interface GGUFWriteResult {
  path: string;
  fileSize: number;
  dataOffset: number;
  alignment: number;
}

/** llama.cpp's GGML_MAX_NAME is 64 including the terminating NUL. */
const MAX_TENSOR_NAME_BYTES = 63;
const encoder = new TextEncoder();

/** A growable little-endian byte buffer. */
class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): number {
    if (this.length + n > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < this.length + n) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  // reserve() may swap `buf`/`view`, so every writer calls it before touching them.
  u8(v: number): void {
    const at = this.reserve(1);
    this.view.setUint8(at, v);
  }
  u32(v: number): void {
    const at = this.reserve(4);
    this.view.setUint32(at, v, true);
  }
  u64(v: bigint | number): void {
    const at = this.reserve(8);
    this.view.setBigUint64(at, BigInt(v), true);
  }
  bytes(b: Uint8Array): void {
    const at = this.reserve(b.length);
    this.buf.set(b, at);
  }
  string(s: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit: reserve the worst case, then give back the unused part.
    const lenAt = this.reserve(8);
    const at = this.reserve(s.length * 3);
    const { written } = encoder.encodeInto(s, this.buf.subarray(at));
    this.length = at + written;
    this.view.setBigUint64(lenAt, BigInt(written), true);
  }
  scalar(type: GGUFValueType, v: number | bigint | boolean): void {
    const at = this.reserve(ggufValueTypeSize(type) ?? 0);
    const d = this.view;
    switch (type) {
      case GGUFValueType.UINT8:
        return d.setUint8(at, v as number);
      case GGUFValueType.INT8:
        return d.setInt8(at, v as number);
      case GGUFValueType.UINT16:
        return d.setUint16(at, v as number, true);
      case GGUFValueType.INT16:
        return d.setInt16(at, v as number, true);
      case GGUFValueType.UINT32:
        return d.setUint32(at, v as number, true);
      case GGUFValueType.INT32:
        return d.setInt32(at, v as number, true);
      case GGUFValueType.FLOAT32:
        return d.setFloat32(at, v as number, true);
      case GGUFValueType.FLOAT64:
        return d.setFloat64(at, v as number, true);
      case GGUFValueType.UINT64:
        return d.setBigUint64(at, v as bigint, true);
      case GGUFValueType.INT64:
        return d.setBigInt64(at, v as bigint, true);
      case GGUFValueType.BOOL:
        return d.setUint8(at, v ? 1 : 0);
    }
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    const at = this.reserve(n);
    // Bytes past `length` may hold leftovers of a string's worst-case reservation.
    this.buf.fill(0, at, at + n);
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

const INT_RANGES: Partial<Record<GGUFValueType, [number, number]>> = {
  [GGUFValueType.UINT8]: [0, 0xff],
  [GGUFValueType.INT8]: [-0x80, 0x7f],
  [GGUFValueType.UINT16]: [0, 0xffff],
  [GGUFValueType.INT16]: [-0x8000, 0x7fff],
  [GGUFValueType.UINT32]: [0, 0xffffffff],
  [GGUFValueType.INT32]: [-0x80000000, 0x7fffffff],
};

const TYPED_ARRAY: Partial<Record<GGUFValueType, new (n: number) => ArrayBufferView>> = {
  [GGUFValueType.UINT8]: Uint8Array,
  [GGUFValueType.INT8]: Int8Array,
  [GGUFValueType.UINT16]: Uint16Array,
  [GGUFValueType.INT16]: Int16Array,
  [GGUFValueType.UINT32]: Uint32Array,
  [GGUFValueType.INT32]: Int32Array,
  [GGUFValueType.FLOAT32]: Float32Array,
  [GGUFValueType.FLOAT64]: Float64Array,
  [GGUFValueType.UINT64]: BigUint64Array,
  [GGUFValueType.INT64]: BigInt64Array,
};

function bad(key: string, message: string): never {
  throw new InputError(`GGUF metadata "${key}": ${message}`);
}

function checkScalar(key: string, type: GGUFValueType, v: unknown): void {
  const range = INT_RANGES[type];
  if (range) {
    if (typeof v !== "number" || !Number.isInteger(v) || v < range[0] || v > range[1]) {
      bad(key, `${String(v)} is not a ${ggufValueTypeName(type)} (integer in [${range[0]}, ${range[1]}])`);
    }
    return;
  }
  switch (type) {
    case GGUFValueType.FLOAT32:
    case GGUFValueType.FLOAT64:
      if (typeof v !== "number") bad(key, `${String(v)} is not a number`);
      return;
    case GGUFValueType.UINT64:
      if (typeof v !== "bigint" || v < 0n || v >= 1n << 64n) bad(key, `${String(v)} is not a u64 bigint`);
      return;
    case GGUFValueType.INT64:
      if (typeof v !== "bigint" || v < -(1n << 63n) || v >= 1n << 63n)
        bad(key, `${String(v)} is not an i64 bigint`);
      return;
    case GGUFValueType.BOOL:
      if (typeof v !== "boolean") bad(key, `${String(v)} is not a boolean`);
      return;
    case GGUFValueType.STRING:
      if (typeof v !== "string") bad(key, `${String(v)} is not a string`);
      return;
  }
}

function writeArray(w: ByteWriter, key: string, a: GGUFArrayValue, depth: number): void {
  if (!isGGUFValueType(a.itemType)) bad(key, `unknown array item type ${String(a.itemType)}`);
  if (depth >= GGUF_MAX_ARRAY_DEPTH) bad(key, `arrays nest more than ${GGUF_MAX_ARRAY_DEPTH} deep`);
  w.u32(a.itemType);
  const typed = TYPED_ARRAY[a.itemType];
  if (typed) {
    if (!(a.value instanceof typed))
      bad(key, `array of ${ggufValueTypeName(a.itemType)} must hold a ${typed.name}`);
    const v = a.value as ArrayBufferView & { length: number };
    w.u64(v.length);
    // Typed arrays are host-order; every Node target is little-endian, like GGUF.
    w.bytes(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    return;
  }
  if (!Array.isArray(a.value)) bad(key, `array of ${ggufValueTypeName(a.itemType)} must hold a plain array`);
  w.u64(a.value.length);
  if (a.itemType === GGUFValueType.STRING) {
    for (const s of a.value as unknown[]) {
      if (typeof s !== "string") bad(key, `array of string holds ${typeof s}`);
      w.string(s);
    }
  } else if (a.itemType === GGUFValueType.BOOL) {
    for (const b of a.value as unknown[]) {
      if (typeof b !== "boolean") bad(key, `array of bool holds ${typeof b}`);
      w.u8(b ? 1 : 0);
    }
  } else {
    for (const inner of a.value as unknown[]) {
      const x = inner as GGUFArrayValue;
      if (typeof x !== "object" || x === null || x.type !== GGUFValueType.ARRAY) {
        bad(key, "an array of arrays must hold array values");
      }
      writeArray(w, `${key}[]`, x, depth + 1);
    }
  }
}

function writeValue(w: ByteWriter, key: string, v: GGUFValue): void {
  if (typeof v !== "object" || v === null || !isGGUFValueType(v.type))
    bad(key, "not a GGUF value (use the gv.* builders)");
  w.u32(v.type);
  if (v.type === GGUFValueType.ARRAY) writeArray(w, key, v, 0);
  else if (v.type === GGUFValueType.STRING) {
    checkScalar(key, v.type, v.value);
    w.string(v.value);
  } else {
    checkScalar(key, v.type, v.value);
    w.scalar(v.type, v.value);
  }
}

interface PlannedTensor {
  input: GGUFTensorInput;
  dims: number[];
  elementCount: number;
  byteSize: number;
  offset: number;
}

function planTensors(tensors: readonly GGUFTensorInput[], alignment: number): PlannedTensor[] {
  const names = new Set<string>();
  let offset = 0;
  return tensors.map((t) => {
    const where = `tensor "${t.name}"`;
    if (typeof t.name !== "string" || t.name.length === 0)
      throw new InputError("a tensor needs a non-empty name");
    if (encoder.encode(t.name).length > MAX_TENSOR_NAME_BYTES) {
      throw new InputError(
        `${where}: the name is longer than llama.cpp's ${MAX_TENSOR_NAME_BYTES}-byte limit`,
      );
    }
    if (names.has(t.name)) throw new InputError(`${where} appears twice`);
    names.add(t.name);
    const info = ggmlTypeInfo(t.type);
    if (!info) throw new InputError(`${where}: unknown ggml type ${String(t.type)}`);
    if (t.shape.length < 1 || t.shape.length > GGUF_MAX_DIMS) {
      throw new InputError(
        `${where}: shape [${t.shape.join(", ")}] must have 1 to ${GGUF_MAX_DIMS} dimensions`,
      );
    }
    let elementCount = 1;
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 1)
        throw new InputError(`${where}: dimension ${d} is not a positive integer`);
      elementCount *= d;
    }
    if (!Number.isSafeInteger(elementCount)) throw new InputError(`${where}: too many elements`);
    const dims = [...t.shape].reverse();
    if (dims[0] % info.blockSize !== 0) {
      throw new InputError(
        `${where}: ${info.name} stores blocks of ${info.blockSize} values, but rows have ${dims[0]} (last dimension of the shape)`,
      );
    }
    const byteSize = (elementCount / info.blockSize) * info.typeSize;
    const p = { input: t, dims, elementCount, byteSize, offset };
    offset += Math.ceil(byteSize / alignment) * alignment;
    return p;
  });
}

function resolveAlignment(entries: [string, GGUFValue][], requested: number | undefined): number {
  const idx = entries.findIndex(([k]) => k === "general.alignment");
  let alignment = requested;
  if (idx >= 0) {
    const v = entries[idx][1];
    if (v.type !== GGUFValueType.UINT32) bad("general.alignment", "must be a u32");
    alignment ??= v.value;
  }
  alignment ??= GGUF_DEFAULT_ALIGNMENT;
  if (
    !Number.isInteger(alignment) ||
    alignment < 1 ||
    alignment > 2 ** 31 ||
    (alignment & (alignment - 1)) !== 0
  ) {
    throw new InputError(`GGUF alignment ${alignment} is not a power of two`);
  }
  const entry: [string, GGUFValue] = ["general.alignment", { type: GGUFValueType.UINT32, value: alignment }];
  if (idx >= 0) entries[idx] = entry;
  else if (alignment !== GGUF_DEFAULT_ALIGNMENT) entries.push(entry);
  return alignment;
}

/** Everything before the data section (header, metadata, tensor infos, padding) and the tensor layout. */
function encodeHeader(opts: GGUFWriteOptions): {
  header: Uint8Array;
  plan: PlannedTensor[];
  alignment: number;
} {
  const entries: [string, GGUFValue][] = [...opts.metadata].map(([k, v]) => [k, v]);
  const alignment = resolveAlignment(entries, opts.alignment);
  const keys = new Set<string>();
  for (const [k] of entries) {
    if (typeof k !== "string" || k.length === 0)
      throw new InputError("GGUF metadata keys must be non-empty strings");
    if (keys.has(k)) throw new InputError(`GGUF metadata key "${k}" appears twice`);
    keys.add(k);
  }
  const plan = planTensors(opts.tensors ?? [], alignment);
  const w = new ByteWriter();
  w.bytes(encoder.encode("GGUF"));
  w.u32(3);
  w.u64(plan.length);
  w.u64(entries.length);
  for (const [k, v] of entries) {
    w.string(k);
    writeValue(w, k, v);
  }
  for (const p of plan) {
    w.string(p.input.name);
    w.u32(p.dims.length);
    for (const d of p.dims) w.u64(d);
    w.u32(p.input.type);
    w.u64(p.offset);
  }
  w.pad(alignment);
  return { header: w.result(), plan, alignment };
}

/** The stored bytes of one planned tensor, converting float32 input when needed. */
function tensorBytes(p: PlannedTensor): Uint8Array {
  const t = p.input;
  const data = typeof t.data === "function" ? t.data() : t.data;
  const where = `tensor "${t.name}"`;
  if (data instanceof Float32Array) {
    if (!(QUANTIZE_TYPES as readonly GGMLType[]).includes(t.type)) {
      throw new InputError(`${where}: cannot encode float32 data as ${ggmlTypeName(t.type)}`, {
        hint: "use F32, F16, BF16 or Q8_0, or pass raw bytes already in that type",
      });
    }
    if (data.length !== p.elementCount) {
      throw new InputError(
        `${where}: shape [${t.shape.join(", ")}] needs ${p.elementCount} values, got ${data.length}`,
      );
    }
    return quantize(t.type as QuantizeType, data);
  }
  if (data instanceof Uint8Array) {
    if (data.byteLength !== p.byteSize) {
      throw new InputError(
        `${where}: ${ggmlTypeName(t.type)} data for shape [${t.shape.join(", ")}] is ${p.byteSize} bytes, got ${data.byteLength}`,
      );
    }
    return data;
  }
  throw new InputError(`${where}: data must be a Float32Array, a Uint8Array or a function returning one`);
}

/** Encode a whole GGUF file in memory (for small files: tests, fuzzing, fixtures). */
export function encodeGGUF(opts: GGUFWriteOptions): Uint8Array {
  const { header, plan, alignment } = encodeHeader(opts);
  const dataSize = plan.reduce((s, p) => s + Math.ceil(p.byteSize / alignment) * alignment, 0);
  const out = new Uint8Array(header.length + dataSize);
  out.set(header);
  for (const p of plan) out.set(tensorBytes(p), header.length + p.offset);
  return out;
}

function writeAll(fd: number, b: Uint8Array): void {
  let done = 0;
  while (done < b.length) done += writeSync(fd, b, done, b.length - done);
}

/**
 * Write a GGUF v3 file atomically: the header first, then each tensor as it is produced (so only one tensor's
 * data is in memory at a time), into a temp file renamed over `path` at the end.
 */
export function writeGGUF(path: string, opts: GGUFWriteOptions): GGUFWriteResult {
  const { header, plan, alignment } = encodeHeader(opts);
  mkdirSync(dirname(resolve(path)), { recursive: true });
  const tmp = tempPathFor(path);
  const fd = openSync(tmp, "w");
  let closed = false;
  try {
    writeAll(fd, header);
    let size = header.length;
    const zeros = new Uint8Array(Math.min(alignment, 1 << 16));
    for (const p of plan) {
      const bytes = tensorBytes(p);
      writeAll(fd, bytes);
      const padLen = (alignment - (bytes.length % alignment)) % alignment;
      for (let left = padLen; left > 0; left -= zeros.length)
        writeAll(fd, zeros.subarray(0, Math.min(left, zeros.length)));
      size += bytes.length + padLen;
    }
    fsyncSync(fd);
    closeSync(fd);
    closed = true;
    renameSync(tmp, path);
    return { path, fileSize: size, dataOffset: header.length, alignment };
  } catch (err) {
    if (!closed) closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
}
