// Load a llama-family model into the engine's ModelWeights: from a GGUF file (matrices may stay f16, bf16 or
// q8_0 in memory) or from a Hugging Face checkpoint directory (canonical GGUF row order, f32).

import { statSync } from "node:fs";
import { GGMLType, ggmlTypeName, openGGUF, type GGUFFile } from "../formats/gguf/index.js";
import { openHFCheckpoint, type HFCheckpoint } from "../formats/hf/index.js";
import { specFromGGUF } from "../formats/model-gguf.js";
import type { ModelSpec } from "../formats/model-spec.js";
import { InputError } from "../util/errors.js";
import { placeWeights, type EngineWeights } from "./forward.js";
import { getKernels } from "./kernels/index.js";
import { dequantizeRow } from "./kernels/reference.js";
import type { LayerWeights, Matrix } from "./types.js";

export interface LoadOptions {
  /**
   * "native" (default) keeps f16, bf16 and q8_0 matrices as stored (dequantized inside each matmul);
   * "f32" dequantizes everything, which full fine-tuning needs. Other quantized types are always
   * dequantized to f32. 1-D tensors (norms, biases) are always f32.
   */
  keep?: "f32" | "native";
}

/** Load from a .gguf file or a Hugging Face checkpoint directory (config.json + safetensors). */
export function loadModelWeights(path: string, opts: LoadOptions = {}): EngineWeights {
  const model = loadModelWeightsAnywhere(path, opts);
  // With the fast kernels in use, frozen weights go into their heap once, here (the loaded copies are dropped).
  const heap = getKernels().heap;
  if (heap) placeWeights(model, heap);
  return model;
}

function loadModelWeightsAnywhere(path: string, opts: LoadOptions): EngineWeights {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (err) {
    throw new InputError(`cannot read model ${path}`, {
      hint: "pass a .gguf file or a Hugging Face model directory",
      cause: err,
    });
  }
  if (isDir) {
    const ckpt = openHFCheckpoint(path);
    try {
      return weightsFromHF(ckpt);
    } finally {
      ckpt.close();
    }
  }
  const file = openGGUF(path);
  try {
    return weightsFromGGUF(file, opts);
  } finally {
    file.close();
  }
}

/** ModelWeights of an open GGUF file. */
export function weightsFromGGUF(file: GGUFFile, opts: LoadOptions = {}): EngineWeights {
  const spec = specFromGGUF(file);
  const keep = opts.keep ?? "native";
  const matrix = (name: string): Matrix => {
    const t = file.tensor(name);
    if (!t) throw new InputError(`${file.path}: tensor ${name} is missing`);
    const [rows, cols] = t.shape;
    if (keep === "native") {
      if (t.type === GGMLType.F16 || t.type === GGMLType.BF16) {
        const raw = file.readTensorRaw(t);
        const data = new Uint16Array(raw.buffer, raw.byteOffset, rows * cols).slice();
        return { type: t.type === GGMLType.F16 ? "f16" : "bf16", rows, cols, data };
      }
      if (t.type === GGMLType.Q8_0) return { type: "q8_0", rows, cols, data: file.readTensorRaw(t).slice() };
    }
    if (t.type !== GGMLType.F32 && keep === "native" && process.env.BUCKLE_DEBUG) {
      console.error(`buckle: ${name} (${ggmlTypeName(t.type)}) dequantized to f32`);
    }
    return { type: "f32", rows, cols, data: file.readTensorF32(t) };
  };
  const vector = (name: string): Float32Array => file.readTensorF32(name);
  const ropeFreqFactors = file.tensor("rope_freqs.weight") ? vector("rope_freqs.weight") : undefined;
  return { ...assembleWeights(spec, matrix, vector), ...(ropeFreqFactors ? { ropeFreqFactors } : {}) };
}

/** ModelWeights of an open HF checkpoint (f32; q/k rows already in llama.cpp's order). */
export function weightsFromHF(ckpt: HFCheckpoint): EngineWeights {
  const spec: ModelSpec = ckpt.spec;
  const matrix = (name: string): Matrix => {
    const [rows, cols] = ckpt.shape(name);
    return { type: "f32", rows, cols, data: ckpt.readCanonical(name) };
  };
  const vector = (name: string): Float32Array => ckpt.readCanonical(name);
  // Llama-3 rope scaling from config.json is turned into frequency factors by the rope table itself.
  return assembleWeights(spec, matrix, vector);
}

/** The weights of a spec from tensor readers keyed by canonical (GGUF) name; shared by every format. */
function assembleWeights(
  spec: ModelSpec,
  matrix: (name: string) => Matrix,
  vector: (name: string) => Float32Array,
): EngineWeights {
  const bias = (name: string) => (spec.attentionBias ? vector(name) : undefined);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < spec.numLayers; i++) {
    const b = `blk.${i}.`;
    layers.push({
      attnNorm: vector(`${b}attn_norm.weight`),
      wq: matrix(`${b}attn_q.weight`),
      wk: matrix(`${b}attn_k.weight`),
      wv: matrix(`${b}attn_v.weight`),
      wo: matrix(`${b}attn_output.weight`),
      bq: bias(`${b}attn_q.bias`),
      bk: bias(`${b}attn_k.bias`),
      bv: bias(`${b}attn_v.bias`),
      ffnNorm: vector(`${b}ffn_norm.weight`),
      wGate: matrix(`${b}ffn_gate.weight`),
      wUp: matrix(`${b}ffn_up.weight`),
      wDown: matrix(`${b}ffn_down.weight`),
    });
  }
  const tokenEmbd = matrix("token_embd.weight");
  return {
    spec,
    tokenEmbd,
    layers,
    outputNorm: vector("output_norm.weight"),
    output: spec.tiedEmbeddings ? tokenEmbd : matrix("output.weight"),
  };
}

/** Dequantize every matrix to f32 (full fine-tuning updates weights in place, so they must be f32). */
export function toF32Weights(model: EngineWeights): EngineWeights {
  const convert = (m: Matrix): Matrix => {
    if (m.type === "f32") return m;
    const data = new Float32Array(m.rows * m.cols);
    for (let r = 0; r < m.rows; r++) dequantizeRow(m, r, data.subarray(r * m.cols, (r + 1) * m.cols));
    return { type: "f32", rows: m.rows, cols: m.cols, data };
  };
  const tokenEmbd = convert(model.tokenEmbd);
  return {
    ...model,
    tokenEmbd,
    output: model.output === model.tokenEmbd ? tokenEmbd : convert(model.output),
    layers: model.layers.map((l) => ({
      ...l,
      wq: convert(l.wq),
      wk: convert(l.wk),
      wv: convert(l.wv),
      wo: convert(l.wo),
      wGate: convert(l.wGate),
      wUp: convert(l.wUp),
      wDown: convert(l.wDown),
    })),
  };
}
