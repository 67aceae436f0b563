// The model description every layer shares: the shape of a llama-family decoder, independent of file format.
// GGUF metadata, Hugging Face config.json and the native engine all convert to and from ModelSpec.

export type ModelArch = "llama" | "qwen2" | "mistral";

export interface RopeScaling {
  type: "linear" | "yarn" | "llama3";
  factor: number;
  originalContextLength?: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
}

export interface ModelSpec {
  arch: ModelArch;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  /** Per-head dimension; hiddenSize / numHeads unless the model says otherwise. */
  headDim: number;
  contextLength: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling?: RopeScaling;
  /** Output projection shares the token embedding matrix. */
  tiedEmbeddings: boolean;
  /** q/k/v projections carry biases (Qwen2). */
  attentionBias: boolean;
}

/**
 * Canonical tensor names are llama.cpp's GGUF names, with shapes in PyTorch order (rows, cols):
 *   token_embd.weight [vocab, hidden]        output_norm.weight [hidden]      output.weight [vocab, hidden]
 *   blk.N.attn_norm.weight [hidden]          blk.N.ffn_norm.weight [hidden]
 *   blk.N.attn_q.weight [heads*headDim, hidden]      blk.N.attn_q.bias [heads*headDim]
 *   blk.N.attn_k.weight [kvHeads*headDim, hidden]    blk.N.attn_k.bias
 *   blk.N.attn_v.weight [kvHeads*headDim, hidden]    blk.N.attn_v.bias
 *   blk.N.attn_output.weight [hidden, heads*headDim]
 *   blk.N.ffn_gate.weight [ffn, hidden]   blk.N.ffn_up.weight [ffn, hidden]   blk.N.ffn_down.weight [hidden, ffn]
 * (GGUF stores dims fastest-first, i.e. reversed: token_embd.weight has ne = [hidden, vocab].)
 */
export function canonicalTensorShapes(spec: ModelSpec): Map<string, number[]> {
  const {
    hiddenSize: h,
    intermediateSize: f,
    numHeads: nh,
    numKvHeads: nkv,
    headDim: hd,
    vocabSize: v,
  } = spec;
  const shapes = new Map<string, number[]>();
  shapes.set("token_embd.weight", [v, h]);
  for (let i = 0; i < spec.numLayers; i++) {
    const b = `blk.${i}.`;
    shapes.set(`${b}attn_norm.weight`, [h]);
    shapes.set(`${b}attn_q.weight`, [nh * hd, h]);
    shapes.set(`${b}attn_k.weight`, [nkv * hd, h]);
    shapes.set(`${b}attn_v.weight`, [nkv * hd, h]);
    if (spec.attentionBias) {
      shapes.set(`${b}attn_q.bias`, [nh * hd]);
      shapes.set(`${b}attn_k.bias`, [nkv * hd]);
      shapes.set(`${b}attn_v.bias`, [nkv * hd]);
    }
    shapes.set(`${b}attn_output.weight`, [h, nh * hd]);
    shapes.set(`${b}ffn_norm.weight`, [h]);
    shapes.set(`${b}ffn_gate.weight`, [f, h]);
    shapes.set(`${b}ffn_up.weight`, [f, h]);
    shapes.set(`${b}ffn_down.weight`, [h, f]);
  }
  shapes.set("output_norm.weight", [h]);
  if (!spec.tiedEmbeddings) shapes.set("output.weight", [v, h]);
  return shapes;
}

export function parameterCount(spec: ModelSpec): number {
  let n = 0;
  for (const shape of canonicalTensorShapes(spec).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}
