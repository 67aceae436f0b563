// The BLAS kernel set (kernels/blas.ts: the machine's cblas_sgemm through koffi) against the float64 reference
// product by product, and the whole engine on it (every product forced to the BLAS) against the reference kernels:
// forward logits and log-probs, KV-cached decoding, a LoRA training step. Skipped when koffi or an optimized BLAS
// is missing, unless BUCKLE_REQUIRE_BLAS=1 (CI installs OpenBLAS and sets it, so there a missing BLAS fails).

import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../util/random.js";
import { createBlasKernels, loadBlas, type BlasKernels } from "./kernels/blas.js";
import { getFastKernels } from "./kernels/fast.js";
import { matmulBackwardInputF64, matmulBackwardWeightF64, matmulF64 } from "./kernels/reference.js";
import {
  checkDecodeAgainstReference,
  checkForwardAgainstReference,
  checkLoraStepAgainstReference,
} from "./kernel-check.js";
import type { Matrix } from "./types.js";

function blasMissing(): string | false {
  try {
    loadBlas();
    return false;
  } catch (e) {
    if (process.env.BUCKLE_REQUIRE_BLAS === "1") throw e;
    return (e as Error).message;
  }
}
const skip = blasMissing();

const fast = getFastKernels();
let forced: BlasKernels;
let routed: BlasKernels;
test.before(async () => {
  if (skip) return;
  await fast.init({ threads: 2 });
  forced = createBlasKernels({
    heap: fast,
    threads: 2,
    minRows: 1,
    minMacs: 0,
    minDim: 1,
    minAttentionDim: 1,
  });
  routed = createBlasKernels({ heap: fast, threads: 2 });
});
test.after(async () => fast.dispose());

function randF32(n: number, rng: Rng): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < got.length; i++) {
    num = Math.max(num, Math.abs(got[i] - want[i]));
    den = Math.max(den, Math.abs(want[i]));
  }
  return num / Math.max(den, 1e-12);
}

test(
  "blas kernels: every product equals the float64 reference, in and out of the heap, at offsets",
  { skip },
  () => {
    const rng = new Rng(3);
    for (const [m, rows, cols] of [
      [1, 1, 1],
      [3, 5, 7],
      [17, 33, 65],
      [64, 200, 96],
      [130, 48, 300],
    ]) {
      for (const inHeap of [false, true]) {
        const arr = (n: number): Float32Array => {
          // a view at an odd element offset inside a larger array: the product must start at the view
          const base = inHeap ? fast.allocF32(n + 3) : new Float32Array(n + 3);
          return base.subarray(3);
        };
        const w: Matrix = { type: "f32", rows, cols, data: arr(rows * cols) };
        w.data.set(randF32(rows * cols, rng));
        const x = arr(m * cols);
        x.set(randF32(m * cols, rng));
        const dy = arr(m * rows);
        dy.set(randF32(m * rows, rng));
        const label = `m=${m} ${rows}x${cols} ${inHeap ? "heap" : "js"}`;

        const out = arr(m * rows);
        out.fill(123); // overwritten
        forced.matmul(out, x, w, m);
        const want = new Float64Array(m * rows);
        matmulF64(want, Float64Array.from(x), w, m);
        assert.ok(relErr(out, want) < 1e-5, `matmul ${label}: ${relErr(out, want)}`);

        const dx = arr(m * cols);
        dx.set(randF32(m * cols, rng));
        const wantDx = Float64Array.from(dx);
        forced.matmulBackwardInput(dx, dy, w, m);
        matmulBackwardInputF64(wantDx, Float64Array.from(dy), w, m);
        assert.ok(relErr(dx, wantDx) < 1e-5, `matmulBackwardInput ${label}: ${relErr(dx, wantDx)}`);

        const dw = arr(rows * cols);
        dw.set(randF32(rows * cols, rng));
        const wantDw = Float64Array.from(dw);
        forced.matmulBackwardWeight(dw, dy, x, m, rows, cols);
        matmulBackwardWeightF64(wantDw, Float64Array.from(dy), Float64Array.from(x), m, rows, cols);
        assert.ok(relErr(dw, wantDw) < 1e-5, `matmulBackwardWeight ${label}: ${relErr(dw, wantDw)}`);
      }
    }
    assert.throws(
      () =>
        forced.matmul(
          new Float32Array(2),
          new Float32Array(6),
          { type: "f32", rows: 2, cols: 3, data: new Float32Array(6) },
          2,
        ),
      /operand has 2 elements, the product needs 4/,
    );
  },
);

test("blas kernels: small and narrow products keep the WebAssembly kernels' bits", { skip }, () => {
  const rng = new Rng(4);
  for (const [m, rows, cols] of [
    [4, 576, 576], // too few rows (decoding)
    [512, 16, 384], // thin and not wide (a LoRA factor of a small model)
    [512, 64, 1024], // 64-wide (a small model's head)
    [64, 64, 64], // too small
  ]) {
    const w: Matrix = { type: "f32", rows, cols, data: randF32(rows * cols, rng) };
    const x = randF32(m * cols, rng);
    const a = new Float32Array(m * rows);
    const b = new Float32Array(m * rows);
    routed.matmul(a, x, w, m);
    fast.matmul(b, x, w, m);
    assert.deepEqual(a, b, `m=${m} ${rows}x${cols}`);
  }
  // attention with 16-wide heads (the organism's): the WebAssembly product, same bits
  const [M, N, K] = [64, 128, 16];
  const qa = fast.allocF32(M * K);
  qa.set(randF32(M * K, rng));
  const kb = fast.allocF32(N * K);
  kb.set(randF32(N * K, rng));
  const c1 = fast.allocF32(M * N);
  const c2 = fast.allocF32(M * N);
  routed.attentionGemm(
    M,
    N,
    K,
    qa.byteOffset,
    K * 4,
    4,
    kb.byteOffset,
    K * 4,
    true,
    c1.byteOffset,
    N * 4,
    false,
  );
  fast.gemm(M, N, K, qa.byteOffset, K * 4, 4, kb.byteOffset, K * 4, true, c2.byteOffset, N * 4, false);
  assert.deepEqual(c1, c2);
  const big: Matrix = { type: "f32", rows: 256, cols: 256, data: randF32(256 * 256, rng) };
  const x = randF32(64 * 256, rng);
  const a = new Float32Array(64 * 256);
  const want = new Float64Array(64 * 256);
  routed.matmul(a, x, big, 64); // large: BLAS
  matmulF64(want, Float64Array.from(x), big, 64);
  assert.ok(relErr(a, want) < 1e-5);
});

// The engine with every product forced to the BLAS, against the engine on the reference kernels.

test(
  "blas engine: logits, log-probs and KV-cached decoding equal the reference kernels' (< 1e-4)",
  { skip },
  () => {
    checkForwardAgainstReference(forced);
    checkDecodeAgainstReference(forced);
  },
);

test("blas engine: a LoRA training step's loss and gradients equal the reference kernels'", { skip }, () => {
  checkLoraStepAgainstReference(forced);
});
