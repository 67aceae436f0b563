// Tests for PEFT adapter export/import: exact round trips, the file layout PEFT expects, the q/k row reordering
// on a hand-computed example and against the HF checkpoint writer, and the errors for adapters we cannot read.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openGGUF } from "../../formats/gguf/index.js";
import { writeHFCheckpoint } from "../../formats/hf/index.js";
import type { ModelSpec } from "../../formats/model-spec.js";
import { openSafetensors, writeSafetensors } from "../../formats/safetensors/index.js";
import { createRandomModel } from "../../models/factory.js";
import { tinyModelOptions } from "../../testing/models.js";
import { LORA_TARGETS, type LoraWeights } from "../types.js";
import {
  createRandomLora,
  mergeLoraIntoGGUF,
  readPeftAdapter,
  readPeftConfig,
  writePeftAdapter,
} from "./index.js";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "buckle-peft-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function spec(arch: ModelSpec["arch"], over: Partial<ModelSpec> = {}): ModelSpec {
  return {
    arch,
    vocabSize: 100,
    hiddenSize: 64,
    intermediateSize: 96,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    contextLength: 256,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    tiedEmbeddings: false,
    attentionBias: arch === "qwen2",
    ...over,
  };
}

function randomLora(s: ModelSpec, seed = 9): LoraWeights {
  return createRandomLora(
    s,
    { rank: 4, alpha: 16, dropout: 0.05, targets: [...LORA_TARGETS] },
    { seed, stdB: 0.3 },
  );
}

for (const arch of ["llama", "mistral", "qwen2"] as const) {
  test(`PEFT export then import gives back the identical adapter (${arch})`, () => {
    const s = spec(arch);
    const lora = randomLora(s);
    const out = join(dir, `rt-${arch}`);
    const { configPath, weightsPath } = writePeftAdapter(out, lora, { baseModel: "org/base", spec: s });
    assert.deepEqual(readPeftAdapter(out, s), lora);

    const config = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
    assert.equal(config.peft_type, "LORA");
    assert.equal(config.task_type, "CAUSAL_LM");
    assert.equal(config.r, 4);
    assert.equal(config.lora_alpha, 16);
    assert.equal(config.lora_dropout, 0.05);
    assert.equal(config.bias, "none");
    assert.equal(config.base_model_name_or_path, "org/base");
    assert.deepEqual(config.target_modules, [...LORA_TARGETS]);
    assert.equal(config.layers_to_transform, null);

    const st = openSafetensors(weightsPath);
    try {
      assert.equal(st.tensors.length, 2 * 7 * 2);
      assert.equal(st.metadata.format, "pt");
      const q = lora.layers[1].q_proj!;
      const qa = st.tensor("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight");
      const qb = st.tensor("base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight");
      assert.deepEqual(qa?.shape, [4, 64]);
      assert.deepEqual(qb?.shape, [64, 4]);
      assert.equal(qa?.dtype, "F32");
      assert.deepEqual(
        st.tensor("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight")?.shape,
        [4, 96],
      );
      assert.deepEqual(
        st.tensor("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight")?.shape,
        [64, 4],
      );
      // A never moves; B of q/k is in Hugging Face row order for llama/mistral, as-is for qwen2.
      assert.deepEqual(st.readF32("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"), q.a);
      const fileB = st.readF32("base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight");
      if (arch === "qwen2") assert.deepEqual(fileB, q.b);
      else assert.notDeepEqual(fileB, q.b);
      assert.deepEqual(
        st.readF32("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"),
        lora.layers[1].v_proj!.b,
      );
    } finally {
      st.close();
    }
  });
}

test("q/k B rows follow the hand-computed GGUF -> HF order; A and other targets are untouched", () => {
  // headDim 8: GGUF row 2j holds HF row j and row 2j+1 holds HF row j+4, so HF rows come from GGUF rows
  // [0, 2, 4, 6, 1, 3, 5, 7] within each head.
  const s = spec("llama", {
    hiddenSize: 16,
    numHeads: 2,
    numKvHeads: 1,
    headDim: 8,
    intermediateSize: 32,
    numLayers: 1,
  });
  const rows = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => i);
  const lora: LoraWeights = {
    config: { rank: 1, alpha: 1, dropout: 0, targets: ["q_proj", "k_proj", "v_proj"] },
    layers: [
      {
        q_proj: { a: rows(16), b: rows(16), in: 16, out: 16 },
        k_proj: { a: rows(16), b: rows(8), in: 16, out: 8 },
        v_proj: { a: rows(16), b: rows(8), in: 16, out: 8 },
      },
    ],
  };
  const out = join(dir, "hand");
  writePeftAdapter(out, lora, { baseModel: "x", spec: s });
  const st = openSafetensors(join(out, "adapter_model.safetensors"));
  try {
    const name = (t: string, w: string): string =>
      `base_model.model.model.layers.0.self_attn.${t}.lora_${w}.weight`;
    assert.deepEqual(
      [...st.readF32(name("q_proj", "B"))],
      [0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15],
    );
    assert.deepEqual([...st.readF32(name("k_proj", "B"))], [0, 2, 4, 6, 1, 3, 5, 7]);
    assert.deepEqual([...st.readF32(name("v_proj", "B"))], [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual([...st.readF32(name("q_proj", "A"))], [...rows(16)]);
  } finally {
    st.close();
  }
  assert.deepEqual(readPeftAdapter(out, s), lora);
  const cfg = readPeftConfig(out);
  assert.deepEqual(cfg.target_modules, ["q_proj", "k_proj", "v_proj"]);
});

test("the PEFT adapter on the HF checkpoint equals the HF checkpoint of our merged GGUF", () => {
  // Ties the PEFT row order to the HF checkpoint writer's: HF(W + s B A) must equal HF(W) + s B_peft A_peft.
  const basePath = join(dir, "model.gguf");
  const { spec: s } = createRandomModel(tinyModelOptions(4, { initStd: 0.2 }), basePath);
  const lora = randomLora(s, 21);
  const mergedPath = join(dir, "merged.gguf");
  mergeLoraIntoGGUF(basePath, lora, mergedPath);
  const hf = (gguf: string, out: string): string => {
    const f = openGGUF(gguf);
    try {
      return writeHFCheckpoint(out, s, (n) => f.readTensorF32(n)).weightsPath;
    } finally {
      f.close();
    }
  };
  const baseHF = openSafetensors(hf(basePath, join(dir, "hf-base")));
  const mergedHF = openSafetensors(hf(mergedPath, join(dir, "hf-merged")));
  const peftDir = join(dir, "peft-for-hf");
  writePeftAdapter(peftDir, lora, { baseModel: "x", spec: s });
  const peft = openSafetensors(join(peftDir, "adapter_model.safetensors"));
  try {
    for (const [module, out, inp] of [
      ["self_attn.q_proj", 64, 64],
      ["self_attn.k_proj", 32, 64],
      ["mlp.down_proj", 64, 128],
    ] as const) {
      const w = baseHF.readF32(`model.layers.1.${module}.weight`);
      const want = mergedHF.readF32(`model.layers.1.${module}.weight`);
      const a = peft.readF32(`base_model.model.model.layers.1.${module}.lora_A.weight`);
      const b = peft.readF32(`base_model.model.model.layers.1.${module}.lora_B.weight`);
      let maxErr = 0;
      for (let o = 0; o < out; o++)
        for (let i = 0; i < inp; i++) {
          let acc = 0;
          for (let r = 0; r < 4; r++) acc += b[o * 4 + r] * a[r * inp + i];
          maxErr = Math.max(maxErr, Math.abs(w[o * inp + i] + 4 * acc - want[o * inp + i]));
        }
      assert.ok(maxErr < 1e-5, `${module}: HF-side merge differs by ${maxErr}`);
    }
  } finally {
    baseHF.close();
    mergedHF.close();
    peft.close();
  }
});

test("partial adapters record layers_to_transform and read back with the same layers", () => {
  const s = spec("llama");
  const lora = createRandomLora(
    s,
    { rank: 2, alpha: 4, dropout: 0, targets: ["v_proj"] },
    { seed: 3, stdB: 0.1 },
  );
  lora.layers[0] = {};
  const out = join(dir, "partial");
  writePeftAdapter(out, lora, { baseModel: "x", spec: s, dtype: "F32" });
  assert.deepEqual(readPeftConfig(out).layers_to_transform, [1]);
  assert.deepEqual(readPeftAdapter(out, s), lora);
});

/** A hand-made PEFT directory: config overrides merged into a valid config, tensors as given. */
function craft(
  name: string,
  config: Record<string, unknown>,
  tensors: { name: string; shape: number[] }[],
): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  const base = { peft_type: "LORA", r: 2, lora_alpha: 4, target_modules: ["q_proj", "v_proj"], bias: "none" };
  writeFileSync(join(d, "adapter_config.json"), JSON.stringify({ ...base, ...config }));
  if (tensors.length > 0)
    writeSafetensors(
      join(d, "adapter_model.safetensors"),
      tensors.map((t) => ({
        name: t.name,
        dtype: "F32",
        shape: t.shape,
        data: new Float32Array(t.shape.reduce((x, y) => x * y, 1)).fill(0.5),
      })),
    );
  return d;
}

const P = "base_model.model.model.layers";
const qA = { name: `${P}.0.self_attn.q_proj.lora_A.weight`, shape: [2, 64] };
const qB = { name: `${P}.0.self_attn.q_proj.lora_B.weight`, shape: [64, 2] };

test("use_rslora becomes the equivalent plain alpha; PEFT's '.default' names are accepted", () => {
  const s = spec("qwen2");
  const d = craft("rslora", { use_rslora: true }, [
    qA,
    { ...qB, name: qB.name.replace("lora_B.", "lora_B.default.") },
  ]);
  const lora = readPeftAdapter(d, s);
  // alpha / sqrt(r) = 4 / sqrt(2) must equal alpha' / r.
  assert.ok(Math.abs(lora.config.alpha / lora.config.rank - 4 / Math.sqrt(2)) < 1e-12);
  assert.deepEqual(lora.config.targets, ["q_proj"]);
  assert.equal(lora.layers[1].q_proj, undefined);
  assert.equal(lora.layers[0].q_proj?.b[0], 0.5);
});

test("adapters buckle cannot represent are refused with the reason", () => {
  const s = spec("llama");
  assert.throws(() => readPeftAdapter(join(dir, "nowhere"), s), /has no adapter_config\.json/);
  assert.throws(() => readPeftAdapter(craft("dora", { use_dora: true }, [qA, qB]), s), /DoRA/);
  assert.throws(() => readPeftAdapter(craft("bias", { bias: "all" }, [qA, qB]), s), /bias/);
  assert.throws(() => readPeftAdapter(craft("ia3", { peft_type: "IA3" }, [qA, qB]), s), /only LORA/);
  assert.throws(
    () => readPeftAdapter(craft("pattern", { rank_pattern: { q_proj: 8 } }, [qA, qB]), s),
    /rank_pattern/,
  );
  assert.throws(() => readPeftAdapter(craft("nofile", {}, []), s), /has no adapter_model\.safetensors/);
  assert.throws(
    () =>
      readPeftAdapter(
        craft("lmhead", {}, [qA, qB, { name: "base_model.model.lm_head.lora_A.weight", shape: [2, 64] }]),
        s,
      ),
    /not LoRA A\/B matrices.*lm_head/,
  );
  assert.throws(() => readPeftAdapter(craft("halfpair", {}, [qA]), s), /has lora_A but no lora_B/);
  assert.throws(
    () =>
      readPeftAdapter(
        craft("rank", {}, [
          { ...qA, shape: [3, 64] },
          { ...qB, shape: [64, 3] },
        ]),
        s,
      ),
    /expected \[2, 64\] and \[64, 2\] for r=2/,
  );
  assert.throws(
    () =>
      readPeftAdapter(
        craft("layer", {}, [
          { ...qA, name: qA.name.replace("layers.0", "layers.5") },
          { ...qB, name: qB.name.replace("layers.0", "layers.5") },
        ]),
        s,
      ),
    /layer 5 but the model has 2/,
  );
  assert.throws(
    () => readPeftAdapter(craft("unlisted", { target_modules: ["v_proj"] }, [qA, qB]), s),
    /does not list it/,
  );
  // Export refuses an adapter that does not match the spec it is told about.
  const lora = randomLora(s);
  assert.throws(
    () => writePeftAdapter(join(dir, "bad"), lora, { baseModel: "x", spec: { ...s, numLayers: 3 } }),
    /2 layers, the model 3/,
  );
});
