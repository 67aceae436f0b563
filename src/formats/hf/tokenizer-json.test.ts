// tokenizer.json conversion: real GGUF vocabularies laid out as Hugging Face writes them must convert
// back into tokenizers that give the same ids as the GGUF's own (which bpe.test.ts ties to llama.cpp).

import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { InputError } from "../../util/errors.js";
import { createTokenizer } from "../tokenizer/index.js";
import { randomTokenizerTexts } from "../tokenizer/parity.js";
import { loadBuiltinVocab as loadVocab, sameIds } from "../tokenizer/test-helpers.js";
import { TokenType, type Tokenizer, type VocabData } from "../tokenizer/types.js";
import { vocabDataFromTokenizerJson } from "./tokenizer-json.js";

const SEED = 777;

const split = (regex: string) => ({
  type: "Sequence",
  pretokenizers: [
    { type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false },
    { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
  ],
});

// The pre_tokenizer sections of the real tokenizer.json files.
const PRE_TOKENIZERS: Record<string, unknown> = {
  "llama-bpe": split(
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  ),
  qwen2: split(
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  ),
  "gpt-2": { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
};

/** A byte-level GGUF vocabulary as a Hugging Face tokenizer.json object. */
function byteLevelJson(v: VocabData, name: string, pairMerges: boolean): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  const added: Record<string, unknown>[] = [];
  v.tokens.forEach((t, id) => {
    const type = v.tokenTypes?.[id] ?? TokenType.Normal;
    if (type === TokenType.Normal) vocab[t] = id;
    else {
      const special = type === TokenType.Control;
      added.push({
        id,
        content: t,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: !special,
        special,
      });
    }
  });
  const merges = pairMerges ? v.merges!.map((m) => m.split(" ")) : v.merges;
  const bos = v.bosId === undefined ? undefined : v.tokens[v.bosId];
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: PRE_TOKENIZERS[name],
    post_processor:
      name === "llama-bpe"
        ? {
            type: "Sequence",
            processors: [
              { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
              {
                type: "TemplateProcessing",
                single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
                pair: [],
                special_tokens: {},
              },
            ],
          }
        : { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: name === "llama-bpe",
      vocab,
      merges,
    },
  };
}

function compareIds(a: Tokenizer, b: Tokenizer, texts: string[], parseSpecial: boolean): number {
  let agreed = 0;
  const bad: string[] = [];
  for (const text of texts) {
    const x = a.encode(text, { addSpecial: true, parseSpecial });
    const y = b.encode(text, { addSpecial: true, parseSpecial });
    if (sameIds(x, y)) agreed++;
    else if (bad.length < 3)
      bad.push(`text ${JSON.stringify(text)}\n json ${x.join(" ")}\n gguf ${y.join(" ")}`);
  }
  assert.equal(agreed, texts.length, `${agreed}/${texts.length} agree:\n${bad.join("\n")}`);
  return agreed;
}

const CASES = [
  {
    name: "llama-bpe",
    pre: "llama-bpe",
    pairMerges: false,
    config: { bos_token: "<|begin_of_text|>", eos_token: "<|end_of_text|>" },
  },
  {
    name: "qwen2",
    pre: "qwen2",
    pairMerges: true,
    config: { bos_token: null, eos_token: "<|endoftext|>", add_bos_token: false },
  },
  {
    name: "gpt-2",
    pre: "gpt-2",
    pairMerges: true,
    config: { bos_token: "<|endoftext|>", eos_token: "<|endoftext|>" },
  },
];

for (const c of CASES) {
  describe(`tokenizer.json, byte-level BPE: ${c.name}`, () => {
    let gguf: VocabData;
    let fromJson: VocabData;
    before(() => {
      gguf = loadVocab(c.name);
      fromJson = vocabDataFromTokenizerJson(
        byteLevelJson(gguf, c.name, c.pairMerges),
        c.config,
        `${c.name}/tokenizer.json`,
      );
    });

    test("vocabulary, types, merges and pre-tokenizer match the GGUF", () => {
      assert.equal(fromJson.model, "gpt2");
      assert.equal(fromJson.pre, c.pre);
      assert.deepEqual(fromJson.tokens, gguf.tokens);
      assert.deepEqual(Array.from(fromJson.tokenTypes!), Array.from(gguf.tokenTypes!));
      assert.deepEqual(fromJson.merges, gguf.merges);
      assert.equal(fromJson.eosId, gguf.eosId);
    });

    test("same ids as the GGUF tokenizer on random strings", (t) => {
      const a = createTokenizer(fromJson);
      const b = createTokenizer(gguf);
      const n1 = compareIds(a, b, randomTokenizerTexts(SEED, 1000), false);
      const n2 = compareIds(a, b, randomTokenizerTexts(SEED + 1, 200), true);
      t.diagnostic(`${c.name}: json vs gguf ${n1}/1000 plain, ${n2}/200 with special tokens`);
    });
  });
}

/**
 * A SentencePiece GGUF vocabulary as the BPE tokenizer.json Hugging Face makes of Llama 2: merges for
 * every token that two pieces (tokens or single characters) concatenate to, most preferred token first.
 */
function sentencePieceJson(v: VocabData): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  v.tokens.forEach((t, id) => (vocab[t] = id));
  const piece = (s: string) => s in vocab || [...s].length === 1;
  const order = v.tokens.map((_, id) => id).sort((a, b) => v.scores![b] - v.scores![a] || a - b);
  const merges: string[] = [];
  for (const id of order) {
    if (v.tokenTypes?.[id] !== TokenType.Normal) continue;
    const chars = [...v.tokens[id]];
    for (let k = 1; k < chars.length; k++) {
      const a = chars.slice(0, k).join("");
      const b = chars.slice(k).join("");
      if (piece(a) && piece(b)) merges.push(`${a} ${b}`);
    }
  }
  const added = [0, 1, 2].map((id) => ({ id, content: v.tokens[id], special: true, normalized: false }));
  return {
    added_tokens: added,
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "\u2581" },
        { type: "Replace", pattern: { String: " " }, content: "\u2581" },
      ],
    },
    pre_tokenizer: null,
    decoder: {
      type: "Sequence",
      decoders: [{ type: "Replace", pattern: { String: "\u2581" }, content: " " }, { type: "ByteFallback" }],
    },
    model: { type: "BPE", unk_token: "<unk>", byte_fallback: true, fuse_unk: true, vocab, merges },
  };
}

describe("tokenizer.json, SentencePiece-style BPE: llama-spm", () => {
  test("scores from merge ranks reproduce the GGUF tokenizer's ids", (t) => {
    const gguf = loadVocab("llama-spm");
    const fromJson = vocabDataFromTokenizerJson(sentencePieceJson(gguf), {
      add_bos_token: true,
      bos_token: "<s>",
      eos_token: "</s>",
    });
    assert.equal(fromJson.model, "llama");
    assert.equal(fromJson.addSpacePrefix, true);
    assert.equal(fromJson.bosId, 1);
    assert.equal(fromJson.unkId, 0);
    assert.equal(fromJson.tokenTypes![0x0a + 3], TokenType.Byte); // <0x0A>
    const a = createTokenizer(fromJson);
    const b = createTokenizer(gguf);
    const n = compareIds(a, b, randomTokenizerTexts(SEED + 2, 500), false);
    t.diagnostic(`llama-spm: json vs gguf ${n}/500`);
  });
});

describe("tokenizer.json errors", () => {
  const bpe = (pre: unknown) => ({
    pre_tokenizer: pre,
    decoder: { type: "ByteLevel" },
    model: { type: "BPE", vocab: { a: 0, b: 1, ab: 2 }, merges: ["a b"] },
  });

  test("WordPiece and Unigram are refused, naming the type and the file", () => {
    for (const type of ["WordPiece", "Unigram"]) {
      assert.throws(
        () => vocabDataFromTokenizerJson({ model: { type, vocab: {} } }, undefined, "m/tokenizer.json"),
        (err: unknown) =>
          err instanceof InputError && err.message.includes(type) && err.message.includes("m/tokenizer.json"),
      );
    }
  });

  test("an unknown Split pattern is reported with the pattern", () => {
    assert.throws(
      () => vocabDataFromTokenizerJson(bpe(split("\\p{L}+|\\s+")), undefined, "x.json"),
      (err: unknown) => err instanceof InputError && err.message.includes("\\\\p{L}+|\\\\s+"),
    );
  });

  test("small byte-level tokenizer converts; merges in pair form equal string form", () => {
    const v = vocabDataFromTokenizerJson(bpe(PRE_TOKENIZERS["gpt-2"]));
    assert.equal(v.pre, "gpt-2");
    assert.deepEqual(v.merges, ["a b"]);
    const pairs = bpe(PRE_TOKENIZERS["gpt-2"]);
    pairs.model.merges = [["a", "b"]] as never;
    assert.deepEqual(vocabDataFromTokenizerJson(pairs).merges, ["a b"]);
    assert.throws(() => vocabDataFromTokenizerJson({ nothing: true }), InputError);
  });
});
