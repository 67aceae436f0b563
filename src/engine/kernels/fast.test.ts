import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { after, describe, it } from "node:test";
import type { Matrix, MatrixType } from "../types.js";
import type { Kernels } from "./index.js";
import { FastKernels } from "./fast.js";
import { crossEntropyBackwardInPlace, logSumExp, swigluBackward, swigluForward } from "../ops.js";
import { matmulBackwardInputF64, matmulBackwardWeightF64, matmulF64 } from "./reference.js";

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

function randF32(n: number, r: () => number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r() * 2 - 1;
  return a;
}

/** Random f16 bits: normals of moderate size, plus some subnormals and zeros. */
function randF16Bits(r: () => number): number {
  const sign = r() < 0.5 ? 0x8000 : 0;
  const u = r();
  if (u < 0.02) return sign; // +-0
  if (u < 0.06) return sign | Math.floor(r() * 1024); // subnormal
  const exp = 8 + Math.floor(r() * 9); // 2^-7 .. 2^1
  return sign | (exp << 10) | Math.floor(r() * 1024);
}

function randMatrix(type: MatrixType, rows: number, cols: number, r: () => number): Matrix {
  switch (type) {
    case "f32":
      return { type, rows, cols, data: randF32(rows * cols, r) };
    case "f16": {
      const d = new Uint16Array(rows * cols);
      for (let i = 0; i < d.length; i++) d[i] = randF16Bits(r);
      return { type, rows, cols, data: d };
    }
    case "bf16": {
      const d = new Uint16Array(rows * cols);
      const f = new Float32Array(1);
      const u = new Uint32Array(f.buffer);
      for (let i = 0; i < d.length; i++) {
        f[0] = r() * 2 - 1;
        d[i] = u[0] >>> 16;
      }
      return { type, rows, cols, data: d };
    }
    case "q8_0": {
      const blocks = (rows * cols) / 32;
      const d = new Uint8Array(blocks * 34);
      for (let b = 0; b < blocks; b++) {
        const h = (randF16Bits(r) & 0x7fff) | 0x2000; // positive scale, not tiny
        d[b * 34] = h & 0xff;
        d[b * 34 + 1] = h >> 8;
        for (let j = 0; j < 32; j++) d[b * 34 + 2 + j] = Math.floor(r() * 256);
      }
      return { type, rows, cols, data: d };
    }
  }
}

function relErr(got: Float32Array, want: Float64Array): number {
  let e = 0;
  let mx = 0;
  for (let i = 0; i < want.length; i++) {
    e = Math.max(e, Math.abs(got[i] - want[i]));
    mx = Math.max(mx, Math.abs(want[i]));
  }
  return mx === 0 ? e : e / mx;
}

const TYPES: MatrixType[] = ["f32", "f16", "bf16", "q8_0"];
// [m, rows, cols]: m=1, odd sizes, sizes past the 8-column panels / 4-row tiles / 256-deep k blocks
const SHAPES: [number, number, number][] = [
  [1, 1, 32],
  [1, 13, 64],
  [3, 9, 96],
  [5, 7, 17],
  [37, 70, 33],
  [70, 301, 160],
  [9, 41, 544],
  [130, 96, 300],
];

function checkKernels(k: Kernels, where: string, opts: { heap?: FastKernels } = {}): void {
  const tol = 1e-5;
  let seed = 1;
  for (const type of TYPES) {
    for (const [m, rows, cols] of SHAPES) {
      if (type === "q8_0" && cols % 32 !== 0) continue;
      const r = rng(seed++);
      let w = randMatrix(type, rows, cols, r);
      let x = randF32(m * cols, r);
      let dy = randF32(m * rows, r);
      if (opts.heap) {
        // operands in the heap (zero-copy path)
        w = opts.heap.place(w);
        const hx = opts.heap.allocF32(x.length);
        hx.set(x);
        x = hx;
        const hdy = opts.heap.allocF32(dy.length);
        hdy.set(dy);
        dy = hdy;
      }
      const label = `${where} ${type} m=${m} ${rows}x${cols}`;

      const out = opts.heap ? opts.heap.allocF32(m * rows) : new Float32Array(m * rows);
      out.fill(123); // overwritten
      k.matmul(out, x, w, m);
      const want = new Float64Array(m * rows);
      matmulF64(want, Float64Array.from(x), w, m);
      assert.ok(relErr(out, want) < tol, `matmul ${label}: ${relErr(out, want)}`);

      const dx0 = randF32(m * cols, r);
      const dx = opts.heap ? opts.heap.allocF32(m * cols) : new Float32Array(m * cols);
      dx.set(dx0);
      k.matmulBackwardInput(dx, dy, w, m);
      const wantDx = Float64Array.from(dx0);
      matmulBackwardInputF64(wantDx, Float64Array.from(dy), w, m);
      assert.ok(relErr(dx, wantDx) < tol, `matmulBackwardInput ${label}: ${relErr(dx, wantDx)}`);

      if (type === "f32") {
        const dw0 = randF32(rows * cols, r);
        const dw = opts.heap ? opts.heap.allocF32(rows * cols) : new Float32Array(rows * cols);
        dw.set(dw0);
        k.matmulBackwardWeight(dw, dy, x, m, rows, cols);
        const wantDw = Float64Array.from(dw0);
        matmulBackwardWeightF64(wantDw, Float64Array.from(dy), Float64Array.from(x), m, rows, cols);
        assert.ok(relErr(dw, wantDw) < tol, `matmulBackwardWeight ${label}: ${relErr(dw, wantDw)}`);
        if (opts.heap) opts.heap.free(dw);
      }
      if (opts.heap) {
        opts.heap.free(out);
        opts.heap.free(dx);
        opts.heap.free(x);
        opts.heap.free(dy);
        opts.heap.free(w.data);
      }
    }
  }
}

describe("fast kernels (WebAssembly SIMD)", () => {
  const k = new FastKernels();
  after(() => k.dispose());

  it("match the float64 reference on one thread, operands outside the heap", () => {
    checkKernels(k, "t1");
  });

  it("match the float64 reference on two threads, operands in the heap", async () => {
    await k.init({ threads: 2 });
    assert.equal(k.threads, 2);
    checkKernels(k, "t2-heap", { heap: k });
  });

  it("match on three threads (more threads than panels for small shapes)", async () => {
    await k.init({ threads: 3 });
    checkKernels(k, "t3");
    await k.dispose();
    assert.equal(k.threads, 1);
  });

  it("also match without relaxed-simd FMA", () => {
    const plain = new FastKernels({ relaxed: false });
    assert.equal(plain.relaxed, false);
    checkKernels(plain, "no-relaxed");
  });

  it("accept unaligned in-heap subarray views and leave neighbours alone", () => {
    const m = 3,
      rows = 10,
      cols = 7;
    const r = rng(99);
    const w = k.place(randMatrix("f32", rows, cols, r));
    const big = k.allocF32(1 + m * cols + 1 + m * rows + 1);
    big.fill(5);
    const x = big.subarray(1, 1 + m * cols);
    x.set(randF32(m * cols, r));
    const out = big.subarray(2 + m * cols, 2 + m * cols + m * rows);
    k.matmul(out, x, w, m);
    const want = new Float64Array(m * rows);
    matmulF64(want, Float64Array.from(x), w, m);
    assert.ok(relErr(out, want) < 1e-5);
    assert.equal(big[0], 5);
    assert.equal(big[1 + m * cols], 5);
    assert.equal(big[big.length - 1], 5);
    assert.ok(k.inHeap(big), `big ${big.buffer.byteLength} ${k.memory.buffer.byteLength}`);
    k.free(big);
    k.free(w.data);
  });

  it("heap: allocations are aligned, zeroed, reused after free, and views survive growth", () => {
    const h = new FastKernels();
    const a = h.allocF32(1000);
    a.fill(7);
    assert.equal(a.byteOffset % 64, 0);
    assert.ok(h.inHeap(a));
    h.free(a);
    const b = h.allocF32(500);
    assert.equal(b.byteOffset, a.byteOffset, "first fit reuses the freed block");
    assert.equal(b[0], 0, "reused memory is zeroed");
    b[3] = 42;
    const big = h.allocF32(8 << 20); // 32 MiB: grows the memory
    assert.equal(b[3], 42, "old views stay valid after growth");
    assert.ok(h.inHeap(big) && h.inHeap(b));
    assert.ok(!h.inHeap(new Float32Array(4)));
    h.free(big);
    h.free(b);
    assert.throws(() => h.free(b));
    const q = h.place({ type: "q8_0", rows: 1, cols: 32, data: new Uint8Array(34).fill(1) });
    assert.ok(q.data instanceof Uint8Array && h.inHeap(q.data) && q.data[33] === 1);
    assert.equal(h.place(q), q, "placing a heap matrix again is a no-op");
  });

  it("prepacked weights give the same bits as packing per call, for any row count, and free with the weight", async () => {
    await k.init({ threads: 2 });
    let seed = 500;
    const shapes: [number, number][] = [
      [13, 64],
      [9, 544],
      [70, 300],
      [301, 160],
      [41, 1536],
    ];
    for (const type of TYPES) {
      for (const [rows, cols] of shapes) {
        if (type === "q8_0" && cols % 32 !== 0) continue;
        const r = rng(seed++);
        const w = k.place(randMatrix(type, rows, cols, r));
        for (const m of [1, 2, 3, 4, 5, 16, 37]) {
          const x = k.allocF32(m * cols);
          x.set(randF32(m * cols, r));
          const plain = k.allocF32(m * rows);
          k.matmul(plain, x, w, m);
          assert.ok(k.prepack(w), "prepacked");
          const packed = k.allocF32(m * rows);
          k.matmul(packed, x, w, m);
          assert.deepEqual(packed, plain, `${type} m=${m} ${rows}x${cols}`);
          // every row equals the same row computed alone (decoding one sequence or a batch gives the same bits)
          const one = k.allocF32(rows);
          for (const i of [0, m - 1]) {
            k.matmul(one, x.subarray(i * cols, (i + 1) * cols), w, 1);
            assert.deepEqual(one, packed.subarray(i * rows, (i + 1) * rows), `${type} row ${i} of ${m}`);
          }
          k.unpack(w);
          for (const a of [x, plain, packed, one]) k.free(a);
        }
        const before = k.prepackedBytes;
        assert.ok(k.prepack(w));
        assert.ok(k.prepackedBytes > before);
        k.free(w.data);
        assert.equal(k.prepackedBytes, before, "freeing a weight frees its packed copy");
      }
    }
    await k.dispose();
  });

  it("element-wise jobs split across threads give the same bits as ops.ts's loops", async () => {
    await k.init({ threads: 2 });
    const r = rng(77);
    const size = 100_003;
    const [gate, up, dact] = [0, 1, 2].map(() => {
      const a = k.allocF32(size);
      a.set(randF32(size, r).map((v) => v * 8));
      return a;
    });
    assert.ok(k.canSplit(size, gate, up));
    const act = k.allocF32(size);
    k.swiglu(act, gate, up, size);
    const want = new Float32Array(size);
    swigluForward(want, gate, up, size);
    assert.deepEqual(act, want);
    const [dg, du] = [k.allocF32(size), k.allocF32(size)];
    k.swigluBackward(dg, du, dact, gate, up, size);
    const [wg, wu] = [new Float32Array(size), new Float32Array(size)];
    swigluBackward(wg, wu, dact, gate, up, size);
    assert.deepEqual(dg, wg);
    assert.deepEqual(du, wu);
    const V = 5003;
    const rows = 21;
    const logits = k.allocF32(rows * V);
    logits.set(randF32(rows * V, r).map((v) => v * 20));
    const out = new Float64Array(k.buf(), k.allocBytes(rows * 8), rows);
    k.logSumExpRows(out, logits, V, rows);
    for (let i = 0; i < rows; i++) assert.equal(out[i], logSumExp(logits, i * V, V));
    const tg = new Int32Array(k.buf(), k.allocBytes(rows * 4), rows);
    for (let i = 0; i < rows; i++) tg[i] = (i * 977) % V;
    const copy = Float32Array.from(logits);
    k.crossEntropyRows(out, logits, V, rows, tg, 1 / 3);
    for (let i = 0; i < rows; i++)
      assert.equal(out[i], crossEntropyBackwardInPlace(copy, i * V, V, tg[i], 1 / 3));
    assert.deepEqual(logits, copy);
    await k.dispose();
  });

  it("rejects q8_0 with cols not a multiple of 32", () => {
    const w: Matrix = { type: "q8_0", rows: 1, cols: 33, data: new Uint8Array(68) };
    assert.throws(() => k.matmul(new Float32Array(1), new Float32Array(33), w, 1), RangeError);
  });
});

function koffiAvailable(): boolean {
  try {
    createRequire(import.meta.url).resolve("koffi");
    return true;
  } catch {
    return false;
  }
}

describe(
  "fast kernels (ggml through koffi)",
  { skip: koffiAvailable() ? false : "koffi not installed" },
  () => {
    it("match the float64 reference (f32 natively, other types through the wasm kernels)", async () => {
      const { createGgmlKernels } = await import("./fast-ggml.js");
      const heap = new FastKernels();
      for (const threads of [1, 2]) {
        const g = createGgmlKernels({ threads, heap, minRows: 1, minMacs: 0 });
        try {
          checkKernels(g, `ggml t${threads}`);
          checkKernels(g, `ggml t${threads} heap`, { heap });
        } finally {
          g.dispose();
        }
      }
    });

    it("backward products through a frozen weight use a cached transposed copy, dropped when unpacked", async () => {
      const { createGgmlKernels } = await import("./fast-ggml.js");
      const heap = new FastKernels();
      const g = createGgmlKernels({ threads: 2, heap, minRows: 1, minMacs: 0 });
      try {
        const r = rng(77);
        const [m, rows, cols] = [9, 40, 24];
        const w = heap.place(randMatrix("f32", rows, cols, r));
        assert.ok(heap.prepack(w));
        const dy = randF32(m * rows, r);
        for (let round = 0; round < 3; round++) {
          if (round === 2) {
            // full fine-tuning changes a weight after unpacking it: the cached copy must not be used
            heap.unpack(w);
            for (let i = 0; i < w.data.length; i++) (w.data as Float32Array)[i] *= -2;
          }
          const dx = new Float32Array(m * cols);
          g.matmulBackwardInput(dx, dy, w, m);
          const want = new Float64Array(m * cols);
          matmulBackwardInputF64(want, Float64Array.from(dy), w, m);
          assert.ok(relErr(dx, want) < 1e-5, `round ${round}: ${relErr(dx, want)}`);
          assert.equal(g.transposedBytes, round < 2 ? rows * cols * 4 : 0);
        }
      } finally {
        g.dispose();
        await heap.dispose();
      }
    });
  },
);
