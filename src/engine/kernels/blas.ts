// Native matrix products from the machine's own BLAS (OpenBLAS, BLIS or MKL on Linux, Accelerate on macOS), called
// through the koffi FFI package: `cblas_sgemm` for every large float32 product, forward and backward. No C of our
// own and nothing compiled: the library is the one PyTorch and NumPy use on the same machine.
//
// Memory and the contract are those of ./fast.ts: this set owns the same heap (the process-wide FastKernels), so
// the engine places weights and allocates activations there as before. Products the BLAS does not take go to the
// WebAssembly kernels unchanged:
//   - frozen weights that are not f32 (f16/bf16/q8_0 are dequantized inside the WebAssembly GEMM, which keeps the
//     activations in f32; a BLAS would need an f32 copy of the weight);
//   - small products (fewer than `minRows` rows or `minMacs` multiply-adds): decoding a handful of rows is faster on
//     the prepacked WebAssembly path, and a row's result then stays the same bits whatever the batch size;
//   - narrow matrices (a weight or gradient dimension under `minDim`, 128), unless it is a LoRA factor of a wide
//     projection (rank <= 32 by width >= 512): the small models that tests and the SafetyWorld organism use keep
//     the WebAssembly kernels' bits on every machine, with or without a BLAS, so the organism and the demo's
//     numbers do not depend on what the machine has installed.
//
// cblas takes transposes as flags, so no product copies an operand:
//   matmul:               out  = x · Wᵀ         sgemm(NoTrans, Trans,   m, rows, cols, beta 0)
//   matmulBackwardInput:  dx  += dy · W         sgemm(NoTrans, NoTrans, m, cols, rows, beta 1)
//   matmulBackwardWeight: dW  += dyᵀ · x        sgemm(Trans,   NoTrans, rows, cols, m, beta 1)
//
// Which library: BUCKLE_BLAS=<path> names one, BUCKLE_BLAS=off turns the route off; otherwise the first of the
// known optimized libraries that loads (a plain reference BLAS is never picked: it is slower than WebAssembly).

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import type { Matrix } from "../types.js";
import { getFastKernels, type FastKernels } from "./fast.js";
import type { HeapGemm, Kernels } from "./index.js";

const CBLAS_ROW_MAJOR = 101;
const CBLAS_NO_TRANS = 111;
const CBLAS_TRANS = 112;

// Below these a product goes to the WebAssembly kernels (see the header).
const DEFAULT_MIN_ROWS = 16;
const DEFAULT_MIN_MACS = 1 << 20;
const DEFAULT_MIN_DIM = 128;
// LoRA's factors (rank x width) of wide projections also pay: the rank is small but the width is not.
const THIN_MAX = 32;
const THIN_MIN_WIDE = 512;
const DEFAULT_MIN_ATTENTION_DIM = 64;

/** Libraries tried in order when BUCKLE_BLAS is not set: optimized BLAS builds only. */
export const BLAS_CANDIDATES: Record<string, string[]> = {
  linux: [
    "libopenblas.so.0",
    "libopenblas.so",
    "libopenblasp.so.0",
    "libblis.so.4",
    "libblis.so",
    "libmkl_rt.so.2",
    "libmkl_rt.so",
  ],
  darwin: ["/System/Library/Frameworks/Accelerate.framework/Accelerate"],
  win32: ["libopenblas.dll", "openblas.dll", "mkl_rt.2.dll"],
};

type Fn = (...args: unknown[]) => unknown;

// The few koffi calls used here (koffi ships its own types; this keeps the build free of the optional package).
interface KoffiLib {
  func(decl: string): Fn;
}
interface Koffi {
  load(path: string): KoffiLib;
}

interface BlasLib {
  /** The file name or path that loaded. */
  file: string;
  sgemm: Fn;
  setThreads?: (n: number) => void;
  /** The thread count last set (the library's setting is process-wide, shared by every BlasKernels). */
  threadsNow?: number;
  /** What the library says of itself (OpenBLAS: its build config and core), when it can. */
  describe: string;
}

let loaded: BlasLib | undefined;
let loadError: Error | undefined;

function loadKoffi(): Koffi {
  try {
    return createRequire(import.meta.url)("koffi") as Koffi;
  } catch (e) {
    throw new Error(
      `the BLAS kernels need the npm package koffi (an optional dependency of buckle): ${(e as Error).message}`,
      { cause: e },
    );
  }
}

function tryLoad(koffi: Koffi, file: string): BlasLib | undefined {
  let lib: KoffiLib;
  try {
    lib = koffi.load(file);
  } catch {
    return undefined;
  }
  let sgemm: Fn;
  try {
    sgemm = lib.func(
      "void cblas_sgemm(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int)",
    );
  } catch {
    return undefined;
  }
  const optional = (decl: string): Fn | undefined => {
    try {
      return lib.func(decl);
    } catch {
      return undefined;
    }
  };
  const setOpenblas = optional("void openblas_set_num_threads(int)");
  const setBlis = optional("void bli_thread_set_num_threads(int64_t)");
  const setMkl = optional("void MKL_Set_Num_Threads(int)");
  const set = setOpenblas ?? setBlis ?? setMkl;
  const config = optional("const char * openblas_get_config()");
  const core = optional("const char * openblas_get_corename()");
  const describe = config ? `${String(config())}; core ${core ? String(core()) : "?"}` : file;
  return { file, sgemm, setThreads: set ? (n: number) => void set(n) : undefined, describe };
}

/**
 * Loads the BLAS once per process: BUCKLE_BLAS=<path> or the first known optimized library. Throws (with what was
 * tried and what to do) when none loads or BUCKLE_BLAS=off.
 */
export function loadBlas(): BlasLib {
  if (loaded) return loaded;
  if (loadError) throw loadError;
  try {
    const want = process.env.BUCKLE_BLAS?.trim();
    if (want === "off" || want === "0" || want === "none")
      throw new Error("BLAS kernels are turned off (BUCKLE_BLAS=off)");
    const koffi = loadKoffi();
    const files = want ? [want] : (BLAS_CANDIDATES[process.platform] ?? []);
    // OpenMP builds of OpenBLAS spin between calls by default, on the cores the WebAssembly workers use. The
    // OpenMP runtime reads this when the library loads; it is taken back afterwards so that child processes
    // (llama-server, peers) do not inherit it.
    const setPolicy = process.env.OMP_WAIT_POLICY === undefined;
    if (setPolicy) process.env.OMP_WAIT_POLICY = "passive";
    try {
      for (const f of files) {
        if (f.includes("/") && !existsSync(f)) continue;
        const lib = tryLoad(koffi, f);
        if (lib) {
          loaded = lib;
          return lib;
        }
      }
    } finally {
      if (setPolicy) delete process.env.OMP_WAIT_POLICY;
    }
    throw new Error(
      want
        ? want.includes("/") && !existsSync(want)
          ? `BUCKLE_BLAS=${want}: no such file (set it to a BLAS library's path, or to off)`
          : `BUCKLE_BLAS=${want}: no cblas_sgemm could be loaded from it (is it a BLAS with the CBLAS interface?)`
        : `no optimized BLAS found (tried ${files.join(", ") || "nothing on this platform"}); ` +
            `on Debian/Ubuntu: apt-get install libopenblas0, or set BUCKLE_BLAS to a library with cblas_sgemm`,
    );
  } catch (e) {
    loadError = e as Error;
    throw loadError;
  }
}

export interface BlasInitOptions {
  /** Threads the BLAS may use (default 2; the WebAssembly heap keeps its own workers). */
  threads?: number;
  /** Heap owner (default: the process-wide FastKernels). */
  heap?: FastKernels;
  /** Products with fewer rows go to the WebAssembly kernels (default 16). */
  minRows?: number;
  /** Products with fewer multiply-adds go to the WebAssembly kernels (default 2^20). */
  minMacs?: number;
  /** Products whose weight (or weight gradient) has a dimension under this go to the WebAssembly kernels (128). */
  minDim?: number;
  /**
   * Attention products with a dimension under this (head size, query block, keys) go to the WebAssembly kernels
   * (default 64: real models' heads; the organism's 16- and 32-wide heads keep the same bits everywhere).
   */
  minAttentionDim?: number;
}

export class BlasKernels implements Kernels {
  readonly name = "blas";
  readonly threads: number;
  readonly heap: FastKernels;
  /** The library in use and what it says of itself. */
  readonly library: string;
  private readonly sgemm: Fn;
  private readonly lib: BlasLib;
  private readonly minRows: number;
  private readonly minMacs: number;
  private readonly minDim: number;
  private readonly minAttentionDim: number;

  constructor(opts: BlasInitOptions = {}) {
    const lib = loadBlas();
    this.heap = opts.heap ?? getFastKernels();
    this.threads = Math.max(1, Math.floor(opts.threads ?? 2));
    this.minRows = Math.max(1, opts.minRows ?? DEFAULT_MIN_ROWS);
    this.minMacs = Math.max(0, opts.minMacs ?? DEFAULT_MIN_MACS);
    this.minDim = Math.max(1, opts.minDim ?? DEFAULT_MIN_DIM);
    this.minAttentionDim = Math.max(1, opts.minAttentionDim ?? DEFAULT_MIN_ATTENTION_DIM);
    this.sgemm = lib.sgemm;
    this.lib = lib;
    this.useThreads(this.threads);
    this.library = lib.describe;
  }

  /** Sets the library's thread count when it differs from the last one set (one FFI call per change). */
  private useThreads(n: number): void {
    if (!this.lib.setThreads || this.lib.threadsNow === n) return;
    this.lib.setThreads(n);
    this.lib.threadsNow = n;
  }

  private big(m: number, rows: number, cols: number): boolean {
    if (m < this.minRows || m * rows * cols < this.minMacs) return false;
    const lo = Math.min(rows, cols);
    // wide in both dimensions, or a LoRA factor of a wide projection (rank <= 32 by >= 512)
    return lo >= this.minDim || (lo <= THIN_MAX && Math.max(rows, cols) >= THIN_MIN_WIDE);
  }

  matmul = (out: Float32Array, x: Float32Array, w: Matrix, m: number): void => {
    const { rows, cols } = w;
    if (w.type !== "f32" || !this.big(m, rows, cols)) return this.heap.matmul(out, x, w, m);
    checkLengths("matmul", [out, m * rows], [x, m * cols], [w.data, rows * cols]);
    this.useThreads(this.threads);
    this.sgemm(
      CBLAS_ROW_MAJOR,
      CBLAS_NO_TRANS,
      CBLAS_TRANS,
      m,
      rows,
      cols,
      1,
      x,
      cols,
      w.data,
      cols,
      0,
      out,
      rows,
    );
  };

  matmulBackwardInput = (dx: Float32Array, dy: Float32Array, w: Matrix, m: number): void => {
    const { rows, cols } = w;
    if (w.type !== "f32" || !this.big(m, rows, cols)) return this.heap.matmulBackwardInput(dx, dy, w, m);
    checkLengths("matmulBackwardInput", [dx, m * cols], [dy, m * rows], [w.data, rows * cols]);
    this.useThreads(this.threads);
    this.sgemm(
      CBLAS_ROW_MAJOR,
      CBLAS_NO_TRANS,
      CBLAS_NO_TRANS,
      m,
      cols,
      rows,
      1,
      dy,
      rows,
      w.data,
      cols,
      1,
      dx,
      cols,
    );
  };

  /**
   * FastKernels.gemm's strided product on heap byte addresses (attention's query blocks): A row-major (aks = 4)
   * or stored transposed (ars = 4), B "nk" (bT) or "kn". These are small (< a few M multiply-adds), so they run on
   * the calling thread alone: waking the BLAS's other threads for each would cost more than it saves.
   */
  attentionGemm: HeapGemm = (M, N, K, a, ars, aks, b, ldb, bT, c, ldc, accum) => {
    const aRow = aks === 4;
    const aCol = !aRow && ars === 4;
    const small = M * N * K < MIN_GEMM_MACS || Math.min(M, N, K) < this.minAttentionDim;
    if (!this.lib.setThreads || small || (!aRow && !aCol) || ldb % 4 || ldc % 4)
      return this.heap.gemm(M, N, K, a, ars, aks, b, ldb, bT, c, ldc, accum);
    const buf = this.heap.buf();
    const view = (at: number) => new Float32Array(buf, at, Math.floor((buf.byteLength - at) / 4));
    // one thread for these; the next large product sets the count back (attention runs many in a row)
    this.useThreads(1);
    this.sgemm(
      CBLAS_ROW_MAJOR,
      aRow ? CBLAS_NO_TRANS : CBLAS_TRANS,
      bT ? CBLAS_TRANS : CBLAS_NO_TRANS,
      M,
      N,
      K,
      1,
      view(a),
      (aRow ? ars : aks) / 4,
      view(b),
      ldb / 4,
      accum ? 1 : 0,
      view(c),
      ldc / 4,
    );
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
    if (!this.big(m, rows, cols)) return this.heap.matmulBackwardWeight(dw, dy, x, m, rows, cols);
    checkLengths("matmulBackwardWeight", [dw, rows * cols], [dy, m * rows], [x, m * cols]);
    this.useThreads(this.threads);
    this.sgemm(
      CBLAS_ROW_MAJOR,
      CBLAS_TRANS,
      CBLAS_NO_TRANS,
      rows,
      cols,
      m,
      1,
      dy,
      rows,
      x,
      cols,
      1,
      dw,
      cols,
    );
  };
}

/** Below this many multiply-adds a strided heap product (attention) stays on the WebAssembly kernels. */
const MIN_GEMM_MACS = 1 << 15;

/** A native call reads and writes raw memory: refuse arrays shorter than the product needs. */
function checkLengths(op: string, ...pairs: [ArrayLike<number>, number][]): void {
  for (const [a, n] of pairs)
    if (a.length < n)
      throw new Error(`blas ${op}: an operand has ${a.length} elements, the product needs ${n}`);
}

/** The BLAS kernel set over the process-wide heap; throws when koffi or a BLAS is missing (see loadBlas). */
export function createBlasKernels(opts: BlasInitOptions = {}): BlasKernels {
  return new BlasKernels(opts);
}
