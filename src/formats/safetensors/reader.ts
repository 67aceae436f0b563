// Reads .safetensors files lazily: the header is parsed and checked up front, tensor bytes are read on demand with positioned reads.
// Every length and offset in the header is distrusted until proven consistent with the file, so a bad file gives a FileFormatError, never a huge allocation or a hang.

import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { FileFormatError, InputError } from "../../util/errors.js";
import {
  DTYPE_SIZES,
  KNOWN_UNSUPPORTED_DTYPES,
  SUPPORTED_DTYPES,
  decodeToF32,
  isSupportedDtype,
  type SafetensorsDtype,
} from "./dtypes.js";

/** Real headers are a few MiB at most (tens of thousands of tensors); anything larger is corrupt or hostile. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** A valid header nests three deep ({name: {shape: [...]}}); the margin tolerates odd but harmless metadata writers. */
const MAX_JSON_DEPTH = 8;
/** readSync takes at most 2 GiB - 1 per call. */
const READ_CHUNK = 1 << 30;

export interface SafetensorsTensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  /** PyTorch order: slowest-varying dimension first. */
  shape: number[];
  /** Absolute position in `file` of the tensor's first byte (not relative to the data section). */
  byteOffset: number;
  byteLength: number;
  /** The file holding the bytes; for sharded checkpoints this is the shard. */
  file: string;
}

/** A set of named tensors from one safetensors file or from all shards of a sharded checkpoint. */
export interface TensorSet {
  /** The .safetensors file, or the index file for a sharded checkpoint. */
  readonly path: string;
  /** The `__metadata__` map (for a sharded checkpoint: the index's `metadata`, values stringified). */
  readonly metadata: Readonly<Record<string, string>>;
  /** In file order (data offset), which is also the order writers laid them out. */
  readonly tensors: readonly SafetensorsTensorInfo[];
  /** Undefined when there is no tensor of that name. */
  tensor(name: string): SafetensorsTensorInfo | undefined;
  /** The tensor's bytes exactly as stored (little-endian). Throws InputError for an unknown name. */
  readRaw(name: string): Uint8Array;
  /** The tensor converted to f32, in row-major PyTorch order. */
  readF32(name: string): Float32Array;
  close(): void;
}

export interface ParsedHeader {
  metadata: Record<string, string>;
  /** Offsets relative to the start of the data section; the caller adds the header size. */
  tensors: { name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }[];
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Nesting depth of a JSON text, string contents skipped. V8's JSON.parse copes with deep nesting
 * but takes seconds for a few MiB of "[[[[", so deep headers are refused before parsing.
 */
function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/**
 * Parse and validate a header. `headerBytes` is the JSON (after the 8-byte length); `dataSize` is the
 * number of bytes after the header, which all offsets must stay within.
 */
export function parseSafetensorsHeader(
  file: string,
  headerBytes: Uint8Array,
  dataSize: number,
): ParsedHeader {
  const fail = (message: string, hint?: string): never => {
    throw new FileFormatError(file, 8, message, { hint });
  };
  if (headerBytes.length === 0 || headerBytes[0] !== 0x7b)
    fail("the JSON header does not start with '{'", "this is not a safetensors file, or it is corrupt");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    return fail("the JSON header is not valid UTF-8");
  }
  if (jsonDepthExceeds(text, MAX_JSON_DEPTH))
    fail(`the JSON header nests deeper than ${MAX_JSON_DEPTH} levels`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return fail(`the header is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!isPlainObject(json)) return fail("the JSON header is not an object");

  const metadata: [string, string][] = [];
  const tensors: ParsedHeader["tensors"] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === "__metadata__") {
      if (!isPlainObject(value)) fail("__metadata__ is not an object of strings");
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`__metadata__.${JSON.stringify(k)} is ${describe(v)}, not a string`);
        metadata.push([k, v as string]);
      }
      continue;
    }
    const where = `tensor ${JSON.stringify(name)}`;
    if (!isPlainObject(value)) fail(`${where}: entry is ${describe(value)}, not an object`);
    const entry = value as Record<string, unknown>;
    const dtype = entry.dtype;
    if (typeof dtype !== "string") return fail(`${where}: dtype is ${describe(dtype)}, not a string`);
    if (!isSupportedDtype(dtype)) {
      const known = KNOWN_UNSUPPORTED_DTYPES.includes(dtype);
      return fail(
        `${where}: ${known ? "unsupported" : "unknown"} dtype ${JSON.stringify(dtype)}`,
        `supported: ${SUPPORTED_DTYPES.join(", ")}`,
      );
    }
    const shape = entry.shape;
    if (!Array.isArray(shape)) return fail(`${where}: shape is ${describe(shape)}, not an array`);
    const offsets = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2)
      return fail(`${where}: data_offsets is ${describe(offsets)}, not a [begin, end] pair`);
    const [begin, end] = offsets as unknown[];
    if (!isIndex(begin) || !isIndex(end))
      return fail(`${where}: data_offsets ${JSON.stringify(offsets)} are not non-negative integers`);
    if (begin > end) fail(`${where}: data_offsets begin ${begin} is after end ${end}`);
    if (end > dataSize)
      fail(
        `${where}: data_offsets end ${end} is past the data section (${dataSize} bytes)`,
        "the file may be truncated",
      );
    // Multiply step by step and stop once past what the file could hold, so huge shapes never overflow.
    const size = DTYPE_SIZES[dtype];
    let bytes = size;
    let zero = false;
    for (const d of shape as unknown[]) {
      if (!isIndex(d))
        return fail(
          `${where}: shape ${JSON.stringify(shape)} has a dimension that is not a non-negative integer below 2^53`,
        );
      if (d === 0) zero = true;
      else if (!zero) {
        bytes *= d;
        // Past 2^53 the count is no longer exact; it can only be "too big" by then.
        if (bytes > Number.MAX_SAFE_INTEGER) bytes = Infinity;
      }
    }
    if (zero) bytes = 0;
    if (bytes !== end - begin)
      fail(
        `${where}: shape ${JSON.stringify(shape)} of ${dtype} needs ${bytes === Infinity ? "more bytes than the file has" : `${bytes} bytes`}, but data_offsets span ${end - begin}`,
      );
    tensors.push({ name, dtype, shape: (shape as number[]).slice(), begin, end });
  }

  const sorted = tensors.filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].begin < sorted[i - 1].end)
      fail(
        `tensors ${JSON.stringify(sorted[i - 1].name)} and ${JSON.stringify(sorted[i].name)} overlap (bytes ${sorted[i].begin}..${sorted[i - 1].end})`,
      );
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  // fromEntries defines own properties, so a key like "__proto__" stays data instead of touching the prototype.
  return { metadata: Object.fromEntries(metadata), tensors };
}

function isIndex(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string")
    return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === "object") return "an object";
  if (v === undefined) return "missing";
  return `${typeof v} ${String(v)}`;
}

/** Fill `buf` from `fd` at `position`, failing clearly if the file ends early (it may have shrunk since opening). */
export function readFully(fd: number, file: string, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, Math.min(buf.length - done, READ_CHUNK), position + done);
    if (n === 0)
      throw new FileFormatError(file, position + done, "unexpected end of file", {
        hint: "the file is truncated or changed while open",
      });
    done += n;
  }
}

/** Allocation of a tensor-sized buffer, turned into a clear error when the engine refuses the size. */
export function allocTensor(info: SafetensorsTensorInfo): Uint8Array {
  try {
    return new Uint8Array(info.byteLength);
  } catch (err) {
    throw new InputError(
      `tensor ${JSON.stringify(info.name)} (${info.byteLength} bytes) is too large to load at once`,
      {
        cause: err,
      },
    );
  }
}

export function unknownTensor(path: string, name: string, names: readonly string[]): InputError {
  const sample = names.slice(0, 5).map((n) => JSON.stringify(n));
  return new InputError(`${path} has no tensor ${JSON.stringify(name)}`, {
    hint:
      names.length === 0
        ? "the file holds no tensors"
        : `it has ${names.length} tensors, e.g. ${sample.join(", ")}`,
  });
}

/** Open a .safetensors file and validate its header; tensor data is read only when asked for. */
export function openSafetensors(path: string): TensorSet {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(
      `cannot open ${path}: ${code === "ENOENT" ? "no such file" : (code ?? String(err))}`,
      {
        cause: err,
      },
    );
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new InputError(`${path} is not a regular file`);
    const fileSize = stat.size;
    if (fileSize < 8)
      throw new FileFormatError(
        path,
        0,
        `file is ${fileSize} bytes, too short for the 8-byte header length`,
        {
          hint: "this is not a safetensors file, or it is truncated",
        },
      );
    const lenBytes = new Uint8Array(8);
    readFully(fd, path, lenBytes, 0);
    const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
    if (headerLen > BigInt(fileSize - 8))
      throw new FileFormatError(
        path,
        0,
        `header length ${headerLen} is more than the ${fileSize - 8} bytes after it`,
        {
          hint: "this is not a safetensors file, or it is truncated",
        },
      );
    if (headerLen > BigInt(MAX_HEADER_BYTES))
      throw new FileFormatError(
        path,
        0,
        `header length ${headerLen} is over the ${MAX_HEADER_BYTES}-byte limit`,
      );
    const headerBytes = new Uint8Array(Number(headerLen));
    readFully(fd, path, headerBytes, 8);
    const dataStart = 8 + headerBytes.length;
    const parsed = parseSafetensorsHeader(path, headerBytes, fileSize - dataStart);
    const tensors: SafetensorsTensorInfo[] = parsed.tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      byteOffset: dataStart + t.begin,
      byteLength: t.end - t.begin,
      file: path,
    }));
    return makeFileSet(path, fd, parsed.metadata, tensors);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

function makeFileSet(
  path: string,
  fd: number,
  metadata: Record<string, string>,
  tensors: SafetensorsTensorInfo[],
): TensorSet {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  let open = true;
  const get = (name: string): SafetensorsTensorInfo => {
    if (!open) throw new InputError(`${path} was already closed`);
    const info = byName.get(name);
    if (!info)
      throw unknownTensor(
        path,
        name,
        tensors.map((t) => t.name),
      );
    return info;
  };
  const readRaw = (name: string): Uint8Array => {
    const info = get(name);
    const buf = allocTensor(info);
    readFully(fd, path, buf, info.byteOffset);
    return buf;
  };
  return {
    path,
    metadata,
    tensors,
    tensor: (name) => byName.get(name),
    readRaw,
    readF32: (name) => decodeToF32(get(name).dtype, readRaw(name)),
    close: () => {
      if (open) closeSync(fd);
      open = false;
    },
  };
}
