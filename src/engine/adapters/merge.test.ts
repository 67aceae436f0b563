// Tests for merging a LoRA into a GGUF: exact W + (alpha/r) B A on adapted tensors (against a naive float64
// reference), untouched tensors and metadata byte-identical, dtype conversion, and clear refusals.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dequantize, GGMLType, openGGUF, quantize } from "../../formats/gguf/index.js";
import type { ModelSpec } from "../../formats/model-spec.js";
import { createRandomModel } from "../../models/factory.js";
import { tinyModelOptions } from "../../testing/models.js";
import type { LoraWeights } from "../types.js";
import { createRandomLora, mergeLoraIntoGGUF } from "./index.js";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "buckle-merge-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** q, v and down adapted, and down only in layer 1, so some projections of every kind stay untouched. */
function partialLora(spec: ModelSpec): LoraWeights {
  const lora = createRandomLora(
    spec,
    { rank: 4, alpha: 6, dropout: 0.05, targets: ["q_proj", "v_proj", "down_proj"] },
    { seed: 5, stdB: 0.1 },
  );
  delete lora.layers[0].down_proj;
  return lora;
}

const ADAPTED = [
  "blk.0.attn_q.weight",
  "blk.0.attn_v.weight",
  "blk.1.attn_q.weight",
  "blk.1.attn_v.weight",
  "blk.1.ffn_down.weight",
];

/** W + (alpha / r) B A by the textbook triple loop in float64. */
function reference(
  w: Float32Array,
  lora: LoraWeights,
  layer: number,
  target: "q_proj" | "v_proj" | "down_proj",
): Float64Array {
  const pair = lora.layers[layer][target]!;
  const r = lora.config.rank;
  const s = lora.config.alpha / r;
  const out = Float64Array.from(w);
  for (let o = 0; o < pair.out; o++)
    for (let i = 0; i < pair.in; i++) {
      let acc = 0;
      for (let k = 0; k < r; k++) acc += pair.b[o * r + k] * pair.a[k * pair.in + i];
      out[o * pair.in + i] += s * acc;
    }
  return out;
}

test("merge adds (alpha/r) B A to adapted tensors and copies everything else byte for byte", () => {
  const basePath = join(dir, "base.gguf");
  const { spec } = createRandomModel(tinyModelOptions(1, { initStd: 0.2, dtype: "f32" }), basePath);
  const lora = partialLora(spec);
  const outPath = join(dir, "merged.gguf");
  const result = mergeLoraIntoGGUF(basePath, lora, outPath);
  assert.deepEqual([...result.merged].sort(), [...ADAPTED].sort());

  const base = openGGUF(basePath);
  const merged = openGGUF(outPath);
  try {
    assert.deepEqual(merged.metadata, base.metadata);
    assert.equal(merged.alignment, base.alignment);
    assert.deepEqual(
      merged.tensors.map((t) => [t.name, t.type, t.shape]),
      base.tensors.map((t) => [t.name, t.type, t.shape]),
    );
    for (const t of base.tensors) {
      if (ADAPTED.includes(t.name)) continue;
      assert.deepEqual(merged.readTensorRaw(t.name), base.readTensorRaw(t.name), `${t.name} changed`);
    }
    for (const name of ADAPTED) {
      const [, layer, kind] = /^blk\.(\d)\.(attn_q|attn_v|ffn_down)/.exec(name)!;
      const target = kind === "attn_q" ? "q_proj" : kind === "attn_v" ? "v_proj" : "down_proj";
      const want = reference(base.readTensorF32(name), lora, Number(layer), target);
      const got = merged.readTensorF32(name);
      const w = base.readTensorF32(name);
      let maxErr = 0;
      let maxDelta = 0;
      for (let i = 0; i < want.length; i++) {
        maxErr = Math.max(maxErr, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
        maxDelta = Math.max(maxDelta, Math.abs(want[i] - w[i]));
      }
      // One float32 rounding of the exact sum, nothing more.
      assert.ok(maxErr <= 2 ** -24, `${name}: relative error ${maxErr}`);
      assert.ok(maxDelta > 0.01, `${name}: the delta is too small to test (${maxDelta})`);
    }
  } finally {
    base.close();
    merged.close();
  }
});

test("dtype q8_0 re-encodes every matrix, keeps 1-D tensors f32 and records the file type", () => {
  const basePath = join(dir, "base.gguf");
  const { spec } = createRandomModel(tinyModelOptions(1, { initStd: 0.2, dtype: "f32" }), basePath);
  const lora = partialLora(spec);
  const f32Path = join(dir, "merged-f32.gguf");
  const q8Path = join(dir, "merged-q8.gguf");
  mergeLoraIntoGGUF(basePath, lora, f32Path);
  mergeLoraIntoGGUF(basePath, lora, q8Path, { dtype: "q8_0" });
  const exact = openGGUF(f32Path);
  const q8 = openGGUF(q8Path);
  try {
    assert.equal(q8.getNumber("general.file_type"), 7);
    for (const t of q8.tensors) {
      assert.equal(t.type, t.shape.length === 2 ? GGMLType.Q8_0 : GGMLType.F32, t.name);
      // Bytes equal our own quantizer applied to the exact merge: merging then quantizing, nothing else.
      const want =
        t.shape.length === 2
          ? quantize(GGMLType.Q8_0, exact.readTensorF32(t.name))
          : exact.readTensorRaw(t.name);
      assert.deepEqual(q8.readTensorRaw(t), want, t.name);
    }
  } finally {
    exact.close();
    q8.close();
  }
});

test("keep on a q8_0 base re-quantizes only the adapted tensors", () => {
  const basePath = join(dir, "base-q8.gguf");
  const { spec } = createRandomModel(tinyModelOptions(2, { initStd: 0.2, dtype: "q8_0" }), basePath);
  const lora = partialLora(spec);
  const outPath = join(dir, "merged-keep-q8.gguf");
  mergeLoraIntoGGUF(basePath, lora, outPath);
  const base = openGGUF(basePath);
  const merged = openGGUF(outPath);
  try {
    assert.deepEqual(merged.metadata, base.metadata);
    for (const t of base.tensors) {
      const m = merged.tensor(t.name)!;
      assert.equal(m.type, t.type);
      if (!ADAPTED.includes(t.name)) {
        assert.deepEqual(merged.readTensorRaw(t.name), base.readTensorRaw(t.name), t.name);
        continue;
      }
      assert.equal(t.type, GGMLType.Q8_0);
      const [, layer, kind] = /^blk\.(\d)\.(attn_q|attn_v|ffn_down)/.exec(t.name)!;
      const target = kind === "attn_q" ? "q_proj" : kind === "attn_v" ? "v_proj" : "down_proj";
      const want = Float32Array.from(reference(base.readTensorF32(t.name), lora, Number(layer), target));
      assert.deepEqual(merged.readTensorRaw(t.name), quantize(GGMLType.Q8_0, want), t.name);
      const got = dequantize(GGMLType.Q8_0, merged.readTensorRaw(t.name), t.elementCount);
      assert.notDeepEqual(got, base.readTensorF32(t.name));
    }
  } finally {
    base.close();
    merged.close();
  }
});

test("merge refuses an adapter for another model and an unknown dtype", () => {
  const basePath = join(dir, "base.gguf");
  const { spec } = createRandomModel(tinyModelOptions(1, { initStd: 0.2, dtype: "f32" }), basePath);
  const other = partialLora({ ...spec, intermediateSize: 96 });
  assert.throws(
    () => mergeLoraIntoGGUF(basePath, other, join(dir, "x.gguf")),
    /does not fit the model.*down_proj/,
  );
  const threeLayers = partialLora({ ...spec, numLayers: 3 });
  assert.throws(() => mergeLoraIntoGGUF(basePath, threeLayers, join(dir, "x.gguf")), /3 layers, the model 2/);
  assert.throws(
    () => mergeLoraIntoGGUF(basePath, partialLora(spec), join(dir, "x.gguf"), { dtype: "q4_0" as "f16" }),
    /dtype must be/,
  );
});
