// The blocking loop around the wasm kernels, run by the main thread and by every worker on its share of the
// output columns. It must stay self-contained (no imports, no closures): workers get it as source text
// (Function.prototype.toString), so the worker needs no file of its own.

/** Control block layout (Uint32 words). */
export const CTL = {
  SEQ: 0, // job sequence number (bumped by the main thread to start a job)
  DONE: 1, // workers finished with the current job
  NTH: 2, // threads taking part in this job
  KIND: 3, // pack function index (see PACK_NAMES); 0xffffffff = quit
  READY: 4, // workers started
  ARGS: 8,
  WORDS: 32,
} as const;

export interface KernelExports {
  block(...args: number[]): void;
  [pack: string]: (...args: number[]) => void;
}

/**
 * Runs thread `rank`'s share of the GEMM described by the control block `u`:
 *   C[M][N] (+)= sum_t A(i,t) B(t,j), A(i,t) f32 at a + i*ars + t*aks, B given by the pack function and src/ld.
 * Threads split the output columns in whole NR-wide panels.
 */
export function gemmPart(ex: KernelExports, u: Uint32Array, rank: number): void {
  const names = [
    "pack_f32_nk",
    "pack_f32_kn",
    "pack_f16_nk",
    "pack_f16_kn",
    "pack_bf16_nk",
    "pack_bf16_kn",
    "pack_q8_0_nk",
    "pack_q8_0_kn",
  ];
  const NR = 8;
  const o = 8;
  const nth = u[2];
  const pack = ex[names[u[3]]];
  const a = u[o],
    ars = u[o + 1],
    aks = u[o + 2],
    src = u[o + 3],
    ld = u[o + 4],
    N = u[o + 5],
    K = u[o + 6],
    M = u[o + 7],
    c = u[o + 8],
    ldc = u[o + 9],
    accum = u[o + 10],
    scratchB = u[o + 11] + rank * u[o + 12],
    KC = u[o + 13],
    NCP = u[o + 14] / NR,
    MC = u[o + 15],
    MR = u[o + 16],
    scratchA = scratchB + KC * NR * NCP * 4;
  const panels = Math.ceil(N / NR);
  const per = Math.ceil(panels / nth);
  const p0 = rank * per;
  const p1 = Math.min(panels, p0 + per);
  if (p0 >= p1 || M === 0) return;
  const nkc = Math.ceil(K / KC);
  const kcb = Math.ceil(K / nkc);
  const nmc = Math.ceil(M / MC);
  const mcb = Math.ceil(Math.ceil(M / nmc) / MR) * MR;
  for (let ic = 0; ic < M; ic += mcb) {
    const mc = Math.min(mcb, M - ic);
    for (let t0 = 0; t0 < K; t0 += kcb) {
      const kc = Math.min(kcb, K - t0);
      ex.packA(a + ic * ars + t0 * aks, ars, aks, mc, kc, scratchA);
      for (let pj = p0; pj < p1; pj += NCP) {
        const jc = pj * NR;
        const ncols = Math.min(N, Math.min(p1, pj + NCP) * NR) - jc;
        const npan = Math.ceil(ncols / NR);
        const last = ncols - (npan - 1) * NR;
        pack(src, ld, jc, ncols, t0, kc, scratchB);
        ex.block(
          scratchA,
          scratchB,
          npan,
          last,
          kc,
          c + ic * ldc + jc * 4,
          ldc,
          mc,
          accum !== 0 || t0 > 0 ? 1 : 0,
        );
      }
    }
  }
}
