// The work loop around the wasm kernels, run by the calling thread and by every worker: a job is cut into work
// items that any thread claims. The functions shipped to workers must stay self-contained (no imports, no closures,
// no inner functions): workers get them as source text (Function.prototype.toString), so they need no file.

/**
 * Control block layout (Int32 word indices; CLAIM and LIMIT are BigUint64 indices).
 *
 * How a job runs (see runItems and FastKernels.runJob): the caller writes KIND, NTH, the arguments and the plan
 * (planJob), resets DONEI, then publishes the job with two 64-bit stores, LIMIT = (job << 32) | items and then
 * CLAIM = (job << 32) | 0, where job is a 32-bit job number (it would take 2^32 jobs to come back). A thread
 * claims item i with one compare-exchange of CLAIM from (job, i) to (job, i + 1), and only after checking that
 * LIMIT names the same job and i < items. A successful claim pins the job: the caller cannot finish it (DONEI stays
 * below items) until that item is counted, so it cannot rewrite the slot either; only then does the thread read
 * KIND, the arguments and the plan. A thread that wakes late, or is descheduled anywhere in the loop, either fails
 * its compare-exchange or finds nothing left, and never reads a job's parameters while the caller writes the next.
 */
export const CTL = {
  SEQ: 0, // wake-up counter: bumped by the caller to wake the workers (a parallel job, or quit)
  QUIT: 1, // 1: workers leave their loop
  NTH: 2, // threads the job was planned for
  KIND: 3, // pack function index (see gemmItem's names), KIND_PACKED (B already packed), or an ELEM kind
  READY: 4, // workers started
  FAILED: 5, // rank of the first worker that threw (0: none); its message is in its slot of the error buffer
  DONEI: 6, // work items of the current job finished
  BEAT: 7, // heartbeat: bumped as threads work through an item (the caller's stall watchdog watches it)
  ARGS: 8, // job arguments (words 8..24); an element-wise job's float64 argument is Float64 word F64_ARG (28, 29)
  ROWS_PER: 32, // plan of a GEMM: rows per item
  COLS_PER: 33, // plan of a GEMM: panels per item
  ROW_ITEMS: 34, // plan of a GEMM: items along the rows; of an element-wise job: elements (or rows) per item
  CLAIM: 18, // BigUint64 word (Int32 words 36, 37): (job << 32) | next unclaimed item
  LIMIT: 19, // BigUint64 word (Int32 words 38, 39): (job << 32) | items of the job
  WORDS: 40,
} as const;

/** Bytes of each worker's slot in the shared error buffer (the message of an exception it hit). */
export const ERROR_SLOT_BYTES = 1024;

/** KIND of a product whose B is already packed (prepacked weights): src = panels address, ld = panels in all. */
export const KIND_PACKED = 8;

export interface KernelExports {
  block(...args: number[]): void;
  [pack: string]: (...args: number[]) => void;
}

/** KINDs of the element-wise jobs run by elemItem (arguments at CTL.ARGS, float64 arguments at F64_ARG). */
export const ELEM = { SWIGLU: 16, SWIGLU_BACKWARD: 17, LOGSUMEXP_ROWS: 18, CROSS_ENTROPY_ROWS: 19 } as const;
/** Float64 word (index into a Float64Array of the control block) of an element-wise job's scalar argument. */
export const F64_ARG = 14;

/**
 * Cuts the job in the control block into work items (run by the caller only, before it publishes the job) and
 * writes the plan words; returns the number of items (0: nothing to do).
 * GEMM items are rows [r0, r1) x panels [q0, q1). Every output element is one FMA chain per kc block, the blocks
 * added in order, whichever item computes it, so the cut never changes the bits:
 *  - B packed per call: nth column ranges (each item packs its own panels).
 *  - Prepacked B: few rows (decoding): column ranges; many rows: row blocks over every column.
 * Element-wise items are 16384 elements or 8 rows.
 */
export function planJob(u: Uint32Array): number {
  const kind = u[CTL.KIND];
  const o = CTL.ARGS;
  if (kind >= 16) {
    const rowsJob = kind === ELEM.LOGSUMEXP_ROWS || kind === ELEM.CROSS_ENTROPY_ROWS;
    const total = rowsJob ? u[o + 2] : u[o + (kind === ELEM.SWIGLU ? 3 : 5)];
    const per = rowsJob ? 8 : 16384;
    u[CTL.ROW_ITEMS] = per;
    return Math.ceil(total / per);
  }
  const nth = u[CTL.NTH];
  const N = u[o + 5];
  const M = u[o + 7];
  const MR = u[o + 16];
  const MC = u[o + 15];
  const panels = Math.ceil(N / 8);
  if (M === 0 || panels === 0) return 0;
  let rowsPer = M;
  let colsPer = Math.ceil(panels / nth);
  if (kind === KIND_PACKED) {
    if (M <= 4 * MR) colsPer = Math.max(1, Math.ceil(panels / (4 * nth)));
    else {
      colsPer = panels;
      rowsPer = Math.min(MC, Math.max(4 * MR, Math.ceil(M / (4 * nth) / MR) * MR));
    }
  }
  const rowItems = Math.ceil(M / rowsPer);
  u[CTL.ROWS_PER] = rowsPer;
  u[CTL.COLS_PER] = colsPer;
  u[CTL.ROW_ITEMS] = rowItems;
  return rowItems * Math.ceil(panels / colsPer);
}

/**
 * Claims and runs work items of the published job until none is left; returns how many this thread ran. Run by
 * the caller (rank 0) and by each woken worker; see CTL for the protocol. Self-contained (the item functions are
 * passed in so that a worker can hand over its own copies).
 */
export function runItems(
  ex: KernelExports,
  u: Uint32Array,
  rank: number,
  memory: WebAssembly.Memory,
  gemm: typeof gemmItem,
  elem: typeof elemItem,
): number {
  const ctl = new Int32Array(u.buffer, u.byteOffset, 8);
  const slot = new BigUint64Array(u.buffer, u.byteOffset, 20);
  let ran = 0;
  for (;;) {
    const cur = Atomics.load(slot, 18);
    const lim = Atomics.load(slot, 19);
    // LIMIT of another job: the caller is publishing the next job (a parallel one wakes the workers again)
    if (cur >> 32n !== lim >> 32n) return ran;
    const items = Number(lim & 0xffffffffn);
    const it = Number(cur & 0xffffffffn);
    if (it >= items) return ran;
    if (Atomics.compareExchange(slot, 18, cur, cur + 1n) !== cur) continue;
    // item `it` of this job is ours, and the job stays published until we count it: its parameters are stable
    if (u[3] >= 16) elem(u, memory.buffer, it);
    else gemm(ex, u, rank, it);
    ran++;
    if (Atomics.add(ctl, 6, 1) + 1 === items) Atomics.notify(ctl, 6);
  }
}

/**
 * Runs work item `it` of the GEMM described by the control block `u` (as cut by planJob):
 *   C[M][N] (+)= sum_t A(i,t) B(t,j), A(i,t) f32 at a + i*ars + t*aks, B given by the pack function and src/ld.
 * KIND 8 (KIND_PACKED): B was packed once in advance by the same pack function, kc block by kc block (block
 * starting at row t0 at src + t0*ld*NR*4, ld = panels of all N columns, panel p of the block at + p*kc*NR*4), so
 * the pack step is skipped and the results are the same bits. Items of fewer than MR rows use the 1-row kernels
 * (block1/packA1), again with the same per-element FMA chain.
 */
export function gemmItem(ex: KernelExports, u: Uint32Array, rank: number, it: number): void {
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
    scratchA = scratchB + KC * NR * NCP * 4,
    rowsPer = u[32],
    colsPer = u[33],
    rowItems = u[34];
  const panels = Math.ceil(N / NR);
  const nkc = Math.ceil(K / KC);
  const kcb = Math.ceil(K / nkc);
  // (No inner functions here: bundlers may wrap them in helpers the worker does not have.)
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
      Atomics.add(ctl, 7, 1); // heartbeat for the caller's stall watchdog
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
}

/**
 * Runs work item `it` of an element-wise job (ops.ts's loops, split across threads with the same per-element code,
 * so the results are the same bits as on one thread). Self-contained like gemmItem.
 *   SWIGLU            act, gate, up, size              act = silu(gate) * up
 *   SWIGLU_BACKWARD   dgate, dup, dact, gate, up, size
 *   LOGSUMEXP_ROWS    logits, V, rows, out(f64)        out[r] = log Σ exp(logits[r])
 *   CROSS_ENTROPY_ROWS logits, V, rows, targets(i32), out(f64); scale   (crossEntropyBackwardInPlace per row)
 */
export function elemItem(u: Uint32Array, buf: ArrayBufferLike, it: number): void {
  const kind = u[3];
  const o = 8;
  const scale = new Float64Array(u.buffer, u.byteOffset, 16)[14];
  const rowsJob = kind === 18 || kind === 19;
  const total = rowsJob ? u[o + 2] : u[o + (kind === 16 ? 3 : 5)];
  const per = u[34];
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
}
