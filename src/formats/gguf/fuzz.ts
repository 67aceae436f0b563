// Deterministic fuzzer for the GGUF reader: builds small valid files, mutates them where it hurts (counts,
// lengths, types, dims, offsets, truncation), opens them from disk and reads everything, and tallies outcomes.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileFormatError } from "../../util/errors.js";
import { ggufInfo } from "./info.js";
import { canDequantize } from "./quant.js";
import { openGGUF, parseGGUF, type GGUFFile } from "./reader.js";
import { GGMLType, GGUFValueType, ggmlTypeInfo } from "./types.js";

export interface FuzzOptions {
  cases: number;
  seed: number;
  onProgress?: (done: number, total: number) => void;
  /** A case taking longer than this counts as a hang (default 2000 ms). */
  timeLimitMs?: number;
  /** Heap or ArrayBuffer growth above this during one case is reported as an over-allocation (default 64 MiB). */
  maxAllocBytes?: number;
  /** "file" (default) opens each case from a temp file, the route real callers use; "buffer" parses in memory. */
  source?: "file" | "buffer";
  /** How many crash/hang/over-allocation cases to record in full (default 20 each). */
  maxRecorded?: number;
}

export interface FuzzCaseRecord {
  case: number;
  mutations: string[];
  size: number;
  error?: string;
  ms?: number;
  bytes?: number;
}

export interface FuzzReport {
  seed: number;
  cases: number;
  source: "file" | "buffer";
  outcomes: { ok: number; formatError: number; crash: number; hang: number; overAlloc: number };
  /** FileFormatError messages with numbers and names blanked, most frequent first. */
  formatErrorKinds: Record<string, number>;
  /** Per mutation kind: how many cases used it and how they ended. */
  mutations: Record<string, { cases: number; ok: number; formatError: number; crash: number }>;
  crashes: FuzzCaseRecord[];
  hangs: FuzzCaseRecord[];
  overAllocations: FuzzCaseRecord[];
  maxHeapGrowthBytes: number;
  maxArrayBuffersGrowthBytes: number;
  /** The case with the largest growth (heap or ArrayBuffers), to judge it against its file size. */
  worstAllocation: { case: number; size: number; bytes: number } | null;
  maxCaseMs: number;
  totalMs: number;
}

/** mulberry32: tiny, fast, good enough for picking mutations; the whole run depends only on the seed. */
export class FuzzRng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

type FieldKind =
  | "magic"
  | "version"
  | "tensorCount"
  | "kvCount"
  | "strLen"
  | "valueType"
  | "itemType"
  | "arrayCount"
  | "scalar"
  | "nDims"
  | "dim"
  | "ggmlType"
  | "tensorOffset"
  | "data";

interface Field {
  kind: FieldKind;
  at: number;
  width: number;
}

/** A GGUF serializer that records where every structural field lands, so mutations can aim at them. */
class TracingWriter {
  bytes: number[] = [];
  fields: Field[] = [];
  private mark(kind: FieldKind, width: number): void {
    this.fields.push({ kind, at: this.bytes.length, width });
  }
  raw(b: ArrayLike<number>, kind?: FieldKind): void {
    if (kind) this.mark(kind, b.length);
    for (let i = 0; i < b.length; i++) this.bytes.push(b[i] & 0xff);
  }
  u32(v: number, kind: FieldKind): void {
    this.mark(kind, 4);
    for (let i = 0; i < 4; i++) this.bytes.push((v >>> (8 * i)) & 0xff);
  }
  u64(v: bigint | number, kind: FieldKind): void {
    this.mark(kind, 8);
    let b = BigInt.asUintN(64, BigInt(v));
    for (let i = 0; i < 8; i++, b >>= 8n) this.bytes.push(Number(b & 0xffn));
  }
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length, "strLen");
    this.raw(b);
  }
  pad(alignment: number): void {
    while (this.bytes.length % alignment !== 0) this.bytes.push(0);
  }
}

const KEY_STEMS = [
  "general.name",
  "general.architecture",
  "llama.block_count",
  "tokenizer.ggml.tokens",
  "x.y",
  "k",
];
const TENSOR_TYPES = [
  GGMLType.F32,
  GGMLType.F16,
  GGMLType.BF16,
  GGMLType.Q8_0,
  GGMLType.Q4_0,
  GGMLType.Q4_1,
  GGMLType.Q5_0,
  GGMLType.Q5_1,
  GGMLType.Q2_K,
  GGMLType.Q3_K,
  GGMLType.Q4_K,
  GGMLType.Q5_K,
  GGMLType.Q6_K,
  GGMLType.I8,
  GGMLType.I32,
  GGMLType.I64,
  GGMLType.F64,
  GGMLType.IQ2_XXS,
  GGMLType.TQ2_0,
];
const TEXT = ["", "a", "hello", "▁the", "日本語", "<0x0A>", "é", "\u0000", "x".repeat(40)];

function writeScalar(w: TracingWriter, rng: FuzzRng, type: GGUFValueType): void {
  const b: number[] = [];
  const width = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 }[type as number] ?? 1;
  for (let i = 0; i < width; i++) b.push(rng.int(256));
  if (type === GGUFValueType.BOOL) b[0] = rng.int(2);
  w.raw(b, "scalar");
}

function writeValue(w: TracingWriter, rng: FuzzRng, type: GGUFValueType, depth: number): void {
  if (type === GGUFValueType.STRING) w.str(rng.pick(TEXT));
  else if (type === GGUFValueType.ARRAY) {
    const itemType = depth >= 2 ? rng.pick([GGUFValueType.UINT8, GGUFValueType.STRING]) : rng.int(13);
    w.u32(itemType, "itemType");
    const n = rng.chance(0.1) ? rng.range(50, 300) : rng.range(0, 6);
    w.u64(n, "arrayCount");
    for (let i = 0; i < n; i++) writeValue(w, rng, itemType, depth + 1);
  } else writeScalar(w, rng, type);
}

/** A valid small GGUF file (sometimes with a planted duplicate) and its field map. */
function buildBase(rng: FuzzRng): { bytes: Uint8Array; fields: Field[] } {
  const w = new TracingWriter();
  const alignment = rng.chance(0.3) ? rng.pick([1, 8, 32, 64, 128]) : 32;
  const nKv = rng.range(0, 8);
  const nT = rng.range(0, 4);
  w.raw([0x47, 0x47, 0x55, 0x46], "magic");
  w.u32(rng.chance(0.2) ? 2 : 3, "version");
  w.u64(nT, "tensorCount");
  const withAlign = alignment !== 32 || rng.chance(0.2);
  w.u64(nKv + (withAlign ? 1 : 0), "kvCount");
  const dupKey = rng.chance(0.03);
  for (let i = 0; i < nKv; i++) {
    w.str(dupKey && i > 0 ? `${KEY_STEMS[0]}.0` : `${rng.pick(KEY_STEMS)}.${i}`);
    const type = rng.chance(0.3) ? GGUFValueType.ARRAY : rng.int(13);
    w.u32(type, "valueType");
    writeValue(w, rng, type, 0);
  }
  if (withAlign) {
    w.str("general.alignment");
    w.u32(GGUFValueType.UINT32, "valueType");
    w.u32(alignment, "scalar");
  }
  const dupName = rng.chance(0.03);
  let offset = 0;
  const sizes: number[] = [];
  for (let i = 0; i < nT; i++) {
    const type = rng.pick(TENSOR_TYPES);
    const info = ggmlTypeInfo(type);
    if (!info) throw new Error("unreachable");
    const nDims = rng.range(1, 4);
    const dims = [info.blockSize * rng.range(1, 2)];
    for (let d = 1; d < nDims; d++) dims.push(rng.range(1, 3));
    const elements = dims.reduce((a, b) => a * b, 1);
    const size = (elements / info.blockSize) * info.typeSize;
    w.str(dupName && i > 0 ? "t0" : `t${i}`);
    w.u32(nDims, "nDims");
    for (const d of dims) w.u64(d, "dim");
    w.u32(type, "ggmlType");
    w.u64(offset, "tensorOffset");
    sizes.push(size);
    offset += Math.ceil(size / alignment) * alignment;
  }
  w.pad(alignment);
  for (const size of sizes) {
    const data: number[] = [];
    for (let j = 0; j < size; j++) data.push(rng.int(256));
    w.raw(data, "data");
    w.pad(alignment);
  }
  return { bytes: Uint8Array.from(w.bytes), fields: w.fields };
}

const U32_EDGES = [0, 1, 2, 3, 4, 0x7f, 0xff, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const U64_EDGES = [
  0n,
  1n,
  2n,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  1n << 32n,
  1n << 53n,
  1n << 62n,
  1n << 63n,
];

function setU32(b: Uint8Array, at: number, v: number): void {
  if (at + 4 <= b.length) new DataView(b.buffer, b.byteOffset).setUint32(at, v >>> 0, true);
}
function setU64(b: Uint8Array, at: number, v: bigint): void {
  if (at + 8 <= b.length) new DataView(b.buffer, b.byteOffset).setBigUint64(at, BigInt.asUintN(64, v), true);
}
function getU64(b: Uint8Array, at: number): bigint {
  return at + 8 <= b.length ? new DataView(b.buffer, b.byteOffset).getBigUint64(at, true) : 0n;
}

function fieldsOf(fields: Field[], kinds: FieldKind[]): Field[] {
  return fields.filter((f) => kinds.includes(f.kind));
}

/** Apply one random mutation; returns its name and the new bytes. */
function mutate(rng: FuzzRng, input: Uint8Array, fields: Field[]): { name: string; bytes: Uint8Array } {
  let b = input.slice();
  const size = b.length;
  // Pick the kind first, then a field of it: otherwise string lengths (one per key) would crowd out rare kinds.
  const pickField = (kinds: FieldKind[]): Field | undefined => {
    const present = kinds.filter((k) => fields.some((f) => f.kind === k));
    if (present.length === 0) return undefined;
    return rng.pick(fieldsOf(fields, [rng.pick(present)]));
  };
  const edge64 = (f: Field): bigint => {
    const cur = getU64(b, f.at);
    const choices = [...U64_EDGES, BigInt(size), BigInt(size + 1), cur + 1n, cur - 1n, cur * 2n, -1n];
    return rng.pick(choices);
  };
  switch (rng.int(12)) {
    case 0: {
      const n = rng.range(1, 8);
      for (let i = 0; i < n; i++) b[rng.int(size)] ^= 1 << rng.int(8);
      return { name: "bitflip", bytes: b };
    }
    case 1: {
      // Aim at the header and tensor infos, where a byte decides the structure, more often than at data.
      const limit = rng.chance(0.8) ? Math.max(1, fieldsOf(fields, ["data"])[0]?.at ?? size) : size;
      b[rng.int(limit)] = rng.pick([0, 0xff, 0x7f, 0x80, 1, 0xfe]);
      return { name: "byte-edge", bytes: b };
    }
    case 2: {
      // Truncate at a field boundary (or inside a field), the classic partial-download shape.
      const f = pickField([
        "magic",
        "version",
        "tensorCount",
        "kvCount",
        "strLen",
        "valueType",
        "itemType",
        "arrayCount",
        "scalar",
        "nDims",
        "dim",
        "ggmlType",
        "tensorOffset",
        "data",
      ]);
      const at = f ? f.at + rng.int(f.width + 1) : rng.int(size);
      return { name: "truncate-field", bytes: b.slice(0, Math.min(at, size)) };
    }
    case 3:
      return { name: "truncate-random", bytes: b.slice(0, rng.int(size)) };
    case 4: {
      const f = pickField(["tensorCount", "kvCount", "arrayCount", "strLen"]);
      if (!f) return { name: "none", bytes: b };
      setU64(b, f.at, edge64(f));
      return { name: `lie-${f.kind}`, bytes: b };
    }
    case 5: {
      const f = pickField(["valueType", "itemType", "ggmlType"]);
      if (!f) return { name: "none", bytes: b };
      setU32(b, f.at, rng.chance(0.5) ? rng.pick(U32_EDGES) : rng.int(48));
      return { name: `bad-${f.kind}`, bytes: b };
    }
    case 6: {
      const f = pickField(["tensorOffset"]);
      if (!f) return { name: "none", bytes: b };
      const others = fieldsOf(fields, ["tensorOffset"]).map((o) => getU64(input, o.at));
      const cur = getU64(b, f.at);
      setU64(
        b,
        f.at,
        rng.pick([cur + 1n, cur + 16n, cur - 32n, rng.pick(others), BigInt(size), 1n << 40n, -1n]),
      );
      return { name: "bad-offset", bytes: b };
    }
    case 7: {
      const f = pickField(["dim", "nDims"]);
      if (!f) return { name: "none", bytes: b };
      if (f.kind === "nDims") setU32(b, f.at, rng.pick([0, 5, 8, 0xffffffff, rng.int(5)]));
      else
        setU64(
          b,
          f.at,
          rng.pick([0n, 1n << 31n, 1n << 32n, 1n << 62n, 1n << 63n, (1n << 64n) - 1n, 3n, 33n]),
        );
      return { name: `huge-${f.kind}`, bytes: b };
    }
    case 8: {
      const f = pickField(["version", "magic"]);
      if (!f) return { name: "none", bytes: b };
      if (f.kind === "version")
        setU32(b, f.at, rng.pick([0, 1, 2, 3, 4, 0x03000000, 0x02000000, 0xffffffff]));
      else b[f.at + rng.int(4)] = rng.int(256);
      return { name: `bad-${f.kind}`, bytes: b };
    }
    case 9: {
      // Splice: copy a run of bytes over another place (shifted structure with plausible values).
      const len = rng.range(1, 32);
      const from = rng.int(size);
      const to = rng.int(size);
      b.copyWithin(to, from, Math.min(size, from + len));
      return { name: "splice", bytes: b };
    }
    case 10: {
      // Insert or delete bytes, shifting everything after: lengths now point at the wrong place.
      const at = rng.int(size + 1);
      if (rng.chance(0.5)) {
        const ins = Uint8Array.from({ length: rng.range(1, 16) }, () => rng.int(256));
        const out = new Uint8Array(size + ins.length);
        out.set(b.subarray(0, at));
        out.set(ins, at);
        out.set(b.subarray(at), at + ins.length);
        b = out;
        return { name: "insert", bytes: b };
      }
      const len = rng.range(1, 16);
      const out = new Uint8Array(Math.max(0, size - len));
      out.set(b.subarray(0, at).subarray(0, out.length));
      if (at + len < size) out.set(b.subarray(at + len), at);
      return { name: "delete", bytes: out };
    }
    default: {
      const f = pickField(["scalar", "strLen", "arrayCount"]);
      if (!f) return { name: "none", bytes: b };
      if (f.width >= 8) setU64(b, f.at, edge64(f));
      else for (let i = 0; i < f.width; i++) b[f.at + i] = rng.pick([0, 0xff, 2, 0x80]);
      return { name: `edge-${f.kind}`, bytes: b };
    }
  }
}

/** The bytes and mutation names of case `index` for `seed` (to reproduce a recorded case). */
export function fuzzCase(seed: number, index: number): { bytes: Uint8Array; mutations: string[] } {
  const rng = new FuzzRng(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35));
  const base = buildBase(rng);
  let bytes = base.bytes;
  const mutations: string[] = [];
  if (rng.chance(0.05)) return { bytes, mutations: ["none"] };
  const n = rng.chance(0.7) ? 1 : rng.range(2, 4);
  for (let i = 0; i < n; i++) {
    const m = mutate(rng, bytes, base.fields);
    bytes = m.bytes;
    if (m.name !== "none") mutations.push(m.name);
  }
  return { bytes, mutations: mutations.length > 0 ? mutations : ["none"] };
}

function safeInt(x: number | bigint | boolean | string): boolean {
  return (
    typeof x !== "bigint" || (x <= BigInt(Number.MAX_SAFE_INTEGER) && x >= BigInt(Number.MIN_SAFE_INTEGER))
  );
}

/** Use everything a caller would: getters, tensor reads, dequantization and the info summary. */
function exercise(f: GGUFFile): void {
  // 64-bit values beyond 2^53 make getNumber throw by design; random bytes often produce them, so skip those.
  for (const [key, v] of f.metadata) {
    if (v.type === GGUFValueType.STRING) f.getString(key);
    else if (v.type === GGUFValueType.BOOL) f.getBool(key);
    else if (v.type === GGUFValueType.ARRAY) {
      if (v.itemType === GGUFValueType.STRING) f.getStringArray(key);
      else if (v.value instanceof BigInt64Array || v.value instanceof BigUint64Array) {
        if (Array.from(v.value as ArrayLike<bigint>).every(safeInt)) f.getNumberArray(key);
      } else if (v.itemType !== GGUFValueType.ARRAY && v.itemType !== GGUFValueType.BOOL)
        f.getNumberArray(key);
    } else if (safeInt(v.value)) f.getNumber(key);
  }
  for (const t of f.tensors) {
    f.readTensorRaw(t);
    if (canDequantize(t.type)) f.readTensorF32(t);
  }
  // The CLI prints this; it must never throw on a file that opened.
  JSON.stringify(ggufInfo(f, { maxArrayItems: 4 }));
}

function errorKind(err: FileFormatError): string {
  const msg = err.message.replace(/^.*? @ byte \d+: |^[^:]*: /, "");
  return msg
    .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
    .replace(/\b[0-9a-f]{2}( [0-9a-f]{2}){3}\b/g, "XX XX XX XX")
    .replace(/-?\d+(\.\d+)?(e[+-]?\d+)?/g, "N")
    .slice(0, 90);
}

/** Run `cases` fuzz cases; deterministic for a seed (timings and memory aside). */
export function fuzzGGUF(opts: FuzzOptions): FuzzReport {
  const timeLimit = opts.timeLimitMs ?? 2000;
  const maxAlloc = opts.maxAllocBytes ?? 64 * 1024 * 1024;
  const source = opts.source ?? "file";
  const maxRecorded = opts.maxRecorded ?? 20;
  const report: FuzzReport = {
    seed: opts.seed,
    cases: opts.cases,
    source,
    outcomes: { ok: 0, formatError: 0, crash: 0, hang: 0, overAlloc: 0 },
    formatErrorKinds: {},
    mutations: {},
    crashes: [],
    hangs: [],
    overAllocations: [],
    maxHeapGrowthBytes: 0,
    maxArrayBuffersGrowthBytes: 0,
    worstAllocation: null,
    maxCaseMs: 0,
    totalMs: 0,
  };
  const kinds = new Map<string, number>();
  const dir = source === "file" ? mkdtempSync(join(tmpdir(), "buckle-gguf-fuzz-")) : "";
  const path = join(dir, "case.gguf");
  const t0 = performance.now();
  try {
    for (let i = 0; i < opts.cases; i++) {
      const { bytes, mutations } = fuzzCase(opts.seed, i);
      if (source === "file") writeFileSync(path, bytes);
      const before = process.memoryUsage();
      const start = performance.now();
      let outcome: "ok" | "formatError" | "crash";
      let error: string | undefined;
      let file: GGUFFile | undefined;
      let heapGrowth = 0;
      let abGrowth = 0;
      try {
        file = source === "file" ? openGGUF(path) : parseGGUF(bytes, "case.gguf");
        exercise(file);
        outcome = "ok";
      } catch (err) {
        if (err instanceof FileFormatError) {
          outcome = "formatError";
          const k = errorKind(err);
          kinds.set(k, (kinds.get(k) ?? 0) + 1);
        } else {
          outcome = "crash";
          error = err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ""}` : String(err);
        }
      } finally {
        // Measure while the parsed file is still reachable, so what it holds counts.
        const after = process.memoryUsage();
        heapGrowth = after.heapUsed - before.heapUsed;
        abGrowth = after.arrayBuffers - before.arrayBuffers;
        file?.close();
      }
      const ms = performance.now() - start;
      report.outcomes[outcome]++;
      for (const m of new Set(mutations)) {
        const s = (report.mutations[m] ??= { cases: 0, ok: 0, formatError: 0, crash: 0 });
        s.cases++;
        s[outcome]++;
      }
      const rec: FuzzCaseRecord = { case: i, mutations, size: bytes.length };
      if (outcome === "crash" && report.crashes.length < maxRecorded) report.crashes.push({ ...rec, error });
      if (ms > timeLimit) {
        report.outcomes.hang++;
        if (report.hangs.length < maxRecorded) report.hangs.push({ ...rec, ms });
      }
      const growth = Math.max(heapGrowth, abGrowth);
      if (growth > maxAlloc) {
        report.outcomes.overAlloc++;
        if (report.overAllocations.length < maxRecorded)
          report.overAllocations.push({ ...rec, bytes: growth });
      }
      if (growth > (report.worstAllocation?.bytes ?? 0)) {
        report.worstAllocation = { case: i, size: bytes.length, bytes: growth };
      }
      report.maxHeapGrowthBytes = Math.max(report.maxHeapGrowthBytes, heapGrowth);
      report.maxArrayBuffersGrowthBytes = Math.max(report.maxArrayBuffersGrowthBytes, abGrowth);
      report.maxCaseMs = Math.max(report.maxCaseMs, ms);
      opts.onProgress?.(i + 1, opts.cases);
    }
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  report.totalMs = Math.round(performance.now() - t0);
  report.maxCaseMs = Math.round(report.maxCaseMs * 100) / 100;
  report.formatErrorKinds = Object.fromEntries([...kinds].sort((a, b) => b[1] - a[1]));
  return report;
}
