import { test } from "node:test";
import assert from "node:assert/strict";
import { canonicalTensorShapes, type ModelSpec } from "../model-spec.js";
import {
  canonicalToHF,
  hfToCanonical,
  isIgnorableHFTensor,
  needsQKPermute,
  permuteQK,
  unpermuteQK,
} from "./names.js";

const spec: ModelSpec = {
  arch: "qwen2",
  vocabSize: 10,
  hiddenSize: 8,
  intermediateSize: 12,
  numLayers: 12,
  numHeads: 2,
  numKvHeads: 1,
  headDim: 4,
  contextLength: 32,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  tiedEmbeddings: false,
  attentionBias: true,
};

test("HF and canonical names map both ways for every canonical tensor", () => {
  assert.equal(hfToCanonical("model.embed_tokens.weight"), "token_embd.weight");
  assert.equal(hfToCanonical("lm_head.weight"), "output.weight");
  assert.equal(hfToCanonical("model.norm.weight"), "output_norm.weight");
  assert.equal(hfToCanonical("model.layers.11.self_attn.k_proj.bias"), "blk.11.attn_k.bias");
  assert.equal(hfToCanonical("model.layers.0.self_attn.o_proj.weight"), "blk.0.attn_output.weight");
  assert.equal(hfToCanonical("model.layers.3.mlp.down_proj.weight"), "blk.3.ffn_down.weight");
  assert.equal(hfToCanonical("model.layers.3.input_layernorm.weight"), "blk.3.attn_norm.weight");
  assert.equal(hfToCanonical("model.layers.3.post_attention_layernorm.weight"), "blk.3.ffn_norm.weight");
  assert.equal(canonicalToHF("blk.10.ffn_gate.weight"), "model.layers.10.mlp.gate_proj.weight");
  for (const name of canonicalTensorShapes(spec).keys()) {
    const hf = canonicalToHF(name);
    assert.ok(hf, name);
    assert.equal(hfToCanonical(hf), name);
  }
  for (const bad of [
    "model.layers.01.mlp.up_proj.weight",
    "model.layers.x.mlp.up_proj.weight",
    "lm_head.bias",
    "blk.0.attn_q.weight",
  ])
    assert.equal(hfToCanonical(bad), undefined, bad);
  assert.equal(canonicalToHF("blk.0.ffn_gate_exps.weight"), undefined);
  assert.ok(isIgnorableHFTensor("model.layers.4.self_attn.rotary_emb.inv_freq"));
  assert.ok(!isIgnorableHFTensor("model.layers.4.self_attn.q_proj.weight"));
  assert.deepEqual((["llama", "mistral", "qwen2"] as const).map(needsQKPermute), [true, true, false]);
});

test("permuteQK on a hand-checked example: head_dim 4 takes HF rows [0,2,1,3]", () => {
  // 2 heads of 4 rows, 2 columns; value = row * 10 + col.
  const rows = 8;
  const cols = 2;
  const data = Float32Array.from({ length: rows * cols }, (_, i) => Math.floor(i / cols) * 10 + (i % cols));
  const out = permuteQK(data, rows, cols, 2);
  const rowOrder = Array.from({ length: rows }, (_, r) => out[r * cols] / 10);
  assert.deepEqual(rowOrder, [0, 2, 1, 3, 4, 6, 5, 7]);
  assert.deepEqual(Array.from(out.subarray(2, 4)), [20, 21]);
  // head_dim 8: interleave the halves [0..3] and [4..7].
  const bias = Float32Array.from({ length: 8 }, (_, i) => i);
  assert.deepEqual(Array.from(permuteQK(bias, 8, 1, 1)), [0, 4, 1, 5, 2, 6, 3, 7]);
  assert.deepEqual(Array.from(unpermuteQK(bias, 8, 1, 1)), [0, 2, 4, 6, 1, 3, 5, 7]);
  assert.throws(() => permuteQK(bias, 8, 1, 3), /do not split into 3 heads/);
  assert.throws(() => permuteQK(bias, 4, 1, 1), /do not make 4 rows/);
});

test("unpermuteQK inverts permuteQK (GQA shapes, random data)", () => {
  let seed = 99;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  for (const [heads, headDim, cols] of [
    [1, 2, 3],
    [4, 8, 5],
    [3, 16, 1],
    [8, 64, 7],
  ]) {
    const rows = heads * headDim;
    const data = Float32Array.from({ length: rows * cols }, rand);
    const p = permuteQK(data, rows, cols, heads);
    assert.deepEqual(unpermuteQK(p, rows, cols, heads), data);
    assert.deepEqual(permuteQK(unpermuteQK(data, rows, cols, heads), rows, cols, heads), data);
    if (headDim > 2) assert.notDeepEqual(p, data);
  }
});

test("permuted weights make llama.cpp's adjacent-pair rope match HF's rotate_half rope", () => {
  // HF: pairs (j, j + d/2). llama.cpp "llama": pairs (2j, 2j + 1). Same angle for pair j.
  const heads = 2;
  const d = 8;
  const cols = 3;
  const pos = 5;
  const angle = (j: number) => pos * 10000 ** ((-2 * j) / d);
  const ropeHalves = (q: Float32Array) => {
    const out = new Float32Array(q.length);
    for (let h = 0; h < heads; h++)
      for (let j = 0; j < d / 2; j++) {
        const a = q[h * d + j];
        const b = q[h * d + j + d / 2];
        const [c, s] = [Math.cos(angle(j)), Math.sin(angle(j))];
        out[h * d + j] = a * c - b * s;
        out[h * d + j + d / 2] = a * s + b * c;
      }
    return out;
  };
  const ropeAdjacent = (q: Float32Array) => {
    const out = new Float32Array(q.length);
    for (let h = 0; h < heads; h++)
      for (let j = 0; j < d / 2; j++) {
        const a = q[h * d + 2 * j];
        const b = q[h * d + 2 * j + 1];
        const [c, s] = [Math.cos(angle(j)), Math.sin(angle(j))];
        out[h * d + 2 * j] = a * c - b * s;
        out[h * d + 2 * j + 1] = a * s + b * c;
      }
    return out;
  };
  const matvec = (w: Float32Array, x: number[]) =>
    Float32Array.from({ length: w.length / cols }, (_, r) =>
      x.reduce((acc, xi, c) => acc + w[r * cols + c] * xi, 0),
    );
  const w = Float32Array.from({ length: heads * d * cols }, (_, i) => Math.sin(i * 1.7));
  const x = [0.3, -1.2, 0.8];
  const hfRotated = ropeHalves(matvec(w, x));
  const ggufRotated = ropeAdjacent(matvec(permuteQK(w, heads * d, cols, heads), x));
  // The GGUF result is the HF result with rows in GGUF order.
  const expected = permuteQK(hfRotated, heads * d, 1, heads);
  for (let i = 0; i < expected.length; i++)
    assert.ok(Math.abs(expected[i] - ggufRotated[i]) < 1e-5, `row ${i}`);
  // The wrong direction does not match (head_dim 8 makes the two directions differ).
  const wrong = ropeAdjacent(matvec(unpermuteQK(w, heads * d, cols, heads), x));
  assert.ok(expected.some((v, i) => Math.abs(v - wrong[i]) > 1e-3));
});
