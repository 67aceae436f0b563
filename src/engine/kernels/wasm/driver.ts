// The blocking loop around the wasm kernels, run by the main thread and by every worker on its share of the
// output columns. It must stay self-contained (no imports, no closures): workers get it as source text
// (Function.prototype.toString), so the worker needs no file of its own.

/** Control block layout (Uint32 words). */
export const CTL = {
  SEQ: 0, // job sequence number (bumped by the main thread to start a job)
  DONE: 1, // (unused)
  NTH: 2, // threads taking part in this job
  KIND: 3, // pack function index (see PACK_NAMES), PACKED (B already packed); 0xffffffff = quit
  READY: 4, // workers started
  NEXT: 5, // (job tag << 16) | next unclaimed work item of the current job
  DONEI: 6, // work items of the current job finished
  JOB: 7, // tag (16 bits) of the current job
  ARGS: 8,
  WORDS: 32,
} as const;

/** KIND of a product whose B is already packed (prepacked weights): src = panels address, ld = panels in all. */
export const KIND_PACKED = 8;

export interface KernelExports {
  block(...args: number[]): void;
  [pack: string]: (...args: number[]) => void;
}

/**
 * Runs thread `rank`'s share of the GEMM described by the control block `u`:
 *   C[M][N] (+)= sum_t A(i,t) B(t,j), A(i,t) f32 at a + i*ars + t*aks, B given by the pack function and src/ld.
 * Threads split the output columns in whole NR-wide panels. KIND 8 (KIND_PACKED): B was packed once in advance by
 * the same pack function, kc block by kc block (block starting at row t0 at src + t0*ld*NR*4, ld = panels of all N
 * columns, panel p of the block at + p*kc*NR*4), so the pack step is skipped and the results are the same bits.
 * Products of fewer than MR rows use the 1-row kernels (block1/packA1), again with the same per-element FMA chain.
 */
export function gemmPart(ex: KernelExports, u: Uint32Array, rank: number): number {
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
  const ctl = new Int32Array(u.buffer, u.byteOffset, 8);
  const tag = Atomics.load(ctl, 7) & 0xffff; // read before the arguments (written before the tag)
  const nth = u[2];
  const pack = u[3] === 8 ? undefined : ex[names[u[3]]];
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
    scratchB = u[o + 11] + rank * u[o + 12], // each thread has its own packing scratch
    KC = u[o + 13],
    NCP = u[o + 14] / NR,
    MC = u[o + 15],
    MR4 = u[o + 16],
    scratchA = scratchB + KC * NR * NCP * 4;
  const panels = Math.ceil(N / NR);
  if (M === 0 || panels === 0) return 0;
  const nkc = Math.ceil(K / KC);
  const kcb = Math.ceil(K / nkc);
  // Work items: rows [r0, r1) x panels [q0, q1). Every output element is one FMA chain per kc block, the blocks
  // added in order, whichever item computes it. Items are claimed by whichever thread comes (compare-exchange on
  // word 5, tagged with the job so a thread that wakes late cannot take items of a later job) and counted when done
  // (word 6): the caller waits for the items, never for a thread the OS has not scheduled yet.
  //  - B packed per call: nth column ranges (each item packs its own panels).
  //  - Prepacked B: few rows (decoding): column ranges; many rows: row blocks over every column.
  // (No inner functions here: bundlers may wrap them in helpers the worker does not have.)
  let rowsPer = M;
  let colsPer = Math.ceil(panels / nth);
  if (!pack) {
    if (M <= 4 * MR4) colsPer = Math.max(1, Math.ceil(panels / (4 * nth)));
    else {
      colsPer = panels;
      rowsPer = Math.min(MC, Math.max(4 * MR4, Math.ceil(M / (4 * nth) / MR4) * MR4));
    }
  }
  const rowItems = Math.ceil(M / rowsPer);
  const items = rowItems * Math.ceil(panels / colsPer);
  for (;;) {
    const cur = Atomics.load(ctl, 5);
    if (cur >>> 16 !== tag) break;
    const it = cur & 0xffff;
    if (it >= items) break;
    if (Atomics.compareExchange(ctl, 5, cur, cur + 1) !== cur) continue;
    const ri = it % rowItems;
    const ci = (it - ri) / rowItems;
    const r0 = ri * rowsPer;
    const r1 = Math.min(M, r0 + rowsPer);
    const q0 = ci * colsPer;
    const q1 = Math.min(panels, q0 + colsPer);
    const small = r1 - r0 < MR4;
    const MR = small ? 1 : MR4;
    const block = small ? ex.block1 : ex.block;
    const packA = small ? ex.packA1 : ex.packA;
    const nmc = Math.ceil((r1 - r0) / MC);
    const mcb = Math.ceil(Math.ceil((r1 - r0) / nmc) / MR) * MR;
    for (let ic = r0; ic < r1; ic += mcb) {
      const mc = Math.min(mcb, r1 - ic);
      for (let t0 = 0; t0 < K; t0 += kcb) {
        const kc = Math.min(kcb, K - t0);
        packA(a + ic * ars + t0 * aks, ars, aks, mc, kc, scratchA);
        for (let pj = q0; pj < q1; pj += NCP) {
          const jc = pj * NR;
          const ncols = Math.min(N, Math.min(q1, pj + NCP) * NR) - jc;
          const npan = Math.ceil(ncols / NR);
          const last = ncols - (npan - 1) * NR;
          let bp = scratchB;
          if (pack) pack(src, ld, jc, ncols, t0, kc, scratchB);
          else bp = src + (t0 * ld + pj * kc) * NR * 4;
          block(scratchA, bp, npan, last, kc, c + ic * ldc + jc * 4, ldc, mc, accum !== 0 || t0 > 0 ? 1 : 0);
        }
      }
    }
    if (Atomics.add(ctl, 6, 1) + 1 === items) Atomics.notify(ctl, 6);
  }
  return items;
}

/** KINDs of the element-wise jobs run by elemPart (arguments at CTL.ARGS, float64 arguments at F64_ARG). */
export const ELEM = { SWIGLU: 16, SWIGLU_BACKWARD: 17, LOGSUMEXP_ROWS: 18, CROSS_ENTROPY_ROWS: 19 } as const;
/** Float64 word (index into a Float64Array of the control block) of an element-wise job's scalar argument. */
export const F64_ARG = 14;

/**
 * Runs work items of an element-wise job (ops.ts's loops, split across threads with the same per-element code, so
 * the results are the same bits as on one thread). Same claiming protocol as gemmPart. Self-contained like it.
 *   SWIGLU            act, gate, up, size              act = silu(gate) * up
 *   SWIGLU_BACKWARD   dgate, dup, dact, gate, up, size
 *   LOGSUMEXP_ROWS    logits, V, rows, out(f64)        out[r] = log Σ exp(logits[r])
 *   CROSS_ENTROPY_ROWS logits, V, rows, targets(i32), out(f64); scale   (crossEntropyBackwardInPlace per row)
 */
export function elemPart(u: Uint32Array, buf: ArrayBufferLike): number {
  const ctl = new Int32Array(u.buffer, u.byteOffset, 8);
  const tag = Atomics.load(ctl, 7) & 0xffff;
  const kind = u[3];
  const o = 8;
  const scale = new Float64Array(u.buffer, u.byteOffset, 16)[14];
  const rowsJob = kind === 18 || kind === 19;
  const total = rowsJob ? u[o + 2] : u[o + (kind === 16 ? 3 : 5)];
  const per = rowsJob ? 8 : 16384;
  const items = Math.ceil(total / per);
  for (;;) {
    const cur = Atomics.load(ctl, 5);
    if (cur >>> 16 !== tag) break;
    const it = cur & 0xffff;
    if (it >= items) break;
    if (Atomics.compareExchange(ctl, 5, cur, cur + 1) !== cur) continue;
    const i0 = it * per;
    const i1 = Math.min(total, i0 + per);
    if (kind === 16) {
      const act = new Float32Array(buf, u[o], total);
      const gate = new Float32Array(buf, u[o + 1], total);
      const up = new Float32Array(buf, u[o + 2], total);
      for (let i = i0; i < i1; i++) {
        const g = gate[i];
        act[i] = (g / (1 + Math.exp(-g))) * up[i];
      }
    } else if (kind === 17) {
      const dgate = new Float32Array(buf, u[o], total);
      const dup = new Float32Array(buf, u[o + 1], total);
      const dact = new Float32Array(buf, u[o + 2], total);
      const gate = new Float32Array(buf, u[o + 3], total);
      const up = new Float32Array(buf, u[o + 4], total);
      for (let i = i0; i < i1; i++) {
        const g = gate[i];
        const sig = 1 / (1 + Math.exp(-g));
        dup[i] = dact[i] * g * sig;
        dgate[i] = dact[i] * up[i] * sig * (1 + g * (1 - sig));
      }
    } else {
      const V = u[o + 1];
      const logits = new Float32Array(buf, u[o], total * V);
      const out = new Float64Array(buf, u[o + (kind === 18 ? 3 : 4)], total);
      const targets = new Int32Array(buf, u[o + 3], total);
      for (let r = i0; r < i1; r++) {
        const b = r * V;
        let max = -Infinity;
        for (let j = 0; j < V; j++) if (logits[b + j] > max) max = logits[b + j];
        if (kind === 18) {
          let sum = 0;
          for (let j = 0; j < V; j++) sum += Math.exp(logits[b + j] - max);
          out[r] = max + Math.log(sum);
          continue;
        }
        const zt = logits[b + targets[r]] - max;
        let sum = 0;
        for (let j = 0; j < V; j++) {
          const e = Math.exp(logits[b + j] - max);
          logits[b + j] = e;
          sum += e;
        }
        const k = scale / sum;
        for (let j = 0; j < V; j++) logits[b + j] *= k;
        logits[b + targets[r]] -= scale;
        out[r] = Math.log(sum) - zt;
      }
    }
    if (Atomics.add(ctl, 6, 1) + 1 === items) Atomics.notify(ctl, 6);
  }
  return items;
}
