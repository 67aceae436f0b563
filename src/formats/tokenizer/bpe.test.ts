// Parity of the byte-level BPE tokenizer with llama.cpp itself (node-llama-cpp on the same GGUF):
// llama.cpp's test vectors, seeded random strings with and without special parsing, detokenization.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { InputError } from "../../util/errors.js";
import { builtinVocabPath, builtinVocabTestVectors } from "../vocabs.js";
import { BpeTokenizer } from "./bpe.js";
import { loadReferenceTokenizer, randomTokenizerTexts, type ReferenceTokenizer } from "./parity.js";
import { codePoints, cpFlags, CpFlag, splitCodePoints, supportedPreTokenizers } from "./pretokenize.js";
import { loadBuiltinVocab as loadVocab, sameIds } from "./test-helpers.js";
import type { VocabData } from "./types.js";

const SEED = 20240611;

interface Mismatch {
  text: string;
  ours: unknown;
  reference: unknown;
}

function assertNoMismatch(what: string, agreed: number, total: number, mismatches: Mismatch[]): void {
  const shown = mismatches
    .slice(0, 5)
    .map(
      (m) =>
        `  text ${JSON.stringify(m.text)}\n  ours ${JSON.stringify(m.ours)}\n  ref  ${JSON.stringify(m.reference)}`,
    );
  assert.equal(agreed, total, `${what}: ${agreed}/${total} agree; first mismatches:\n${shown.join("\n\n")}`);
}

/** Encode `texts` with both tokenizers and compare; returns how many agree. */
function compareEncode(
  ours: BpeTokenizer,
  ref: ReferenceTokenizer,
  texts: readonly string[],
  parseSpecial: boolean,
): { agreed: number; mismatches: Mismatch[] } {
  const mismatches: Mismatch[] = [];
  let agreed = 0;
  for (const text of texts) {
    const a = ours.encode(text, { addSpecial: false, parseSpecial });
    const b = ref.tokenize(text, { parseSpecial });
    if (sameIds(a, b)) agreed++;
    else mismatches.push({ text, ours: a, reference: b });
  }
  return { agreed, mismatches };
}

const MAIN_VOCABS = [
  { name: "llama-bpe", random: 1000, special: 300, bos: true },
  { name: "qwen2", random: 1000, special: 300, bos: false },
  { name: "gpt-2", random: 1000, special: 300, bos: false },
];
// Cheaper checks of the other pre-tokenizer machinery: collapsed-category regexes (starcoder,
// "default" with always-split user-defined tokens (gpt-neox)), wide-character regexes (deepseek-llm).
const EXTRA_VOCABS = [
  { name: "starcoder", random: 300, special: 100, bos: false },
  { name: "deepseek-llm", random: 300, special: 100, bos: true },
  { name: "gpt-neox", random: 300, special: 100, bos: false },
];

for (const spec of [...MAIN_VOCABS, ...EXTRA_VOCABS]) {
  describe(`BPE parity with llama.cpp: ${spec.name}`, () => {
    let vocab: VocabData;
    let ours: BpeTokenizer;
    let ref: ReferenceTokenizer;
    before(async () => {
      vocab = loadVocab(spec.name);
      ours = new BpeTokenizer(vocab);
      ref = await loadReferenceTokenizer(builtinVocabPath(spec.name));
    });
    after(async () => {
      await ref?.dispose();
    });

    test("llama.cpp test vectors", (t) => {
      const vectors = builtinVocabTestVectors(spec.name) ?? [];
      const mismatches: Mismatch[] = [];
      let agreed = 0;
      for (const v of vectors) {
        const a = ours.encode(v.text, { addSpecial: false });
        if (sameIds(a, v.ids)) agreed++;
        else mismatches.push({ text: v.text, ours: a, reference: v.ids });
      }
      t.diagnostic(`${spec.name}: test vectors ${agreed}/${vectors.length}`);
      if (spec.name !== "gpt-neox") assert.ok(vectors.length >= 40, "test vectors missing from the bundle");
      assertNoMismatch("test vectors", agreed, vectors.length, mismatches);
    });

    test(`${spec.random} random strings, parseSpecial false`, (t) => {
      const texts = randomTokenizerTexts(SEED, spec.random);
      const t0 = performance.now();
      for (const text of texts) ours.encode(text, { addSpecial: false });
      const ms = performance.now() - t0;
      const { agreed, mismatches } = compareEncode(ours, ref, texts, false);
      t.diagnostic(`${spec.name}: random ${agreed}/${texts.length} (encode ${ms.toFixed(0)} ms)`);
      assertNoMismatch("random strings", agreed, texts.length, mismatches);
    });

    test(`${spec.special} random strings, parseSpecial true`, (t) => {
      const texts = randomTokenizerTexts(SEED + 1, spec.special);
      const { agreed, mismatches } = compareEncode(ours, ref, texts, true);
      t.diagnostic(`${spec.name}: random with special tokens ${agreed}/${texts.length}`);
      assertNoMismatch("random strings with special tokens", agreed, texts.length, mismatches);
    });

    test("decode equals llama.cpp's detokenize", (t) => {
      const texts = randomTokenizerTexts(SEED + 2, spec.special);
      const mismatches: Mismatch[] = [];
      let agreed = 0;
      for (const text of texts) {
        const ids = ref.tokenize(text, { parseSpecial: true });
        for (const special of [true, false]) {
          const a = ours.decode(ids, { skipSpecial: !special });
          const b = ref.detokenize(ids, { special });
          if (a === b) agreed++;
          else mismatches.push({ text: `${text} (special ${special})`, ours: a, reference: b });
        }
      }
      t.diagnostic(`${spec.name}: decode ${agreed}/${2 * texts.length}`);
      assertNoMismatch("decode", agreed, 2 * texts.length, mismatches);
    });

    test("BOS/EOS rules", () => {
      assert.equal(ours.addBos, spec.bos);
      const plain = ours.encode("Hello world", { addSpecial: false });
      const withSpecial = ours.encode("Hello world");
      assert.deepEqual(withSpecial, spec.bos ? [ours.bosId, ...plain] : plain);
      assert.deepEqual(ours.encode("", { addSpecial: true }), spec.bos ? [ours.bosId] : []);
      // Overrides from the GGUF keys; one small vocabulary is enough (construction is the cost).
      if (spec.name !== "gpt-2") return;
      const forced = new BpeTokenizer({ ...vocab, addBos: true, addEos: true });
      assert.deepEqual(forced.encode("Hello world"), [vocab.bosId, ...plain, vocab.eosId]);
      const none = new BpeTokenizer({ ...vocab, addBos: false });
      assert.deepEqual(none.encode("Hello world"), plain);
    });
  });
}

describe("BpeTokenizer behaviour", () => {
  let qwen: BpeTokenizer;
  before(() => {
    qwen = new BpeTokenizer(loadVocab("qwen2"));
  });

  test("tokenBytes concatenate to the text; cleanSpaces only changes decode", () => {
    const text = "Hi , it 's ok . 🦙 \u00e9\n<|im_start|>x";
    const ids = qwen.encode(text, { addSpecial: false, parseSpecial: true });
    assert.ok(ids.includes(151644), "<|im_start|> is parsed as a special token");
    const parts = ids.map((id) => qwen.tokenBytes(id));
    const joined = Buffer.concat(parts).toString("utf8");
    assert.equal(joined, text);
    assert.equal(qwen.decode(ids), text); // qwen2 keeps spaces (clean_spaces off)
    assert.equal(qwen.decode(ids, { cleanSpaces: true }), "Hi, it's ok. 🦙 \u00e9\n<|im_start|>x");
    assert.equal(qwen.decode(ids, { skipSpecial: true }), "Hi , it 's ok . 🦙 \u00e9\nx");
  });

  test("special tokens: text only with parseSpecial, isSpecial, tokenText", () => {
    const plain = qwen.encode("<|im_end|>", { addSpecial: false });
    assert.ok(plain.length > 1, "without parseSpecial the marker is plain text");
    assert.deepEqual(qwen.encode("<|im_end|>", { addSpecial: false, parseSpecial: true }), [151645]);
    assert.equal(qwen.isSpecial(151645), true);
    assert.equal(qwen.isSpecial(plain[0]), false);
    assert.equal(qwen.tokenText(151645), "<|im_end|>");
  });

  test("errors: wrong model, unknown pre-tokenizer, bad ids", () => {
    const vocab = loadVocab("gpt-2");
    assert.throws(() => new BpeTokenizer({ ...vocab, model: "llama" }), InputError);
    assert.throws(
      () => new BpeTokenizer({ ...vocab, pre: "no-such-pre" }),
      (err: unknown) =>
        err instanceof InputError && /no-such-pre/.test(err.message) && /qwen2/.test(err.hint ?? ""),
    );
    assert.throws(() => new BpeTokenizer({ ...vocab, merges: undefined }), InputError);
    const tok = new BpeTokenizer(vocab);
    assert.throws(() => tok.decode([vocab.tokens.length]), InputError);
    assert.throws(() => tok.tokenBytes(-1), InputError);
  });

  test("supported pre-tokenizers include the main families", () => {
    const pres = supportedPreTokenizers();
    for (const p of [
      "llama-bpe",
      "llama3",
      "qwen2",
      "gpt-2",
      "default",
      "starcoder",
      "deepseek-llm",
      "smollm",
    ]) {
      assert.ok(pres.includes(p), p);
    }
  });
});

describe("pre-tokenizer details llama.cpp differs on", () => {
  const words = (text: string, patterns: readonly string[]): string[] => {
    const cpts = codePoints(text);
    const out: string[] = [];
    let at = 0;
    for (const len of splitCodePoints(cpts, patterns)) {
      out.push(String.fromCodePoint(...cpts.subarray(at, at + len)));
      at += len;
    }
    return out;
  };
  const LLAMA3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

  test("categories follow llama.cpp's Unicode 15.1 tables and White_Space", () => {
    assert.equal(cpFlags(0x1c89) & 0xff, CpFlag.UNDEFINED); // assigned (letter) only in Unicode 16
    assert.equal(cpFlags(0x4e00) & 0xff, CpFlag.LETTER);
    assert.ok(cpFlags(0x85) & CpFlag.WHITESPACE); // NEL: whitespace for llama.cpp, not for JS \s
    assert.equal(cpFlags(0xfeff) & CpFlag.WHITESPACE, 0); // BOM: JS \s, not Unicode White_Space
  });

  test("digits group by three, contractions are case-insensitive, whitespace backs off one", () => {
    assert.deepEqual(words("1234567", [LLAMA3]), ["123", "456", "7"]);
    assert.deepEqual(words("I'M here", [LLAMA3]), ["I", "'M", " here"]);
    assert.deepEqual(words("a   b", [LLAMA3]), ["a", "  ", " b"]);
    assert.deepEqual(words("a \n\n b", [LLAMA3]), ["a", " \n\n", " b"]);
  });

  test("unpaired surrogates become U+FFFD like on the way to UTF-8", () => {
    assert.deepEqual(Array.from(codePoints("a\ud800b")), [0x61, 0xfffd, 0x62]);
  });
});

describe("long input", () => {
  test("a 200k-character word encodes and decodes back", () => {
    const tok = new BpeTokenizer(loadVocab("gpt-2"));
    const text = "ab".repeat(100_000);
    const ids = tok.encode(text, { addSpecial: false });
    assert.equal(tok.decode(ids), text);
  });
});
