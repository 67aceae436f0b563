import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRandomModel } from "../factory.js";
import { createNativeModel } from "./index.js";
import { scoredIds } from "../requests.js";
import { loadModelWeights, logprobs as engineLogprobs } from "../../engine/index.js";
import { loadTokenizerAndTemplate } from "../../formats/load.js";
import { createRandomLora, writeGGUFLora } from "../../engine/adapters/index.js";
import { tinyModelOptions } from "../../testing/models.js";

const dir = mkdtempSync(join(tmpdir(), "buckle-native-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const modelPath = join(dir, "tiny.gguf");
const created = createRandomModel(
  tinyModelOptions(7, { hiddenSize: 32, intermediateSize: 64, initStd: 0.3 }),
  modelPath,
);

test("native backend: log-probs score exactly the response tokens, in any grouping", async () => {
  const model = await createNativeModel({ modelPath, scoreTokensPerPass: 1 });
  const big = await createNativeModel({ modelPath });
  const requests = [
    { prompt: "The capital of France is", response: " Paris." },
    { messages: [{ role: "user" as const, content: "Name a colour." }], response: "Blue, like the sky." },
    { prompt: "1 2 3", response: " 4 5 6 7" },
  ];
  const a = await model.logprobs(requests);
  const b = await big.logprobs(requests);
  const { tokenizer, template } = loadTokenizerAndTemplate(modelPath);
  const weights = loadModelWeights(modelPath);
  for (let i = 0; i < requests.length; i++) {
    assert.equal(a[i].tokens.length, a[i].logprobs.length);
    for (let t = 0; t < a[i].logprobs.length; t++)
      assert.ok(Math.abs(a[i].logprobs[t] - b[i].logprobs[t]) < 1e-5);
    assert.ok(a[i].perplexity > 1 && Number.isFinite(a[i].perplexity));
  }
  // Raw prompt: prompt + response tokenized as one text (the shared rule of models/requests.ts); the
  // scored tokens are the response's, and equal the engine's own log-probs of them.
  const span = scoredIds(requests[0], 0, tokenizer, template);
  assert.deepEqual(a[0].tokens, span.ids.slice(span.start, span.end));
  // (SentencePiece decode drops the leading space of a sequence.)
  assert.equal(tokenizer.decode(a[0].tokens), "Paris.");
  const direct = engineLogprobs(weights, span.ids, span.start, span.end);
  for (let t = 0; t < direct.length; t++) assert.ok(Math.abs(direct[t] - a[0].logprobs[t]) < 1e-5);
  // Chat: the scored tokens decode to the response.
  assert.equal(tokenizer.decode(a[1].tokens).trim(), "Blue, like the sky.");
  assert.equal(model.info().backend, "native");
  assert.match(model.info().id, /^native:tiny\.gguf:\d+:[0-9a-f]{12}$/);
});

test("native backend: seeded generation is reproducible, batches equal singles, adapters change outputs", async () => {
  const model = await createNativeModel({ modelPath, parallel: 2 });
  const reqs = [0, 1, 2].map((i) => ({
    messages: [{ role: "user" as const, content: `Tell me a story number ${i}.` }],
    sampling: { temperature: 0.9, topP: 0.95, maxTokens: 8, seed: 100 + i },
  }));
  const batch = await model.generate(reqs);
  const singles = [];
  for (const r of reqs) singles.push((await model.generate([r]))[0]);
  assert.deepEqual(
    batch.map((r) => r.tokens),
    singles.map((r) => r.tokens),
  );
  for (const r of batch) assert.ok(["eos", "length", "stop"].includes(r.finishReason));

  const loraPath = join(dir, "adapter.gguf");
  const lora = createRandomLora(
    created.spec,
    { rank: 4, alpha: 8, dropout: 0, targets: ["q_proj", "v_proj", "down_proj"] },
    { seed: 3, stdB: 0.2 },
  );
  writeGGUFLora(loraPath, lora, created.spec);
  const adapted = await createNativeModel({ modelPath, adapters: [{ path: loraPath }] });
  const req = [{ prompt: "Hello", response: " world and everyone in it" }];
  const [plain] = await model.logprobs(req);
  const [withLora] = await adapted.logprobs(req);
  assert.ok(plain.logprobs.some((x, i) => Math.abs(x - withLora.logprobs[i]) > 1e-3));
  assert.match(adapted.info().id, /\+lora:adapter\.gguf:\d+:[0-9a-f]{12}$/);
  await assert.rejects(
    createNativeModel({ modelPath, adapters: [{ path: loraPath }, { path: loraPath }] }),
    /one LoRA adapter at a time/,
  );
  const ac = new AbortController();
  ac.abort();
  const cancelled = await model.generate(reqs, { signal: ac.signal });
  assert.deepEqual(
    cancelled.map((r) => r.finishReason),
    ["cancelled", "cancelled", "cancelled"],
  );
});
