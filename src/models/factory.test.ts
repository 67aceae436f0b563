import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRandomModel, type RandomModelOptions } from "./factory.js";
import { openGGUF } from "../formats/gguf/index.js";
import { specFromGGUF } from "../formats/model-gguf.js";
import { loadTokenizerAndTemplate } from "../formats/load.js";
import { encodeChatPrompt } from "../formats/chat/index.js";
import { tinyModelOptions } from "../testing/models.js";

const dir = mkdtempSync(join(tmpdir(), "buckle-factory-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const base: RandomModelOptions = tinyModelOptions(1);

test("factory models: spec round trip, determinism, node-llama-cpp loads and generates", async () => {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.error });
  const configs: [string, RandomModelOptions][] = [
    ["llama-spm-f32", base],
    ["qwen2-f16-bias", { ...base, arch: "qwen2", vocab: "builtin:qwen2", dtype: "f16" }],
    [
      "llama-bpe-q8-tied",
      { ...base, vocab: "builtin:llama-bpe", dtype: "q8_0", tiedEmbeddings: true, numKvHeads: 4 },
    ],
  ];
  for (const [label, opts] of configs) {
    const path = join(dir, `${label}.gguf`);
    const created = createRandomModel(opts, path);
    const file = openGGUF(path);
    try {
      // GGUF stores epsilon as f32, and llama.cpp computes with that f32 value.
      assert.deepEqual(
        specFromGGUF(file),
        { ...created.spec, rmsNormEps: Math.fround(created.spec.rmsNormEps) },
        label,
      );
      assert.equal(created.spec.attentionBias, opts.arch === "qwen2", label);
    } finally {
      file.close();
    }
    const { tokenizer, template } = loadTokenizerAndTemplate(path);
    const prompt = encodeChatPrompt(template, [{ role: "user", content: "Say hello." }], tokenizer);
    const model = await llama.loadModel({ modelPath: path });
    try {
      assert.equal(model.tokens.bos ?? undefined, tokenizer.bosId, label);
      const context = await model.createContext({ contextSize: 128 });
      const out: number[] = [];
      for await (const token of context.getSequence().evaluate(prompt as never, { temperature: 0 })) {
        out.push(token as number);
        if (out.length >= 3) break;
      }
      assert.equal(out.length, 3, label);
      for (const id of out) assert.ok(id >= 0 && id < created.spec.vocabSize, label);
      await context.dispose();
    } finally {
      await model.dispose();
    }
  }
  // Same seed, same bytes; another seed, other weights.
  const a = join(dir, "a.gguf");
  const b = join(dir, "b.gguf");
  const c = join(dir, "c.gguf");
  createRandomModel(base, a);
  createRandomModel(base, b);
  createRandomModel({ ...base, seed: 2 }, c);
  assert.ok(readFileSync(a).equals(readFileSync(b)));
  assert.ok(!readFileSync(a).equals(readFileSync(c)));
});

test("factory rejects impossible shapes with the flag to fix", () => {
  assert.throws(
    () => createRandomModel({ ...base, numHeads: 3 }, join(dir, "x.gguf")),
    /must be a multiple of --kv-heads/,
  );
  assert.throws(
    () =>
      createRandomModel(
        { ...base, hiddenSize: 48, numHeads: 2, numKvHeads: 2, dtype: "q8_0" },
        join(dir, "x.gguf"),
      ),
    /q8_0 needs rows that are a multiple of 32/,
  );
  assert.throws(
    () => createRandomModel({ ...base, vocab: "/nonexistent.gguf" }, join(dir, "x.gguf")),
    /does not exist/,
  );
});
