// Acceptance check for adapters: a LoRA trained here, exported as a GGUF LoRA and loaded into llama.cpp
// (node-llama-cpp) gives the same logits as our engine with the adapter unmerged; the PEFT export round-trips.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  getLlama,
  LlamaLogLevel,
  type ControlledEvaluateInputItem,
  type Llama,
  type Token,
} from "node-llama-cpp";
import { encodeChatPrompt, renderWithSpans, type ChatMessage } from "../formats/chat/index.js";
import { loadTokenizerAndTemplate } from "../formats/load.js";
import { createRandomModel } from "../models/factory.js";
import { readGGUFLora, readPeftAdapter, writeGGUFLora, writePeftAdapter } from "./adapters/index.js";
import { forward, logitsOf } from "./forward.js";
import { loadModelWeights } from "./load.js";
import { train, type TrainExample } from "./train.js";
import { LORA_TARGETS, type LoraPair } from "./types.js";

let dir: string;
let llama: Llama;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "buckle-adapter-parity-"));
  llama = await getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.error });
});
after(async () => {
  await llama?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** llama.cpp's logits after every position (F32 KV cache, flash attention off: see gguf-lora.test.ts). */
async function llamaCppLogits(
  basePath: string,
  loraPath: string | undefined,
  tokens: number[],
  vocab: number,
): Promise<Float32Array[]> {
  const model = await llama.loadModel({ modelPath: basePath });
  try {
    const ctx = await model.createContext({
      contextSize: 128,
      threads: 1,
      flashAttention: false,
      experimentalKvCacheKeyType: "F32",
      experimentalKvCacheValueType: "F32",
      ...(loraPath ? { lora: { adapters: [{ filePath: loraPath }] } } : {}),
    });
    try {
      const res = await ctx
        .getSequence()
        .controlledEvaluate(
          tokens.map((t): ControlledEvaluateInputItem => [t as Token, { generateNext: { logits: true } }]),
        );
      return tokens.map((_, i) => {
        const map = res[i]?.next?.logits;
        assert.ok(map && map.size === vocab, `no full logits at position ${i}`);
        const out = new Float32Array(vocab);
        for (const [t, v] of map) out[t] = v;
        return out;
      });
    } finally {
      await ctx.dispose();
    }
  } finally {
    await model.dispose();
  }
}

function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let p = 0; p < a.length; p++)
    for (let i = 0; i < a[p].length; i++) m = Math.max(m, Math.abs(a[p][i] - b[p][i]));
  return m;
}

test("a trained LoRA exported as GGUF gives our engine's logits in llama.cpp; PEFT round-trips", async () => {
  const basePath = join(dir, "base.gguf");
  createRandomModel(
    {
      arch: "llama",
      vocab: "builtin:llama-spm",
      hiddenSize: 64,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      intermediateSize: 128,
      initStd: 0.2,
      dtype: "f32",
      seed: 21,
    },
    basePath,
  );
  const model = loadModelWeights(basePath);
  const { tokenizer, template } = loadTokenizerAndTemplate(basePath);
  const spec = model.spec;

  // Train on chats with loss on the assistant's tokens, as `buckle train` does.
  const chats: ChatMessage[][] = ["red", "green", "blue", "yellow"].map((c) => [
    { role: "user", content: `Name a colour like ${c}.` },
    { role: "assistant", content: `Sure: ${c} is a fine colour.` },
  ]);
  const examples: TrainExample[] = chats.map((messages) => {
    const r = renderWithSpans(template, messages, tokenizer);
    return { ids: r.ids, spans: r.assistantSpans.map((s) => ({ start: s.contentStart, end: s.turnEnd })) };
  });
  const { lora } = await train(model, examples, {
    seed: 3,
    lora: { rank: 4, alpha: 8, dropout: 0.05, targets: [...LORA_TARGETS] },
    learningRate: 3e-2,
    batchSize: 2,
    steps: 4,
  });
  assert.ok(lora);
  const b = (lora.layers[0].q_proj as LoraPair).b;
  assert.ok(
    b.some((x) => Math.abs(x) > 1e-2),
    "training left B near zero",
  );

  // Exports: GGUF for llama.cpp, PEFT for Hugging Face; both read back to exactly the trained adapter.
  const loraPath = join(dir, "adapter.gguf");
  const peftDir = join(dir, "peft");
  writeGGUFLora(loraPath, lora, spec, { baseName: "base" });
  writePeftAdapter(peftDir, lora, { baseModel: basePath, spec });
  assert.deepEqual(readGGUFLora(loraPath, spec), lora);
  assert.deepEqual(readPeftAdapter(peftDir, spec), lora);

  // Every position of a prompt the adapter was not trained on.
  const tokens = encodeChatPrompt(
    template,
    [{ role: "user", content: "Name a colour like purple, please." }],
    tokenizer,
  );
  assert.ok(tokens.length >= 16, `prompt has ${tokens.length} tokens`);
  const rows = tokens.map((_, i) => i);
  const V = spec.vocabSize;
  const split = (flat: Float32Array) => rows.map((i) => flat.subarray(i * V, (i + 1) * V));
  const ours = split(logitsOf(model, forward(model, [tokens], { lora }), rows));
  const oursBase = split(logitsOf(model, forward(model, [tokens]), rows));
  const theirs = await llamaCppLogits(basePath, loraPath, tokens, V);
  const theirsBase = await llamaCppLogits(basePath, undefined, tokens, V);

  const diff = maxAbsDiff(ours, theirs);
  const baseDiff = maxAbsDiff(oursBase, theirsBase);
  const effect = maxAbsDiff(theirs, theirsBase);
  console.log(
    `# ${tokens.length} positions x ${V} logits: engine+LoRA vs llama.cpp+GGUF LoRA max |diff| ${diff.toExponential(2)}` +
      ` (base models ${baseDiff.toExponential(2)}); the adapter moves logits by up to ${effect.toFixed(3)}`,
  );
  assert.ok(diff < 1e-3, `logits differ by ${diff}`);
  // The adapter must change the logits well beyond the tolerance, or the comparison proves nothing.
  assert.ok(effect > 0.05, `the adapter changes llama.cpp's logits by only ${effect}`);
});
