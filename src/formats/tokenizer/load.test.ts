// Tests for reading tokenizer metadata out of GGUF files and for picking the tokenizer by model type:
// real vocab-only files from llama.cpp plus small in-memory GGUFs for the odd shapes.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { encodeGGUF, gv, parseGGUF, type GGUFValue } from "../gguf/index.js";
import { FileFormatError, InputError } from "../../util/errors.js";
import { builtinVocabPath, builtinVocabTestVectors } from "../vocabs.js";
import { BpeTokenizer, SpmTokenizer, createTokenizer, loadTokenizer } from "./index.js";
import { loadBuiltinVocab as vocabOf, vocabOfFile } from "./test-helpers.js";
import { TokenType, type VocabData } from "./types.js";

function fromMetadata(entries: [string, GGUFValue][]): VocabData {
  return vocabOfFile(
    parseGGUF(encodeGGUF({ metadata: [["general.architecture", gv.str("llama")], ...entries] }), "test.gguf"),
  );
}

describe("vocabDataFromGGUF", () => {
  test("reads llama-spm's SentencePiece vocabulary", () => {
    const v = vocabOf("llama-spm");
    assert.equal(v.model, "llama");
    assert.equal(v.pre, "default");
    assert.equal(v.tokens.length, 32000);
    assert.equal(v.tokens[1], "<s>");
    assert.equal(v.tokens[3], "<0x00>");
    assert.ok(v.scores instanceof Float32Array && v.scores.length === 32000);
    assert.ok(v.tokenTypes instanceof Int32Array && v.tokenTypes.length === 32000);
    assert.equal(v.tokenTypes[0], TokenType.Unknown);
    assert.equal(v.tokenTypes[1], TokenType.Control);
    assert.equal(v.tokenTypes[3], TokenType.Byte);
    assert.equal(v.merges, undefined);
    assert.deepEqual(
      [v.bosId, v.eosId, v.unkId, v.padId, v.addBos, v.addEos, v.addSpacePrefix, v.name],
      [1, 2, 0, undefined, true, false, undefined, "llama-spm"],
    );
    assert.ok(!("padId" in v), "absent keys are left out, not set to undefined");
  });

  test("reads phi-3's ids, padding token and model name", () => {
    const v = vocabOf("phi-3");
    assert.equal(v.tokens.length, 32064);
    assert.deepEqual([v.bosId, v.eosId, v.unkId, v.padId, v.name], [1, 32000, 0, 32000, "Phi3"]);
    assert.equal(v.tokenTypes?.[2], TokenType.UserDefined);
  });

  test("reads BPE merges and the pre-tokenizer name", () => {
    const v = vocabOf("llama-bpe");
    assert.equal(v.model, "gpt2");
    assert.equal(v.pre, "llama-bpe");
    assert.ok(v.merges && v.merges.length > 1000, "merges present");
    assert.match(v.merges[0], /^\S+ \S+$/);
  });

  test("reads every tokenizer.ggml key it knows, and integer scores", () => {
    const v = fromMetadata([
      ["tokenizer.ggml.model", gv.str("llama")],
      ["tokenizer.ggml.pre", gv.str("default")],
      ["tokenizer.ggml.tokens", gv.strArr(["<unk>", "<s>", "</s>", "a"])],
      ["tokenizer.ggml.scores", gv.i32Arr([0, 0, 0, -7])],
      ["tokenizer.ggml.token_type", gv.i32Arr([2, 3, 3, 1])],
      ["tokenizer.ggml.merges", gv.strArr(["a a"])],
      ["tokenizer.ggml.bos_token_id", gv.u32(1)],
      ["tokenizer.ggml.eos_token_id", gv.u32(2)],
      ["tokenizer.ggml.eot_token_id", gv.u32(2)],
      ["tokenizer.ggml.eom_token_id", gv.u32(2)],
      ["tokenizer.ggml.unknown_token_id", gv.u32(0)],
      ["tokenizer.ggml.seperator_token_id", gv.u32(3)],
      ["tokenizer.ggml.padding_token_id", gv.u32(0)],
      ["tokenizer.ggml.mask_token_id", gv.u32(3)],
      ["tokenizer.ggml.add_bos_token", gv.bool(false)],
      ["tokenizer.ggml.add_eos_token", gv.bool(true)],
      ["tokenizer.ggml.add_space_prefix", gv.bool(false)],
      ["tokenizer.ggml.remove_extra_whitespaces", gv.bool(true)],
      ["general.name", gv.str("tiny")],
    ]);
    const { scores, tokenTypes, ...rest } = v;
    assert.deepEqual(Array.from(scores ?? []), [0, 0, 0, -7]);
    assert.deepEqual(Array.from(tokenTypes ?? []), [2, 3, 3, 1]);
    assert.deepEqual(rest, {
      model: "llama",
      pre: "default",
      tokens: ["<unk>", "<s>", "</s>", "a"],
      merges: ["a a"],
      bosId: 1,
      eosId: 2,
      eotId: 2,
      eomId: 2,
      unkId: 0,
      sepId: 3,
      padId: 0,
      maskId: 3,
      addBos: false,
      addEos: true,
      addSpacePrefix: false,
      removeExtraWhitespaces: true,
      name: "tiny",
    });
  });

  test("files without a tokenizer, or with short per-token arrays, are FileFormatErrors", () => {
    assert.throws(() => fromMetadata([["tokenizer.ggml.tokens", gv.strArr(["a"])]]), FileFormatError);
    assert.throws(
      () => fromMetadata([["tokenizer.ggml.model", gv.str("llama")]]),
      /no tokenizer\.ggml\.tokens/,
    );
    const twoTokens: [string, GGUFValue][] = [
      ["tokenizer.ggml.model", gv.str("llama")],
      ["tokenizer.ggml.tokens", gv.strArr(["a", "b"])],
    ];
    const short: [string, GGUFValue, RegExp][] = [
      ["tokenizer.ggml.scores", gv.f32Arr([0]), /scores has 1 entries for 2 tokens/],
      ["tokenizer.ggml.token_type", gv.i32Arr([1]), /token_type has 1 entries for 2 tokens/],
    ];
    for (const [key, value, message] of short) {
      assert.throws(() => fromMetadata([...twoTokens, [key, value]]), message);
    }
  });
});

describe("createTokenizer / loadTokenizer", () => {
  test("a SentencePiece GGUF loads as SpmTokenizer and matches llama.cpp's vectors", () => {
    const tok = loadTokenizer(builtinVocabPath("llama-spm"));
    assert.ok(tok instanceof SpmTokenizer);
    assert.equal(tok.kind, "spm");
    assert.equal(tok.vocabSize, 32000);
    const vectors = builtinVocabTestVectors("llama-spm") ?? [];
    assert.ok(vectors.length > 0);
    for (const v of vectors)
      assert.deepEqual(tok.encode(v.text, { addSpecial: false }), v.ids, JSON.stringify(v.text));
  });

  test("a gpt2 GGUF loads as BpeTokenizer", () => {
    const tok = loadTokenizer(builtinVocabPath("gpt-2"));
    assert.ok(tok instanceof BpeTokenizer);
    assert.equal(tok.kind, "bpe");
  });

  test("unsupported tokenizer models are an InputError naming the supported ones", () => {
    for (const model of ["bert", "t5", "rwkv", "no_vocab"]) {
      assert.throws(
        () => createTokenizer({ model, tokens: ["a"] }),
        (err: unknown) =>
          err instanceof InputError &&
          err.message.includes(`"${model}"`) &&
          err.message.includes('"llama"') &&
          err.message.includes('"gpt2"'),
      );
    }
    const bert = builtinVocabPath("bert-bge");
    assert.throws(
      () => loadTokenizer(bert),
      (err: unknown) =>
        err instanceof InputError && err.message.startsWith(bert) && err.message.includes('"bert"'),
    );
  });

  test("a missing file is an InputError", () => {
    assert.throws(() => loadTokenizer("/nonexistent/model.gguf"), InputError);
  });
});
