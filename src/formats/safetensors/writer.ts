// Writes .safetensors files one tensor at a time into a temp file that is renamed into place when complete.
// Tensor data may be supplied lazily, so a whole model never has to sit in memory at once.

import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { InputError } from "../../util/errors.js";
import { tempPathFor } from "../../util/fs.js";
import { DTYPE_SIZES } from "./dtypes.js";
import { encodeBF16, encodeF16 } from "./half.js";

export type SafetensorsWriteDtype = "F32" | "F16" | "BF16";

export interface SafetensorsWriteTensor {
  name: string;
  dtype: SafetensorsWriteDtype;
  shape: readonly number[];
  /**
   * f32 values (converted to `dtype` on write) or raw little-endian bytes already in `dtype`.
   * A function is called once, when the tensor's turn to be written comes.
   */
  data: Float32Array | Uint8Array | (() => Float32Array | Uint8Array);
}

/** Elements converted per write call: large enough to keep syscalls few, small enough to bound the scratch buffer. */
const CHUNK_ELEMENTS = 1 << 20;

/**
 * Write `tensors` to `path` atomically. Tensors are laid out widest dtype first (stable otherwise) so that
 * every tensor starts aligned to its element size, which lets memory-mapping readers use the bytes in place.
 */
export function writeSafetensors(
  path: string,
  tensors: readonly SafetensorsWriteTensor[],
  metadata?: Readonly<Record<string, string>>,
): void {
  const seen = new Set<string>();
  const layout: { t: SafetensorsWriteTensor; elements: number; begin: number; end: number }[] = [];
  for (const t of tensors) {
    if (typeof t.name !== "string" || t.name === "" || t.name === "__metadata__")
      throw new InputError(`invalid tensor name ${JSON.stringify(t.name)}`);
    if (seen.has(t.name)) throw new InputError(`tensor ${JSON.stringify(t.name)} is given twice`);
    seen.add(t.name);
    if (!(t.dtype in DTYPE_SIZES) || !["F32", "F16", "BF16"].includes(t.dtype))
      throw new InputError(
        `tensor ${JSON.stringify(t.name)}: cannot write dtype ${JSON.stringify(t.dtype)}`,
        {
          hint: "use F32, F16 or BF16",
        },
      );
    let elements = 1;
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 0)
        throw new InputError(`tensor ${JSON.stringify(t.name)}: bad shape ${JSON.stringify(t.shape)}`);
      elements *= d;
    }
    if (!Number.isSafeInteger(elements))
      throw new InputError(`tensor ${JSON.stringify(t.name)}: shape ${JSON.stringify(t.shape)} is too large`);
    layout.push({ t, elements, begin: 0, end: 0 });
  }
  const ordered = layout
    .map((l, i) => ({ l, i }))
    .sort((a, b) => DTYPE_SIZES[b.l.t.dtype] - DTYPE_SIZES[a.l.t.dtype] || a.i - b.i)
    .map((x) => x.l);
  let offset = 0;
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== "string") throw new InputError(`metadata ${JSON.stringify(k)} must be a string`);
    header.__metadata__ = { ...metadata };
  }
  for (const l of ordered) {
    l.begin = offset;
    l.end = offset + l.elements * DTYPE_SIZES[l.t.dtype];
    offset = l.end;
    header[l.t.name] = { dtype: l.t.dtype, shape: [...l.t.shape], data_offsets: [l.begin, l.end] };
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, "utf8");
  // Spaces are valid JSON whitespace; padding keeps the data section 8-byte aligned as the format recommends.
  json += " ".repeat((8 - (jsonBytes % 8)) % 8);
  const headerBuf = Buffer.from(json, "utf8");
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBuf.length));

  mkdirSync(dirname(resolve(path)), { recursive: true });
  const tmp = tempPathFor(path);
  let fd: number | undefined = openSync(tmp, "w");
  try {
    writeAll(fd, prefix);
    writeAll(fd, headerBuf);
    for (const l of ordered) writeTensor(fd, l.t, l.elements);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
}

function writeAll(fd: number, buf: Uint8Array): void {
  let done = 0;
  // One write call takes at most 2 GiB - 1 bytes.
  while (done < buf.length) done += writeSync(fd, buf, done, Math.min(buf.length - done, 1 << 30));
}

function writeTensor(fd: number, t: SafetensorsWriteTensor, elements: number): void {
  const data = typeof t.data === "function" ? t.data() : t.data;
  const size = DTYPE_SIZES[t.dtype];
  if (data instanceof Float32Array) {
    if (data.length !== elements)
      throw new InputError(
        `tensor ${JSON.stringify(t.name)}: shape ${JSON.stringify(t.shape)} has ${elements} elements but ${data.length} values were given`,
      );
    if (t.dtype === "F32") {
      writeAll(fd, littleEndianF32Bytes(data));
      return;
    }
    const scratch = new Uint8Array(Math.min(elements, CHUNK_ELEMENTS) * size);
    for (let i = 0; i < elements; i += CHUNK_ELEMENTS) {
      const part = data.subarray(i, Math.min(elements, i + CHUNK_ELEMENTS));
      if (t.dtype === "F16") encodeF16(part, scratch);
      else encodeBF16(part, scratch);
      writeAll(fd, scratch.subarray(0, part.length * size));
    }
    return;
  }
  if (data instanceof Uint8Array) {
    if (data.length !== elements * size)
      throw new InputError(
        `tensor ${JSON.stringify(t.name)}: ${t.dtype} shape ${JSON.stringify(t.shape)} needs ${elements * size} bytes but ${data.length} were given`,
      );
    writeAll(fd, data);
    return;
  }
  throw new InputError(`tensor ${JSON.stringify(t.name)}: data must be a Float32Array or Uint8Array`);
}

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function littleEndianF32Bytes(data: Float32Array): Uint8Array {
  if (littleEndianHost) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i], true);
  return out;
}
