// Developer check against an independent implementation: builds small factory models, exports each as a
// Hugging Face checkpoint plus a PEFT adapter, computes loss, LoRA gradients and logits with buckle's engine,
// then has bench/torch_reference.py (plain PyTorch, float64) compute the same from the exported files, and
// compares. Not a test dependency: it needs /usr/bin/python3 with torch. See docs/TORCH-REFERENCE.md.
// Usage: npx tsx src/bench/torch-reference.ts [--only llama-gqa,qwen2-bias,llama-tied]
//        [--precision f64,f32,f32-wasm] [--tolerance 1e-4] [--rope-angles hf|float64|ggml] [--python /usr/bin/python3]
//        [--keep] [--seed 7]
// Prints one JSON object on stdout (progress on stderr); exits 1 when any relative error reaches the tolerance.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import {
  createRandomLora,
  peftTensorName,
  permuteHeads,
  writePeftAdapter,
} from "../engine/adapters/index.js";
import { headChunks } from "../engine/forward.js";
import {
  f32Numerics,
  f64Numerics,
  forward,
  LORA_TARGETS,
  loadModelWeights,
  lossAndGrad,
  maskFromSpans,
  zeroLoraGrads,
  type EngineWeights,
  type FArray,
  type LoraTarget,
  type LoraWeights,
  type Numerics,
  type TrainSequence,
} from "../engine/index.js";
import { disposeKernels, initKernels, referenceKernels } from "../engine/kernels/index.js";
import { openGGUF } from "../formats/gguf/index.js";
import { needsQKPermute, unpermuteQK, writeHFCheckpoint } from "../formats/hf/index.js";
import type { ModelArch, ModelSpec, RopeScaling } from "../formats/model-spec.js";
import { createRandomModel } from "../models/factory.js";
import { Rng } from "../util/random.js";

/** One model shape to check. */
export interface ReferenceCase {
  name: string;
  arch: ModelArch;
  /** "builtin:<name>" vocabulary for the factory. */
  vocab: string;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
  tiedEmbeddings: boolean;
  ropeTheta: number;
  ropeScaling?: RopeScaling;
  rmsNormEps?: number;
}

/** The default cases: GQA llama with linear rope scaling, qwen2 with q/k/v biases, a tied llama-3 style model. */
export const REFERENCE_CASES: readonly ReferenceCase[] = [
  {
    name: "llama-gqa",
    arch: "llama",
    vocab: "builtin:llama-spm",
    hiddenSize: 64,
    numLayers: 2,
    numHeads: 8,
    numKvHeads: 2,
    intermediateSize: 160,
    tiedEmbeddings: false,
    ropeTheta: 10000,
    ropeScaling: { type: "linear", factor: 2 },
  },
  {
    name: "qwen2-bias",
    arch: "qwen2",
    vocab: "builtin:qwen2",
    hiddenSize: 64,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 128,
    tiedEmbeddings: false,
    ropeTheta: 1000000,
    rmsNormEps: 1e-6,
  },
  {
    name: "llama-tied",
    arch: "llama",
    vocab: "builtin:llama-bpe",
    hiddenSize: 64,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 4,
    intermediateSize: 96,
    tiedEmbeddings: true,
    ropeTheta: 500000,
    ropeScaling: {
      type: "llama3",
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalContextLength: 16,
    },
  },
];

/** "f64": float64 engine numerics; "f32": float32 through the reference kernels; "f32-wasm": the fast kernels. */
export type ReferencePrecision = "f64" | "f32" | "f32-wasm";

export interface TorchReferenceOptions {
  cases?: readonly ReferenceCase[];
  precisions?: readonly ReferencePrecision[];
  /** Relative errors at or above this fail (default 1e-4). */
  tolerance?: number;
  seed?: number;
  python?: string;
  script?: string;
  /**
   * Rotary angles in the reference: "hf" (default) float32 as transformers computes them; "float64" exact;
   * "ggml" llama.cpp's float32 recurrence with float32 cos/sin, i.e. buckle's own table, which isolates
   * everything but the rope table (float64 then agrees to about 1e-14).
   */
  ropeAngles?: "hf" | "float64" | "ggml";
  /** Keep the exported files (their directory is reported). */
  keep?: boolean;
  log?: (line: string) => void;
}

export interface GradComparison {
  /** PEFT tensor name. */
  name: string;
  /** max |ours - torch| / max |torch| over the tensor. */
  relErr: number;
  maxAbs: number;
}

export interface PrecisionReport {
  precision: ReferencePrecision;
  loss: number;
  lossRelErr: number;
  /** The largest LoRA-gradient relative error and the tensor it occurs in. */
  worstGrad: GradComparison;
  logitsMaxAbsDiff: number;
  /** logitsMaxAbsDiff / max |torch logits|. */
  logitsRelErr: number;
  pass: boolean;
  /** Every LoRA gradient, for a closer look. */
  grads: GradComparison[];
}

export interface CaseReport {
  name: string;
  spec: ModelSpec;
  rank: number;
  alpha: number;
  sequences: number[];
  targets: number;
  torchLoss: number;
  torchSeconds: number;
  results: PrecisionReport[];
  dir?: string;
}

export interface TorchReferenceReport {
  tolerance: number;
  torch: string;
  ropeAngles: "hf" | "float64" | "ggml";
  pass: boolean;
  cases: CaseReport[];
}

interface TorchArray {
  shape: number[];
  encoding?: string;
  data: number[] | string;
}

interface TorchResult {
  loss: number;
  loss_sum: number;
  count: number;
  grads: Record<string, TorchArray>;
  logits: TorchArray;
  meta: { torch: string };
}

function decodeArray(a: TorchArray): Float64Array {
  if (typeof a.data !== "string") return Float64Array.from(a.data);
  if (a.encoding !== "base64-f64le") throw new Error(`unknown array encoding ${String(a.encoding)}`);
  const bytes = Buffer.from(a.data, "base64");
  const out = new Float64Array(bytes.length / 8);
  for (let i = 0; i < out.length; i++) out[i] = bytes.readDoubleLE(i * 8);
  return out;
}

function maxAbs(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** B-gradient rows of a q/k projection in Hugging Face order, via the same unpermutation the PEFT export uses. */
function bGradToHF(spec: ModelSpec, target: LoraTarget, g: FArray, out: number, rank: number): FArray {
  const heads = permuteHeads(spec, target);
  if (heads === undefined || !needsQKPermute(spec.arch)) return g;
  // Unpermute row indices (exact in f32) and gather, so float64 gradients keep every bit.
  const rowOf = unpermuteQK(
    Float32Array.from({ length: out }, (_, i) => i),
    out,
    1,
    heads,
  );
  const res = new Float64Array(g.length);
  for (let r = 0; r < out; r++) res.set(g.subarray(rowOf[r] * rank, rowOf[r] * rank + rank), r * rank);
  return res;
}

/** Seeded batch: three sequences of different lengths with prompt/answer-style masks. */
function makeBatch(vocabSize: number, seed: number): TrainSequence[] {
  const rng = new Rng(seed);
  const ids = (n: number) => Array.from({ length: n }, () => rng.int(0, vocabSize - 1));
  const a = ids(19);
  const b = ids(11);
  const c = ids(26);
  return [
    { ids: a, mask: maskFromSpans(a.length, [{ start: 6, end: a.length }]) },
    { ids: b, mask: maskFromSpans(b.length, [{ start: 1, end: b.length }]) },
    {
      ids: c,
      mask: maskFromSpans(c.length, [
        { start: 4, end: 11 },
        { start: 17, end: 24 },
      ]),
    },
  ];
}

function numericsFor(p: ReferencePrecision): Numerics {
  if (p === "f64") return f64Numerics;
  if (p === "f32") return f32Numerics(referenceKernels);
  return f32Numerics();
}

function ours(
  model: EngineWeights,
  lora: LoraWeights,
  seqs: TrainSequence[],
  nm: Numerics,
): { loss: number; grads: Map<string, FArray>; logits: Float64Array } {
  const s = model.spec;
  const rank = lora.config.rank;
  const loraGrads = zeroLoraGrads(lora, (n) => nm.alloc(n));
  const r = lossAndGrad(model, seqs, { lora, loraGrads, numerics: nm });
  const grads = new Map<string, FArray>();
  loraGrads.layers.forEach((layer, i) => {
    for (const t of LORA_TARGETS) {
      const g = layer[t];
      const pair = lora.layers[i][t];
      if (!g || !pair) continue;
      grads.set(peftTensorName(i, t, "A"), g.a);
      grads.set(peftTensorName(i, t, "B"), bGradToHF(s, t, g.b, pair.out, rank));
    }
  });
  const first = seqs[0].ids;
  const acts = forward(model, [first], { lora, numerics: nm, keepActivations: false });
  const V = model.output.rows;
  const logits = new Float64Array(first.length * V);
  const rows = Array.from({ length: first.length }, (_, i) => i);
  let o = 0;
  headChunks(model, nm, acts.xnF, rows, (chunk) => {
    logits.set(chunk, o);
    o += chunk.length;
  });
  return { loss: r.lossSum / r.count, grads, logits };
}

function runTorch(
  python: string,
  script: string,
  dir: string,
  ropeAngles: string,
): { result: TorchResult; seconds: number } {
  const outPath = join(dir, "torch.json");
  const t0 = performance.now();
  const r = spawnSync(
    python,
    [
      script,
      "--model",
      join(dir, "hf"),
      "--adapter",
      join(dir, "peft"),
      "--batch",
      join(dir, "batch.json"),
      "--out",
      outPath,
      "--compact",
      "--rope-angles",
      ropeAngles,
    ],
    { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
  );
  const seconds = (performance.now() - t0) / 1000;
  if (r.error) throw new Error(`cannot run ${python}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${script} failed (exit ${r.status}):\n${r.stderr}`);
  return { result: JSON.parse(readFileSync(outPath, "utf8")) as TorchResult, seconds };
}

function defaultScript(): string {
  // src/bench/ under tsx, dist/bench/ when built: the repository root is two levels up either way.
  return resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "bench", "torch_reference.py");
}

/** Run every case at every precision against the PyTorch reference. */
export async function runTorchReference(opts: TorchReferenceOptions = {}): Promise<TorchReferenceReport> {
  const cases = opts.cases ?? REFERENCE_CASES;
  const precisions = opts.precisions ?? ["f64", "f32", "f32-wasm"];
  const tolerance = opts.tolerance ?? 1e-4;
  const seed = opts.seed ?? 7;
  const python = opts.python ?? "/usr/bin/python3";
  const script = opts.script ?? defaultScript();
  const ropeAngles = opts.ropeAngles ?? "hf";
  const log = opts.log ?? (() => {});
  if (!existsSync(script)) throw new Error(`${script} not found`);
  const root = mkdtempSync(join(tmpdir(), "buckle-torch-ref-"));
  const reports: CaseReport[] = [];
  let torchVersion = "";
  try {
    if (precisions.includes("f32-wasm")) await initKernels({ threads: 2 });
    for (const c of cases) {
      const dir = join(root, c.name);
      mkdirSync(join(dir, "hf"), { recursive: true });
      mkdirSync(join(dir, "peft"), { recursive: true });
      log(`${c.name}: building the model`);
      const created = createRandomModel(
        {
          arch: c.arch,
          vocab: c.vocab,
          hiddenSize: c.hiddenSize,
          numLayers: c.numLayers,
          numHeads: c.numHeads,
          numKvHeads: c.numKvHeads,
          intermediateSize: c.intermediateSize,
          tiedEmbeddings: c.tiedEmbeddings,
          ropeTheta: c.ropeTheta,
          rmsNormEps: c.rmsNormEps,
          seed,
          // Larger than the factory's 0.02 so attention is far from uniform and the logits spread out.
          initStd: 0.15,
        },
        join(dir, "base.gguf"),
      );
      // The factory has no rope-scaling option; the scaling enters through the exported config.json.
      const spec: ModelSpec = c.ropeScaling ? { ...created.spec, ropeScaling: c.ropeScaling } : created.spec;
      const gguf = openGGUF(created.path);
      try {
        // Norm weights get a random spread too, so their values matter; everything else as the factory made it.
        const normRng = new Rng(seed ^ 0x5eed);
        writeHFCheckpoint(join(dir, "hf"), spec, (name) => {
          const data = gguf.readTensorF32(name);
          if (name.endsWith("norm.weight"))
            for (let i = 0; i < data.length; i++) data[i] += normRng.normal() * 0.2;
          return data;
        });
      } finally {
        gguf.close();
      }
      // Our engine reads the same safetensors export the reference reads (q/k rows permuted on the way in).
      const model = loadModelWeights(join(dir, "hf"));
      const lora = createRandomLora(
        model.spec,
        { rank: 4, alpha: 8, dropout: 0, targets: [...LORA_TARGETS] },
        { seed: seed + 1, stdB: 0.1 },
      );
      writePeftAdapter(join(dir, "peft"), lora, { baseModel: join(dir, "hf"), spec: model.spec });
      const seqs = makeBatch(model.spec.vocabSize, seed + 2);
      writeFileSync(
        join(dir, "batch.json"),
        JSON.stringify({ ids: seqs.map((q) => q.ids), masks: seqs.map((q) => Array.from(q.mask)) }),
      );

      log(`${c.name}: PyTorch reference`);
      const { result: ref, seconds } = runTorch(python, script, dir, ropeAngles);
      torchVersion = ref.meta.torch;
      const refLogits = decodeArray(ref.logits);
      const refLogitsMax = maxAbs(refLogits);
      const results: PrecisionReport[] = [];
      for (const p of precisions) {
        log(`${c.name}: buckle ${p}`);
        const mine = ours(model, lora, seqs, numericsFor(p));
        const grads: GradComparison[] = [];
        for (const [name, arr] of Object.entries(ref.grads)) {
          const want = decodeArray(arr);
          const got = mine.grads.get(name);
          if (!got) throw new Error(`${c.name}: the reference has ${name}, buckle has no such gradient`);
          const m = maxAbs(want);
          grads.push({ name, relErr: maxAbsDiff(got, want) / (m || 1), maxAbs: m });
        }
        if (grads.length !== mine.grads.size)
          throw new Error(
            `${c.name}: ${mine.grads.size} buckle gradients, ${grads.length} from the reference`,
          );
        const worstGrad = grads.reduce((w, g) => (g.relErr > w.relErr ? g : w));
        const lossRelErr = Math.abs(mine.loss - ref.loss) / Math.abs(ref.loss);
        const logitsMaxAbsDiff = maxAbsDiff(mine.logits, refLogits);
        const logitsRelErr = logitsMaxAbsDiff / (refLogitsMax || 1);
        const pass = lossRelErr < tolerance && worstGrad.relErr < tolerance && logitsRelErr < tolerance;
        results.push({
          precision: p,
          loss: mine.loss,
          lossRelErr,
          worstGrad,
          logitsMaxAbsDiff,
          logitsRelErr,
          pass,
          grads,
        });
      }
      reports.push({
        name: c.name,
        spec: model.spec,
        rank: lora.config.rank,
        alpha: lora.config.alpha,
        sequences: seqs.map((q) => q.ids.length),
        targets: ref.count,
        torchLoss: ref.loss,
        torchSeconds: Number(seconds.toFixed(2)),
        results,
        dir: opts.keep ? dir : undefined,
      });
    }
  } finally {
    if (precisions.includes("f32-wasm")) await disposeKernels();
    if (!opts.keep) rmSync(root, { recursive: true, force: true });
  }
  return {
    tolerance,
    torch: torchVersion,
    ropeAngles,
    pass: reports.every((r) => r.results.every((x) => x.pass)),
    cases: reports,
  };
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const { values } = parseArgs({
    options: {
      only: { type: "string" },
      precision: { type: "string", default: "f64,f32,f32-wasm" },
      tolerance: { type: "string", default: "1e-4" },
      "rope-angles": { type: "string", default: "hf" },
      python: { type: "string", default: "/usr/bin/python3" },
      script: { type: "string" },
      seed: { type: "string", default: "7" },
      keep: { type: "boolean", default: false },
      "all-grads": { type: "boolean", default: false },
    },
  });
  const only = values.only?.split(",");
  const cases = only ? REFERENCE_CASES.filter((c) => only.includes(c.name)) : REFERENCE_CASES;
  if (only && cases.length !== only.length) {
    process.stderr.write(`unknown case in --only; cases: ${REFERENCE_CASES.map((c) => c.name).join(", ")}\n`);
    process.exit(2);
  }
  const precisions = values.precision.split(",") as ReferencePrecision[];
  for (const p of precisions)
    if (p !== "f64" && p !== "f32" && p !== "f32-wasm") {
      process.stderr.write(`--precision takes f64, f32, f32-wasm; got ${p}\n`);
      process.exit(2);
    }
  const ropeAngles = values["rope-angles"];
  if (ropeAngles !== "hf" && ropeAngles !== "float64" && ropeAngles !== "ggml") {
    process.stderr.write(`--rope-angles takes hf, float64 or ggml\n`);
    process.exit(2);
  }
  const report = await runTorchReference({
    cases,
    precisions,
    tolerance: Number(values.tolerance),
    seed: Number(values.seed),
    python: values.python,
    script: values.script,
    ropeAngles,
    keep: values.keep,
    log: (line) => process.stderr.write(line + "\n"),
  });
  const shown = values["all-grads"]
    ? report
    : {
        ...report,
        cases: report.cases.map((c) => ({ ...c, results: c.results.map(({ grads: _, ...r }) => r) })),
      };
  process.stdout.write(JSON.stringify(shown, null, 2) + "\n");
  process.exitCode = report.pass ? 0 : 1;
}
