// Native kernels: ggml's own CPU matmul (llamafile sgemm, AVX-512 on this CPU) from the prebuilt shared libraries
// that ship inside node-llama-cpp (@node-llama-cpp/<platform>/bins/...), called through the koffi FFI package.
// No C of our own, nothing compiled: the libraries are the ones llama.cpp itself runs with.
//
// Memory: exactly the heap of ./fast.ts (the same FastKernels instance): ggml tensors are pointed at heap
// addresses (ggml_backend_cpu_buffer_from_ptr over the whole heap + ggml_backend_tensor_alloc at an address),
// so heap views are used in place and the engine's rules from fast.ts apply unchanged. Arguments outside the heap,
// or not 32-byte aligned (ggml's TENSOR_ALIGNMENT), are staged through temporary heap blocks.
//
// What runs natively: products with f32 weights (all three). f16/bf16/q8_0 weights go to the WebAssembly kernels,
// because ggml would round the activations to the weight's type (f16/bf16/q8_0) and break the contract's f32
// numerics. Each product builds a tiny ggml graph (a few dozen FFI calls, ~20-40 µs), computed on a persistent
// ggml threadpool with `threads` threads:
//   matmul:               out = mul_mat(W, x)
//   matmulBackwardInput:  dx = dx + mul_mat(cont(Wᵀ), dy)          (Wᵀ materialised per call in a temp block)
//   matmulBackwardWeight: dW = dW + mul_mat(cont(xᵀ), cont(dyᵀ))   (transposes in temp blocks)
//
// Requires the npm package koffi (loaded lazily with require: `await createGgmlKernels()` throws a clear error
// when it or the libraries are missing; callers fall back to the WebAssembly kernels).

import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { Matrix } from "../types.js";
import { getFastKernels, type FastKernels } from "./fast.js";
import type { Kernels } from "./index.js";

const GGML_TYPE_F32 = 0;
const TENSOR_ALIGN = 32;
const CTX_BYTES = 256 * 1024;
// struct ggml_threadpool_params (ggml.h): bool cpumask[GGML_MAX_N_THREADS = 512]; int n_threads; enum prio;
// uint32_t poll; bool strict_cpu; bool paused. 528 bytes; `poll` at byte 520.
const TP_PARAMS_BYTES = 528;
const TP_POLL_OFFSET = 520;
// Products smaller than this go to the WebAssembly kernels: a ggml graph costs a few dozen FFI calls (~20-40 µs),
// and decoding (a handful of rows) is faster there on prepacked weights.
const DEFAULT_MIN_ROWS = 16;
const DEFAULT_MIN_MACS = 1 << 21;
const MIN_NATIVE_WEIGHT_GRAD = 1 << 16;

// A minimal view of koffi's API (the package ships its own types; this keeps the build free of the dependency).
interface KoffiLib {
  func(decl: string): (...args: unknown[]) => unknown;
}
interface Koffi {
  load(path: string): KoffiLib;
  struct(name: string, def: Record<string, string>): unknown;
  address(p: unknown): bigint;
}

function loadKoffi(): Koffi {
  const require = createRequire(import.meta.url);
  try {
    return require("koffi") as Koffi;
  } catch (e) {
    throw new Error(`ggml kernels need the npm package koffi: ${(e as Error).message}`, { cause: e });
  }
}

/** The folder of node-llama-cpp's prebuilt CPU libraries for this platform. */
export function findGgmlLibDir(): string {
  const require = createRequire(import.meta.url);
  const plat = `${process.platform}-${process.arch}`;
  const entry = require.resolve(`@node-llama-cpp/${plat}`); // <pkg>/dist/index.js
  const dir = path.join(path.dirname(entry), "..", "bins", plat);
  if (!existsSync(path.join(dir, "libggml-base.so"))) throw new Error(`no ggml libraries in ${dir}`);
  return dir;
}

/** The best CPU variant library for this machine (by /proc/cpuinfo flags). */
function pickCpuVariant(dir: string): string {
  let flags = "";
  try {
    flags = readFileSync("/proc/cpuinfo", "utf8").match(/^flags\s*:(.*)$/m)?.[1] ?? "";
  } catch {
    // not Linux: fall through to the generic variant
  }
  const has = (f: string) => new RegExp(`\\b${f}\\b`).test(flags);
  const order: [string, string[]][] = [
    ["zen4", ["avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx2", "fma", "f16c"]],
    ["icelake", ["avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx2", "fma", "f16c"]],
    ["skylakex", ["avx512f", "avx512bw", "avx512vl", "avx2", "fma", "f16c"]],
    ["haswell", ["avx2", "fma", "f16c"]],
    ["sandybridge", ["avx"]],
    ["sse42", ["sse4_2"]],
    ["x64", []],
  ];
  for (const [name, need] of order) {
    const file = path.join(dir, `libggml-cpu-${name}.so`);
    if (need.every(has) && existsSync(file)) return file;
  }
  throw new Error(`no usable libggml-cpu variant in ${dir}`);
}

export interface GgmlInitOptions {
  threads?: number;
  /** Products with fewer rows go to the WebAssembly kernels (default 16). */
  minRows?: number;
  /** Products with fewer multiply-adds go to the WebAssembly kernels (default 2^21). */
  minMacs?: number;
  /** Heap owner (default: the process-wide FastKernels). */
  heap?: FastKernels;
}

/** Graph construction helpers handed to GgmlKernels.compute (tensors are opaque koffi pointers). */
interface GraphBuilder {
  /** An f32 tensor ne0 x ne1 (ne0 contiguous) at heap byte address `at`. */
  tensor(ne0: number, ne1: number, at: number): unknown;
  /** Places an op's result at heap address `at`. */
  at(op: unknown, at: number): unknown;
  /** Places an op's result in a temp block of `bytes` (freed after the compute). */
  temp(op: unknown, bytes: number): unknown;
  transposed(t: unknown): unknown;
  mulMat(a: unknown, b: unknown): unknown;
  add(a: unknown, b: unknown): unknown;
  cont(t: unknown): unknown;
}

interface Bindings {
  koffi: Koffi;
  f: Record<string, (...args: unknown[]) => unknown>;
  libFile: string;
}
let bindings: Bindings | undefined;

/** Loads koffi and the libraries once per process (koffi type names are process-global). */
function bind(): Bindings {
  if (bindings) return bindings;
  const koffi = loadKoffi();
  const dir = findGgmlLibDir();
  const base = koffi.load(path.join(dir, "libggml-base.so"));
  const libFile = pickCpuVariant(dir);
  const cpu = koffi.load(libFile);
  koffi.struct("buckle_ggml_init_params", { mem_size: "size_t", mem_buffer: "void *", no_alloc: "bool" });
  const decl: [KoffiLib, string, string][] = [
    [base, "init", "void * ggml_init(buckle_ggml_init_params)"],
    [base, "free", "void ggml_free(void *)"],
    [base, "new2d", "void * ggml_new_tensor_2d(void *, int, int64_t, int64_t)"],
    [base, "mul_mat", "void * ggml_mul_mat(void *, void *, void *)"],
    [base, "add", "void * ggml_add(void *, void *, void *)"],
    [base, "transpose", "void * ggml_transpose(void *, void *)"],
    [base, "cont", "void * ggml_cont(void *, void *)"],
    [base, "new_graph", "void * ggml_new_graph(void *)"],
    [base, "expand", "void ggml_build_forward_expand(void *, void *)"],
    [base, "buf_free", "void ggml_backend_buffer_free(void *)"],
    [base, "buf_base", "void * ggml_backend_buffer_get_base(void *)"],
    [base, "tensor_alloc", "int ggml_backend_tensor_alloc(void *, void *, uint64_t)"],
    [base, "compute", "int ggml_backend_graph_compute(void *, void *)"],
    [base, "view_init", "int ggml_backend_view_init(void *)"],
    [base, "backend_free", "void ggml_backend_free(void *)"],
    [base, "tp_params_init", "void ggml_threadpool_params_init(void *, int)"],
    [cpu, "buf_from_ptr", "void * ggml_backend_cpu_buffer_from_ptr(uint64_t, size_t)"],
    [cpu, "buf_from_view", "void * ggml_backend_cpu_buffer_from_ptr(void *, size_t)"],
    [cpu, "cpu_init", "void * ggml_backend_cpu_init()"],
    [cpu, "set_n_threads", "void ggml_backend_cpu_set_n_threads(void *, int)"],
    [cpu, "set_threadpool", "void ggml_backend_cpu_set_threadpool(void *, void *)"],
    [cpu, "tp_new", "void * ggml_threadpool_new(void *)"],
    [cpu, "tp_free", "void ggml_threadpool_free(void *)"],
  ];
  const f: Record<string, (...args: unknown[]) => unknown> = {};
  for (const [lib, key, d] of decl) f[key] = lib.func(d);
  bindings = { koffi, f, libFile };
  return bindings;
}

export class GgmlKernels implements Kernels {
  readonly name = "fast-ggml";
  readonly threads: number;
  readonly heap: FastKernels;
  private readonly f: Record<string, (...args: unknown[]) => unknown>;
  private readonly koffi: Koffi;
  private readonly backend: unknown;
  private readonly threadpool: unknown;
  private readonly heapBase: number;
  private gbuf: unknown = null;
  private disposed = false;
  private gbufBytes = 0;
  private readonly transposed = new Map<number, { id: number; at: number; bytes: number }>();
  private readonly minRows: number;
  private readonly minMacs: number;
  readonly libFile: string;

  constructor(opts: GgmlInitOptions = {}) {
    this.heap = opts.heap ?? getFastKernels();
    this.threads = Math.max(1, Math.floor(opts.threads ?? 2));
    this.minRows = Math.max(1, opts.minRows ?? DEFAULT_MIN_ROWS);
    this.minMacs = Math.max(0, opts.minMacs ?? DEFAULT_MIN_MACS);
    const bd = bind();
    this.koffi = bd.koffi;
    this.f = bd.f;
    this.libFile = bd.libFile;
    this.backend = this.f.cpu_init();
    if (!this.backend) throw new Error("ggml_backend_cpu_init failed");
    this.f.set_n_threads(this.backend, this.threads);
    const params = new Uint8Array(1024); // over-sized: struct ggml_threadpool_params is 528 bytes in this ggml
    this.f.tp_params_init(params, this.threads);
    const pv = new DataView(params.buffer);
    if (pv.getInt32(TP_PARAMS_BYTES - 16, true) !== this.threads)
      throw new Error("ggml_threadpool_params has an unexpected layout (n_threads not at byte 512)");
    // No polling: between products the pool's threads sleep instead of spinning on the cores that the
    // WebAssembly workers and the calling thread need for everything else.
    pv.setUint32(TP_POLL_OFFSET, 0, true);
    this.threadpool = this.f.tp_new(params);
    if (this.threadpool) {
      this.f.set_threadpool(this.backend, this.threadpool);
      // native threads must be gone before the process tears down the libraries
      process.once("exit", this.onExit);
    }
    // heap base address: a ggml buffer over the heap's first page tells it
    const probe = new Uint8Array(this.heap.buf(), 0, 64);
    const b = this.f.buf_from_view(probe, 64);
    this.heapBase = Number(this.koffi.address(this.f.buf_base(b)));
    this.f.buf_free(b);
  }

  private readonly onExit = (): void => this.dispose();

  /** Ends the threadpool (call once; also done at process exit). The object is unusable afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    process.off("exit", this.onExit);
    if (this.gbuf) this.f.buf_free(this.gbuf);
    this.gbuf = null;
    for (const [, t] of this.transposed) this.heap.freeBytes(t.at);
    this.transposed.clear();
    this.f.backend_free(this.backend);
    if (this.threadpool) this.f.tp_free(this.threadpool);
  }

  private heapBuffer(): unknown {
    const bytes = this.heap.buf().byteLength;
    if (this.gbufBytes !== bytes) {
      if (this.gbuf) this.f.buf_free(this.gbuf);
      this.gbuf = this.f.buf_from_ptr(this.heapBase, bytes);
      this.gbufBytes = bytes;
    }
    return this.gbuf;
  }

  /**
   * Builds a graph with `build` (its `b` helper creates f32 tensors and ops placed at heap addresses, or in temp
   * blocks), points every tensor at its heap address, computes it, and releases the temp blocks.
   */
  private compute(build: (b: GraphBuilder) => unknown): void {
    const ctx = this.f.init({ mem_size: CTX_BYTES, mem_buffer: null, no_alloc: true });
    if (!ctx) throw new Error("ggml_init failed");
    const temps: number[] = [];
    const placed: [unknown, number][] = [];
    const views: unknown[] = [];
    const f = this.f;
    const heap = this.heap;
    const b: GraphBuilder = {
      tensor: (ne0, ne1, at) => {
        const t = f.new2d(ctx, GGML_TYPE_F32, ne0, ne1);
        placed.push([t, at]);
        return t;
      },
      at: (op, at) => {
        placed.push([op, at]);
        return op;
      },
      temp: (op, bytes) => {
        const at = heap.allocBytes(bytes);
        temps.push(at);
        placed.push([op, at]);
        return op;
      },
      transposed: (t) => {
        const v = f.transpose(ctx, t);
        views.push(v);
        return v;
      },
      mulMat: (a, x) => f.mul_mat(ctx, a, x),
      add: (a, x) => f.add(ctx, a, x),
      cont: (t) => f.cont(ctx, t),
    };
    try {
      const out = build(b);
      const g = f.new_graph(ctx);
      f.expand(g, out);
      const buf = this.heapBuffer(); // after the temp blocks: the heap may have grown
      for (const [t, at] of placed) {
        if (f.tensor_alloc(buf, t, this.heapBase + at) !== 0) throw new Error("ggml tensor_alloc failed");
      }
      for (const v of views) if (f.view_init(v) !== 0) throw new Error("ggml view_init failed");
      if (f.compute(this.backend, g) !== 0) throw new Error("ggml graph compute failed");
    } finally {
      f.free(ctx);
      for (const at of temps) heap.freeBytes(at);
    }
  }

  /** True when the product of `m` rows by `w` goes to ggml (f32 weights, large enough to pay a graph). */
  private native(w: Matrix, m: number): boolean {
    return w.type === "f32" && m >= this.minRows && m * w.rows * w.cols >= this.minMacs;
  }

  /**
   * Heap address of Wᵀ (cols x rows, contiguous) for a frozen weight (one with a prepacked copy in the heap),
   * made once by ggml and kept while the weight stays packed; undefined for a weight that is not frozen.
   */
  private transposedOf(w: Matrix): number | undefined {
    const key = w.data.byteOffset;
    const id = this.heap.inHeap(w.data) ? this.heap.prepackId(w) : undefined;
    const have = this.transposed.get(key);
    if (have && have.id === id) return have.at;
    if (have) {
      this.transposed.delete(key);
      this.heap.freeBytes(have.at);
    }
    if (id === undefined || key % TENSOR_ALIGN !== 0) return undefined;
    const bytes = w.rows * w.cols * 4;
    const at = this.heap.allocBytes(bytes);
    try {
      this.compute((b) => b.at(b.cont(b.transposed(b.tensor(w.cols, w.rows, key))), at));
    } catch (e) {
      this.heap.freeBytes(at);
      throw e;
    }
    this.transposed.set(key, { id, at, bytes });
    return at;
  }

  /** Heap bytes held by cached transposed weights. */
  get transposedBytes(): number {
    let n = 0;
    for (const [, t] of this.transposed) n += t.bytes;
    return n;
  }

  matmul = (out: Float32Array, x: Float32Array, w: Matrix, m: number): void => {
    if (!this.native(w, m)) return this.heap.matmul(out, x, w, m);
    const { rows, cols } = w;
    const h = this.heap;
    const staged: number[] = [];
    try {
      const xp = h.stage(x, m * cols * 4, staged, true, TENSOR_ALIGN);
      const wp = h.stage(w.data, rows * cols * 4, staged, true, TENSOR_ALIGN);
      const op = h.stage(out, m * rows * 4, staged, false, TENSOR_ALIGN);
      this.compute((b) => b.at(b.mulMat(b.tensor(cols, rows, wp), b.tensor(cols, m, xp)), op));
      h.unstage(out, op, m * rows * 4);
    } finally {
      for (const at of staged) h.freeBytes(at);
    }
  };

  matmulBackwardInput = (dx: Float32Array, dy: Float32Array, w: Matrix, m: number): void => {
    if (!this.native(w, m)) return this.heap.matmulBackwardInput(dx, dy, w, m);
    const { rows, cols } = w;
    const h = this.heap;
    const staged: number[] = [];
    try {
      const wt = this.transposedOf(w);
      const dyp = h.stage(dy, m * rows * 4, staged, true, TENSOR_ALIGN);
      const dxp = h.stage(dx, m * cols * 4, staged, true, TENSOR_ALIGN);
      if (wt !== undefined) {
        // dx += (Wᵀ)ᵀ-product: mul_mat over the cached transposed copy, whose rows are W's columns
        this.compute((b) => {
          const mm = b.temp(b.mulMat(b.tensor(rows, cols, wt), b.tensor(rows, m, dyp)), m * cols * 4);
          return b.at(b.add(b.tensor(cols, m, dxp), mm), dxp);
        });
      } else {
        const wp = h.stage(w.data, rows * cols * 4, staged, true, TENSOR_ALIGN);
        this.compute((b) => {
          const wtT = b.temp(b.cont(b.transposed(b.tensor(cols, rows, wp))), rows * cols * 4);
          const mm = b.temp(b.mulMat(wtT, b.tensor(rows, m, dyp)), m * cols * 4);
          return b.at(b.add(b.tensor(cols, m, dxp), mm), dxp);
        });
      }
      h.unstage(dx, dxp, m * cols * 4);
    } finally {
      for (const at of staged) h.freeBytes(at);
    }
  };

  matmulBackwardWeight = (
    dw: Float32Array,
    dy: Float32Array,
    x: Float32Array,
    m: number,
    rows: number,
    cols: number,
  ): void => {
    if (m === 0 || rows === 0 || cols === 0) return;
    // Both operands need a transposed copy here, so only large weight gradients (full fine-tuning) pay for ggml;
    // LoRA's thin ones stay on the WebAssembly kernels.
    if (m < this.minRows || rows * cols < MIN_NATIVE_WEIGHT_GRAD || m * rows * cols < this.minMacs)
      return this.heap.matmulBackwardWeight(dw, dy, x, m, rows, cols);
    const h = this.heap;
    const staged: number[] = [];
    try {
      const dyp = h.stage(dy, m * rows * 4, staged, true, TENSOR_ALIGN);
      const xp = h.stage(x, m * cols * 4, staged, true, TENSOR_ALIGN);
      const dwp = h.stage(dw, rows * cols * 4, staged, true, TENSOR_ALIGN);
      this.compute((b) => {
        const xt = b.temp(b.cont(b.transposed(b.tensor(cols, m, xp))), m * cols * 4);
        const dyt = b.temp(b.cont(b.transposed(b.tensor(rows, m, dyp))), m * rows * 4);
        const mm = b.temp(b.mulMat(xt, dyt), rows * cols * 4);
        return b.at(b.add(b.tensor(cols, rows, dwp), mm), dwp);
      });
      h.unstage(dw, dwp, rows * cols * 4);
    } finally {
      for (const at of staged) h.freeBytes(at);
    }
  };
}

/** Loads koffi and node-llama-cpp's ggml libraries; throws when either is missing. */
export function createGgmlKernels(opts: GgmlInitOptions = {}): GgmlKernels {
  return new GgmlKernels(opts);
}
