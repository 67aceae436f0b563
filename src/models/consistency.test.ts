// Cross-backend consistency: the same factory model (and adapter) through the native engine and through
// llama.cpp scores the same response tokens with the same log-probs and greedy-decodes the same text.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRandomModel, type RandomModelOptions } from "./factory.js";
import { maxAbsDiff } from "../testing/llama-reference.js";
import { tinyModelOptions } from "../testing/models.js";
import { createNativeModel } from "./native/index.js";
import { createLlamaCppModel } from "./llamacpp/index.js";
import { createRandomLora, writeGGUFLora, writePeftAdapter } from "../engine/adapters/index.js";
import type { GenerateRequest, LanguageModel, LogprobsRequest } from "./types.js";

const dir = mkdtempSync(join(tmpdir(), "buckle-consistency-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const logprobRequests: LogprobsRequest[] = [
  {
    messages: [{ role: "user", content: "How do I water a cactus?" }],
    response: "Rarely, and only when the soil is dry.",
  },
  {
    messages: [
      { role: "system", content: "Answer briefly." },
      { role: "user", content: "Name three colours." },
    ],
    response: "Red, green and blue.",
  },
  { prompt: "Once upon a time", response: " there was a small robot who loved the sea." },
];
const generateRequests: GenerateRequest[] = [
  {
    messages: [{ role: "user", content: "Tell me about the moon." }],
    sampling: { temperature: 0, maxTokens: 12 },
  },
  { prompt: "The weather today is", sampling: { temperature: 0, maxTokens: 12 } },
];

async function compare(label: string, a: LanguageModel, b: LanguageModel): Promise<number> {
  const [la, lb] = [await a.logprobs(logprobRequests), await b.logprobs(logprobRequests)];
  let worst = 0;
  la.forEach((r, i) => {
    assert.deepEqual(r.tokens, lb[i].tokens, `${label}: request ${i} scores other tokens`);
    worst = Math.max(worst, maxAbsDiff(r.logprobs, lb[i].logprobs));
  });
  assert.ok(worst < 1e-3, `${label}: log-probs differ by ${worst}`);
  const [ga, gb] = [await a.generate(generateRequests), await b.generate(generateRequests)];
  ga.forEach((r, i) => assert.deepEqual(r.tokens, gb[i].tokens, `${label}: greedy request ${i}`));
  return worst;
}

const configs: [string, RandomModelOptions][] = [
  ["llama-spm GQA", tinyModelOptions(11, { initStd: 0.25 })],
  ["qwen2 with biases", tinyModelOptions(12, { arch: "qwen2", vocab: "builtin:qwen2", initStd: 0.25 })],
];

for (const [label, opts] of configs) {
  test(`native and llamacpp agree: ${label}, with and without a LoRA adapter`, async () => {
    const modelPath = join(dir, `${label.replace(/\W+/g, "-")}.gguf`);
    const created = createRandomModel(opts, modelPath);
    const adapterPath = join(dir, `${label.replace(/\W+/g, "-")}-lora.gguf`);
    const lora = createRandomLora(
      created.spec,
      {
        rank: 4,
        alpha: 8,
        dropout: 0,
        targets: ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"],
      },
      { seed: 5, stdB: 0.1 },
    );
    writeGGUFLora(adapterPath, lora, created.spec);
    const peftDir = join(dir, `${label.replace(/\W+/g, "-")}-peft`);
    writePeftAdapter(peftDir, lora, { baseModel: modelPath, spec: created.spec });
    for (const adapters of [[], [{ path: adapterPath }], [{ path: peftDir }]]) {
      const native = await createNativeModel({ modelPath, adapters });
      const llama = await createLlamaCppModel({
        modelPath,
        adapters,
        kvCacheF32: true,
        flashAttention: false,
        threads: 2,
      });
      try {
        await compare(`${label}${adapters.length ? " + LoRA" : ""}`, native, llama);
      } finally {
        await llama.dispose();
        await native.dispose();
      }
    }
  });
}
