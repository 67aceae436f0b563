// Tiny in-memory models for the engine's tests: a small vocabulary, seeded weights on a coarse binary grid
// (so finite-difference perturbations of ±2^-10 are exact in float32), and helpers to visit every tensor.

import { GGMLType, writeGGUF } from "../formats/gguf/index.js";
import { writeHFCheckpoint } from "../formats/hf/index.js";
import { ggufMetadataForSpec } from "../formats/model-gguf.js";
import type { ModelSpec } from "../formats/model-spec.js";
import { Rng } from "../util/random.js";
import type { EngineWeights } from "./forward.js";
import type { LayerWeights, Matrix } from "./types.js";

/** Weights are multiples of this, so w ± 2^-10 is exactly representable. */
const GRID = 2 ** -12;

export function tinySpec(overrides: Partial<ModelSpec> = {}): ModelSpec {
  return {
    arch: "llama",
    vocabSize: 40,
    hiddenSize: 16,
    intermediateSize: 24,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 4,
    contextLength: 64,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    tiedEmbeddings: false,
    attentionBias: true,
    ...overrides,
  };
}

export function gridRandom(rng: Rng, n: number, std: number, mean = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round((mean + rng.normal() * std) / GRID) * GRID;
  return out;
}

/** A random f32 model of `spec` (norm weights near 1, matrices with std `std`). */
export function tinyModel(spec: ModelSpec, seed: number, std = 0.3): EngineWeights {
  const rng = new Rng(seed);
  const mat = (rows: number, cols: number): Matrix => ({
    type: "f32",
    rows,
    cols,
    data: gridRandom(rng, rows * cols, std),
  });
  const h = spec.hiddenSize;
  const qDim = spec.numHeads * spec.headDim;
  const kvDim = spec.numKvHeads * spec.headDim;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < spec.numLayers; l++) {
    layers.push({
      attnNorm: gridRandom(rng, h, 0.1, 1),
      wq: mat(qDim, h),
      wk: mat(kvDim, h),
      wv: mat(kvDim, h),
      wo: mat(h, qDim),
      bq: spec.attentionBias ? gridRandom(rng, qDim, 0.1) : undefined,
      bk: spec.attentionBias ? gridRandom(rng, kvDim, 0.1) : undefined,
      bv: spec.attentionBias ? gridRandom(rng, kvDim, 0.1) : undefined,
      ffnNorm: gridRandom(rng, h, 0.1, 1),
      wGate: mat(spec.intermediateSize, h),
      wUp: mat(spec.intermediateSize, h),
      wDown: mat(h, spec.intermediateSize),
    });
  }
  const tokenEmbd = mat(spec.vocabSize, h);
  return {
    spec,
    tokenEmbd,
    layers,
    outputNorm: gridRandom(rng, h, 0.1, 1),
    output: spec.tiedEmbeddings ? tokenEmbd : mat(spec.vocabSize, h),
  };
}

/** Every trainable f32 tensor of a model by name (tied output is not repeated). */
export function namedTensors(model: EngineWeights): [string, Float32Array][] {
  const out: [string, Float32Array][] = [["token_embd", model.tokenEmbd.data as Float32Array]];
  model.layers.forEach((l, i) => {
    const p = `blk.${i}.`;
    out.push([`${p}attn_norm`, l.attnNorm]);
    out.push([`${p}attn_q`, l.wq.data as Float32Array]);
    out.push([`${p}attn_k`, l.wk.data as Float32Array]);
    out.push([`${p}attn_v`, l.wv.data as Float32Array]);
    if (l.bq) out.push([`${p}attn_q.bias`, l.bq]);
    if (l.bk) out.push([`${p}attn_k.bias`, l.bk]);
    if (l.bv) out.push([`${p}attn_v.bias`, l.bv]);
    out.push([`${p}attn_output`, l.wo.data as Float32Array]);
    out.push([`${p}ffn_norm`, l.ffnNorm]);
    out.push([`${p}ffn_gate`, l.wGate.data as Float32Array]);
    out.push([`${p}ffn_up`, l.wUp.data as Float32Array]);
    out.push([`${p}ffn_down`, l.wDown.data as Float32Array]);
  });
  out.push(["output_norm", model.outputNorm]);
  if (model.output !== model.tokenEmbd) out.push(["output", model.output.data as Float32Array]);
  return out;
}

/** Canonical tensor name -> f32 values of an f32 model (norms, biases and matrices). */
export function canonicalTensors(model: EngineWeights): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  const f = (x: Matrix) => x.data as Float32Array;
  m.set("token_embd.weight", f(model.tokenEmbd));
  model.layers.forEach((l, i) => {
    const b = `blk.${i}.`;
    m.set(`${b}attn_norm.weight`, l.attnNorm);
    m.set(`${b}attn_q.weight`, f(l.wq));
    m.set(`${b}attn_k.weight`, f(l.wk));
    m.set(`${b}attn_v.weight`, f(l.wv));
    if (l.bq) m.set(`${b}attn_q.bias`, l.bq);
    if (l.bk) m.set(`${b}attn_k.bias`, l.bk);
    if (l.bv) m.set(`${b}attn_v.bias`, l.bv);
    m.set(`${b}attn_output.weight`, f(l.wo));
    m.set(`${b}ffn_norm.weight`, l.ffnNorm);
    m.set(`${b}ffn_gate.weight`, f(l.wGate));
    m.set(`${b}ffn_up.weight`, f(l.wUp));
    m.set(`${b}ffn_down.weight`, f(l.wDown));
  });
  m.set("output_norm.weight", model.outputNorm);
  if (model.output !== model.tokenEmbd) m.set("output.weight", f(model.output));
  return m;
}

/** Write an f32 in-memory model as a GGUF file without tokenizer (enough for the engine's loader). */
export function writeTinyGGUF(model: EngineWeights, path: string, type: GGMLType = GGMLType.F32): void {
  const tensors = [...canonicalTensors(model)].map(([name, data]) => ({
    name,
    shape: name.endsWith(".bias") || name.endsWith("norm.weight") ? [data.length] : shapeOf(model, name),
    type: name.endsWith(".bias") || name.endsWith("norm.weight") ? GGMLType.F32 : type,
    data,
  }));
  writeGGUF(path, { metadata: ggufMetadataForSpec(model.spec, "tiny"), tensors });
}

function shapeOf(model: EngineWeights, name: string): number[] {
  const s = model.spec;
  const h = s.hiddenSize;
  if (name === "token_embd.weight" || name === "output.weight") return [s.vocabSize, h];
  if (name.endsWith("attn_q.weight")) return [s.numHeads * s.headDim, h];
  if (name.endsWith("attn_k.weight") || name.endsWith("attn_v.weight")) return [s.numKvHeads * s.headDim, h];
  if (name.endsWith("attn_output.weight")) return [h, s.numHeads * s.headDim];
  if (name.endsWith("ffn_down.weight")) return [h, s.intermediateSize];
  return [s.intermediateSize, h];
}

/** Write an f32 in-memory model as a Hugging Face checkpoint directory (config.json + model.safetensors). */
export function writeTinyHF(model: EngineWeights, dir: string): void {
  const tensors = canonicalTensors(model);
  writeHFCheckpoint(dir, model.spec, (name) => tensors.get(name) as Float32Array);
}
