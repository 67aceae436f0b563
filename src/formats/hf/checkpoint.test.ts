import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileFormatError, InputError } from "../../util/errors.js";
import { canonicalTensorShapes, type ModelSpec } from "../model-spec.js";
import { openSafetensors, writeSafetensors } from "../safetensors/index.js";
import { f32ToBF16Bits, bf16BitsToF32 } from "../safetensors/half.js";
import { openHFCheckpoint, writeHFCheckpoint } from "./checkpoint.js";
import { hfConfigFromSpec } from "./config.js";
import { canonicalToHF, unpermuteQK } from "./names.js";

const base: Omit<ModelSpec, "arch" | "attentionBias" | "tiedEmbeddings"> = {
  vocabSize: 11,
  hiddenSize: 16,
  intermediateSize: 24,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 8,
  contextLength: 64,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
};

const specs: ModelSpec[] = [
  { ...base, arch: "llama", attentionBias: false, tiedEmbeddings: false },
  {
    ...base,
    arch: "llama",
    attentionBias: true,
    tiedEmbeddings: true,
    headDim: 6,
    numHeads: 2,
    numKvHeads: 1,
  },
  { ...base, arch: "qwen2", attentionBias: true, tiedEmbeddings: true },
  {
    ...base,
    arch: "mistral",
    attentionBias: false,
    tiedEmbeddings: false,
    ropeScaling: { type: "linear", factor: 2 },
  },
];

function randomTensors(spec: ModelSpec, seed: number): Map<string, Float32Array> {
  let s = seed >>> 0;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of canonicalTensorShapes(spec))
    out.set(name, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, rand));
  return out;
}

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "buckle-hf-test-"));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("canonical tensors -> HF checkpoint -> canonical tensors is identical for llama, qwen2 and mistral", () => {
  specs.forEach((spec, i) =>
    withDir((dir) => {
      const tensors = randomTensors(spec, i + 1);
      const asked: string[] = [];
      writeHFCheckpoint(dir, spec, (name) => {
        asked.push(name);
        return tensors.get(name) as Float32Array;
      });
      assert.deepEqual(asked, [...tensors.keys()], "each tensor asked for once, in order");
      assert.deepEqual(readdirSync(dir).sort(), ["config.json", "model.safetensors"]);
      const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
      assert.equal(config.torch_dtype, "float32");

      const raw = openSafetensors(join(dir, "model.safetensors"));
      try {
        assert.deepEqual(raw.metadata, { format: "pt" });
        assert.equal(raw.tensor("lm_head.weight") === undefined, spec.tiedEmbeddings);
        assert.equal(raw.tensor("model.layers.0.self_attn.q_proj.bias") !== undefined, spec.attentionBias);
        // On disk q/k are in HF order: un-permuted for llama/mistral, untouched for qwen2.
        const q = tensors.get("blk.1.attn_q.weight") as Float32Array;
        const k = tensors.get("blk.1.attn_k.weight") as Float32Array;
        const qOnDisk = raw.readF32("model.layers.1.self_attn.q_proj.weight");
        const kOnDisk = raw.readF32("model.layers.1.self_attn.k_proj.weight");
        const qRows = spec.numHeads * spec.headDim;
        const kRows = spec.numKvHeads * spec.headDim;
        if (spec.arch === "qwen2") {
          assert.deepEqual(qOnDisk, q);
          assert.deepEqual(kOnDisk, k);
        } else {
          assert.deepEqual(qOnDisk, unpermuteQK(q, qRows, spec.hiddenSize, spec.numHeads));
          assert.deepEqual(kOnDisk, unpermuteQK(k, kRows, spec.hiddenSize, spec.numKvHeads));
          assert.notDeepEqual(qOnDisk, q);
        }
        if (spec.attentionBias && spec.arch === "llama") {
          const kb = tensors.get("blk.0.attn_k.bias") as Float32Array;
          assert.deepEqual(
            raw.readF32("model.layers.0.self_attn.k_proj.bias"),
            unpermuteQK(kb, kRows, 1, spec.numKvHeads),
          );
        }
      } finally {
        raw.close();
      }

      const ck = openHFCheckpoint(dir);
      try {
        assert.deepEqual(ck.spec, spec);
        assert.deepEqual(ck.tensorNames, [...tensors.keys()]);
        for (const [name, data] of tensors) {
          assert.deepEqual(ck.readCanonical(name), data, name);
          assert.deepEqual(ck.shape(name), canonicalTensorShapes(spec).get(name));
        }
        assert.throws(() => ck.readCanonical("blk.9.attn_q.weight"), InputError);
        if (spec.tiedEmbeddings)
          assert.throws(
            () => ck.readCanonical("output.weight"),
            (e: unknown) => e instanceof InputError && /tied/.test(e.hint ?? ""),
          );
      } finally {
        ck.close();
      }
    }),
  );
});

test("BF16 checkpoints store rounded values and say so in config.json", () => {
  withDir((dir) => {
    const spec = specs[0];
    const tensors = randomTensors(spec, 42);
    writeHFCheckpoint(dir, spec, (n) => tensors.get(n) as Float32Array, { dtype: "BF16", eosTokenId: 2 });
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    assert.equal(config.torch_dtype, "bfloat16");
    assert.equal(config.eos_token_id, 2);
    const ck = openHFCheckpoint(dir);
    try {
      const want = (tensors.get("blk.0.attn_q.weight") as Float32Array).map((v) =>
        bf16BitsToF32(f32ToBF16Bits(v)),
      );
      assert.deepEqual(ck.readCanonical("blk.0.attn_q.weight"), want);
    } finally {
      ck.close();
    }
  });
});

/** Write an HF checkpoint by hand from HF-named tensors, bypassing writeHFCheckpoint. */
function writeRaw(
  dir: string,
  spec: ModelSpec,
  edit: (t: Map<string, { shape: number[]; data: Float32Array }>) => void,
) {
  const t = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, shape] of canonicalTensorShapes(spec))
    t.set(canonicalToHF(name) as string, { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
  edit(t);
  writeFileSync(join(dir, "config.json"), JSON.stringify(hfConfigFromSpec(spec)));
  writeSafetensors(
    join(dir, "model.safetensors"),
    [...t].map(([name, v]) => ({ name, dtype: "F32", shape: v.shape, data: v.data })),
  );
}

test("mismatched weights are reported with the missing, unexpected and misshapen names", () => {
  withDir((dir) => {
    const spec = specs[0];
    writeRaw(dir, spec, (t) => {
      t.delete("model.layers.1.mlp.up_proj.weight");
      t.delete("lm_head.weight");
      t.set("model.layers.0.mlp.extra.weight", { shape: [1], data: new Float32Array(1) });
      t.set("model.layers.0.input_layernorm.weight", { shape: [15], data: new Float32Array(15) });
    });
    assert.throws(
      () => openHFCheckpoint(dir),
      (e: unknown) =>
        e instanceof FileFormatError &&
        /missing \(2\): model\.layers\.1\.mlp\.up_proj\.weight, lm_head\.weight/.test(e.message) &&
        /unexpected \(1\): model\.layers\.0\.mlp\.extra\.weight/.test(e.message) &&
        /wrong shape \(1\): model\.layers\.0\.input_layernorm\.weight is \[15\], config implies \[16\]/.test(
          e.message,
        ),
    );
  });
});

test("tied checkpoints may still carry lm_head; old rotary inv_freq buffers are ignored", () => {
  withDir((dir) => {
    const spec = specs[2];
    writeRaw(dir, spec, (t) => {
      t.set("lm_head.weight", {
        shape: [spec.vocabSize, spec.hiddenSize],
        data: new Float32Array(spec.vocabSize * spec.hiddenSize),
      });
      t.set("model.layers.0.self_attn.rotary_emb.inv_freq", { shape: [4], data: new Float32Array(4) });
    });
    const ck = openHFCheckpoint(dir);
    try {
      assert.ok(!ck.tensorNames.includes("output.weight"));
    } finally {
      ck.close();
    }
  });
});

test("sharded checkpoints are read through their index", () => {
  withDir((dir) => {
    const spec = specs[3];
    const tensors = randomTensors(spec, 5);
    const names = [...tensors.keys()];
    const half = Math.floor(names.length / 2);
    const shardOf = (i: number) => `model-0000${i < half ? 1 : 2}-of-00002.safetensors`;
    const weightMap: Record<string, string> = {};
    for (const part of [0, 1]) {
      const mine = names.filter((_, i) => (i < half ? 0 : 1) === part);
      const file = shardOf(part === 0 ? 0 : half);
      writeSafetensors(
        join(dir, file),
        mine.map((n) => {
          const shape = canonicalTensorShapes(spec).get(n) as number[];
          const hf = canonicalToHF(n) as string;
          weightMap[hf] = file;
          const data = tensors.get(n) as Float32Array;
          const perm = /attn_q\.weight/.test(n)
            ? unpermuteQK(data, shape[0], shape[1], spec.numHeads)
            : /attn_k\.weight/.test(n)
              ? unpermuteQK(data, shape[0], shape[1], spec.numKvHeads)
              : data;
          return { name: hf, dtype: "F32" as const, shape, data: perm };
        }),
      );
    }
    writeFileSync(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    writeFileSync(join(dir, "config.json"), JSON.stringify(hfConfigFromSpec(spec)));
    const ck = openHFCheckpoint(dir);
    try {
      for (const [n, data] of tensors) assert.deepEqual(ck.readCanonical(n), data, n);
    } finally {
      ck.close();
    }
  });
});

test("directory problems are clear errors", () => {
  withDir((dir) => {
    assert.throws(() => openHFCheckpoint(join(dir, "nope")), /is not a directory/);
    assert.throws(() => openHFCheckpoint(dir), /has no config\.json/);
    writeFileSync(join(dir, "config.json"), "{not json");
    assert.throws(
      () => openHFCheckpoint(dir),
      (e: unknown) => e instanceof FileFormatError && /not valid JSON/.test(e.message),
    );
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({ ...hfConfigFromSpec(specs[0]), intermediate_size: "big" }),
    );
    assert.throws(() => openHFCheckpoint(dir), /config\.json: intermediate_size must be a positive integer/);
    writeFileSync(join(dir, "config.json"), JSON.stringify(hfConfigFromSpec(specs[0])));
    writeFileSync(join(dir, "pytorch_model.bin"), "");
    assert.throws(
      () => openHFCheckpoint(dir),
      (e: unknown) => e instanceof InputError && /pickle/.test(e.hint ?? ""),
    );
    assert.throws(
      () => writeHFCheckpoint(dir, specs[0], () => new Float32Array(3)),
      /token_embd\.weight: expected 176 f32 values/,
    );
    assert.deepEqual(readdirSync(dir).sort(), ["config.json", "pytorch_model.bin"]);
  });
});
