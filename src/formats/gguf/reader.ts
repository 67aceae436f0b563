// Synchronous GGUF reader: parses header, metadata and tensor infos with positioned chunked reads, and reads
// tensor data on demand. Every count and length is checked against the bytes left before anything is allocated.

import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { FileFormatError, InputError, UnavailableError } from "../../util/errors.js";
import { canDequantize, dequantize } from "./quant.js";
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

export const GGUF_MAGIC = "GGUF";
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml's GGML_MAX_DIMS: tensors have at most 4 dimensions. */
export const GGUF_MAX_DIMS = 4;
/** Nesting limit for arrays of arrays; real files nest at most once, and a limit keeps recursion bounded. */
export const GGUF_MAX_ARRAY_DEPTH = 8;

/** One tensor's header entry plus its derived sizes. */
export interface GGUFTensorInfo {
  name: string;
  /** ggml order: fastest-varying dimension first. */
  dims: number[];
  /** PyTorch order: `dims` reversed. */
  shape: number[];
  type: GGMLType;
  /** Byte offset relative to the start of the data section. */
  offset: number;
  byteSize: number;
  elementCount: number;
}

/** Where bytes come from; reads are exact (short reads are errors). */
interface ByteSource {
  readonly size: number;
  read(pos: number, len: number): Uint8Array;
  close(): void;
}

class FdSource implements ByteSource {
  private fd: number | undefined;
  constructor(
    private readonly path: string,
    fd: number,
    readonly size: number,
  ) {
    this.fd = fd;
  }
  read(pos: number, len: number): Uint8Array {
    if (this.fd === undefined) throw new InputError(`${this.path}: the GGUF file was closed`);
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const n = readSync(this.fd, out, done, len - done, pos + done);
      if (n === 0) {
        throw new FileFormatError(
          this.path,
          pos + done,
          `expected ${len - done} more bytes but the file ends here (it shrank after it was opened?)`,
        );
      }
      done += n;
    }
    return out;
  }
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

class BufferSource implements ByteSource {
  readonly size: number;
  constructor(private readonly bytes: Uint8Array) {
    this.size = bytes.byteLength;
  }
  read(pos: number, len: number): Uint8Array {
    return this.bytes.slice(pos, pos + len);
  }
  close(): void {}
}

const CHUNK = 1 << 20;
const TWO_32 = 2 ** 32;
// ignoreBOM keeps a leading U+FEFF in a string instead of silently dropping it.
const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
const strictDecoder = new TextDecoder("utf-8", { ignoreBOM: true, fatal: true });
/** Above this many bytes a string array is decoded string by string (one JS string cannot be that long). */
const BULK_DECODE_LIMIT = 1 << 28;
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Sequential reader over a source through a reusable chunk; bounds-checks every read. */
class Cursor {
  pos = 0;
  private chunk: Uint8Array = new Uint8Array(0);
  private view = new DataView(this.chunk.buffer);
  private chunkStart = 0;
  constructor(
    private readonly src: ByteSource,
    readonly file: string,
  ) {}

  get size(): number {
    return this.src.size;
  }
  remaining(): number {
    return this.src.size - this.pos;
  }
  fail(offset: number, message: string, hint?: string): never {
    throw new FileFormatError(this.file, offset, message, hint === undefined ? undefined : { hint });
  }

  /** Make bytes [pos, pos+n) addressable in the chunk; returns their index in it. */
  private take(n: number, what: string): number {
    if (n > this.remaining()) {
      this.fail(
        this.pos,
        `expected ${what} (${n} bytes) but only ${this.remaining()} bytes remain (file size ${this.size})`,
        "the file is truncated or corrupt; download or convert it again",
      );
    }
    let at = this.pos - this.chunkStart;
    if (at < 0 || at + n > this.chunk.byteLength) {
      // Never read past what the file holds, so tiny files cost tiny buffers.
      const len = Math.max(n, Math.min(CHUNK, this.remaining()));
      this.chunk = this.src.read(this.pos, len);
      this.view = new DataView(this.chunk.buffer, this.chunk.byteOffset, this.chunk.byteLength);
      this.chunkStart = this.pos;
      at = 0;
    }
    this.pos += n;
    return at;
  }

  u8(what: string): number {
    return this.chunk[this.take(1, what)];
  }
  u32(what: string): number {
    return this.view.getUint32(this.take(4, what), true);
  }
  /** A u64 as a bigint (exact, for values and messages). */
  u64(what: string): bigint {
    return this.view.getBigUint64(this.take(8, what), true);
  }
  /** A u64 length as a number; lengths of 2^53 or more come back as Infinity (always too long). */
  u64Len(what: string): number {
    const at = this.take(8, what);
    const lo = this.view.getUint32(at, true);
    const hi = this.view.getUint32(at + 4, true);
    return hi >= 1 << 21 ? Infinity : hi * TWO_32 + lo;
  }
  /** Copy of the next n bytes (n already checked by the caller or checked here). */
  bytes(n: number, what: string): Uint8Array {
    const at = this.take(n, what);
    return this.chunk.slice(at, at + n);
  }
  scalar(type: GGUFValueType, what: string): number | bigint | boolean {
    const size = ggufValueTypeSize(type) ?? 0;
    const at = this.take(size, what);
    const v = this.view;
    switch (type) {
      case GGUFValueType.UINT8:
        return v.getUint8(at);
      case GGUFValueType.INT8:
        return v.getInt8(at);
      case GGUFValueType.UINT16:
        return v.getUint16(at, true);
      case GGUFValueType.INT16:
        return v.getInt16(at, true);
      case GGUFValueType.UINT32:
        return v.getUint32(at, true);
      case GGUFValueType.INT32:
        return v.getInt32(at, true);
      case GGUFValueType.FLOAT32:
        return v.getFloat32(at, true);
      case GGUFValueType.FLOAT64:
        return v.getFloat64(at, true);
      case GGUFValueType.UINT64:
        return v.getBigUint64(at, true);
      case GGUFValueType.INT64:
        return v.getBigInt64(at, true);
      case GGUFValueType.BOOL: {
        const b = v.getUint8(at);
        if (b > 1) this.fail(at + this.chunkStart, `expected a bool (0 or 1) for ${what}, found ${b}`);
        return b === 1;
      }
      default:
        return this.fail(this.pos, `internal: ${ggufValueTypeName(type)} is not a scalar type`);
    }
  }

  string(what: string): string {
    const start = this.pos;
    const len = this.u64Len(`the byte length of ${what}`);
    if (len > this.remaining()) {
      this.fail(
        start,
        `expected ${what}: its length field says ${len === Infinity ? "2^53 or more" : len} bytes but only ` +
          `${this.remaining()} bytes remain after it`,
        "the file is truncated or corrupt",
      );
    }
    const at = this.take(len, what);
    return decoder.decode(this.chunk.subarray(at, at + len));
  }

  /**
   * n strings. Vocabularies hold 100k+ short strings, and one decoder call per string dominates; so the bytes are
   * gathered, decoded once, and cut at UTF-16 offsets counted from the UTF-8 lead bytes. That count is only right
   * for valid UTF-8, so anything else falls back to decoding each string on its own (with U+FFFD replacement).
   */
  stringArray(n: number, what: string): string[] {
    // Start from a guess proportional to n (many tiny nested string arrays must not each cost a big buffer).
    let buf = new Uint8Array(Math.min(this.remaining(), 64 + n * 16));
    const byteEnd = new Float64Array(n);
    const unitEnd = new Float64Array(n);
    let bpos = 0;
    let units = 0;
    for (let i = 0; i < n; i++) {
      const start = this.pos;
      const itemWhat = `item ${i} of ${what}`;
      const len = this.u64Len(`the byte length of ${itemWhat}`);
      if (len > this.remaining()) {
        this.fail(
          start,
          `expected ${itemWhat}: its length field says ${len === Infinity ? "2^53 or more" : len} bytes but only ` +
            `${this.remaining()} bytes remain after it`,
          "the file is truncated or corrupt",
        );
      }
      const at = this.take(len, itemWhat);
      if (bpos + len > buf.length) {
        const next = new Uint8Array(
          Math.max(bpos + len, Math.min(buf.length * 2, bpos + len + this.remaining())),
        );
        next.set(buf.subarray(0, bpos));
        buf = next;
      }
      const chunk = this.chunk;
      for (let k = 0; k < len; k++) {
        const b = chunk[at + k];
        buf[bpos + k] = b;
        if ((b & 0xc0) !== 0x80) units += b >= 0xf0 ? 2 : 1;
      }
      bpos += len;
      byteEnd[i] = bpos;
      unitEnd[i] = units;
    }
    const out = new Array<string>(n);
    let all: string | undefined;
    if (bpos <= BULK_DECODE_LIMIT) {
      try {
        all = strictDecoder.decode(buf.subarray(0, bpos));
      } catch {
        all = undefined;
      }
    }
    if (all !== undefined && all.length === units) {
      for (let i = 0, u = 0; i < n; i++) {
        out[i] = all.slice(u, unitEnd[i]);
        u = unitEnd[i];
      }
    } else {
      for (let i = 0, b = 0; i < n; i++) {
        out[i] = decoder.decode(buf.subarray(b, byteEnd[i]));
        b = byteEnd[i];
      }
    }
    return out;
  }
}

/** A name as it appears in messages: JSON-quoted (control bytes escaped) and cut short. */
function q(name: string): string {
  return JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function typedFromBytes(itemType: GGUFValueType, bytes: Uint8Array): GGUFArrayValue {
  const buf = bytes.buffer as ArrayBuffer;
  const a = { type: GGUFValueType.ARRAY } as const;
  if (!HOST_LE && (ggufValueTypeSize(itemType) ?? 1) > 1) {
    // Typed arrays use host byte order; swap on the (theoretical) big-endian host.
    const w = ggufValueTypeSize(itemType) ?? 1;
    for (let i = 0; i < bytes.length; i += w) bytes.subarray(i, i + w).reverse();
  }
  switch (itemType) {
    case GGUFValueType.UINT8:
      return { ...a, itemType, value: new Uint8Array(buf) };
    case GGUFValueType.INT8:
      return { ...a, itemType, value: new Int8Array(buf) };
    case GGUFValueType.UINT16:
      return { ...a, itemType, value: new Uint16Array(buf) };
    case GGUFValueType.INT16:
      return { ...a, itemType, value: new Int16Array(buf) };
    case GGUFValueType.UINT32:
      return { ...a, itemType, value: new Uint32Array(buf) };
    case GGUFValueType.INT32:
      return { ...a, itemType, value: new Int32Array(buf) };
    case GGUFValueType.FLOAT32:
      return { ...a, itemType, value: new Float32Array(buf) };
    case GGUFValueType.FLOAT64:
      return { ...a, itemType, value: new Float64Array(buf) };
    case GGUFValueType.UINT64:
      return { ...a, itemType, value: new BigUint64Array(buf) };
    case GGUFValueType.INT64:
      return { ...a, itemType, value: new BigInt64Array(buf) };
    default:
      throw new Error(`internal: ${ggufValueTypeName(itemType)} is not a numeric array type`);
  }
}

function readValue(c: Cursor, type: GGUFValueType, key: string, depth: number): GGUFValue {
  if (type === GGUFValueType.STRING) return { type, value: c.string(`the string value of ${q(key)}`) };
  if (type === GGUFValueType.ARRAY) return readArray(c, key, depth);
  return { type, value: c.scalar(type, `the ${ggufValueTypeName(type)} value of ${q(key)}`) } as GGUFValue;
}

function readArray(c: Cursor, key: string, depth: number): GGUFArrayValue {
  const what = `array ${q(key)}`;
  const typeAt = c.pos;
  const itemType = c.u32(`the item type of ${what}`);
  if (!isGGUFValueType(itemType)) {
    c.fail(typeAt, `expected an item type id 0..12 for ${what}, found ${itemType}`, "the file is corrupt");
  }
  const countAt = c.pos;
  const count = c.u64(`the item count of ${what}`);
  // Smallest possible encoding per item: a string is at least its 8-byte length, an array its 12-byte header.
  const minItem =
    itemType === GGUFValueType.STRING
      ? 8
      : itemType === GGUFValueType.ARRAY
        ? 12
        : (ggufValueTypeSize(itemType) ?? 1);
  if (count * BigInt(minItem) > BigInt(c.remaining())) {
    c.fail(
      countAt,
      `${what} claims ${count} items of ${ggufValueTypeName(itemType)} (at least ${count * BigInt(minItem)} bytes) ` +
        `but only ${c.remaining()} bytes remain after the count`,
      "the file is truncated or corrupt",
    );
  }
  const n = Number(count);
  switch (itemType) {
    case GGUFValueType.STRING:
      return { type: GGUFValueType.ARRAY, itemType, value: c.stringArray(n, what) };
    case GGUFValueType.BOOL: {
      const at = c.pos;
      const raw = c.bytes(n, `${n} bools of ${what}`);
      const out = new Array<boolean>(n);
      for (let i = 0; i < n; i++) {
        if (raw[i] > 1) c.fail(at + i, `expected a bool (0 or 1) as item ${i} of ${what}, found ${raw[i]}`);
        out[i] = raw[i] === 1;
      }
      return { type: GGUFValueType.ARRAY, itemType, value: out };
    }
    case GGUFValueType.ARRAY: {
      if (depth + 1 >= GGUF_MAX_ARRAY_DEPTH) {
        c.fail(typeAt, `${what} nests arrays more than ${GGUF_MAX_ARRAY_DEPTH} deep`, "the file is corrupt");
      }
      const out = new Array<GGUFArrayValue>(n);
      for (let i = 0; i < n; i++) out[i] = readArray(c, `${key}[${i}]`, depth + 1);
      return { type: GGUFValueType.ARRAY, itemType, value: out };
    }
    default: {
      const size = ggufValueTypeSize(itemType) ?? 1;
      return typedFromBytes(
        itemType,
        c.bytes(n * size, `${n} ${ggufValueTypeName(itemType)} items of ${what}`),
      );
    }
  }
}

const NUMERIC_TYPES = new Set<GGUFValueType>([
  GGUFValueType.UINT8,
  GGUFValueType.INT8,
  GGUFValueType.UINT16,
  GGUFValueType.INT16,
  GGUFValueType.UINT32,
  GGUFValueType.INT32,
  GGUFValueType.FLOAT32,
  GGUFValueType.FLOAT64,
  GGUFValueType.UINT64,
  GGUFValueType.INT64,
]);

/** Item types that widen to int32 / float32 without loss. */
const INT32_OK = new Set<GGUFValueType>([
  GGUFValueType.INT32,
  GGUFValueType.INT16,
  GGUFValueType.UINT16,
  GGUFValueType.INT8,
  GGUFValueType.UINT8,
]);
const FLOAT32_OK = new Set<GGUFValueType>([
  GGUFValueType.FLOAT32,
  GGUFValueType.INT16,
  GGUFValueType.UINT16,
  GGUFValueType.INT8,
  GGUFValueType.UINT8,
]);

function describeType(v: GGUFValue): string {
  return v.type === GGUFValueType.ARRAY
    ? `array of ${ggufValueTypeName(v.itemType)}`
    : ggufValueTypeName(v.type);
}

/** An open GGUF file: parsed header, metadata and tensor table; tensor data is read on demand. */
export class GGUFFile {
  readonly metadata: Map<string, GGUFValue>;
  readonly tensors: GGUFTensorInfo[];
  private readonly byName: Map<string, GGUFTensorInfo>;
  private readonly valueOffsets: Map<string, number>;

  /** @internal use {@link openGGUF} or {@link parseGGUF}. */
  constructor(
    readonly path: string,
    private readonly src: ByteSource,
    readonly version: number,
    readonly alignment: number,
    readonly dataOffset: number,
    readonly fileSize: number,
    metadata: Map<string, GGUFValue>,
    valueOffsets: Map<string, number>,
    tensors: GGUFTensorInfo[],
  ) {
    this.metadata = metadata;
    this.valueOffsets = valueOffsets;
    this.tensors = tensors;
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  private wrongType(key: string, v: GGUFValue, wanted: string): never {
    throw new FileFormatError(
      this.path,
      this.valueOffsets.get(key),
      `metadata key ${q(key)} is ${describeType(v)}, expected ${wanted}`,
      { hint: "the file was written by a converter that uses a different type for this key" },
    );
  }

  getString(key: string): string | undefined {
    const v = this.metadata.get(key);
    if (v === undefined) return undefined;
    if (v.type !== GGUFValueType.STRING) this.wrongType(key, v, "string");
    return v.value;
  }

  /** A numeric scalar; 64-bit integers must be within ±2^53 (else an error, never a rounded value). */
  getNumber(key: string): number | undefined {
    const v = this.metadata.get(key);
    if (v === undefined) return undefined;
    if (!NUMERIC_TYPES.has(v.type)) this.wrongType(key, v, "a number");
    if (typeof v.value === "bigint") {
      if (v.value > BigInt(Number.MAX_SAFE_INTEGER) || v.value < BigInt(Number.MIN_SAFE_INTEGER)) {
        throw new FileFormatError(
          this.path,
          this.valueOffsets.get(key),
          `metadata key ${q(key)} = ${v.value} does not fit a JavaScript number exactly`,
        );
      }
      return Number(v.value);
    }
    return v.value as number;
  }

  getBool(key: string): boolean | undefined {
    const v = this.metadata.get(key);
    if (v === undefined) return undefined;
    if (v.type !== GGUFValueType.BOOL) this.wrongType(key, v, "bool");
    return v.value;
  }

  /** A string array (a fresh copy). */
  getStringArray(key: string): string[] | undefined {
    const v = this.metadata.get(key);
    if (v === undefined) return undefined;
    if (v.type !== GGUFValueType.ARRAY || v.itemType !== GGUFValueType.STRING)
      this.wrongType(key, v, "array of string");
    return v.value.slice();
  }

  /** Any numeric array as plain numbers; 64-bit items must be within ±2^53. */
  getNumberArray(key: string): number[] | undefined {
    const v = this.metadata.get(key);
    if (v === undefined) return undefined;
    if (v.type !== GGUFValueType.ARRAY || !NUMERIC_TYPES.has(v.itemType))
      this.wrongType(key, v, "array of numbers");
    if (v.value instanceof BigInt64Array || v.value instanceof BigUint64Array) {
      const out = new Array<number>(v.value.length);
      for (let i = 0; i < out.length; i++) {
        const b = v.value[i];
        if (b > BigInt(Number.MAX_SAFE_INTEGER) || b < BigInt(Number.MIN_SAFE_INTEGER)) {
          throw new FileFormatError(
            this.path,
            this.valueOffsets.get(key),
            `item ${i} of metadata array ${q(key)} = ${b} does not fit a JavaScript number exactly`,
          );
        }
        out[i] = Number(b);
      }
      return out;
    }
    return Array.from(v.value as ArrayLike<number>);
  }

  /** A float32 array (f32 items, or 8/16-bit integers, which convert exactly); a fresh copy. */
  getFloat32Array(key: string): Float32Array | undefined {
    const v = this.metadata.get(key);
    if (v === undefined) return undefined;
    if (v.type !== GGUFValueType.ARRAY || !FLOAT32_OK.has(v.itemType)) this.wrongType(key, v, "array of f32");
    return Float32Array.from(v.value as ArrayLike<number>);
  }

  /** An int32 array (i32 items, or 8/16-bit integers, which convert exactly); a fresh copy. */
  getInt32Array(key: string): Int32Array | undefined {
    const v = this.metadata.get(key);
    if (v === undefined) return undefined;
    if (v.type !== GGUFValueType.ARRAY || !INT32_OK.has(v.itemType)) this.wrongType(key, v, "array of i32");
    return Int32Array.from(v.value as ArrayLike<number>);
  }

  tensor(name: string): GGUFTensorInfo | undefined {
    return this.byName.get(name);
  }

  private resolve(t: string | GGUFTensorInfo): GGUFTensorInfo {
    const name = typeof t === "string" ? t : t.name;
    const info = this.byName.get(name);
    if (!info) {
      const names = this.tensors.slice(0, 5).map((x) => x.name);
      throw new InputError(`${this.path}: no tensor named ${q(name)}`, {
        hint:
          this.tensors.length === 0
            ? "this file holds no tensors (vocab-only?)"
            : `it has ${this.tensors.length} tensors, e.g. ${names.join(", ")}`,
      });
    }
    return info;
  }

  /** The tensor's bytes exactly as stored (its own buffer, offset 0). */
  readTensorRaw(t: string | GGUFTensorInfo): Uint8Array {
    const info = this.resolve(t);
    if (info.byteSize > 2 ** 31) {
      throw new UnavailableError(
        `tensor ${q(info.name)} has ${info.byteSize} bytes, too many to read in one piece`,
      );
    }
    return this.src.read(this.dataOffset + info.offset, info.byteSize);
  }

  /** The tensor as float32 values in ggml order (dequantized when needed). */
  readTensorF32(t: string | GGUFTensorInfo): Float32Array {
    const info = this.resolve(t);
    if (!canDequantize(info.type)) {
      throw new UnavailableError(
        `tensor ${q(info.name)} has type ${ggmlTypeName(info.type)}, which buckle cannot dequantize`,
        { hint: "supported: F32, F16, BF16, F64, I8/I16/I32/I64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K" },
      );
    }
    return dequantize(info.type, this.readTensorRaw(info), info.elementCount);
  }

  close(): void {
    this.src.close();
  }
}

/** Open a GGUF file (v2 or v3, little-endian) and parse everything but the tensor data. */
export function openGGUF(path: string): GGUFFile {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(`cannot open ${path}${code ? ` (${code})` : ""}`, { cause: err });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      throw new FileFormatError(path, undefined, "not a regular file", {
        hint: "pass the path of a .gguf file",
      });
    }
    return parse(new FdSource(path, fd, st.size), path);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** Parse GGUF bytes already in memory (`name` is used in error messages). */
export function parseGGUF(bytes: Uint8Array, name = "<buffer>"): GGUFFile {
  return parse(new BufferSource(bytes), name);
}

function parse(src: ByteSource, file: string): GGUFFile {
  const c: Cursor = new Cursor(src, file);
  if (src.size < 4) {
    c.fail(0, `expected the magic "GGUF" but the file has only ${src.size} bytes`, "this is not a GGUF file");
  }
  const magic = c.bytes(4, "the magic");
  const magicStr = String.fromCharCode(...magic);
  if (magicStr !== GGUF_MAGIC) {
    const hex = Array.from(magic, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const known: Record<string, string> = {
      lmgg: "an old GGML file",
      tjgg: "an old GGJT file (convert it to GGUF with llama.cpp)",
      fmgg: "an old GGMF file",
    };
    c.fail(
      0,
      `expected the magic "GGUF" (47 47 55 46), found ${hex}`,
      `this is ${known[magicStr] ?? "not a GGUF file"}`,
    );
  }

  const version = c.u32("the format version");
  const swapped =
    ((version & 0xff) << 24) | ((version & 0xff00) << 8) | ((version >>> 8) & 0xff00) | (version >>> 24);
  if ((version & 0xffff) === 0 && swapped >= 1 && swapped <= 3) {
    c.fail(
      4,
      `this GGUF v${swapped} file is big-endian; only little-endian GGUF is supported`,
      "convert it again without --bigendian",
    );
  }
  if (version === 1) {
    c.fail(
      4,
      "GGUF version 1 is not supported (expected version 2 or 3)",
      "convert the model again with current llama.cpp",
    );
  }
  if (version !== 2 && version !== 3) {
    c.fail(
      4,
      `expected GGUF version 2 or 3, found ${version}`,
      "the file is corrupt or from a newer llama.cpp",
    );
  }

  const tensorCountAt = c.pos;
  const tensorCount = c.u64("the tensor count");
  const kvCountAt = c.pos;
  const kvCount = c.u64("the metadata key/value count");
  // Smallest encodings: a tensor info is name length + n_dims + type + offset (24 bytes); a kv is a key of
  // at least one byte (9), a type (4) and a 1-byte value.
  if (kvCount * 14n > BigInt(c.remaining())) {
    c.fail(
      kvCountAt,
      `the header claims ${kvCount} metadata entries (at least ${kvCount * 14n} bytes) but only ${c.remaining()} bytes follow`,
      "the file is truncated or corrupt",
    );
  }
  if (tensorCount * 24n + kvCount * 14n > BigInt(c.remaining())) {
    c.fail(
      tensorCountAt,
      `the header claims ${tensorCount} tensors (at least ${tensorCount * 24n} bytes of tensor info) but only ` +
        `${c.remaining()} bytes follow`,
      "the file is truncated or corrupt",
    );
  }

  const metadata = new Map<string, GGUFValue>();
  const valueOffsets = new Map<string, number>();
  const nKv = Number(kvCount);
  for (let i = 0; i < nKv; i++) {
    const keyAt = c.pos;
    const key = c.string(`the key of metadata entry ${i}`);
    if (key.length === 0)
      c.fail(keyAt, `expected a non-empty key for metadata entry ${i}`, "the file is corrupt");
    if (metadata.has(key))
      c.fail(keyAt, `duplicate metadata key ${q(key)} (entry ${i})`, "the file is corrupt");
    const typeAt = c.pos;
    const type = c.u32(`the value type of ${q(key)}`);
    if (!isGGUFValueType(type)) {
      c.fail(typeAt, `expected a value type id 0..12 for ${q(key)}, found ${type}`, "the file is corrupt");
    }
    valueOffsets.set(key, c.pos);
    metadata.set(key, readValue(c, type, key, 0));
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = metadata.get("general.alignment");
  if (al !== undefined) {
    const at = valueOffsets.get("general.alignment");
    if (al.type !== GGUFValueType.UINT32) {
      c.fail(
        at ?? 0,
        `expected general.alignment to be u32, found ${describeType(al)}`,
        "the file is corrupt",
      );
    }
    if (al.value === 0 || (al.value & (al.value - 1)) !== 0) {
      c.fail(
        at ?? 0,
        `expected general.alignment to be a power of two, found ${al.value}`,
        "the file is corrupt",
      );
    }
    alignment = al.value;
  }

  const tensors: GGUFTensorInfo[] = [];
  const offsetFieldAt: number[] = [];
  const names = new Set<string>();
  const nT = Number(tensorCount);
  for (let i = 0; i < nT; i++) {
    const nameAt = c.pos;
    const name = c.string(`the name of tensor ${i}`);
    if (names.has(name))
      c.fail(nameAt, `duplicate tensor name ${q(name)} (tensor ${i})`, "the file is corrupt");
    names.add(name);
    const ndAt = c.pos;
    const nDims = c.u32(`the dimension count of tensor ${q(name)}`);
    if (nDims > GGUF_MAX_DIMS) {
      c.fail(ndAt, `expected at most ${GGUF_MAX_DIMS} dimensions for tensor ${q(name)}, found ${nDims}`);
    }
    const dims: number[] = [];
    let elements = 1n;
    for (let d = 0; d < nDims; d++) {
      const dimAt = c.pos;
      const dim = c.u64(`dimension ${d} of tensor ${q(name)}`);
      if (dim >= 1n << 63n) {
        c.fail(dimAt, `dimension ${d} of tensor ${q(name)} is negative (${BigInt.asIntN(64, dim)})`);
      }
      if (dim > BigInt(Number.MAX_SAFE_INTEGER)) {
        c.fail(dimAt, `dimension ${d} of tensor ${q(name)} is ${dim}, more than any file can hold`);
      }
      elements *= dim;
      // Any tensor bigger than the file is a lie; checking here keeps the numbers small and exact.
      if (elements > BigInt(src.size) * 8n) {
        c.fail(
          dimAt,
          `tensor ${q(name)} claims ${elements} or more elements, far more than the file can hold`,
        );
      }
      dims.push(Number(dim));
    }
    const typeAt = c.pos;
    const type = c.u32(`the type of tensor ${q(name)}`);
    const info = ggmlTypeInfo(type);
    if (!info)
      c.fail(typeAt, `unknown ggml type id ${type} for tensor ${q(name)}`, "the file is corrupt or too new");
    const elementCount = Number(elements);
    const row = dims.length > 0 ? dims[0] : 1;
    if (row % info.blockSize !== 0) {
      c.fail(
        typeAt,
        `tensor ${q(name)} of type ${info.name} has rows of ${row} elements, not a multiple of its block size ${info.blockSize}`,
      );
    }
    const byteSize = (elementCount / info.blockSize) * info.typeSize;
    offsetFieldAt.push(c.pos);
    const offset = c.u64(`the data offset of tensor ${q(name)}`);
    if (offset > BigInt(src.size)) {
      c.fail(
        offsetFieldAt[i],
        `tensor ${q(name)} data offset ${offset} is past the end of the file (${src.size} bytes)`,
      );
    }
    tensors.push({
      name,
      dims,
      shape: dims.slice().reverse(),
      type: type as GGMLType,
      offset: Number(offset),
      byteSize,
      elementCount,
    });
  }

  // Like llama.cpp, a file without tensors has no padded data section: it starts right after the header.
  const dataOffset = nT > 0 ? alignUp(c.pos, alignment) : c.pos;
  if (nT > 0 && dataOffset > src.size) {
    c.fail(
      c.pos,
      `expected the data section at byte ${dataOffset} (padded to alignment ${alignment}) but the file has ${src.size} bytes`,
      "the file is truncated",
    );
  }
  for (let i = 0; i < nT; i++) {
    const t = tensors[i];
    if (t.offset % alignment !== 0) {
      c.fail(
        offsetFieldAt[i],
        `tensor ${q(t.name)} data offset ${t.offset} is not a multiple of the alignment ${alignment}`,
      );
    }
    if (t.offset > src.size - dataOffset || t.byteSize > src.size - dataOffset - t.offset) {
      c.fail(
        offsetFieldAt[i],
        `tensor ${q(t.name)} (${ggmlTypeName(t.type)}, ${t.byteSize} bytes) at data offset ${t.offset} ` +
          `(byte ${dataOffset + t.offset}) extends past the end of the file (${src.size} bytes)`,
        "the file is truncated or corrupt",
      );
    }
  }
  const order = tensors.map((_, i) => i).filter((i) => tensors[i].byteSize > 0);
  order.sort((a, b) => tensors[a].offset - tensors[b].offset);
  for (let k = 1; k < order.length; k++) {
    const prev = tensors[order[k - 1]];
    const cur = tensors[order[k]];
    if (prev.offset + prev.byteSize > cur.offset) {
      c.fail(
        offsetFieldAt[order[k]],
        `tensor ${q(cur.name)} data [${cur.offset}, ${cur.offset + cur.byteSize}) overlaps tensor ${q(prev.name)} ` +
          `[${prev.offset}, ${prev.offset + prev.byteSize})`,
        "the file is corrupt",
      );
    }
  }

  return new GGUFFile(file, src, version, alignment, dataOffset, src.size, metadata, valueOffsets, tensors);
}
