// Checks our GGUF LoRA layout against real llama.cpp: base model + our adapter in node-llama-cpp must give the
// same logits as node-llama-cpp on our merged GGUF, for a llama (GQA, permuted q/k) and a qwen2 (biases) model.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel, type Token } from "node-llama-cpp";
import { unpermuteQK } from "../../formats/hf/index.js";
import { createRandomModel, type RandomModelOptions } from "../../models/factory.js";
import { llamaCppLogits, maxAbsDiff } from "../../testing/llama-reference.js";
import { tinyModelOptions } from "../../testing/models.js";
import type { ModelSpec } from "../../formats/model-spec.js";
import type { LoraWeights } from "../types.js";
import { LORA_TARGETS } from "../types.js";
import { createRandomLora, mergeLoraIntoGGUF, readGGUFLora, writeGGUFLora } from "./index.js";

let dir: string;
let llama: Llama;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "buckle-gguf-lora-"));
  llama = await getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.error });
});
after(async () => {
  await llama?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const PROMPT = "The quick brown fox jumps over the lazy dog while seven wizards quietly brew potions.";

/**
 * Positions whose logits are compared: every third one and the last. Asking llama.cpp for logits costs about
 * 0.1-0.5 s per position on a 150k vocabulary (a filtered request is no cheaper), which dominates the runtime.
 */
const comparedPosition = (i: number, n: number): boolean => i % 3 === 2 || i === n - 1;

/** Logits at the compared positions of the prompt's first 20 tokens, from llama.cpp (see llamaCppLogits). */
async function llamaLogits(
  model: LlamaModel,
  vocab: number,
  loraPath?: string,
): Promise<{ tokens: Token[]; logits: Float32Array[] }> {
  const tokens = model.tokenize(PROMPT).slice(0, 20);
  const logits = await llamaCppLogits(model, tokens, {
    vocab,
    contextSize: 128,
    positions: comparedPosition,
    loraPath,
  });
  return { tokens, logits };
}

async function withModel<T>(path: string, fn: (m: LlamaModel) => Promise<T>): Promise<T> {
  const model = await llama.loadModel({ modelPath: path });
  try {
    return await fn(model);
  } finally {
    await model.dispose();
  }
}

function randomLora(spec: ModelSpec, seed: number): LoraWeights {
  return createRandomLora(
    spec,
    { rank: 4, alpha: 8, dropout: 0, targets: [...LORA_TARGETS] },
    { seed, stdB: 0.1 },
  );
}

const cases: { arch: string; opts: Partial<RandomModelOptions> }[] = [
  { arch: "llama", opts: { initStd: 0.2, dtype: "f32" } },
  { arch: "qwen2", opts: { arch: "qwen2", vocab: "builtin:qwen2", initStd: 0.2, dtype: "f32" } },
];

for (const { arch, opts } of cases) {
  test(`llama.cpp applies our GGUF LoRA exactly like our merged model (${arch})`, async () => {
    const basePath = join(dir, `${arch}-base.gguf`);
    const { spec } = createRandomModel(tinyModelOptions(3, opts), basePath);
    if (arch === "qwen2") assert.ok(spec.attentionBias);
    const lora = randomLora(spec, 17);
    const loraPath = join(dir, `${arch}-lora.gguf`);
    const mergedPath = join(dir, `${arch}-merged.gguf`);
    writeGGUFLora(loraPath, lora, spec, { baseName: `${arch}-base` });
    mergeLoraIntoGGUF(basePath, lora, mergedPath, { dtype: "f32" });

    // Our reader gives back exactly what we wrote.
    assert.deepEqual(readGGUFLora(loraPath, spec), lora);

    // On llama only (to save time; neither depends on the architecture's graph): q/k B rows in Hugging Face order,
    // the classic export mistake, must disagree with the merged model, and an f16 copy must stay close.
    const wrongPath = join(dir, `${arch}-wrong.gguf`);
    if (arch === "llama") {
      const wrong = structuredClone(lora);
      for (const layer of wrong.layers) {
        const q = layer.q_proj!;
        q.b = unpermuteQK(q.b, q.out, 4, spec.numHeads);
        const k = layer.k_proj!;
        k.b = unpermuteQK(k.b, k.out, 4, spec.numKvHeads);
      }
      writeGGUFLora(wrongPath, wrong, spec);
    }
    const f16Path = join(dir, `${arch}-lora-f16.gguf`);
    writeGGUFLora(f16Path, lora, spec, { dtype: "f16" });

    const merged = await withModel(mergedPath, (m) => llamaLogits(m, spec.vocabSize));
    const [withAdapter, base, wrongOrder, f16] = await withModel(basePath, async (m) => [
      await llamaLogits(m, spec.vocabSize, loraPath),
      await llamaLogits(m, spec.vocabSize),
      arch === "llama" ? await llamaLogits(m, spec.vocabSize, wrongPath) : undefined,
      arch === "llama" ? await llamaLogits(m, spec.vocabSize, f16Path) : undefined,
    ]);
    assert.deepEqual(withAdapter.tokens, merged.tokens);
    assert.ok(withAdapter.tokens.length >= 16, `prompt has only ${withAdapter.tokens.length} tokens`);
    const diff = maxAbsDiff(withAdapter.logits, merged.logits);
    const effect = maxAbsDiff(base.logits, merged.logits);
    const f16Diff = f16 ? maxAbsDiff(f16.logits, merged.logits) : NaN;
    const wrongDiff = wrongOrder ? maxAbsDiff(wrongOrder.logits, merged.logits) : NaN;
    const extra =
      arch === "llama"
        ? `; f16 adapter ${f16Diff.toExponential(2)}; HF-ordered q/k ${wrongDiff.toFixed(3)}`
        : "";
    console.log(
      `# ${arch}: adapter vs merged max |diff| ${diff.toExponential(2)}; adapter effect ${effect.toFixed(3)}${extra}`,
    );
    assert.ok(diff < 1e-3, `adapter vs merged logits differ by ${diff}`);
    // The adapter must matter, or the comparison above proves nothing.
    assert.ok(effect > 0.1, `the adapter changes logits by only ${effect}`);
    if (arch === "llama") {
      assert.ok(f16Diff < 0.05, `f16 adapter differs by ${f16Diff}`);
      assert.ok(wrongDiff > 0.01, `q/k row order did not matter (${wrongDiff})`);
    }

    const back = readGGUFLora(f16Path, spec);
    const a = lora.layers[1].down_proj!.a;
    const a16 = back.layers[1].down_proj!.a;
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - a16[i]) <= Math.abs(a[i]) * 1e-3 + 1e-7);
  });
}

test("GGUF LoRA export refuses adapters that do not fit and alpha 0", () => {
  const basePath = join(dir, "llama-base.gguf");
  const { spec } = createRandomModel(tinyModelOptions(3, cases[0].opts), basePath);
  const lora = randomLora(spec, 1);
  assert.throws(
    () => writeGGUFLora(join(dir, "x.gguf"), { ...lora, config: { ...lora.config, alpha: 0 } }, spec),
    /alpha must be positive/,
  );
  assert.throws(() => writeGGUFLora(join(dir, "x.gguf"), lora, { ...spec, hiddenSize: 32 }), /does not fit/);
  assert.throws(() => readGGUFLora(basePath, spec), /not a LoRA adapter/);
});
