// Logits parity with llama.cpp (through node-llama-cpp): random factory models on real vocabularies, every
// position of prompts of 1 to 256 tokens, f32 files exactly (F32 KV cache), f16 and q8_0 files loosely.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, LlamaLogLevel, type Llama, type Token } from "node-llama-cpp";
import { createRandomModel, type RandomModelOptions } from "../models/factory.js";
import { Rng } from "../util/random.js";
import { forward, logitsOf } from "./forward.js";
import { loadModelWeights } from "./load.js";
import type { Kernels } from "./kernels/index.js";
import { referenceKernels } from "./kernels/reference.js";
import { f32Numerics } from "./numerics.js";
import {
  dequantize,
  f16ToF32,
  f32ToF16,
  GGMLType,
  gv,
  openGGUF,
  quantizeQ8_0,
  writeGGUF,
  type GGUFTensorInput,
  type GGUFValue,
} from "../formats/gguf/index.js";

const dir = mkdtempSync(join(tmpdir(), "buckle-engine-parity-"));
let llama: Llama | undefined;
test.after(async () => {
  await llama?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** Tokens whose logits llama.cpp reports at every position (a full vocabulary is compared at the last one). */
const SUBSET_SIZE = 256;

interface ParityCase {
  label: string;
  model: Omit<RandomModelOptions, "seed" | "hiddenSize" | "numLayers" | "intermediateSize" | "numHeads">;
  promptLengths: number[];
  /** Max abs logit difference; the mean must be 10x smaller. */
  tolerance: number;
  /** For f16/q8_0: the max difference once llama.cpp's rounding of activations is emulated. */
  emulatedTolerance?: number;
  /** Rewrite the file with linear rope scaling of this factor and, for llama, a rope_freqs.weight tensor. */
  rope?: { linearFactor: number; freqFactors?: boolean };
}

/** Add rope scaling metadata (and Llama-3 style frequency factors) to a factory model, in place. */
function addRopeScaling(path: string, rope: NonNullable<ParityCase["rope"]>): void {
  const file = openGGUF(path);
  let metadata: [string, GGUFValue][];
  let tensors: GGUFTensorInput[];
  try {
    const arch = file.getString("general.architecture") as string;
    const headDim = file.getNumber(`${arch}.rope.dimension_count`) as number;
    metadata = [...file.metadata].filter(([k]) => k !== "general.alignment");
    metadata.push([`${arch}.rope.scaling.type`, gv.str("linear")]);
    metadata.push([`${arch}.rope.scaling.factor`, gv.f32(rope.linearFactor)]);
    tensors = file.tensors.map((t) => ({
      name: t.name,
      shape: t.shape,
      type: t.type,
      data: file.readTensorRaw(t),
    }));
    if (rope.freqFactors) {
      // factors between 1 and 8, rising with wavelength, like Llama 3's
      const factors = Float32Array.from({ length: headDim / 2 }, (_, i) => 1 + (7 * i) / (headDim / 2 - 1));
      tensors.push({ name: "rope_freqs.weight", shape: [headDim / 2], type: GGMLType.F32, data: factors });
    }
  } finally {
    file.close();
  }
  writeGGUF(path, { metadata, tensors });
}

/**
 * Reference kernels that round activations the way ggml's CPU backend does before a dot product with f16
 * (to f16) or q8_0 weights (to q8_0 blocks). Only for this test: it isolates weight dequantization from
 * llama.cpp's activation rounding, which buckle deliberately does not copy.
 */
const ggmlRoundingKernels: Kernels = {
  ...referenceKernels,
  name: "reference+ggml-activation-rounding",
  matmul(out, x, w, m) {
    const n = m * w.cols;
    let xr = x;
    if (w.type === "q8_0") xr = dequantize(GGMLType.Q8_0, quantizeQ8_0(x.subarray(0, n)), n);
    if (w.type === "f16") xr = f16ToF32(f32ToF16(x.subarray(0, n)));
    referenceKernels.matmul(out, xr, w, m);
  },
};

const SHAPE = { hiddenSize: 64, numLayers: 2, intermediateSize: 128, numHeads: 4, initStd: 0.3 };

const cases: ParityCase[] = [
  {
    label: "llama, llama-spm, GQA 4/2, untied, no bias, f32",
    model: {
      arch: "llama",
      vocab: "builtin:llama-spm",
      numKvHeads: 2,
      tiedEmbeddings: false,
      attentionBias: false,
    },
    promptLengths: [1, 17, 256],
    tolerance: 1e-3,
  },
  {
    label: "llama, llama-spm, MHA 4/4, tied, q/k/v biases, theta 5e5, linear rope x2 + rope_freqs, f32",
    model: {
      arch: "llama",
      vocab: "builtin:llama-spm",
      numKvHeads: 4,
      tiedEmbeddings: true,
      attentionBias: true,
      ropeTheta: 500000,
    },
    promptLengths: [2, 64],
    tolerance: 1e-3,
    rope: { linearFactor: 2, freqFactors: true },
  },
  {
    label: "qwen2, qwen2 vocab, GQA 4/2, untied, q/k/v biases, f32",
    model: {
      arch: "qwen2",
      vocab: "builtin:qwen2",
      numKvHeads: 2,
      tiedEmbeddings: false,
      attentionBias: true,
    },
    promptLengths: [1, 24],
    tolerance: 1e-3,
  },
  {
    label: "qwen2, llama-spm vocab, MHA 4/4, tied, no bias, theta 1e6, linear rope x4, f32",
    model: {
      arch: "qwen2",
      vocab: "builtin:llama-spm",
      numKvHeads: 4,
      tiedEmbeddings: true,
      attentionBias: false,
      ropeTheta: 1e6,
    },
    promptLengths: [3, 100],
    tolerance: 1e-3,
    rope: { linearFactor: 4 },
  },
  // llama.cpp rounds activations to f16 (resp. q8_0 blocks) before each dot product with f16 (q8_0) weights;
  // buckle keeps activations f32, so these agree to the activation rounding error only.
  {
    label: "llama, llama-spm, GQA 4/2, untied, f16",
    model: { arch: "llama", vocab: "builtin:llama-spm", numKvHeads: 2, dtype: "f16" },
    promptLengths: [64],
    tolerance: 0.15,
    emulatedTolerance: 0.01,
  },
  {
    label: "qwen2, llama-spm vocab, GQA 4/2, q/k/v biases, q8_0",
    model: { arch: "qwen2", vocab: "builtin:llama-spm", numKvHeads: 2, attentionBias: true, dtype: "q8_0" },
    promptLengths: [64],
    tolerance: 0.75,
    emulatedTolerance: 1e-3,
  },
];

cases.forEach((c, caseIndex) => {
  test(`logits match llama.cpp: ${c.label}`, async (t) => {
    const path = join(dir, `model-${caseIndex}.gguf`);
    const created = createRandomModel({ ...SHAPE, ...c.model, seed: 100 + caseIndex }, path);
    if (c.rope) addRopeScaling(path, c.rope);
    const weights = loadModelWeights(path);
    if (c.rope) assert.equal(weights.spec.ropeScaling?.factor, c.rope.linearFactor);
    if (c.rope?.freqFactors) assert.ok(weights.ropeFreqFactors);
    const V = created.spec.vocabSize;
    const rng = new Rng(7 + caseIndex);
    const subset = Array.from({ length: SUBSET_SIZE }, () => rng.int(0, V - 1) as Token);

    llama ??= await getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: path });
    const maxLen = Math.max(...c.promptLengths);
    const ctx = await model.createContext({
      // Room beyond the prompt: a prompt that fills the context makes node-llama-cpp shift it.
      contextSize: maxLen + 64,
      batchSize: maxLen + 64,
      flashAttention: false,
      experimentalKvCacheKeyType: "F32",
      experimentalKvCacheValueType: "F32",
      threads: 2,
    });
    try {
      const seq = ctx.getSequence();
      let maxDiff = 0;
      let maxLogit = 0;
      let compared = 0;
      let sumDiff = 0;
      let maxEmulated = 0;
      // with the rope settings dropped, ours must disagree: the scaling is really being exercised
      let maxUnscaled = 0;
      const unscaled = c.rope
        ? { ...weights, spec: { ...weights.spec, ropeScaling: undefined }, ropeFreqFactors: undefined }
        : undefined;
      for (const len of c.promptLengths) {
        const ids = Array.from({ length: len }, () => rng.int(0, V - 1));
        await seq.clearHistory();
        const theirs = await seq.controlledEvaluate(
          ids.map((id, i) => [
            id as Token,
            { generateNext: { logits: i === len - 1 ? true : { filter: { tokens: subset } } } },
          ]),
        );
        const rows = Array.from({ length: len }, (_, i) => i);
        const ours = logitsOf(weights, forward(weights, [ids]), rows);
        const plain = unscaled && logitsOf(unscaled, forward(unscaled, [ids]), rows);
        const emulated = c.emulatedTolerance
          ? logitsOf(weights, forward(weights, [ids], { numerics: f32Numerics(ggmlRoundingKernels) }), rows)
          : undefined;
        for (let i = 0; i < len; i++) {
          const logits = theirs[i]?.next.logits;
          assert.ok(logits, `llama.cpp returned no logits at position ${i}`);
          if (i === len - 1) assert.equal(logits.size, V, "full vocabulary at the last position");
          for (const [tok, value] of logits) {
            const o = ours[i * V + Number(tok)];
            maxDiff = Math.max(maxDiff, Math.abs(o - value));
            sumDiff += Math.abs(o - value);
            if (emulated)
              maxEmulated = Math.max(maxEmulated, Math.abs(emulated[i * V + Number(tok)] - value));
            maxLogit = Math.max(maxLogit, Math.abs(value));
            if (plain) maxUnscaled = Math.max(maxUnscaled, Math.abs(plain[i * V + Number(tok)] - value));
            compared++;
          }
        }
      }
      const meanDiff = sumDiff / compared;
      t.diagnostic(
        `|ours - llama.cpp|: max ${maxDiff.toExponential(2)}, mean ${meanDiff.toExponential(2)} over ${compared} logits (max |logit| ${maxLogit.toFixed(2)})`,
      );
      if (c.emulatedTolerance)
        t.diagnostic(`with ggml's activation rounding emulated: max ${maxEmulated.toExponential(2)}`);
      assert.ok(maxLogit > 1, "logits are non-trivial");
      if (unscaled) assert.ok(maxUnscaled > 100 * c.tolerance, `without rope scaling: ${maxUnscaled}`);
      if (c.emulatedTolerance)
        assert.ok(maxEmulated < c.emulatedTolerance, `emulated max diff ${maxEmulated}`);
      assert.ok(maxDiff < c.tolerance, `max abs diff ${maxDiff} >= ${c.tolerance}`);
      assert.ok(meanDiff < c.tolerance / 10, `mean abs diff ${meanDiff} >= ${c.tolerance / 10}`);
    } finally {
      await ctx.dispose();
      await model.dispose();
    }
  });
});
