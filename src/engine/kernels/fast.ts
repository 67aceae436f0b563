// Fast kernels: WebAssembly SIMD GEMMs (emitted as bytes at run time, no build step, no dependency) on a shared
// WebAssembly.Memory, run by the calling thread plus worker_threads (2 threads by default).
//
// ## Kernel design
// Every product is one GEMM  C[M][N] (+)= A[M][K] · B[K][N]  with A read in place through (row, k) strides and B
// packed, per thread, into NR=8-column panels of KC<=256 rows (GotoBLAS style: f16/bf16/q8_0 weights are
// dequantized while packing, so the inner loop is always f32). The register tile is 4 rows x 8 columns
// (8 f32x4 accumulators) with relaxed-simd FMA when V8 supports it (Node 20 needs --experimental-wasm-relaxed-simd:
// set at run time with v8.setFlagsFromString before the module is compiled). Threads split the output columns.
//   matmul:               M=m, N=w.rows, K=w.cols;  A=x (row stride cols), B(t,j)=W[j][t]        overwrite out
//   matmulBackwardInput:  M=m, N=w.cols, K=w.rows;  A=dy (row stride rows), B(t,j)=W[t][j]      accumulate dx
//   matmulBackwardWeight: M=rows, N=cols, K=m;      A(i,t)=dy[t][i] (transposed read), B=x    accumulate dw
// (accumulate/overwrite follows the Kernels contract in ./index.ts.)
//
// ## Memory ownership: how the engine avoids copies
// The kernels can only read and write the shared WebAssembly.Memory (the "kernel heap", up to 4 GiB).
//  - Any Float32Array / Uint16Array / Uint8Array argument that is a view of the heap is used in place.
//  - Any other argument is copied into a temporary heap block for the call (and outputs copied back). This is
//    always correct, but for weights it costs a pass over the whole matrix on every call.
// So the engine should:
//  1. Place frozen weights once: `w = fastKernels.place(w)` (or build them with `allocF32/allocU16/allocU8`) and
//     keep only the returned Matrix (the original buffer can be dropped). This matters most: a weight copy per
//     call costs about as much as the whole product when m is small (generation).
//  2. Allocate long-lived activations, gradients and LoRA buffers with `allocF32(n)` as well (the model's
//     activation arena), so scoring and training never copy. Copying an activation is O(m·k) next to the
//     O(m·n·k) product (<1% for these shapes), so arrays from elsewhere still work at nearly full speed.
//  3. Free heap views with `free(view)` when done (views of the heap must not be used after free; the heap never
//     moves, growing it keeps old views valid because the memory is shared).
// Views returned by alloc* are ordinary typed arrays (their .buffer is a SharedArrayBuffer); reading and writing
// them from TypeScript is as fast as any Float32Array.
//
// ## Native variant
// ./fast-ggml.ts runs the f32 products through ggml's own kernels (node-llama-cpp's prebuilt libraries, via the
// koffi FFI package) on this same heap, with the same rules; it is about 1.3-1.6x faster per thread for the
// forward product. Other weight types there fall back to these kernels.
//
// ## Threads
// `await fastKernels.init({ threads })` (default 2; 1 = no workers). Without init the kernels run on the calling
// thread only. The calling thread works too, then blocks (Atomics.wait) until the workers are done, so the API
// stays synchronous. Small products (< ~2 MFLOP) run on the calling thread alone. `await dispose()` ends workers.
// Work sharing: see CTL in ./wasm/driver.ts (threads claim work items of a published job; a claim pins the job).
// Watchdog: a worker that throws, or a job that makes no progress for `stallSeconds`, makes the product throw a
// BuckleError naming the job (instead of blocking forever); the workers are then dropped and the kernels go on
// with the calling thread alone until the next init().

import v8 from "node:v8";
import { Worker } from "node:worker_threads";
import { BuckleError } from "../../util/errors.js";
import type { Matrix, MatrixType } from "../types.js";
import type { Kernels } from "./index.js";
import {
  CTL,
  ELEM,
  elemItem,
  ERROR_SLOT_BYTES,
  F64_ARG,
  gemmItem,
  KIND_PACKED,
  planJob,
  runItems,
  type KernelExports,
} from "./wasm/driver.js";
import { gemmModuleBytes } from "./wasm/gemm-module.js";

const PAGE = 65536;
const MAX_PAGES = 65536; // 4 GiB
const KC = 256;
const NC = 512;
const MC = 512;
// register tile rows: 4 x 8 columns = 8 f32x4 accumulators; 5 and 6 rows measured slower (spills in V8 11.3)
const MR = 4;
const SCRATCH_BYTES = KC * NC * 4 + (MC + MR) * KC * 4;
const ALIGN = 64;
const MIN_PARALLEL_FLOPS = 2e6;
// A prepacked product with fewer rows is memory-bound: split it across threads when its weight is this large.
const MIN_PARALLEL_PACKED_BYTES = 256 * 1024;
const NRP = 8; // panel width of the kernels (gemm-module NR)
const DEFAULT_PREPACK_BYTES = 2 * 1024 ** 3;
// The caller's wait for the workers wakes at least this often to check for a failed or stalled worker.
const WATCH_SLICE_MS = 1000;
// Longest a job may go without any thread finishing an item or a kc block before it counts as stalled. One kc
// block is at most MC x KC x NC multiply-adds (~67 M): milliseconds, even on a machine shared by many processes.
const DEFAULT_STALL_SECONDS = 120;
const PACK_NAMES = [
  "f32 nk",
  "f32 kn",
  "f16 nk",
  "f16 kn",
  "bf16 nk",
  "bf16 kn",
  "q8_0 nk",
  "q8_0 kn",
  "prepacked",
];
const ELEM_NAMES: Record<number, string> = {
  [ELEM.SWIGLU]: "swiglu",
  [ELEM.SWIGLU_BACKWARD]: "swigluBackward",
  [ELEM.LOGSUMEXP_ROWS]: "logSumExpRows",
  [ELEM.CROSS_ENTROPY_ROWS]: "crossEntropyRows",
};

/** A frozen weight packed once into the kernels' panel layout (see prepack). */
interface Packed {
  /** Serial number of this packing (never reused in a process): tells a packing from a later one at the same address. */
  id: number;
  at: number;
  bytes: number;
  type: MatrixType;
  rows: number;
  cols: number;
}

let packSerial = 0;

const PACK_INDEX: Record<MatrixType, number> = { f32: 0, f16: 2, bf16: 4, q8_0: 6 };

export interface FastInitOptions {
  /** Threads taking part in each product, the calling one included (default 2). */
  threads?: number;
  /** Use relaxed-simd FMA when available (default true). */
  relaxed?: boolean;
  /** Most heap bytes spent on prepacked weights (default 2 GiB; 0 turns prepacking off). */
  prepackBytes?: number;
  /** Seconds a multi-threaded job may make no progress before it throws (default 120). */
  stallSeconds?: number;
}

type HeapView = Float32Array | Uint16Array | Uint8Array;

function relaxedSupported(): boolean {
  try {
    v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
  } catch {
    // ignore: validation below decides
  }
  // (func (param v128 v128 v128) (result v128) local.get 0 local.get 1 local.get 2 f32x4.relaxed_madd)
  const probe = new Uint8Array([
    0, 97, 115, 109, 1, 0, 0, 0, 1, 8, 1, 0x60, 3, 0x7b, 0x7b, 0x7b, 1, 0x7b, 3, 2, 1, 0, 10, 13, 1, 11, 0,
    0x20, 0, 0x20, 1, 0x20, 2, 0xfd, 0x85, 0x02, 0x0b,
  ]);
  return WebAssembly.validate(probe);
}

/** Row bytes of a matrix in its storage type. */
function rowBytes(type: MatrixType, cols: number): number {
  switch (type) {
    case "f32":
      return cols * 4;
    case "f16":
    case "bf16":
      return cols * 2;
    case "q8_0":
      return (cols / 32) * 34;
  }
}

// A worker sleeps on SEQ (waiting on the value it last read, so a bump in between is never lost), then claims work
// items until none is left. An exception (a wasm trap, say) is written to the worker's slot of the error buffer,
// published in FAILED and signalled on DONEI, where the caller waits; the worker then ends.
const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const { module, memory, ctl, errors, rank } = workerData;
const inst = new WebAssembly.Instance(module, { env: { memory } });
const gemmItem = (0, eval)("(" + workerData.gemmItem + ")");
const elemItem = (0, eval)("(" + workerData.elemItem + ")");
const runItems = (0, eval)("(" + workerData.runItems + ")");
const i32 = new Int32Array(ctl);
const u32 = new Uint32Array(ctl);
let seq = Atomics.load(i32, ${CTL.SEQ});
Atomics.add(i32, ${CTL.READY}, 1);
Atomics.notify(i32, ${CTL.READY});
for (;;) {
  Atomics.wait(i32, ${CTL.SEQ}, seq);
  seq = Atomics.load(i32, ${CTL.SEQ});
  if (Atomics.load(i32, ${CTL.QUIT}) !== 0) break;
  try {
    runItems(inst.exports, u32, rank, memory, gemmItem, elemItem);
  } catch (e) {
    const text = new TextEncoder().encode(String((e && e.stack) || e));
    const at = rank * ${ERROR_SLOT_BYTES};
    const n = Math.min(text.length, ${ERROR_SLOT_BYTES} - 4);
    new Uint8Array(errors, at + 4, n).set(text.subarray(0, n));
    new Int32Array(errors, at, 1)[0] = n;
    Atomics.compareExchange(i32, ${CTL.FAILED}, 0, rank);
    Atomics.notify(i32, ${CTL.DONEI});
    break;
  }
}
`;

/** The WebAssembly SIMD kernel set with its heap. One per process is enough: use `fastKernels`. */
export class FastKernels implements Kernels {
  readonly name = "fast-wasm";
  /** The Kernels contract's heap: this kernel set owns it. */
  get heap(): FastKernels {
    return this;
  }
  readonly relaxed: boolean;
  readonly memory: WebAssembly.Memory;
  private readonly module: WebAssembly.Module;
  private readonly ex: KernelExports;
  private readonly buffers = new Set<ArrayBufferLike>();
  // the control block shared with the workers (see CTL); replaced when workers are dropped after a failure
  private ctlBuf = new SharedArrayBuffer(CTL.WORDS * 4);
  private ctl32 = new Int32Array(this.ctlBuf);
  private ctlU = new Uint32Array(this.ctlBuf);
  private f64ctl = new Float64Array(this.ctlBuf);
  private slot = new BigUint64Array(this.ctlBuf);
  private errorsBuf = new SharedArrayBuffer(ERROR_SLOT_BYTES);
  private workers: Worker[] = [];
  private nthreads = 1;
  private job = 0;
  private stallMs = DEFAULT_STALL_SECONDS * 1000;
  private scratch = 0;
  private scratchThreads = 0;
  // allocator: free blocks sorted by address, live blocks by address -> size
  private free_: { at: number; size: number }[] = [];
  private readonly live = new Map<number, number>();
  private top = PAGE; // first 64 KiB unused (null page)
  private highWater = PAGE; // memory past this was never handed out (still zero)
  // prepacked weights by the heap address of their data
  private readonly packed = new Map<number, Packed>();
  private packedBytes = 0;
  private prepackLimit = DEFAULT_PREPACK_BYTES;

  constructor(opts: { relaxed?: boolean } = {}) {
    this.relaxed = (opts.relaxed ?? true) && relaxedSupported();
    this.memory = new WebAssembly.Memory({ initial: 16, maximum: MAX_PAGES, shared: true });
    this.buf();
    this.module = new WebAssembly.Module(gemmModuleBytes(this.relaxed, MR, 16, MAX_PAGES));
    const inst = new WebAssembly.Instance(this.module, { env: { memory: this.memory } });
    this.ex = inst.exports as unknown as KernelExports;
    this.ensureScratch(1);
  }

  get threads(): number {
    return this.nthreads;
  }

  /** Starts threads-1 workers (default 2 threads). Safe to call again with another count. */
  async init(opts: FastInitOptions = {}): Promise<void> {
    const threads = Math.max(1, Math.floor(opts.threads ?? 2));
    if (opts.prepackBytes !== undefined) this.prepackLimit = Math.max(0, opts.prepackBytes);
    if (opts.stallSeconds !== undefined) this.stallMs = Math.max(0.001, opts.stallSeconds) * 1000;
    await this.dispose();
    this.ensureScratch(threads);
    this.newControl(threads);
    const code = {
      gemmItem: gemmItem.toString(),
      elemItem: elemItem.toString(),
      runItems: runItems.toString(),
    };
    let startError: unknown;
    for (let r = 1; r < threads; r++) {
      const w = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: {
          module: this.module,
          memory: this.memory,
          ctl: this.ctlBuf,
          errors: this.errorsBuf,
          rank: r,
          ...code,
        },
      });
      w.unref();
      // an uncaught error (the worker catches its job errors) would otherwise be thrown by the event emitter
      w.on("error", (e) => (startError ??= e));
      this.workers.push(w);
    }
    // wait until every worker is listening
    const deadline = Date.now() + 30000;
    while (Atomics.load(this.ctl32, CTL.READY) < threads - 1) {
      if (startError !== undefined || Date.now() > deadline) {
        this.dropWorkers();
        throw new BuckleError(
          `fast kernels: ${threads - 1} worker threads did not start` +
            (startError === undefined ? " within 30 s" : `: ${String(startError)}`),
          { hint: "run with one thread (--threads 1) or report this", cause: startError },
        );
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    this.nthreads = threads;
  }

  /** A fresh control block (and error buffer) for `threads` threads. */
  private newControl(threads: number): void {
    this.ctlBuf = new SharedArrayBuffer(CTL.WORDS * 4);
    this.ctl32 = new Int32Array(this.ctlBuf);
    this.ctlU = new Uint32Array(this.ctlBuf);
    this.f64ctl = new Float64Array(this.ctlBuf);
    this.slot = new BigUint64Array(this.ctlBuf);
    this.errorsBuf = new SharedArrayBuffer(ERROR_SLOT_BYTES * Math.max(1, threads));
  }

  /**
   * Abandons the workers after a failure: tells them to quit, terminates them, and moves the calling thread to a
   * fresh control block and packing scratch, so a worker still running (hung, or finishing a claimed item) can
   * neither count into later jobs nor overwrite their scratch. The old scratch is deliberately not freed.
   */
  private dropWorkers(): void {
    const old = this.workers;
    this.workers = [];
    this.nthreads = 1;
    Atomics.store(this.ctl32, CTL.QUIT, 1);
    Atomics.add(this.ctl32, CTL.SEQ, 1);
    Atomics.notify(this.ctl32, CTL.SEQ);
    for (const w of old) w.terminate().catch(() => undefined);
    this.newControl(1);
    this.scratch = 0;
    this.scratchThreads = 0;
    this.ensureScratch(1);
  }

  /** Ends the workers (the heap and its views stay valid). */
  async dispose(): Promise<void> {
    if (this.workers.length === 0) return;
    Atomics.store(this.ctl32, CTL.QUIT, 1);
    Atomics.add(this.ctl32, CTL.SEQ, 1);
    Atomics.notify(this.ctl32, CTL.SEQ);
    await Promise.all(
      this.workers.map((w) => {
        w.ref(); // keep the event loop alive until the worker is gone
        return new Promise((r) => w.once("exit", r));
      }),
    );
    this.workers = [];
    this.nthreads = 1;
  }

  // ---------------------------------------------------------------- heap

  private grow(bytesNeeded: number): void {
    const have = this.memory.buffer.byteLength;
    if (bytesNeeded <= have) return;
    const pages = Math.ceil((bytesNeeded - have) / PAGE);
    const grow = Math.max(pages, Math.min(MAX_PAGES - have / PAGE, Math.ceil(have / PAGE / 4)));
    if (have / PAGE + pages > MAX_PAGES) throw new RangeError("fast kernels: heap would exceed 4 GiB");
    this.memory.grow(grow);
    this.buf();
  }

  /**
   * The heap's current SharedArrayBuffer, recorded as one of the heap's buffers. V8 may replace the buffer object
   * of a shared memory at any time after a growth, so every view this class creates goes through here.
   */
  buf(): SharedArrayBuffer {
    const b = this.memory.buffer as unknown as SharedArrayBuffer;
    this.buffers.add(b);
    return b;
  }

  /**
   * Fill blocks allocated without zeroing with NaNs (bytes 0xff) instead of leaving old contents: a test or a
   * debugging run (BUCKLE_POISON_UNINIT=1) then sees any read of an element nobody wrote.
   */
  poisonUninit = process.env.BUCKLE_POISON_UNINIT === "1";

  /**
   * Allocates `bytes` (64-byte aligned) and returns the byte address. Zero-filled unless `zero` is false: then the
   * contents are whatever the block held before, for outputs the caller writes completely before reading.
   */
  allocBytes(bytes: number, zero = true): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    for (let i = 0; i < this.free_.length; i++) {
      const b = this.free_[i];
      if (b.size >= size) {
        const at = b.at;
        if (b.size === size) this.free_.splice(i, 1);
        else {
          b.at += size;
          b.size -= size;
        }
        this.live.set(at, size);
        if (zero) new Uint8Array(this.buf(), at, size).fill(0);
        else if (this.poisonUninit) new Uint8Array(this.buf(), at, size).fill(0xff);
        return at;
      }
    }
    const at = this.top;
    this.grow(at + size);
    this.top = at + size;
    this.live.set(at, size);
    if (zero && at < this.highWater)
      new Uint8Array(this.buf(), at, Math.min(size, this.highWater - at)).fill(0);
    else if (!zero && this.poisonUninit) new Uint8Array(this.buf(), at, size).fill(0xff);
    this.highWater = Math.max(this.highWater, this.top);
    return at;
  }

  freeBytes(at: number): void {
    const size = this.live.get(at);
    if (size === undefined) throw new Error("fast kernels: free of a block not allocated");
    this.live.delete(at);
    const pk = this.packed.get(at);
    if (pk) {
      this.packed.delete(at);
      this.packedBytes -= pk.bytes;
      this.freeBytes(pk.at);
    }
    // insert sorted, coalesce
    const fl = this.free_;
    let i = 0;
    while (i < fl.length && fl[i].at < at) i++;
    fl.splice(i, 0, { at, size });
    if (i + 1 < fl.length && fl[i].at + fl[i].size === fl[i + 1].at) {
      fl[i].size += fl[i + 1].size;
      fl.splice(i + 1, 1);
    }
    if (i > 0 && fl[i - 1].at + fl[i - 1].size === fl[i].at) {
      fl[i - 1].size += fl[i].size;
      fl.splice(i, 1);
      i--;
    }
    if (fl[i].at + fl[i].size === this.top) {
      this.top = fl[i].at;
      fl.splice(i, 1);
    }
  }

  /** A heap view of n floats, zero-filled unless `zero` is false (see allocBytes). */
  allocF32(n: number, zero = true): Float32Array {
    const at = this.allocBytes(n * 4, zero);
    return new Float32Array(this.buf(), at, n);
  }
  allocU16(n: number): Uint16Array {
    const at = this.allocBytes(n * 2);
    return new Uint16Array(this.buf(), at, n);
  }
  allocU8(n: number): Uint8Array {
    const at = this.allocBytes(n);
    return new Uint8Array(this.buf(), at, n);
  }

  /** Frees a view returned by alloc* (or a Matrix's data returned by place). */
  free(view: HeapView): void {
    if (!this.inHeap(view)) throw new Error("fast kernels: free of a view outside the heap");
    this.freeBytes(view.byteOffset);
  }

  /** True when `view` lives in the kernel heap (used in place by the kernels). */
  inHeap(view: ArrayBufferView): boolean {
    return (
      this.buffers.has(view.buffer) || (view.buffer === this.memory.buffer && this.buffers.has(this.buf()))
    );
  }

  /** A copy of `w` whose data lives in the heap (returns `w` itself when it already does). */
  place(w: Matrix): Matrix {
    if (this.inHeap(w.data)) return w;
    const bytes = w.data.byteLength;
    const at = this.allocBytes(bytes);
    const hb = this.buf();
    new Uint8Array(hb, at, bytes).set(new Uint8Array(w.data.buffer, w.data.byteOffset, bytes));
    const data =
      w.data instanceof Float32Array
        ? new Float32Array(hb, at, w.data.length)
        : w.data instanceof Uint16Array
          ? new Uint16Array(hb, at, w.data.length)
          : new Uint8Array(hb, at, w.data.length);
    return { type: w.type, rows: w.rows, cols: w.cols, data };
  }

  /**
   * Packs a frozen heap weight once into the kernels' f32 panel layout (what every matmul would otherwise redo per
   * call), so matmul skips its pack step: the whole cost of a product when m is small (decoding), a few percent
   * otherwise. The results are the same bits. Declares `w` frozen: call unpack(w) before changing its values.
   * Does nothing (returns false) when w is not in the heap or the prepack budget (init's prepackBytes) is spent.
   */
  prepack(w: Matrix): boolean {
    if (!this.inHeap(w.data) || w.rows === 0 || w.cols === 0) return false;
    this.checkType(w);
    const key = w.data.byteOffset;
    const have = this.packed.get(key);
    if (have && have.type === w.type && have.rows === w.rows && have.cols === w.cols) return true;
    if (have) this.unpack(w);
    const panels = Math.ceil(w.rows / NRP);
    const bytes = panels * NRP * w.cols * 4;
    if (this.packedBytes + bytes > this.prepackLimit) return false;
    const at = this.allocBytes(bytes);
    const K = w.cols;
    const kcb = Math.ceil(K / Math.ceil(K / KC));
    const pack = this.ex[`pack_${w.type}_nk`];
    const ld = rowBytes(w.type, K);
    for (let t0 = 0; t0 < K; t0 += kcb)
      pack(key, ld, 0, w.rows, t0, Math.min(kcb, K - t0), at + t0 * panels * NRP * 4);
    this.packed.set(key, { id: ++packSerial, at, bytes, type: w.type, rows: w.rows, cols: w.cols });
    this.packedBytes += bytes;
    return true;
  }

  /** Drops w's prepacked copy (before its values change); matmul then packs per call again. */
  unpack(w: Matrix): void {
    if (!this.inHeap(w.data)) return;
    const pk = this.packed.get(w.data.byteOffset);
    if (!pk) return;
    this.packed.delete(w.data.byteOffset);
    this.packedBytes -= pk.bytes;
    this.freeBytes(pk.at);
  }

  /**
   * The serial number of `w`'s prepacked copy, or undefined when it has none. A weight with one is declared frozen
   * (see prepack / unpack); the number changes whenever it is unpacked and packed again, so other kernel sets can
   * key their own frozen-weight copies on it.
   */
  prepackId(w: Matrix): number | undefined {
    return this.packedOf(w)?.id;
  }

  /** Heap bytes held by prepacked weights. */
  get prepackedBytes(): number {
    return this.packedBytes;
  }

  private packedOf(w: Matrix): Packed | undefined {
    if (this.packed.size === 0 || !this.inHeap(w.data)) return undefined;
    const pk = this.packed.get(w.data.byteOffset);
    return pk && pk.type === w.type && pk.rows === w.rows && pk.cols === w.cols ? pk : undefined;
  }

  private ensureScratch(threads: number): void {
    if (threads <= this.scratchThreads) return;
    if (this.scratch) this.freeBytes(this.scratch);
    this.scratch = this.allocBytes(SCRATCH_BYTES * threads);
    this.scratchThreads = threads;
  }

  // ---------------------------------------------------------------- operands

  /**
   * Byte address of `view` in the heap, copying it into a temporary block (pushed on `temps`, to be released with
   * freeBytes) when it lives elsewhere or is not aligned to `align` bytes.
   */
  stage(view: HeapView, bytes: number, temps: number[], copyIn: boolean, align = 4): number {
    if (this.inHeap(view) && view.byteOffset % align === 0) return view.byteOffset;
    const at = this.allocBytes(bytes);
    temps.push(at);
    if (copyIn)
      new Uint8Array(this.buf(), at, bytes).set(new Uint8Array(view.buffer, view.byteOffset, bytes));
    return at;
  }

  /** Copies a staged output back to `view` (nothing to do when `view` was used in place). */
  unstage(view: HeapView, at: number, bytes: number): void {
    if (this.inHeap(view) && view.byteOffset === at) return;
    new Uint8Array(view.buffer, view.byteOffset, bytes).set(new Uint8Array(this.buf(), at, bytes));
  }

  private run(
    op: string,
    kind: number,
    args: number[],
    flops: number,
    parallel = flops >= MIN_PARALLEL_FLOPS,
  ): void {
    const u = this.ctlU;
    u[CTL.KIND] = kind;
    for (let i = 0; i < args.length; i++) u[CTL.ARGS + i] = args[i] >>> 0;
    u[CTL.ARGS + 11] = this.scratch;
    u[CTL.ARGS + 12] = SCRATCH_BYTES;
    u[CTL.ARGS + 13] = KC;
    u[CTL.ARGS + 14] = NC;
    u[CTL.ARGS + 15] = MC;
    u[CTL.ARGS + 16] = MR;
    this.runJob(op, kind, parallel);
  }

  /**
   * Publishes the job whose arguments are in the control block, takes part in it and waits until all its work
   * items are done (see CTL in ./wasm/driver.ts for the protocol).
   *
   * The bug this protocol fixes (training runs that hung with every thread waiting, and rare wrong products): the
   * job's parameters used to be read by a worker *before* it had claimed anything, after reading a 16-bit job tag.
   * A worker woken for one job but scheduled late could read the tag of job n and then, while the caller (done
   * with job n on its own) was already writing job n+1's arguments and the plain KIND/NTH words (also for small
   * jobs, which do not wake anyone), a mix of both. Its own item count then differed from the caller's, so (a) it
   * claimed an item past the end of job n (its tag still matched), computed it with torn arguments (garbage written
   * somewhere in the heap, or a wasm trap that killed the worker) and counted it into job n+1's DONEI after the
   * caller had reset it: job n+1 looked done one item early (a product read before it was written: wrong or
   * non-finite results); and (b) its notify fired only when DONEI reached *its* item count, so the caller waiting
   * for its own count was never woken: a hang. Now threads read the parameters only after a claim that pins the
   * job (checked against a 64-bit (job, items) word), so every thread sees exactly the caller's job and count.
   */
  private runJob(op: string, kind: number, parallel: boolean): void {
    const u = this.ctlU;
    u[CTL.KIND] = kind;
    const nth = parallel ? this.nthreads : 1;
    u[CTL.NTH] = nth;
    const items = planJob(u);
    if (items === 0) return;
    // publish: the previous job is finished (nobody holds a claim on it), so the slot is ours to rewrite
    const job = (this.job = (this.job + 1) % 0x100000000);
    const tag = BigInt(job) << 32n;
    Atomics.store(this.ctl32, CTL.DONEI, 0);
    Atomics.store(this.slot, CTL.LIMIT, tag | BigInt(items));
    Atomics.store(this.slot, CTL.CLAIM, tag);
    if (this.workers.length > 0 && nth > 1) {
      Atomics.add(this.ctl32, CTL.SEQ, 1);
      Atomics.notify(this.ctl32, CTL.SEQ);
    }
    try {
      runItems(this.ex, u, 0, this.memory, gemmItem, elemItem);
    } catch (e) {
      // Close the job so nobody starts another item, and wait for the items others hold (all claimed items but
      // ours) before the slot can be reused; then report.
      const label = this.jobLabel(op, job);
      const claimed = Number(Atomics.exchange(this.slot, CTL.CLAIM, tag | BigInt(items)) & 0xffffffffn);
      this.waitItems(Math.min(claimed, items) - 1, op, job);
      throw new BuckleError(`fast kernels: ${label} failed on the calling thread: ${(e as Error).message}`, {
        hint: "this is a bug in the engine or its caller (operands outside the heap?): please report it",
        cause: e,
      });
    }
    this.waitItems(items, op, job);
  }

  /**
   * Blocks until `target` items of the current job are done. Throws a BuckleError (and drops the workers) when a
   * worker reports an exception, or when nothing moves (no item or kc block finished) for stallSeconds: a worker
   * that died or hung while holding an item would otherwise keep the caller waiting forever.
   */
  private waitItems(target: number, op: string, job: number): void {
    const i32 = this.ctl32;
    let seenDone = -1;
    let seenBeat = 0;
    let since = 0;
    for (;;) {
      const done = Atomics.load(i32, CTL.DONEI);
      if (done >= target) return;
      const failed = Atomics.load(i32, CTL.FAILED);
      if (failed !== 0) {
        const at = failed * ERROR_SLOT_BYTES;
        const n = new Int32Array(this.errorsBuf, at, 1)[0];
        const text = new TextDecoder().decode(new Uint8Array(this.errorsBuf, at + 4, n).slice());
        const label = this.jobLabel(op, job);
        this.dropWorkers();
        throw new BuckleError(`fast kernels: worker thread ${failed} failed in ${label}: ${text}`, {
          hint: "the kernels go on with the calling thread alone; please report this with the message above",
        });
      }
      const beat = Atomics.load(i32, CTL.BEAT);
      const now = Date.now();
      if (done !== seenDone || beat !== seenBeat) {
        seenDone = done;
        seenBeat = beat;
        since = now;
      } else if (now - since >= this.stallMs) {
        const label = this.jobLabel(op, job);
        this.dropWorkers();
        throw new BuckleError(
          `fast kernels: ${label} made no progress for ${Math.round((now - since) / 1000)} s ` +
            `(${done} of ${target} work items done): a worker thread died or hung`,
          {
            hint: "the kernels go on with the calling thread alone; retry, or run with one thread (--threads 1)",
          },
        );
      }
      Atomics.wait(i32, CTL.DONEI, done, Math.min(WATCH_SLICE_MS, this.stallMs));
    }
  }

  /** "matmul job #12 (f16 nk, M=8 N=64 K=128, 2 threads)": the current job, for error messages. */
  private jobLabel(op: string, job: number): string {
    const u = this.ctlU;
    const kind = u[CTL.KIND];
    const o = CTL.ARGS;
    let what: string;
    if (kind < 16) what = `${PACK_NAMES[kind] ?? `kind ${kind}`}, M=${u[o + 7]} N=${u[o + 5]} K=${u[o + 6]}`;
    else if (kind === ELEM.SWIGLU) what = `size ${u[o + 3]}`;
    else if (kind === ELEM.SWIGLU_BACKWARD) what = `size ${u[o + 5]}`;
    else what = `${u[o + 2]} rows of ${u[o + 1]}`;
    return `${op} job #${job} (${what}, ${u[CTL.NTH]} threads)`;
  }

  // ---------------------------------------------------------------- element-wise jobs (ops.ts, split by threads)

  /** True when the element-wise jobs below can run on these arrays (all in the heap, worth a hand-off). */
  canSplit(work: number, ...views: ArrayBufferView[]): boolean {
    if (this.nthreads < 2 || work < 1 << 16) return false;
    for (const v of views) if (!this.inHeap(v) || v.byteOffset % 4 !== 0) return false;
    return true;
  }

  private elem(kind: number, args: number[], scale = 0): void {
    this.f64ctl[F64_ARG] = scale;
    for (let i = 0; i < args.length; i++) this.ctlU[CTL.ARGS + i] = args[i] >>> 0;
    this.runJob(ELEM_NAMES[kind], kind, true);
  }

  /** act = silu(gate) * up over `size` floats (ops.swigluForward's loop, same bits). */
  swiglu(act: Float32Array, gate: Float32Array, up: Float32Array, size: number): void {
    this.elem(ELEM.SWIGLU, [act.byteOffset, gate.byteOffset, up.byteOffset, size]);
  }

  /** ops.swigluBackward's loop, same bits. */
  swigluBackward(
    dgate: Float32Array,
    dup: Float32Array,
    dact: Float32Array,
    gate: Float32Array,
    up: Float32Array,
    size: number,
  ): void {
    this.elem(ELEM.SWIGLU_BACKWARD, [
      dgate.byteOffset,
      dup.byteOffset,
      dact.byteOffset,
      gate.byteOffset,
      up.byteOffset,
      size,
    ]);
  }

  /** out[r] = logSumExp of row r of logits [rows, V] (ops.logSumExp, same bits); out in the heap. */
  logSumExpRows(out: Float64Array, logits: Float32Array, V: number, rows: number): void {
    this.elem(ELEM.LOGSUMEXP_ROWS, [logits.byteOffset, V, rows, out.byteOffset]);
  }

  /** ops.crossEntropyBackwardInPlace on every row of logits [rows, V]; out[r] = -log p[target r]. */
  crossEntropyRows(
    out: Float64Array,
    logits: Float32Array,
    V: number,
    rows: number,
    targets: Int32Array,
    scale: number,
  ): void {
    this.elem(
      ELEM.CROSS_ENTROPY_ROWS,
      [logits.byteOffset, V, rows, targets.byteOffset, out.byteOffset],
      scale,
    );
  }

  private checkType(w: Matrix): void {
    if (w.type === "q8_0" && w.cols % 32 !== 0)
      throw new RangeError("fast kernels: q8_0 needs cols % 32 == 0");
  }

  // ---------------------------------------------------------------- strided GEMM on heap addresses

  /**
   * C[M][N] (+)= A · B on heap byte addresses, for products that are not weight products (attention, LoRA):
   * A(i, t) = f32 at a + i*ars + t*aks; B(t, j) = f32 at b + j*ldb + t*4 when bT ("nk": B is stored as rows of
   * length K, like a weight) or at b + t*ldb + j*4 otherwise ("kn"); C(i, j) at c + i*ldc + j*4.
   * Every operand must already live in the heap (use `inHeap`/`addr`); accum adds into C, else overwrites.
   */
  gemm(
    M: number,
    N: number,
    K: number,
    a: number,
    ars: number,
    aks: number,
    b: number,
    ldb: number,
    bT: boolean,
    c: number,
    ldc: number,
    accum: boolean,
  ): void {
    if (M === 0 || N === 0) return;
    if (K === 0) {
      if (!accum) for (let i = 0; i < M; i++) new Float32Array(this.buf(), c + i * ldc, N).fill(0);
      return;
    }
    this.run(
      "gemm",
      bT ? PACK_INDEX.f32 : PACK_INDEX.f32 + 1,
      [a, ars, aks, b, ldb, N, K, M, c, ldc, accum ? 1 : 0],
      2 * M * N * K,
    );
  }

  /** Byte address of a heap view (throws when the view is not in the heap). */
  addr(view: HeapView | Float64Array): number {
    if (!this.inHeap(view)) throw new Error("fast kernels: view is not in the heap");
    return view.byteOffset;
  }

  // ---------------------------------------------------------------- the Kernels contract

  /** out[m, w.rows] = x[m, w.cols] · Wᵀ. Overwrites out. */
  matmul = (out: Float32Array, x: Float32Array, w: Matrix, m: number): void => {
    this.checkType(w);
    const { rows, cols } = w;
    if (m === 0 || rows === 0) return;
    if (cols === 0) {
      out.fill(0, 0, m * rows);
      return;
    }
    const temps: number[] = [];
    try {
      const wb = rowBytes(w.type, cols);
      const ap = this.stage(x, m * cols * 4, temps, true);
      const pk = this.packedOf(w);
      const cp = this.stage(out, m * rows * 4, temps, false);
      if (pk) {
        // a, ars, aks, src, ld (= panels), N, K, M, c, ldc, accum; memory-bound for few rows: split by weight size
        const wbytes = rows * cols * 4;
        this.run(
          "matmul",
          KIND_PACKED,
          [ap, cols * 4, 4, pk.at, Math.ceil(rows / NRP), rows, cols, m, cp, rows * 4, 0],
          2 * m * rows * cols,
          m * rows * cols * 2 >= MIN_PARALLEL_FLOPS || wbytes >= MIN_PARALLEL_PACKED_BYTES,
        );
        this.unstage(out, cp, m * rows * 4);
        return;
      }
      const wp = this.stage(w.data, rows * wb, temps, true);
      // a, ars, aks, src, ld, N, K, M, c, ldc, accum
      this.run(
        "matmul",
        PACK_INDEX[w.type],
        [ap, cols * 4, 4, wp, wb, rows, cols, m, cp, rows * 4, 0],
        2 * m * rows * cols,
      );
      this.unstage(out, cp, m * rows * 4);
    } finally {
      for (const t of temps) this.freeBytes(t);
    }
  };

  /** dx[m, w.cols] += dy[m, w.rows] · W. Accumulates into dx (the Kernels contract). */
  matmulBackwardInput = (dx: Float32Array, dy: Float32Array, w: Matrix, m: number): void => {
    this.checkType(w);
    const { rows, cols } = w;
    if (m === 0 || rows === 0 || cols === 0) return;
    const temps: number[] = [];
    try {
      const wb = rowBytes(w.type, cols);
      const ap = this.stage(dy, m * rows * 4, temps, true);
      const wp = this.stage(w.data, rows * wb, temps, true);
      const cp = this.stage(dx, m * cols * 4, temps, true);
      this.run(
        "matmulBackwardInput",
        PACK_INDEX[w.type] + 1,
        [ap, rows * 4, 4, wp, wb, cols, rows, m, cp, cols * 4, 1],
        2 * m * rows * cols,
      );
      this.unstage(dx, cp, m * cols * 4);
    } finally {
      for (const t of temps) this.freeBytes(t);
    }
  };

  /** dw[rows, cols] += dy[m, rows]ᵀ · x[m, cols]. Accumulates into dw. */
  matmulBackwardWeight = (
    dw: Float32Array,
    dy: Float32Array,
    x: Float32Array,
    m: number,
    rows: number,
    cols: number,
  ): void => {
    if (m === 0 || rows === 0 || cols === 0) return;
    const temps: number[] = [];
    try {
      const ap = this.stage(dy, m * rows * 4, temps, true);
      const bp = this.stage(x, m * cols * 4, temps, true);
      const cp = this.stage(dw, rows * cols * 4, temps, true);
      this.run(
        "matmulBackwardWeight",
        PACK_INDEX.f32 + 1,
        [ap, 4, rows * 4, bp, cols * 4, cols, m, rows, cp, cols * 4, 1],
        2 * m * rows * cols,
      );
      this.unstage(dw, cp, rows * cols * 4);
    } finally {
      for (const t of temps) this.freeBytes(t);
    }
  };
}

let instance: FastKernels | undefined;

/** The process-wide fast kernel set (created on first use; call `await init({ threads })` to add workers). */
export function getFastKernels(): FastKernels {
  instance ??= new FastKernels();
  return instance;
}
