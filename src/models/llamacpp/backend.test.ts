// Checks the llamacpp backend against node-llama-cpp used directly: greedy text, log-probs against the full
// logits, batched vs one-at-a-time results, seeds, stop strings, cancellation, adapters and input errors.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, LlamaLogLevel, type Llama, type Token } from "node-llama-cpp";
import { createRandomModel, type CreatedModel } from "../factory.js";
import { loadTokenizerAndTemplate } from "../../formats/load.js";
import { encodeChatPrompt } from "../../formats/chat/index.js";
import { createRandomLora, writeGGUFLora } from "../../engine/adapters/index.js";
import { LORA_TARGETS } from "../../engine/types.js";
import { InputError } from "../../util/errors.js";
import type { GenerateRequest, LanguageModel, LogprobsRequest } from "../types.js";
import { createLlamaCppModel } from "./index.js";
import { scoredIds } from "../requests.js";
import { llamaCppLogits, maxAbsDiff } from "../../testing/llama-reference.js";
import { tinyModelOptions } from "../../testing/models.js";

let dir: string;
let created: CreatedModel;
let model: LanguageModel;
let llama: Llama;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "buckle-llamacpp-"));
  created = createRandomModel(
    // Large weights give peaked distributions, so greedy choices are not decided by rounding.
    tinyModelOptions(5, { initStd: 0.3, contextLength: 512 }),
    join(dir, "tiny.gguf"),
  );
  model = await createLlamaCppModel({
    modelPath: created.path,
    gpu: false,
    threads: 1,
    parallel: 4,
    contextSize: 256,
    kvCacheF32: true,
  });
  llama = await getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.error });
});

after(async () => {
  await model?.dispose();
  await llama?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const chat = (content: string) => [{ role: "user" as const, content }];

test("info: file identity, template, capabilities", () => {
  const info = model.info();
  assert.equal(info.backend, "llamacpp");
  assert.match(info.id, /^llamacpp:tiny\.gguf:\d+:[0-9a-f]{12}$/);
  assert.equal(info.chatTemplate, loadTokenizerAndTemplate(created.path).template.name);
  assert.ok(info.contextSize >= 256);
  assert.deepEqual(info.capabilities, { logprobs: true, seeds: true, training: false });
});

test("greedy generation equals node-llama-cpp's own greedy decoding of the same prompt", async () => {
  const messages = chat("Tell me a story about a fox.");
  const [ours] = await model.generate([{ messages, sampling: { temperature: 0, maxTokens: 24 } }]);
  const { tokenizer, template } = loadTokenizerAndTemplate(created.path);
  const ids = encodeChatPrompt(template, messages, tokenizer);
  const m = await llama.loadModel({ modelPath: created.path });
  try {
    const ctx = await m.createContext({
      contextSize: 256,
      threads: 1,
      flashAttention: false,
      experimentalKvCacheKeyType: "F32",
      experimentalKvCacheValueType: "F32",
    });
    const direct: number[] = [];
    for await (const t of ctx.getSequence().evaluate(ids as Token[], { temperature: 0 })) {
      direct.push(t);
      if (direct.length >= 24) break;
    }
    assert.ok(ours.tokens && ours.tokens.length > 0);
    assert.deepEqual(ours.tokens, direct.slice(0, ours.tokens.length));
    if (ours.finishReason === "length") assert.equal(ours.tokens.length, 24);
    const bytes = Buffer.concat(ours.tokens.map((t) => tokenizer.tokenBytes(t)));
    assert.equal(ours.text, new TextDecoder().decode(bytes));
    assert.equal(ours.promptTokens, ids.length);
  } finally {
    await m.dispose();
  }
});

test("a batch of 6 with mixed sampling equals the same requests one at a time (greedy and seeded)", async () => {
  const requests: GenerateRequest[] = [
    { id: "g1", messages: chat("Hello there"), sampling: { temperature: 0, maxTokens: 20 } },
    {
      id: "s1",
      prompt: "Once upon a time",
      sampling: { temperature: 0.9, topP: 0.9, maxTokens: 20, seed: 7 },
    },
    {
      id: "s2",
      messages: chat("Write a poem"),
      sampling: { temperature: 1.2, topK: 20, repeatPenalty: 1.3, maxTokens: 16, seed: 11 },
    },
    {
      id: "g2",
      prompt: "The capital of France is",
      sampling: { temperature: 0, maxTokens: 12, repeatPenalty: 1.5 },
    },
    {
      id: "s3",
      messages: chat("Hello there"),
      sampling: { temperature: 0.8, minP: 0.1, maxTokens: 20, seed: 7 },
    },
    { id: "u", messages: chat("Anything"), sampling: { temperature: 1, maxTokens: 8 } },
  ];
  const finished: number[] = [];
  const streamed = new Map<number, string>();
  const batch = await model.generate(requests, {
    onResult: (i) => finished.push(i),
    onToken: (i, text) => streamed.set(i, (streamed.get(i) ?? "") + text),
  });
  assert.deepEqual(
    batch.map((r) => r.id),
    requests.map((r) => r.id),
  );
  assert.deepEqual([...finished].sort(), [0, 1, 2, 3, 4, 5]);
  for (const [i, r] of batch.entries()) {
    assert.equal(streamed.get(i) ?? "", r.text, `streamed text of request ${i}`);
    assert.ok(r.tokens!.length >= 1 && r.tokens!.length <= requests[i].sampling.maxTokens);
  }
  for (let i = 0; i < 5; i++) {
    const [single] = await model.generate([requests[i]]);
    assert.deepEqual(single.tokens, batch[i].tokens, `request ${requests[i].id}`);
    assert.equal(single.text, batch[i].text);
    assert.equal(single.finishReason, batch[i].finishReason);
  }
  // The same seed gives the same text; another seed (almost surely) another.
  const seeded = (seed: number): GenerateRequest => ({
    prompt: "Once upon a time",
    sampling: { temperature: 1.5, maxTokens: 24, seed },
  });
  const again = await model.generate([seeded(3), seeded(3), seeded(4)]);
  assert.equal(again[0].text, again[1].text);
  assert.notDeepEqual(again[0].tokens, again[2].tokens);
  // Sampling must not be greedy in disguise.
  const [greedy] = await model.generate([
    { prompt: "Once upon a time", sampling: { temperature: 0, maxTokens: 24 } },
  ]);
  assert.ok(
    again.some((r) => JSON.stringify(r.tokens) !== JSON.stringify(greedy.tokens)),
    "sampling at temperature 1.5 gave the greedy text",
  );
});

test("stop strings cut the text before the first occurrence, even across tokens", async () => {
  const base: GenerateRequest = { prompt: "Once upon a time", sampling: { temperature: 0, maxTokens: 40 } };
  const [full] = await model.generate([base]);
  assert.ok(full.text.length >= 12, `too little text to test with: ${JSON.stringify(full.text)}`);
  const stop = full.text.slice(6, 10);
  const cut = full.text.indexOf(stop);
  let streamed = "";
  const [stopped] = await model.generate(
    [{ ...base, sampling: { ...base.sampling, stop: [stop, "\u0000never"] } }],
    {
      onToken: (_, t) => (streamed += t),
    },
  );
  assert.equal(stopped.finishReason, "stop");
  assert.equal(stopped.text, full.text.slice(0, cut));
  assert.equal(streamed, stopped.text);
});

test("cancellation keeps finished results and marks the rest cancelled", async () => {
  const controller = new AbortController();
  const requests: GenerateRequest[] = [
    { prompt: "A", sampling: { temperature: 0, maxTokens: 2 } },
    ...Array.from({ length: 7 }, (_, i) => ({
      prompt: `B${i}`,
      sampling: { temperature: 0, maxTokens: 200 },
    })),
  ];
  const results = await model.generate(requests, {
    signal: controller.signal,
    onResult: (i) => {
      if (i === 0) controller.abort();
    },
  });
  assert.equal(results[0].finishReason, "length");
  assert.equal(results[0].tokens!.length, 2);
  for (const r of results.slice(1)) assert.equal(r.finishReason, "cancelled");
  // Requests that never got a sequence have no text.
  assert.equal(results[7].text, "");
  // A cancelled batch leaves the model usable.
  const [ok] = await model.generate([{ prompt: "A", sampling: { temperature: 0, maxTokens: 2 } }]);
  assert.deepEqual(ok.tokens, results[0].tokens);
});

/** log-softmax of the full logits llama.cpp gives for every position, from a direct evaluation. */
async function directLogprobs(
  ids: number[],
  start: number,
  end: number,
  loraPath?: string,
): Promise<number[]> {
  const m = await llama.loadModel({ modelPath: created.path });
  try {
    const rows = await llamaCppLogits(m, ids.slice(0, end - 1), {
      vocab: created.spec.vocabSize,
      contextSize: 256,
      positions: (p) => p >= start - 1,
      loraPath,
    });
    return rows.map((logits, k) => {
      let max = -Infinity;
      for (const v of logits) max = Math.max(max, v);
      let sum = 0;
      for (const v of logits) sum += Math.exp(v - max);
      return logits[ids[start + k]] - max - Math.log(sum);
    });
  } finally {
    await m.dispose();
  }
}

const scoring: LogprobsRequest[] = [
  { id: "a", messages: chat("What is the capital of France?"), response: "Paris is the capital of France." },
  { id: "b", prompt: "The quick brown fox", response: " jumps over the lazy dog." },
  {
    id: "c",
    messages: chat("What is the capital of France?"),
    response: "I think it is Lyon, or maybe Nice.",
  },
  { id: "d", messages: chat("Count to five."), response: "One, two, three, four, five!" },
  { id: "e", prompt: "Numbers: 1 2 3", response: " 4 5 6 7" },
  { id: "f", messages: chat("Hi"), response: "Hello! How can I help?" },
];

test("log-probs equal log-softmax of llama.cpp's full logits, and batched equals single", async () => {
  const { tokenizer, template } = loadTokenizerAndTemplate(created.path);
  const batched = await model.logprobs(scoring);
  for (const [i, r] of batched.entries()) {
    assert.equal(r.id, scoring[i].id);
    const s = scoredIds(scoring[i], i, tokenizer, template);
    assert.deepEqual(r.tokens, s.ids.slice(s.start, s.end));
    assert.equal(r.logprobs.length, r.tokens.length);
    const mean = r.logprobs.reduce((a, b) => a + b, 0) / r.logprobs.length;
    assert.ok(Math.abs(r.perplexity - Math.exp(-mean)) < 1e-9 * r.perplexity);
    if (i < 2) {
      const direct = await directLogprobs(s.ids, s.start, s.end);
      const diff = maxAbsDiff(direct, r.logprobs);
      assert.ok(diff < 1e-4, `request ${i}: max |ours - full logits| = ${diff}`);
    }
  }
  // The response is scored, not the prompt: its tokens decode to the response text.
  assert.equal(tokenizer.decode(batched[1].tokens).trim(), "jumps over the lazy dog.");
  for (const [i, req] of scoring.entries()) {
    const [single] = await model.logprobs([req]);
    const diff = maxAbsDiff(single.logprobs, batched[i].logprobs);
    assert.ok(diff < 1e-4, `request ${i}: batched vs single differ by ${diff}`);
  }
  const [empty] = await model.logprobs([{ prompt: "Hi", response: "" }]);
  assert.deepEqual(empty, { tokens: [], logprobs: [], perplexity: Infinity });
});

test("a LoRA adapter loads, shows in the id, and changes the log-probs as llama.cpp does", async () => {
  const lora = createRandomLora(
    created.spec,
    { rank: 4, alpha: 8, dropout: 0, targets: [...LORA_TARGETS] },
    { seed: 9, stdB: 0.2 },
  );
  const loraPath = join(dir, "adapter.gguf");
  writeGGUFLora(loraPath, lora, created.spec);
  const adapted = await createLlamaCppModel({
    modelPath: created.path,
    adapters: [{ path: loraPath, scale: 1 }],
    gpu: false,
    threads: 1,
    parallel: 2,
    contextSize: 256,
    kvCacheF32: true,
  });
  try {
    assert.match(adapted.info().id, /\+lora:adapter\.gguf:\d+:[0-9a-f]{12}\*1$/);
    const [withLora] = await adapted.logprobs([scoring[0]]);
    const [without] = await model.logprobs([scoring[0]]);
    const effect = maxAbsDiff(withLora.logprobs, without.logprobs);
    assert.ok(effect > 0.05, `the adapter changed log-probs by only ${effect}`);
    const { tokenizer, template } = loadTokenizerAndTemplate(created.path);
    const s = scoredIds(scoring[0], 0, tokenizer, template);
    const direct = await directLogprobs(s.ids, s.start, s.end, loraPath);
    const diff = maxAbsDiff(direct, withLora.logprobs);
    assert.ok(diff < 1e-4, `adapter log-probs differ from llama.cpp's by ${diff}`);
  } finally {
    await adapted.dispose();
  }
});

test("bad requests and options fail with InputError before any work", async () => {
  await assert.rejects(
    async () =>
      model.generate([{ prompt: "x", messages: chat("y"), sampling: { temperature: 0, maxTokens: 1 } }]),
    (e: unknown) => e instanceof InputError && /exactly one of messages or prompt/.test(e.message),
  );
  await assert.rejects(
    async () => model.generate([{ prompt: "x", sampling: { temperature: -1, maxTokens: 1 } }]),
    (e: unknown) => e instanceof InputError && /request 0: sampling.temperature/.test(e.message),
  );
  await assert.rejects(
    async () => model.logprobs([{ response: "x" }]),
    (e: unknown) => e instanceof InputError && /logprobs request 0/.test(e.message),
  );
  await assert.rejects(
    async () => model.generate([{ prompt: "x ".repeat(400), sampling: { temperature: 0, maxTokens: 1 } }]),
    (e: unknown) => e instanceof InputError && /contextSize/.test(e.hint ?? ""),
  );
  await assert.rejects(
    async () => createLlamaCppModel({ modelPath: join(dir, "missing.gguf"), gpu: false }),
    (e: unknown) => e instanceof InputError && /missing\.gguf does not exist/.test(e.message),
  );
});
