// Generation: greedy decoding against step-by-step full forwards, seeded sampling, batched vs one by one,
// stop strings across token boundaries, end-of-turn tokens and cancellation.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadTokenizerAndTemplate } from "../formats/load.js";
import { encodeChatPrompt } from "../formats/chat/index.js";
import { createRandomModel } from "../models/factory.js";
import { createRandomLora } from "./adapters/index.js";
import { forward, logitsOf } from "./forward.js";
import { generate, stopTokenIds, type GenerateRequest } from "./generate.js";
import { loadModelWeights } from "./load.js";
import { argmax } from "./sampling.js";
import { LORA_TARGETS } from "./types.js";

const dir = mkdtempSync(join(tmpdir(), "buckle-generate-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const path = join(dir, "tiny.gguf");
createRandomModel(
  {
    arch: "llama",
    vocab: "builtin:llama-spm",
    hiddenSize: 32,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 64,
    initStd: 0.25,
    seed: 11,
  },
  path,
);
const model = loadModelWeights(path);
const { tokenizer, template } = loadTokenizerAndTemplate(path);
const lora = createRandomLora(
  model.spec,
  { rank: 4, alpha: 8, dropout: 0, targets: [...LORA_TARGETS] },
  { seed: 5, stdB: 0.2 },
);
const prompt = (text: string): number[] =>
  encodeChatPrompt(template, [{ role: "user", content: text }], tokenizer);
const greedy = { temperature: 0 };
const warm = { temperature: 1.1, topK: 50, topP: 0.95, minP: 0.01, repeatPenalty: 1.1 };

test("greedy generation picks the argmax of a full forward at every step, with and without LoRA", async () => {
  for (const adapter of [undefined, lora]) {
    const promptIds = prompt("Tell me about winter");
    const [r] = await generate(model, tokenizer, [{ promptIds, sampling: greedy, maxTokens: 10, seed: 1 }], {
      lora: adapter,
      stopTokens: [],
    });
    assert.equal(r.tokens.length, 10);
    assert.equal(r.finishReason, "length");
    for (let t = 0; t < r.tokens.length; t++) {
      const seq = [...promptIds, ...r.tokens.slice(0, t)];
      const logits = logitsOf(model, forward(model, [seq], { lora: adapter }), [seq.length - 1]);
      assert.equal(r.tokens[t], argmax(logits), `step ${t}${adapter ? " with LoRA" : ""}`);
    }
    assert.equal(r.text, new TextDecoder().decode(concatBytes(r.tokens)));
  }
});

test("seeded sampling is reproducible and the seed matters", async () => {
  const req = (seed: number): GenerateRequest => ({
    promptIds: prompt("Write a poem"),
    sampling: warm,
    maxTokens: 16,
    seed,
  });
  const [a] = await generate(model, tokenizer, [req(7)], { stopTokens: [] });
  const [b] = await generate(model, tokenizer, [req(7)], { stopTokens: [] });
  const [c] = await generate(model, tokenizer, [req(8)], { stopTokens: [] });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.tokens, c.tokens);
});

test("batched generation equals one request at a time (shared prompts, different settings)", async () => {
  const requests: GenerateRequest[] = [
    { promptIds: prompt("Hello"), sampling: warm, maxTokens: 12, seed: 3 },
    { promptIds: prompt("Hello"), sampling: warm, maxTokens: 7, seed: 4 },
    { promptIds: prompt("A much longer question about plants"), sampling: greedy, maxTokens: 9, seed: 1 },
    { promptIds: prompt("Short"), sampling: { temperature: 0.7 }, maxTokens: 12, seed: 9 },
  ];
  const streamed = requests.map(() => "");
  const batched = await generate(model, tokenizer, requests, {
    lora,
    onToken: (e) => (streamed[e.request] += e.text),
  });
  for (let i = 0; i < requests.length; i++) {
    const [alone] = await generate(model, tokenizer, [requests[i]], { lora });
    assert.deepEqual(batched[i], alone, `request ${i}`);
    assert.equal(streamed[i], batched[i].text);
  }
  assert.notDeepEqual(batched[0].tokens, batched[1].tokens.slice(0, batched[0].tokens.length));
});

test("stop strings split across tokens, stop tokens and cancellation", async () => {
  const base: GenerateRequest = { promptIds: prompt("Count"), sampling: greedy, maxTokens: 12, seed: 1 };
  const [full] = await generate(model, tokenizer, [base], { stopTokens: [] });
  // A stop string made of the end of token 2's text and the start of token 3's.
  const pieces = full.tokens.map((t) => new TextDecoder().decode(tokenizer.tokenBytes(t)));
  const before = pieces.slice(0, 3).join("");
  assert.ok(pieces[2].length >= 2 && pieces[3].length >= 2, `pieces ${JSON.stringify(pieces)}`);
  const stop = pieces[2].slice(-2) + pieces[3].slice(0, 2);
  const at = full.text.indexOf(stop);
  assert.ok(at >= 0 && at <= before.length - 2);
  const streamed: string[] = [];
  const [cut] = await generate(model, tokenizer, [{ ...base, stop: ["never appears", stop] }], {
    stopTokens: [],
    onToken: (e) => streamed.push(e.text),
  });
  assert.equal(cut.finishReason, "stop");
  assert.equal(cut.text, full.text.slice(0, at));
  assert.equal(streamed.join(""), cut.text);
  assert.deepEqual(cut.tokens, full.tokens.slice(0, 4));

  // An end-of-sequence token ends generation and is not part of the output.
  const eos = full.tokens[5];
  const [ended] = await generate(model, tokenizer, [base], { stopTokens: [eos] });
  const firstEos = full.tokens.indexOf(eos);
  assert.equal(ended.finishReason, "eos");
  assert.deepEqual(ended.tokens, full.tokens.slice(0, firstEos));
  assert.equal(ended.text, new TextDecoder().decode(concatBytes(ended.tokens)));

  const controller = new AbortController();
  let seen = 0;
  const [aborted] = await generate(model, tokenizer, [base], {
    stopTokens: [],
    signal: controller.signal,
    onToken: () => {
      if (++seen === 3) controller.abort();
    },
  });
  assert.equal(aborted.finishReason, "aborted");
  assert.deepEqual(aborted.tokens, full.tokens.slice(0, 3));
  assert.equal(aborted.text, full.text.slice(0, aborted.text.length));
});

test("stop tokens: EOS plus the template's end-of-turn token; bad requests are refused", async () => {
  assert.deepEqual(stopTokenIds(tokenizer), [2]);
  assert.deepEqual(stopTokenIds(tokenizer, template), [2]); // llama2 ends a turn with </s>
  const qwen = loadTokenizerAndTemplate("builtin:qwen2");
  const ids = stopTokenIds(qwen.tokenizer, qwen.template);
  assert.ok(ids.includes(qwen.tokenizer.encode("<|im_end|>", { parseSpecial: true, addSpecial: false })[0]));
  assert.ok(ids.includes(qwen.tokenizer.eosId as number));
  await assert.rejects(
    generate(model, tokenizer, [{ promptIds: [], sampling: greedy, maxTokens: 4, seed: 1 }]),
    /the prompt has no tokens/,
  );
  await assert.rejects(
    generate(model, tokenizer, [{ promptIds: [1, 5], sampling: greedy, maxTokens: 0, seed: 1 }]),
    /maxTokens must be a positive integer/,
  );
  const long = Array.from({ length: model.spec.contextLength }, () => 5);
  await assert.rejects(
    generate(model, tokenizer, [{ promptIds: long, sampling: greedy, maxTokens: 4, seed: 1 }]),
    /the model's context is/,
  );
});

function concatBytes(tokens: number[]): Uint8Array {
  const parts = tokens.map((t) => tokenizer.tokenBytes(t));
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
