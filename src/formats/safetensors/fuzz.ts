// Seeded fuzzer for the safetensors reader: builds small valid files, breaks them in targeted ways, and checks the reader's reaction.
// Acceptable outcomes are a correct read or a FileFormatError; any other exception, a slow case, or a large allocation is a finding.

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { FileFormatError } from "../../util/errors.js";
import { DTYPE_SIZES, SUPPORTED_DTYPES, type SafetensorsDtype } from "./dtypes.js";
import { f32ToBF16Bits, f32ToF16Bits } from "./half.js";
import { openSafetensors } from "./reader.js";

export interface FuzzOptions {
  cases: number;
  seed: number;
  /** A case taking longer than this (default 2000 ms) counts as a hang; cases are synchronous, so it is detected after the fact. */
  timeLimitMs?: number;
  /** Start numbering at this case, to rerun one reported case: {seed, firstCase: n, cases: 1}. */
  firstCase?: number;
  /** Memory growth above this during one case counts as an over-allocation (default 64 MiB). */
  maxAllocBytes?: number;
  onProgress?: (done: number, total: number) => void;
}

export type FuzzOutcome = "ok" | "formatError" | "crash" | "hang" | "overAlloc" | "mismatch";

export interface FuzzTally {
  cases: number;
  ok: number;
  formatError: number;
  crash: number;
  hang: number;
  overAlloc: number;
  /** The file was valid but the values read back differ from those written. */
  mismatch: number;
}

export interface FuzzReport extends FuzzTally {
  seed: number;
  firstCase: number;
  timeLimitMs: number;
  maxAllocBytes: number;
  totalMs: number;
  maxCaseMs: number;
  /** Largest growth of V8 heap + ArrayBuffer memory seen between the start of a case and the end of its reads. */
  maxAllocGrowthBytes: number;
  /** Largest total of tensor bytes returned by one case's reads. */
  maxReadBytes: number;
  maxFileBytes: number;
  byMutation: Record<string, FuzzTally>;
  /** The first findings (crash / hang / overAlloc / mismatch), enough to reproduce each with firstCase. */
  findings: { case: number; mutation: string; outcome: FuzzOutcome; message: string }[];
}

type Rng = () => number;

/** mulberry32: tiny, fast, and good enough to spread cases; reproducible from a 32-bit seed. */
function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const int = (rng: Rng, lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)];

interface Header {
  [name: string]: unknown;
}

interface Built {
  header: Header;
  data: Uint8Array;
  expected: Map<string, number[]>;
}

/** Values every dtype represents exactly, so a correct reader reproduces them bit for bit. */
function exactValue(rng: Rng, dtype: SafetensorsDtype): number {
  if (dtype === "BOOL") return int(rng, 0, 1);
  if (dtype === "U8") return int(rng, 0, 255);
  if (dtype.startsWith("I")) return int(rng, -100, 100);
  return int(rng, -64, 64) / 4;
}

function encode(dtype: SafetensorsDtype, values: number[]): Uint8Array {
  const size = DTYPE_SIZES[dtype];
  const out = new Uint8Array(values.length * size);
  const v = new DataView(out.buffer);
  values.forEach((x, i) => {
    const o = i * size;
    switch (dtype) {
      case "F64":
        return v.setFloat64(o, x, true);
      case "F32":
        return v.setFloat32(o, x, true);
      case "F16":
        return v.setUint16(o, f32ToF16Bits(x), true);
      case "BF16":
        return v.setUint16(o, f32ToBF16Bits(x), true);
      case "I64":
        return v.setBigInt64(o, BigInt(x), true);
      case "I32":
        return v.setInt32(o, x, true);
      case "I16":
        return v.setInt16(o, x, true);
      case "I8":
        return v.setInt8(o, x);
      case "U8":
      case "BOOL":
        return v.setUint8(o, x);
    }
  });
  return out;
}

const ODD_NAMES = [
  "__proto__",
  "constructor",
  "toString",
  "",
  "名前",
  "a\u0000b",
  "model.layers.0.self_attn.q_proj.weight",
];

function buildValid(rng: Rng): Built {
  const header: Header = {};
  const expected = new Map<string, number[]>();
  const parts: Uint8Array[] = [];
  let offset = 0;
  const n = int(rng, 0, 5);
  for (let i = 0; i < n; i++) {
    const name = rng() < 0.1 ? pick(rng, ODD_NAMES) : `t${i}.${int(rng, 0, 999)}`;
    if (name in header && Object.prototype.hasOwnProperty.call(header, name)) continue;
    const dtype = pick(rng, SUPPORTED_DTYPES);
    const shape = Array.from({ length: int(rng, 0, 3) }, () => (rng() < 0.05 ? 0 : int(rng, 1, 5)));
    const count = shape.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: count }, () => exactValue(rng, dtype));
    const bytes = encode(dtype, values);
    Object.defineProperty(header, name, {
      value: { dtype, shape, data_offsets: [offset, offset + bytes.length] },
      enumerable: true,
      writable: true,
      configurable: true,
    });
    expected.set(name, values);
    parts.push(bytes);
    offset += bytes.length;
  }
  if (rng() < 0.5) header.__metadata__ = { format: "pt", note: "fuzz" };
  const data = new Uint8Array(offset);
  let o = 0;
  for (const p of parts) {
    data.set(p, o);
    o += p.length;
  }
  return { header, data, expected };
}

function assemble(
  headerText: Uint8Array,
  data: Uint8Array,
  headerLen: bigint = BigInt(headerText.length),
): Uint8Array {
  const out = new Uint8Array(8 + headerText.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLen, true);
  out.set(headerText, 8);
  out.set(data, 8 + headerText.length);
  return out;
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function headerText(header: Header, rng: Rng): string {
  const s = JSON.stringify(header);
  return rng() < 0.5 ? s + " ".repeat((8 - (utf8(s).length % 8)) % 8) : s;
}

function tensorNames(h: Header): string[] {
  return Object.keys(h).filter((k) => k !== "__metadata__");
}

function entryOf(h: Header, rng: Rng): Record<string, unknown> | undefined {
  const names = tensorNames(h);
  if (names.length === 0) return undefined;
  return h[pick(rng, names)] as Record<string, unknown>;
}

/** An empty tensor to mutate when the valid file had none. */
function freshEntry(h: Header, dtype: SafetensorsDtype): Record<string, unknown> {
  const e: Record<string, unknown> = { dtype, shape: [0], data_offsets: [0, 0] };
  h.t = e;
  return e;
}

const WRONG_VALUES: unknown[] = [
  null,
  true,
  3,
  -1,
  1.5,
  "x",
  "F32",
  [],
  {},
  [1, 2, 3],
  [[1]],
  ["1", "2"],
  { a: 1 },
];
const HUGE_DIMS = [2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 - 1, 2 ** 63, 1e308, Number.MAX_SAFE_INTEGER, 2 ** 40];

function nested(depth: number): string {
  return "[".repeat(depth) + "]".repeat(depth);
}

/** Each mutation gets a valid file and returns the bytes to test plus whether they should still read back exactly. */
type Mutation = (rng: Rng, b: Built) => { bytes: Uint8Array; valid: boolean };

const MUTATIONS: Record<string, Mutation> = {
  none: (rng, b) => ({ bytes: assemble(utf8(headerText(b.header, rng)), b.data), valid: true }),
  trailingData: (rng, b) => {
    const extra = Uint8Array.from({ length: int(rng, 1, 64) }, () => int(rng, 0, 255));
    const data = new Uint8Array(b.data.length + extra.length);
    data.set(b.data);
    data.set(extra, b.data.length);
    return { bytes: assemble(utf8(headerText(b.header, rng)), data), valid: true };
  },
  headerLength: (rng, b) => {
    const text = utf8(headerText(b.header, rng));
    const total = BigInt(8 + text.length + b.data.length);
    const len = pick(rng, [
      0n,
      1n,
      7n,
      2n ** 64n - 1n,
      2n ** 63n,
      2n ** 53n + 1n,
      BigInt(100 * 1024 * 1024 + 1),
      total,
      total - 7n,
      BigInt(text.length + int(rng, -16, 16)),
      BigInt(int(rng, 0, 0xffffffff)),
    ]);
    return { bytes: assemble(text, b.data, len < 0n ? 0n : len), valid: false };
  },
  truncate: (rng, b) => {
    const full = assemble(utf8(headerText(b.header, rng)), b.data);
    return { bytes: full.slice(0, int(rng, 0, Math.max(0, full.length - 1))), valid: false };
  },
  byteFlip: (rng, b) => {
    const bytes = assemble(utf8(headerText(b.header, rng)), b.data);
    for (let i = int(rng, 1, 4); i > 0 && bytes.length > 0; i--)
      bytes[int(rng, 0, bytes.length - 1)] ^= 1 << int(rng, 0, 7);
    // Flips may land in tensor data only, leaving a valid file with other values: only shape of outcome is checked.
    return { bytes, valid: false };
  },
  badJson: (rng, b) => {
    let s = headerText(b.header, rng);
    const k = int(rng, 0, 4);
    if (k === 0) s = s.slice(0, int(rng, 0, s.length - 1));
    else if (k === 1) {
      const at = int(rng, 0, s.length);
      s =
        s.slice(0, at) +
        pick(rng, ["{", "}", "[", "]", ",", ":", '"', "\\", "\u0000", "NaN", "undefined"]) +
        s.slice(at);
    } else if (k === 2) s = pick(rng, ["", " ", "{", "{]", '{"a":}', "{'a':1}", '{"a":1,}', "\u0000{}"]);
    else if (k === 3) s = s.replace(/:/g, "=");
    else s = s.replace(/"/, "");
    return { bytes: assemble(utf8(s), b.data), valid: false };
  },
  nonUtf8: (rng, b) => {
    const text = utf8(headerText(b.header, rng));
    const t = text.slice();
    t[int(rng, 1, Math.max(1, t.length - 1))] = pick(rng, [0xff, 0xc0, 0x80, 0xed]);
    return { bytes: assemble(t, b.data), valid: false };
  },
  topLevel: (rng, b) => ({
    bytes: assemble(utf8(pick(rng, ["[]", "null", "1", '"x"', "true", "{}", "[{}]"])), b.data),
    valid: false,
  }),
  wrongTypes: (rng, b) => {
    const e = entryOf(b.header, rng);
    if (e) e[pick(rng, ["dtype", "shape", "data_offsets"])] = pick(rng, WRONG_VALUES);
    else b.header[`x${int(rng, 0, 9)}`] = pick(rng, WRONG_VALUES);
    if (e && rng() < 0.2) delete e[pick(rng, ["dtype", "shape", "data_offsets"])];
    return { bytes: assemble(utf8(headerText(b.header, rng)), b.data), valid: false };
  },
  entryNotObject: (rng, b) => {
    const names = tensorNames(b.header);
    b.header[names.length ? pick(rng, names) : "t"] = pick(rng, WRONG_VALUES);
    return { bytes: assemble(utf8(headerText(b.header, rng)), b.data), valid: false };
  },
  hugeShape: (rng, b) => {
    const e = entryOf(b.header, rng) ?? freshEntry(b.header, "F32");
    const rank = int(rng, 1, 6);
    e.shape = Array.from({ length: rank }, () => (rng() < 0.6 ? pick(rng, HUGE_DIMS) : int(rng, 0, 8)));
    if (rng() < 0.3) e.shape = Array.from({ length: int(rng, 100, 5000) }, () => int(rng, 1, 3));
    return { bytes: assemble(utf8(headerText(b.header, rng)), b.data), valid: false };
  },
  badOffsets: (rng, b) => {
    const names = tensorNames(b.header);
    const e = entryOf(b.header, rng) ?? freshEntry(b.header, "U8");
    const [begin, end] = e.data_offsets as number[];
    const other =
      names.length > 1 ? (b.header[pick(rng, names)] as Record<string, unknown>).data_offsets : [0, 1];
    e.data_offsets = pick(rng, [
      [-1, end],
      [begin, -1],
      [end, begin],
      [begin + 1, end + 1],
      [begin, end + int(rng, 1, 1 << 20)],
      [begin + 0.5, end + 0.5],
      [String(begin), end],
      [begin],
      [begin, end, end],
      other,
      [2 ** 53, 2 ** 53 + end - begin],
      [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
      [1e300, 1e300],
    ]);
    return { bytes: assemble(utf8(headerText(b.header, rng)), b.data), valid: false };
  },
  overlap: (rng, b) => {
    // Two tensors on the same bytes: each alone is consistent, only the cross-check catches it.
    const names = tensorNames(b.header);
    const src = names.length ? (b.header[pick(rng, names)] as Record<string, unknown>) : undefined;
    if (src) b.header[`dup${int(rng, 0, 99)}`] = { ...src };
    return { bytes: assemble(utf8(headerText(b.header, rng)), b.data), valid: false };
  },
  unknownDtype: (rng, b) => {
    const e = entryOf(b.header, rng) ?? freshEntry(b.header, "F32");
    e.dtype = pick(rng, [
      "F8_E4M3",
      "U32",
      "U16",
      "U64",
      "C64",
      "Q4_0",
      "",
      "f32",
      "float32",
      "F 32",
      "BF16 ",
      "__proto__",
    ]);
    return { bytes: assemble(utf8(headerText(b.header, rng)), b.data), valid: false };
  },
  metadataTypes: (rng, b) => {
    b.header.__metadata__ = pick(rng, [
      null,
      [],
      "x",
      1,
      { a: 1 },
      { a: null },
      { a: ["x"] },
      { a: { b: "c" } },
    ]);
    return { bytes: assemble(utf8(headerText(b.header, rng)), b.data), valid: false };
  },
  deepNesting: (rng, b) => {
    let s = headerText(b.header, rng);
    const depth = pick(rng, [10, 100, 1000, 50000, int(rng, 5, 20)]);
    const k = int(rng, 0, 2);
    if (k === 0) s = `{"__metadata__":${nested(depth)}${s.length > 2 ? "," + s.slice(1) : "}"}`;
    else if (k === 1) s = `{"t":{"dtype":"F32","shape":${nested(depth)},"data_offsets":[0,0]}}`;
    else s = `{"x":${'{"a":'.repeat(depth)}1${"}".repeat(depth)}}`;
    return { bytes: assemble(utf8(s), b.data), valid: false };
  },
  outOfRangeNumbers: (rng, b) => {
    // JSON number literals that parse to Infinity, lose precision, or are negative zero.
    const lit = pick(rng, ["1e309", "-1e309", "9007199254740993", "-0", "1e-400", "18446744073709551615"]);
    const s = headerText(b.header, rng).replace(
      pick(rng, ['"shape":[', '"data_offsets":[']),
      (m) => `${m}${lit},`,
    );
    return { bytes: assemble(utf8(s), b.data), valid: false };
  },
  oddKeys: (rng, b) => {
    // Legal but awkward: duplicate keys (last wins in JSON.parse) and prototype-looking names.
    let s = headerText(b.header, rng).trimEnd();
    const extra = pick(rng, [
      `"__proto__":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}`,
      `"constructor":{"dtype":"U8","shape":[],"data_offsets":[0,0]}`,
      `"__metadata__":{"x":"y"}`,
    ]);
    s = s.length > 2 ? `{${extra},${s.slice(1)}` : `{${extra}}`;
    return { bytes: assemble(utf8(s), b.data), valid: false };
  },
  manyTensors: (rng, b) => {
    const n = int(rng, 200, 3000);
    for (let i = 0; i < n; i++)
      b.header[`z${i}`] = { dtype: "F32", shape: [0, int(rng, 0, 9)], data_offsets: [0, 0] };
    return { bytes: assemble(utf8(headerText(b.header, rng)), b.data), valid: false };
  },
};

const MUTATION_NAMES = Object.keys(MUTATIONS);

function mixSeed(seed: number, i: number): number {
  let h = (seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  return (h ^ (h >>> 13)) >>> 0;
}

function memNow(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

const emptyTally = (): FuzzTally => ({
  cases: 0,
  ok: 0,
  formatError: 0,
  crash: 0,
  hang: 0,
  overAlloc: 0,
  mismatch: 0,
});

/** Run `cases` fuzz cases from `seed`. Deterministic for a given seed; writes one scratch file in the OS temp dir. */
export function fuzzSafetensors(options: FuzzOptions): FuzzReport {
  const timeLimitMs = options.timeLimitMs ?? 2000;
  const firstCase = options.firstCase ?? 0;
  const maxAllocBytes = options.maxAllocBytes ?? 64 * 1024 * 1024;
  const dir = mkdtempSync(join(tmpdir(), "buckle-st-fuzz-"));
  const file = join(dir, "case.safetensors");
  const report: FuzzReport = {
    seed: options.seed,
    firstCase,
    timeLimitMs,
    maxAllocBytes,
    ...emptyTally(),
    totalMs: 0,
    maxCaseMs: 0,
    maxAllocGrowthBytes: 0,
    maxReadBytes: 0,
    maxFileBytes: 0,
    byMutation: Object.fromEntries(MUTATION_NAMES.map((m) => [m, emptyTally()])),
    findings: [],
  };
  const start = performance.now();
  try {
    for (let c = firstCase; c < firstCase + options.cases; c++) {
      const rng = mulberry32(mixSeed(options.seed, c));
      const mutation = MUTATION_NAMES[c % MUTATION_NAMES.length];
      const built = buildValid(rng);
      const { bytes, valid } = MUTATIONS[mutation](rng, built);
      writeFileSync(file, bytes);
      report.maxFileBytes = Math.max(report.maxFileBytes, bytes.length);

      let outcome: FuzzOutcome = "ok";
      let message = "";
      let readBytes = 0;
      const mem0 = memNow();
      let memGrowth = 0;
      const t0 = performance.now();
      try {
        const set = openSafetensors(file);
        try {
          const held: unknown[] = [];
          for (const info of set.tensors) {
            const raw = set.readRaw(info.name);
            const f = set.readF32(info.name);
            readBytes += raw.length + f.byteLength;
            held.push(raw, f);
            if (valid) {
              const want = built.expected.get(info.name);
              if (!want || want.length !== f.length || want.some((x, i) => x !== f[i])) {
                outcome = "mismatch";
                message = `tensor ${JSON.stringify(info.name)} read back differently`;
              }
            }
          }
          if (valid && set.tensors.length !== built.expected.size) {
            outcome = "mismatch";
            message = `expected ${built.expected.size} tensors, read ${set.tensors.length}`;
          }
          memGrowth = memNow() - mem0;
          held.length = 0;
        } finally {
          set.close();
        }
      } catch (err) {
        if (err instanceof FileFormatError) outcome = "formatError";
        else {
          outcome = "crash";
          message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        }
        memGrowth = Math.max(memGrowth, memNow() - mem0);
      }
      const ms = performance.now() - t0;
      if (ms > timeLimitMs && outcome !== "crash") {
        outcome = "hang";
        message = `took ${ms.toFixed(0)} ms`;
      } else if (memGrowth > maxAllocBytes && outcome !== "crash") {
        outcome = "overAlloc";
        message = `memory grew by ${memGrowth} bytes`;
      }
      report.maxCaseMs = Math.max(report.maxCaseMs, ms);
      report.maxAllocGrowthBytes = Math.max(report.maxAllocGrowthBytes, memGrowth);
      report.maxReadBytes = Math.max(report.maxReadBytes, readBytes);
      for (const t of [report as FuzzTally, report.byMutation[mutation]]) {
        t.cases++;
        t[outcome]++;
      }
      if (outcome !== "ok" && outcome !== "formatError" && report.findings.length < 20)
        report.findings.push({ case: c, mutation, outcome, message });
      options.onProgress?.(c - firstCase + 1, options.cases);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  report.totalMs = Math.round(performance.now() - start);
  report.maxCaseMs = Math.round(report.maxCaseMs * 100) / 100;
  return report;
}
