// Kernel microbenchmark: GFLOP/s of the three matrix products on the SmolLM2-135M shapes, for every kernel set
// available here (reference TypeScript, WebAssembly SIMD on 1..n threads, ggml through koffi when installed), and
// the same GEMMs in PyTorch when /usr/bin/python3 has torch. Prints one JSON object on stdout.
// Usage: node dist/bench/kernels.js [--m 1024] [--threads 1,2] [--reps 5] [--shapes 576x576,...] [--no-torch]
//        [--only wasm,ggml,reference,torch] [--skip-vocab]
// Timings are best-of-reps wall clock; the machine's noise is about +-10%, so compare within one run.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { Matrix } from "../engine/types.js";
import type { Kernels } from "../engine/kernels/index.js";
import { referenceKernels } from "../engine/kernels/reference.js";
import { getFastKernels } from "../engine/kernels/fast.js";

export const SMOLLM2_SHAPES: [number, number][] = [
  [576, 576], // q_proj, o_proj
  [192, 576], // k_proj, v_proj
  [1536, 576], // gate_proj, up_proj
  [576, 1536], // down_proj
  [49152, 576], // lm head
];

export interface KernelBenchOptions {
  m?: number;
  threads?: number[];
  reps?: number;
  shapes?: [number, number][];
  torch?: boolean;
  only?: Set<string>;
  log?: (s: string) => void;
}

type Op = "matmul" | "matmulBackwardInput" | "matmulBackwardWeight";
const OPS: Op[] = ["matmul", "matmulBackwardInput", "matmulBackwardWeight"];

interface Row {
  impl: string;
  threads: number;
  op: Op;
  shape: string;
  m: number;
  ms: number;
  gflops: number;
}

function fillRandom(a: Float32Array, seed: number): void {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = ((s >>> 0) / 4294967296 - 0.5) * 0.2;
  }
}

function timeOp(k: Kernels, op: Op, bufs: Buffers, m: number, reps: number): number {
  const { x, w, out, dy, dx, dw } = bufs;
  const run = (): void => {
    if (op === "matmul") k.matmul(out, x, w, m);
    else if (op === "matmulBackwardInput") k.matmulBackwardInput(dx, dy, w, m);
    else k.matmulBackwardWeight(dw, dy, x, m, w.rows, w.cols);
  };
  run(); // warm-up (and wasm tier-up)
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    run();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

interface Buffers {
  x: Float32Array;
  w: Matrix;
  out: Float32Array;
  dy: Float32Array;
  dx: Float32Array;
  dw: Float32Array;
}

/** Operands in the fast kernels' heap (the zero-copy layout the engine is meant to use). */
function heapBuffers(m: number, rows: number, cols: number): { bufs: Buffers; release: () => void } {
  const h = getFastKernels();
  const x = h.allocF32(m * cols);
  const wd = h.allocF32(rows * cols);
  const out = h.allocF32(m * rows);
  const dy = h.allocF32(m * rows);
  const dx = h.allocF32(m * cols);
  const dw = h.allocF32(rows * cols);
  fillRandom(x, 1);
  fillRandom(wd, 2);
  fillRandom(dy, 3);
  const bufs = { x, w: { type: "f32" as const, rows, cols, data: wd }, out, dy, dx, dw };
  return { bufs, release: () => [x, wd, out, dy, dx, dw].forEach((v) => h.free(v)) };
}

function torchRows(m: number, shapes: [number, number][], threads: number[], reps: number): Row[] | string {
  const py = "/usr/bin/python3";
  if (!existsSync(py)) return "no /usr/bin/python3";
  const code = `
import json, sys, time, torch
m, reps = ${m}, ${reps}
rows_out = []
for th in ${JSON.stringify(threads)}:
    torch.set_num_threads(th)
    for rows, cols in ${JSON.stringify(shapes)}:
        x = torch.randn(m, cols); w = torch.randn(rows, cols); dy = torch.randn(m, rows)
        dw = torch.zeros(rows, cols); dx = torch.zeros(m, cols)
        ops = {
          "matmul": lambda: torch.matmul(x, w.t()),
          "matmulBackwardInput": lambda: dx.add_(torch.matmul(dy, w)),
          "matmulBackwardWeight": lambda: dw.add_(torch.matmul(dy.t(), x)),
        }
        for name, f in ops.items():
            f()
            best = 1e9
            for _ in range(reps):
                t = time.perf_counter(); f(); best = min(best, time.perf_counter() - t)
            rows_out.append({"impl": "torch", "threads": th, "op": name, "shape": f"{rows}x{cols}", "m": m,
                             "ms": best * 1e3, "gflops": 2 * m * rows * cols / best / 1e9})
print(json.dumps({"torch": torch.__version__, "rows": rows_out}))
`;
  const r = spawnSync(py, ["-c", code], { encoding: "utf8", maxBuffer: 1 << 24 });
  if (r.status !== 0) return `torch unavailable: ${(r.stderr || "").trim().split("\n").pop()}`;
  const parsed = JSON.parse(r.stdout) as { torch: string; rows: Row[] };
  return parsed.rows.map((row) => ({ ...row, impl: `torch ${parsed.torch}` }));
}

export async function benchKernels(opts: KernelBenchOptions = {}): Promise<Record<string, unknown>> {
  const m = opts.m ?? 1024;
  const threads = opts.threads ?? [1, 2];
  const reps = opts.reps ?? 5;
  const shapes = opts.shapes ?? SMOLLM2_SHAPES;
  const want = (s: string) => opts.only === undefined || opts.only.has(s);
  const log = opts.log ?? (() => {});
  const rows: Row[] = [];
  const notes: string[] = [];
  const fast = getFastKernels();
  const record = (impl: string, th: number, k: Kernels, bufs: Buffers, rows_: number, cols: number): void => {
    for (const op of OPS) {
      const ms = timeOp(k, op, bufs, m, reps);
      const row = {
        impl,
        threads: th,
        op,
        shape: `${rows_}x${cols}`,
        m,
        ms,
        gflops: (2 * m * rows_ * cols) / ms / 1e6,
      };
      log(`${impl} t${th} ${op} ${row.shape}: ${row.gflops.toFixed(1)} GFLOP/s`);
      rows.push(row);
    }
  };

  let ggmlOk = want("ggml");
  for (const th of threads) {
    if (want("wasm")) await fast.init({ threads: th });
    let g: (Kernels & { dispose(): void }) | undefined;
    if (ggmlOk) {
      try {
        const mod = await import("../engine/kernels/fast-ggml.js");
        g = mod.createGgmlKernels({ threads: th });
      } catch (e) {
        notes.push(`ggml skipped: ${(e as Error).message}`);
        ggmlOk = false;
      }
    }
    for (const [r, c] of shapes) {
      const { bufs, release } = heapBuffers(m, r, c);
      if (want("wasm")) record(`wasm-simd${fast.relaxed ? "-relaxed" : ""}`, th, fast, bufs, r, c);
      if (g) record("ggml-koffi", th, g, bufs, r, c);
      if (want("reference") && th === 1 && r * c <= 1536 * 576)
        record("reference", 1, referenceKernels, bufs, r, c);
      release();
    }
    g?.dispose();
  }
  await fast.dispose();
  if (want("torch") && opts.torch !== false) {
    const t = torchRows(m, shapes, threads, reps);
    if (typeof t === "string") notes.push(t);
    else rows.push(...t);
  }
  return { m, reps, cpus: (await import("node:os")).cpus().length, node: process.version, rows, notes };
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const { values } = parseArgs({
    options: {
      m: { type: "string", default: "1024" },
      threads: { type: "string", default: "1,2" },
      reps: { type: "string", default: "5" },
      shapes: { type: "string" },
      only: { type: "string" },
      "no-torch": { type: "boolean", default: false },
      "skip-vocab": { type: "boolean", default: false },
    },
  });
  let shapes = values.shapes
    ? values.shapes.split(",").map((s) => s.split("x").map(Number) as [number, number])
    : SMOLLM2_SHAPES;
  if (values["skip-vocab"]) shapes = shapes.filter(([r]) => r < 49152);
  const result = await benchKernels({
    m: Number(values.m),
    threads: values.threads.split(",").map(Number),
    reps: Number(values.reps),
    shapes,
    torch: !values["no-torch"],
    only: values.only ? new Set(values.only.split(",")) : undefined,
    log: (s) => process.stderr.write(s + "\n"),
  });
  process.stdout.write(JSON.stringify(result, null, 2) + "\n");
}
