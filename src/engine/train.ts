// Fine-tuning loop: LoRA (or full fine-tuning of tiny models) with AdamW, warmup + constant/cosine/linear
// schedules, global-norm clipping, gradient accumulation, periodic eval, and exactly resumable checkpoints.

import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { BuckleError, FileFormatError, InputError } from "../util/errors.js";
import { writeFileAtomic } from "../util/fs.js";
import { Rng } from "../util/random.js";
import {
  lossAndGrad,
  lossOf,
  maskFromSpans,
  zeroBaseGrads,
  type BaseGrads,
  type TrainSequence,
} from "./backward.js";
import { placeWeights, unfreezeWeights, type EngineWeights } from "./forward.js";
import type { Kernels } from "./kernels/index.js";
import { createLora, mixSeed, validateLoraConfig, zeroLoraGrads } from "./lora.js";
import { f32Numerics } from "./numerics.js";
import type { LoraConfig, LoraPair, LoraTarget, LoraWeights, Matrix } from "./types.js";

/** A tokenized example: loss on tokens selected by lossMask (1 = target) or spans; else on every token but the first. */
export interface TrainExample {
  ids: readonly number[];
  lossMask?: ArrayLike<number>;
  spans?: readonly { start: number; end: number }[];
}

export type LrSchedule = "constant" | "cosine" | "linear";

export interface TrainConfig {
  seed: number;
  /** LoRA settings; required unless fullFineTune. */
  lora?: LoraConfig;
  /** Train every base weight instead of adapters (tiny models; matrices must be f32). */
  fullFineTune?: boolean;
  learningRate: number;
  /** Shape after warmup. Default "constant". */
  schedule?: LrSchedule;
  /** Linear warmup from lr/warmupSteps to lr over these optimizer steps. Default 0. */
  warmupSteps?: number;
  /** Floor of the cosine/linear decay as a fraction of learningRate. Default 0. */
  minLrRatio?: number;
  /** Decoupled (AdamW) weight decay, applied to LoRA factors and to base matrices, never to norms or biases. */
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  adamEps?: number;
  /** Clip the global gradient norm to this; 0 disables. Default 1. */
  maxGradNorm?: number;
  /** Sequences per micro-batch. */
  batchSize: number;
  /** Micro-batches per optimizer step. Default 1. */
  gradAccumSteps?: number;
  /** Optimizer steps; default: `epochs` (default 1) passes over the data. */
  steps?: number;
  epochs?: number;
  /** Evaluate the held-out set every N steps (and before the first and after the last). Default 0: ends only. */
  evalEvery?: number;
  /** Write a checkpoint every N steps into checkpointDir (and at the end). */
  checkpointEvery?: number;
  checkpointDir?: string;
  /** Checkpoints kept in checkpointDir (older ones are deleted). Default 2. */
  keepCheckpoints?: number;
}

export interface TrainProgress {
  step: number;
  totalSteps: number;
  epoch: number;
  /** Mean loss over the step's target tokens. */
  loss: number;
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** All tokens (not only targets) processed per second since this run started. */
  tokensPerSecond: number;
  /** Present on steps where the held-out set was evaluated. */
  evalLoss?: number;
}

export interface TrainRunOptions {
  evalSet?: readonly TrainExample[];
  onProgress?: (p: TrainProgress) => void;
  /** A checkpoint file, or a checkpoint directory (its latest checkpoint). */
  resumeFrom?: string;
  /** Stop after the current step when aborted (the result says stopped: true). */
  signal?: AbortSignal;
  /** Kernels for the float32 engine; default getKernels(). */
  kernels?: Kernels;
}

export interface TrainResult {
  /** The trained adapters (LoRA runs). Full fine-tuning updates the model's weights in place. */
  lora?: LoraWeights;
  step: number;
  totalSteps: number;
  stopped: boolean;
  history: TrainProgress[];
  evals: { step: number; loss: number }[];
  /** Path of the last checkpoint written, if any. */
  lastCheckpoint?: string;
}

// ---------------------------------------------------------------------------------------------------------
// Learning-rate schedule.

/** Learning rate of optimizer step `step` (0-based) of `total`. */
export function learningRateAt(config: TrainConfig, step: number, total: number): number {
  const lr = config.learningRate;
  const warmup = config.warmupSteps ?? 0;
  if (step < warmup) return (lr * (step + 1)) / warmup;
  const schedule = config.schedule ?? "constant";
  if (schedule === "constant") return lr;
  const floor = lr * (config.minLrRatio ?? 0);
  const span = Math.max(1, total - warmup);
  const progress = Math.min(1, (step - warmup) / span);
  if (schedule === "linear") return floor + (lr - floor) * (1 - progress);
  return floor + (lr - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

// ---------------------------------------------------------------------------------------------------------
// Trainable parameters and AdamW.

interface Param {
  name: string;
  data: Float32Array;
  grad: Float32Array;
  decay: boolean;
  m: Float32Array;
  v: Float32Array;
}

function param(name: string, data: Float32Array, grad: Float32Array, decay: boolean): Param {
  return { name, data, grad, decay, m: new Float32Array(data.length), v: new Float32Array(data.length) };
}

function loraParams(lora: LoraWeights, grads: ReturnType<typeof zeroLoraGrads>): Param[] {
  const out: Param[] = [];
  lora.layers.forEach((layer, l) => {
    for (const t of Object.keys(layer) as LoraTarget[]) {
      const p = layer[t] as LoraPair;
      const g = grads.layers[l][t];
      if (!g) continue;
      out.push(param(`${l}.${t}.lora_A`, p.a, g.a as Float32Array, true));
      out.push(param(`${l}.${t}.lora_B`, p.b, g.b as Float32Array, true));
    }
  });
  return out;
}

function baseParams(model: EngineWeights, g: BaseGrads): Param[] {
  const f = (name: string, m: Matrix): Float32Array => {
    if (m.type !== "f32") {
      throw new InputError(`full fine-tuning needs f32 weights; ${name} is ${m.type}`, {
        hint: 'load the model with loadModelWeights(path, { keep: "f32" })',
      });
    }
    return m.data as Float32Array;
  };
  const G = (x: unknown) => x as Float32Array;
  const out: Param[] = [param("token_embd.weight", f("token_embd", model.tokenEmbd), G(g.tokenEmbd), true)];
  model.layers.forEach((l, i) => {
    const gl = g.layers[i];
    const b = `blk.${i}.`;
    out.push(param(`${b}attn_norm.weight`, l.attnNorm, G(gl.attnNorm), false));
    out.push(param(`${b}attn_q.weight`, f(`${b}attn_q`, l.wq), G(gl.wq), true));
    out.push(param(`${b}attn_k.weight`, f(`${b}attn_k`, l.wk), G(gl.wk), true));
    out.push(param(`${b}attn_v.weight`, f(`${b}attn_v`, l.wv), G(gl.wv), true));
    if (l.bq && gl.bq) out.push(param(`${b}attn_q.bias`, l.bq, G(gl.bq), false));
    if (l.bk && gl.bk) out.push(param(`${b}attn_k.bias`, l.bk, G(gl.bk), false));
    if (l.bv && gl.bv) out.push(param(`${b}attn_v.bias`, l.bv, G(gl.bv), false));
    out.push(param(`${b}attn_output.weight`, f(`${b}attn_output`, l.wo), G(gl.wo), true));
    out.push(param(`${b}ffn_norm.weight`, l.ffnNorm, G(gl.ffnNorm), false));
    out.push(param(`${b}ffn_gate.weight`, f(`${b}ffn_gate`, l.wGate), G(gl.wGate), true));
    out.push(param(`${b}ffn_up.weight`, f(`${b}ffn_up`, l.wUp), G(gl.wUp), true));
    out.push(param(`${b}ffn_down.weight`, f(`${b}ffn_down`, l.wDown), G(gl.wDown), true));
  });
  out.push(param("output_norm.weight", model.outputNorm, G(g.outputNorm), false));
  if (g.output) out.push(param("output.weight", f("output", model.output), G(g.output), true));
  return out;
}

/** Global L2 norm of all gradients (float64 sum). */
function gradNorm(params: Param[]): number {
  let ss = 0;
  for (const p of params) for (let i = 0; i < p.grad.length; i++) ss += p.grad[i] * p.grad[i];
  return Math.sqrt(ss);
}

/** One AdamW update (PyTorch's semantics): decay p by lr·wd, then p -= lr · m̂ / (sqrt(v̂) + eps). */
function adamwStep(params: Param[], t: number, lr: number, c: TrainConfig): void {
  const b1 = c.beta1 ?? 0.9;
  const b2 = c.beta2 ?? 0.999;
  const eps = c.adamEps ?? 1e-8;
  const wd = c.weightDecay ?? 0;
  const bc1 = 1 - Math.pow(b1, t);
  const bc2 = 1 - Math.pow(b2, t);
  for (const p of params) {
    const decay = p.decay ? 1 - lr * wd : 1;
    const { data, grad, m, v } = p;
    for (let i = 0; i < data.length; i++) {
      const g = grad[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      data[i] = data[i] * decay - (lr * (m[i] / bc1)) / (Math.sqrt(v[i] / bc2) + eps);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Data order: a stream of per-epoch permutations, so step s always sees the same examples.

function epochOrder(seed: number, epoch: number, n: number): number[] {
  return new Rng(mixSeed(seed, 0xda7a, epoch)).shuffle(Array.from({ length: n }, (_, i) => i));
}

function toSequence(ex: TrainExample, index: number, contextLength: number): TrainSequence {
  if (ex.ids.length > contextLength) {
    throw new InputError(
      `example ${index} has ${ex.ids.length} tokens; the model's context is ${contextLength}`,
      {
        hint: "truncate or split long examples before training",
      },
    );
  }
  let mask: ArrayLike<number>;
  if (ex.lossMask) {
    if (ex.lossMask.length !== ex.ids.length) {
      throw new InputError(
        `example ${index}: lossMask has ${ex.lossMask.length} entries for ${ex.ids.length} tokens`,
      );
    }
    mask = ex.lossMask;
  } else if (ex.spans) mask = maskFromSpans(ex.ids.length, ex.spans);
  else mask = new Uint8Array(ex.ids.length).fill(1);
  return { ids: ex.ids, mask };
}

function targetCount(seq: TrainSequence): number {
  let c = 0;
  for (let t = 1; t < seq.ids.length; t++) if (seq.mask[t]) c++;
  return c;
}

/** FNV-1a over every example's ids and mask: a resumed run must see the same data. */
function datasetHash(seqs: readonly TrainSequence[]): string {
  let h = 0x811c9dc5;
  const mix = (x: number) => (h = Math.imul(h ^ (x >>> 0), 0x01000193));
  for (const s of seqs) {
    mix(s.ids.length);
    for (let t = 0; t < s.ids.length; t++) {
      mix(s.ids[t]);
      mix(s.mask[t] ? 1 : 0);
    }
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

// ---------------------------------------------------------------------------------------------------------
// Checkpoints: one file, a JSON header then float32 tensors (each parameter, its Adam m, its Adam v).

const CHECKPOINT_MAGIC = "BUCKLECKPT1\n";

interface CheckpointHeader {
  format: 1;
  step: number;
  totalSteps: number;
  /** Dropout masks and data order are functions of (seed, step), so seed + step is the whole RNG state. */
  rng: { seed: number; dropoutStream: "mixSeed(seed, step, microBatch, layer, target)" };
  datasetHash: string;
  /** The example permutation of the epoch the next step reads from (a record; it is recomputed from the seed). */
  dataOrder: { epoch: number; order: number[] };
  config: TrainConfig;
  history: TrainProgress[];
  evals: { step: number; loss: number }[];
  tensors: { name: string; length: number }[];
}

function writeCheckpoint(path: string, header: CheckpointHeader, params: Param[]): void {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const head = new TextEncoder().encode(CHECKPOINT_MAGIC);
  const prefix = head.length + 4 + json.length;
  const pad = (4 - (prefix % 4)) % 4;
  const floats = params.reduce((s, p) => s + 3 * p.data.length, 0);
  const bytes = new Uint8Array(prefix + pad + floats * 4);
  bytes.set(head, 0);
  new DataView(bytes.buffer).setUint32(head.length, json.length + pad, true);
  bytes.set(json, head.length + 4);
  bytes.fill(0x20, prefix, prefix + pad); // JSON tolerates trailing spaces
  const f = new Float32Array(bytes.buffer, prefix + pad, floats);
  let o = 0;
  for (const p of params) {
    for (const arr of [p.data, p.m, p.v]) {
      f.set(arr, o);
      o += arr.length;
    }
  }
  writeFileAtomic(path, bytes);
}

function readCheckpoint(path: string): { header: CheckpointHeader; data: Float32Array } {
  const bytes = new Uint8Array(readFileSync(path));
  const head = new TextDecoder().decode(bytes.subarray(0, CHECKPOINT_MAGIC.length));
  if (head !== CHECKPOINT_MAGIC) throw new FileFormatError(path, 0, "not a buckle training checkpoint");
  const len = new DataView(bytes.buffer, bytes.byteOffset).getUint32(CHECKPOINT_MAGIC.length, true);
  const start = CHECKPOINT_MAGIC.length + 4;
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(start, start + len))) as CheckpointHeader;
  const floats = (bytes.length - start - len) / 4;
  const data = new Float32Array(bytes.slice(start + len).buffer, 0, floats);
  return { header, data };
}

function checkpointName(step: number): string {
  return `checkpoint-${String(step).padStart(8, "0")}.bckpt`;
}

/** The newest checkpoint file in a directory, if any. */
export function latestCheckpoint(dir: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  const files = readdirSync(dir)
    .filter((f) => /^checkpoint-\d+\.bckpt$/.test(f))
    .sort();
  return files.length ? join(dir, files[files.length - 1]) : undefined;
}

/** Settings that must not change across a resume (they change the result). */
const RESUME_KEYS: (keyof TrainConfig)[] = [
  "seed",
  "lora",
  "fullFineTune",
  "learningRate",
  "schedule",
  "warmupSteps",
  "minLrRatio",
  "weightDecay",
  "beta1",
  "beta2",
  "adamEps",
  "maxGradNorm",
  "batchSize",
  "gradAccumSteps",
];

// ---------------------------------------------------------------------------------------------------------
// The loop.

/**
 * Train on `data`. Deterministic given config.seed: an interrupted run resumed from its checkpoint ends with
 * bit-identical weights to an uninterrupted one.
 */
export async function train(
  model: EngineWeights,
  data: readonly TrainExample[],
  config: TrainConfig,
  run: TrainRunOptions = {},
): Promise<TrainResult> {
  const spec = model.spec;
  if (data.length === 0) throw new InputError("no training examples");
  if (!(config.batchSize >= 1)) throw new InputError(`batchSize must be >= 1, got ${config.batchSize}`);
  if (!config.fullFineTune && !config.lora) throw new InputError("set config.lora, or fullFineTune: true");
  const nm = f32Numerics(run.kernels);
  const seqs = data.map((ex, i) => toSequence(ex, i, spec.contextLength));
  const evalSeqs = (run.evalSet ?? []).map((ex, i) => toSequence(ex, i, spec.contextLength));
  const accum = config.gradAccumSteps ?? 1;
  const perStep = config.batchSize * accum;
  const totalSteps = config.steps ?? Math.ceil(((config.epochs ?? 1) * seqs.length) / perStep);
  const evalEvery = config.evalEvery ?? 0;
  const hash = datasetHash(seqs);

  // parameters
  let lora: LoraWeights | undefined;
  let params: Param[];
  let gradOpts: { loraGrads?: ReturnType<typeof zeroLoraGrads>; baseGrads?: BaseGrads };
  if (config.fullFineTune) {
    // the optimizer writes the weights in place: they must be the heap copies the passes read, not prepacked
    if (nm.heap) {
      placeWeights(model, nm.heap);
      unfreezeWeights(model, nm.heap);
    }
    const baseGrads = zeroBaseGrads(model, (n) => new Float32Array(n));
    params = baseParams(model, baseGrads);
    gradOpts = { baseGrads };
  } else {
    const lc = config.lora as LoraConfig;
    validateLoraConfig(lc);
    lora = createLora(spec, lc, mixSeed(config.seed, 0x10a));
    const loraGrads = zeroLoraGrads(lora, (n) => new Float32Array(n));
    params = loraParams(lora, loraGrads);
    gradOpts = { loraGrads };
  }
  const zeroGrads = () => {
    for (const p of params) p.grad.fill(0);
  };

  let step = 0;
  let history: TrainProgress[] = [];
  let evals: { step: number; loss: number }[] = [];
  if (run.resumeFrom) {
    const path = statSync(run.resumeFrom).isDirectory() ? latestCheckpoint(run.resumeFrom) : run.resumeFrom;
    if (!path) throw new InputError(`no checkpoint in ${run.resumeFrom}`);
    const { header, data: floats } = readCheckpoint(path);
    for (const k of RESUME_KEYS) {
      if (JSON.stringify(header.config[k]) !== JSON.stringify(config[k])) {
        throw new InputError(`cannot resume from ${path}: ${k} differs from the checkpoint's`, {
          hint: `the checkpoint was trained with ${k} = ${JSON.stringify(header.config[k])}`,
        });
      }
    }
    if (header.datasetHash !== hash) {
      throw new InputError(`cannot resume from ${path}: the training data differ from the checkpoint's`);
    }
    if (header.tensors.length !== params.length)
      throw new FileFormatError(path, undefined, "parameter count differs");
    let o = 0;
    params.forEach((p, i) => {
      const t = header.tensors[i];
      if (t.name !== p.name || t.length !== p.data.length) {
        throw new FileFormatError(
          path,
          undefined,
          `tensor ${i} is ${t.name}[${t.length}], expected ${p.name}[${p.data.length}]`,
        );
      }
      for (const arr of [p.data, p.m, p.v]) {
        arr.set(floats.subarray(o, o + arr.length));
        o += arr.length;
      }
    });
    step = header.step;
    history = header.history;
    evals = header.evals;
  }

  const dataLoraArg = () => (lora ? { lora } : {});
  const evaluate = (): number => {
    let lossSum = 0;
    let count = 0;
    for (let i = 0; i < evalSeqs.length; i += config.batchSize) {
      const r = lossOf(model, evalSeqs.slice(i, i + config.batchSize), { ...dataLoraArg(), numerics: nm });
      lossSum += r.lossSum;
      count += r.count;
    }
    return count ? lossSum / count : NaN;
  };
  const orders = new Map<number, number[]>();
  const exampleAt = (j: number): number => {
    const epoch = Math.floor(j / seqs.length);
    let order = orders.get(epoch);
    if (!order) {
      order = epochOrder(config.seed, epoch, seqs.length);
      orders.clear();
      orders.set(epoch, order);
    }
    return order[j % seqs.length];
  };

  let lastCheckpoint: string | undefined;
  const saveCheckpoint = () => {
    if (!config.checkpointDir) return;
    const epoch = Math.floor((step * perStep) / seqs.length);
    const header: CheckpointHeader = {
      format: 1,
      step,
      totalSteps,
      rng: { seed: config.seed, dropoutStream: "mixSeed(seed, step, microBatch, layer, target)" },
      datasetHash: hash,
      dataOrder: { epoch, order: epochOrder(config.seed, epoch, seqs.length) },
      config,
      history,
      evals,
      tensors: params.map((p) => ({ name: p.name, length: p.data.length })),
    };
    lastCheckpoint = join(config.checkpointDir, checkpointName(step));
    writeCheckpoint(lastCheckpoint, header, params);
    const keep = config.keepCheckpoints ?? 2;
    const all = readdirSync(config.checkpointDir)
      .filter((f) => /^checkpoint-\d+\.bckpt$/.test(f))
      .sort();
    for (const f of all.slice(0, Math.max(0, all.length - keep)))
      rmSync(join(config.checkpointDir, f), { force: true });
  };

  if (evalSeqs.length && step === 0 && !evals.some((e) => e.step === 0))
    evals.push({ step: 0, loss: evaluate() });

  const started = Date.now();
  let tokensThisRun = 0;
  let stopped = false;
  while (step < totalSteps) {
    if (run.signal?.aborted) {
      stopped = true;
      break;
    }
    // the examples of this step, split into micro-batches
    const first = step * perStep;
    const stepSeqs = Array.from({ length: perStep }, (_, i) => seqs[exampleAt(first + i)]);
    const targets = stepSeqs.reduce((s, q) => s + targetCount(q), 0);
    zeroGrads();
    let lossSum = 0;
    for (let mb = 0; mb < accum; mb++) {
      const micro = stepSeqs.slice(mb * config.batchSize, (mb + 1) * config.batchSize);
      const r = lossAndGrad(model, micro, {
        ...dataLoraArg(),
        ...gradOpts,
        numerics: nm,
        dropoutSeed: mixSeed(config.seed, step, mb),
        gradScale: targets ? 1 / targets : 0,
      });
      lossSum += r.lossSum;
      tokensThisRun += micro.reduce((s, q) => s + q.ids.length, 0);
    }
    const norm = gradNorm(params);
    if (!Number.isFinite(norm)) {
      throw new BuckleError(`gradient norm is ${norm} at step ${step + 1}`, {
        hint: "lower the learning rate; the model may have diverged",
      });
    }
    const maxNorm = config.maxGradNorm ?? 1;
    if (maxNorm > 0 && norm > maxNorm) {
      const k = maxNorm / (norm + 1e-6);
      for (const p of params) for (let i = 0; i < p.grad.length; i++) p.grad[i] *= k;
    }
    const lr = learningRateAt(config, step, totalSteps);
    adamwStep(params, step + 1, lr, config);
    step++;

    const progress: TrainProgress = {
      step,
      totalSteps,
      epoch: Math.floor((step * perStep - 1) / seqs.length),
      loss: targets ? lossSum / targets : NaN,
      lr,
      gradNorm: norm,
      tokensPerSecond: tokensThisRun / Math.max(1e-3, (Date.now() - started) / 1000),
    };
    if (evalSeqs.length && ((evalEvery > 0 && step % evalEvery === 0) || step === totalSteps)) {
      progress.evalLoss = evaluate();
      evals.push({ step, loss: progress.evalLoss });
    }
    history.push(progress);
    if (config.checkpointEvery && (step % config.checkpointEvery === 0 || step === totalSteps))
      saveCheckpoint();
    run.onProgress?.(progress);
    // let the event loop breathe (abort signals, progress output)
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return { lora, step, totalSteps, stopped, history, evals, lastCheckpoint };
}
