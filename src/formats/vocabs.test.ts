import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { builtinVocabNames, builtinVocabPath, builtinVocabTestVectors } from "./vocabs.js";

test("built-in vocabularies are extracted from node-llama-cpp's llama.cpp bundle", () => {
  const names = builtinVocabNames();
  for (const n of ["llama-spm", "llama-bpe", "qwen2", "gpt-2", "phi-3", "starcoder"])
    assert.ok(names.includes(n), n);
  const p = builtinVocabPath("llama-spm");
  assert.ok(existsSync(p));
  const vectors = builtinVocabTestVectors("llama-spm");
  assert.ok(vectors && vectors.length > 30);
  assert.equal(vectors[0].text, "ied 4 ½ months");
  assert.deepEqual(vectors[1], { text: "Äpfel", ids: [11585, 7810, 295] });
  assert.deepEqual(vectors[2], { text: "", ids: [] });
  assert.throws(() => builtinVocabPath("no-such-vocab"), /no file models\/ggml-vocab-no-such-vocab.gguf/);
});
