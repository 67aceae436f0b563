// Work-sharing stress for the fast kernels: bursts of tiny and odd-shaped products (1xK, Mx1, sizes below a panel,
// serial jobs of several items) between multi-threaded ones, each compared bit for bit with one thread.
//
// Run it where a hang can be caught (a child process with a timeout):
//   node dist/engine/kernels/stress.js --threads 3 --seconds 20 --seed 1
// prints one JSON line ({rounds, jobs, mismatches}) and exits 0 when every result matched, 1 otherwise.

import { pathToFileURL } from "node:url";
import { Rng } from "../../util/random.js";
import type { Matrix, MatrixType } from "../types.js";
import { FastKernels } from "./fast.js";

type StressOp = "matmul" | "prepacked" | "backwardInput" | "backwardWeight" | "gemmTransposed";

interface CaseSpec {
  op: StressOp;
  type: MatrixType;
  m: number;
  rows: number;
  cols: number;
}

// Products of >= 2 MFLOP (or prepacked weights of >= 256 KiB) wake the workers; the rest run on the caller, but a
// worker still awake from the last parallel job may take their items: that is where the races were.
const PARALLEL_CASES: CaseSpec[] = [
  { op: "matmul", type: "f32", m: 64, rows: 160, cols: 128 },
  { op: "matmul", type: "f16", m: 33, rows: 256, cols: 136 },
  { op: "prepacked", type: "f32", m: 64, rows: 128, cols: 192 },
  { op: "prepacked", type: "f32", m: 2, rows: 512, cols: 160 },
  { op: "backwardWeight", type: "f32", m: 96, rows: 128, cols: 96 },
  { op: "backwardInput", type: "bf16", m: 40, rows: 160, cols: 160 },
  { op: "gemmTransposed", type: "f32", m: 70, rows: 120, cols: 130 },
];
const TINY_CASES: CaseSpec[] = [
  { op: "matmul", type: "f32", m: 1, rows: 1, cols: 300 },
  { op: "matmul", type: "f32", m: 7, rows: 1, cols: 33 },
  { op: "matmul", type: "q8_0", m: 1, rows: 13, cols: 64 },
  { op: "matmul", type: "f16", m: 5, rows: 9, cols: 17 },
  { op: "prepacked", type: "f32", m: 3, rows: 200, cols: 64 },
  { op: "prepacked", type: "f16", m: 17, rows: 24, cols: 40 },
  { op: "backwardInput", type: "f32", m: 2, rows: 17, cols: 40 },
  { op: "backwardWeight", type: "f32", m: 3, rows: 1, cols: 70 },
  { op: "backwardWeight", type: "f32", m: 1, rows: 33, cols: 5 },
  { op: "gemmTransposed", type: "f32", m: 9, rows: 3, cols: 2 },
];

/** One case's operands in one heap, and how to run it there. */
interface Prepared {
  spec: CaseSpec;
  run(): void;
  /** What the case writes (reset before each run). */
  out: Float32Array;
  init: Float32Array;
}

function randomMatrix(type: MatrixType, rows: number, cols: number, rng: Rng): Matrix {
  const n = rows * cols;
  if (type === "f32") return { type, rows, cols, data: Float32Array.from({ length: n }, () => rng.normal()) };
  if (type === "q8_0") {
    const data = new Uint8Array((n / 32) * 34);
    for (let b = 0; b < n / 32; b++) {
      data[b * 34] = 0;
      data[b * 34 + 1] = 0x20; // scale 2^-7 (f16)
      for (let j = 0; j < 32; j++) data[b * 34 + 2 + j] = rng.int(0, 255);
    }
    return { type, rows, cols, data };
  }
  // f16 / bf16 bits of moderate normals
  const data = new Uint16Array(n);
  const f = new Float32Array(1);
  const bits = new Uint32Array(f.buffer);
  for (let i = 0; i < n; i++) {
    f[0] = rng.normal();
    data[i] =
      type === "bf16" ? bits[0] >>> 16 : (rng.int(0, 1) << 15) | (rng.int(10, 16) << 10) | rng.int(0, 1023);
  }
  return { type, rows, cols, data };
}

function prepare(k: FastKernels, spec: CaseSpec, seed: number): Prepared {
  const rng = new Rng(seed);
  const { op, type, m, rows, cols } = spec;
  const heapOf = (values: Float32Array): Float32Array => {
    const view = k.allocF32(values.length);
    view.set(values);
    return view;
  };
  const randoms = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const w = k.place(randomMatrix(type, rows, cols, rng));
  const wf32 = w.data as Float32Array; // gemm cases are f32 (checked below)
  if (op === "prepacked" && !k.prepack(w)) throw new Error("stress: prepack refused");
  const x = heapOf(randoms(m * cols));
  const dy = heapOf(randoms(m * rows));
  const outLength = op === "backwardWeight" ? rows * cols : op === "backwardInput" ? m * cols : m * rows;
  const init =
    op === "backwardWeight" || op === "backwardInput" ? randoms(outLength) : new Float32Array(outLength);
  if (op === "matmul" || op === "prepacked") init.fill(Number.NaN); // overwritten
  const out = heapOf(init);
  const run = (): void => {
    switch (op) {
      case "matmul":
      case "prepacked":
        return k.matmul(out, x, w, m);
      case "backwardInput":
        return k.matmulBackwardInput(out, dy, w, m);
      case "backwardWeight":
        return k.matmulBackwardWeight(out, dy, x, m, rows, cols);
      case "gemmTransposed":
        // out[m][rows] = A · Wᵀ with A(i, t) = x[t * m + i] (a transposed, strided read), overwrite
        return k.gemm(
          m,
          rows,
          cols,
          k.addr(x),
          4,
          m * 4,
          k.addr(wf32),
          cols * 4,
          true,
          k.addr(out),
          rows * 4,
          false,
        );
    }
  };
  if (op === "gemmTransposed" && type !== "f32") throw new Error("stress: gemm cases are f32");
  return { spec, run, out, init };
}

/** Element-wise jobs (swiglu over `size`), split across threads; compared with the single-thread heap. */
interface ElemCase {
  run(): void;
  out: Float32Array;
}

function prepareElem(k: FastKernels, size: number, seed: number): ElemCase {
  const rng = new Rng(seed);
  const gate = k.allocF32(size);
  const up = k.allocF32(size);
  for (let i = 0; i < size; i++) {
    gate[i] = rng.normal() * 4;
    up[i] = rng.normal();
  }
  const out = k.allocF32(size);
  return { run: () => k.swiglu(out, gate, up, size), out };
}

export interface StressOptions {
  /** Threads of the kernel set under test (the caller included); 3 on a 2-core machine preempts often. */
  threads: number;
  /** Stop after this long (default 10). */
  seconds?: number;
  /** Stop after this many rounds (default: no limit). */
  rounds?: number;
  seed: number;
}

export interface StressResult {
  rounds: number;
  jobs: number;
  /** "round 12 job 3: matmul f16 m=5 9x17 element 4: got .. want .." for each wrong result (first 20). */
  mismatches: string[];
}

/**
 * Runs rounds of one multi-threaded job followed by a burst of 3-12 tiny jobs (and now and then an element-wise
 * job), comparing each output bit for bit with a single-thread FastKernels. Blocks forever if the kernels hang:
 * call it in a child process with a timeout.
 */
export async function runKernelStress(opts: StressOptions): Promise<StressResult> {
  const multi = new FastKernels();
  const single = new FastKernels();
  await multi.init({ threads: opts.threads, stallSeconds: 30 });
  try {
    const specs = [...PARALLEL_CASES, ...TINY_CASES];
    const cases = specs.map((spec, i) => {
      const seed = opts.seed * 1000 + i;
      return { multi: prepare(multi, spec, seed), single: prepare(single, spec, seed) };
    });
    const elemSizes = [70_001, 5];
    const elems = elemSizes.map((size, i) => {
      const seed = opts.seed + i;
      return { multi: prepareElem(multi, size, seed), single: prepareElem(single, size, seed) };
    });
    // expected outputs: computed once on one thread (the inputs never change)
    const want = cases.map((c) => {
      c.single.out.set(c.single.init);
      c.single.run();
      return Float32Array.from(c.single.out);
    });
    const wantElem = elems.map((e) => {
      e.single.run();
      return Float32Array.from(e.single.out);
    });
    const rng = new Rng(opts.seed);
    const mismatches: string[] = [];
    const deadline = Date.now() + (opts.seconds ?? 10) * 1000;
    const maxRounds = opts.rounds ?? Number.POSITIVE_INFINITY;
    let rounds = 0;
    let jobs = 0;
    const check = (got: Float32Array, expected: Float32Array, what: string): void => {
      for (let i = 0; i < expected.length; i++)
        if (!Object.is(got[i], expected[i])) {
          if (mismatches.length < 20)
            mismatches.push(
              `round ${rounds} job ${jobs}: ${what} element ${i}: got ${got[i]} want ${expected[i]}`,
            );
          return;
        }
    };
    while (rounds < maxRounds && Date.now() < deadline) {
      const burst = [rng.int(0, PARALLEL_CASES.length - 1)];
      for (let n = rng.int(3, 12); n > 0; n--)
        burst.push(PARALLEL_CASES.length + rng.int(0, TINY_CASES.length - 1));
      for (const index of burst) {
        const c = cases[index].multi;
        c.out.set(c.init);
        c.run();
        jobs++;
        const { op, type, m, rows, cols } = c.spec;
        check(c.out, want[index], `${op} ${type} m=${m} ${rows}x${cols}`);
      }
      if (rounds % 8 === 0) {
        const e = rng.int(0, elems.length - 1);
        elems[e].multi.out.fill(Number.NaN);
        elems[e].multi.run();
        jobs++;
        check(elems[e].multi.out, wantElem[e], `swiglu size ${elemSizes[e]}`);
      }
      rounds++;
    }
    return { rounds, jobs, mismatches };
  } finally {
    await multi.dispose();
  }
}

function flag(args: string[], name: string, fallback: number): number {
  const at = args.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = Number(args[at + 1]);
  if (!Number.isFinite(value)) throw new Error(`--${name} needs a number, got ${args[at + 1]}`);
  return value;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const result = await runKernelStress({
    threads: flag(args, "threads", 3),
    seconds: flag(args, "seconds", 10),
    rounds: flag(args, "rounds", Number.POSITIVE_INFINITY),
    seed: flag(args, "seed", 1),
  });
  console.log(JSON.stringify(result));
  process.exit(result.mismatches.length === 0 ? 0 : 1);
}
