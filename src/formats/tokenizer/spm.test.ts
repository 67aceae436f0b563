// Tests for the SentencePiece tokenizer: small hand-made vocabularies pin down each rule, and the
// real llama-spm / phi-3 vocabularies are checked id for id against llama.cpp (vectors and live).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { InputError } from "../../util/errors.js";
import { builtinVocabPath, builtinVocabTestVectors } from "../vocabs.js";
import { loadReferenceTokenizer, randomTokenizerTexts, type ReferenceTokenizer } from "./parity.js";
import { TokenAttr, partitionSpecial, specialMatchers } from "./special.js";
import { SpmTokenizer } from "./spm.js";
import { loadBuiltinVocab as vocabOf, sameIds } from "./test-helpers.js";
import { TokenType, type VocabData } from "./types.js";

// A tiny vocabulary: <unk> <s> </s>, 256 byte tokens, then the pieces given with their scores.
function tinyVocab(
  pieces: [string, number, number?][],
  extra: Partial<VocabData> = {},
  withBytes = true,
): VocabData {
  const tokens = ["<unk>", "<s>", "</s>"];
  const scores = [0, 0, 0];
  const types: number[] = [TokenType.Unknown, TokenType.Control, TokenType.Control];
  if (withBytes) {
    for (let b = 0; b < 256; b++) {
      tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
      scores.push(0);
      types.push(TokenType.Byte);
    }
  }
  for (const [text, score, type] of pieces) {
    tokens.push(text);
    scores.push(score);
    types.push(type ?? TokenType.Normal);
  }
  return {
    model: "llama",
    tokens,
    scores: Float32Array.from(scores),
    tokenTypes: Int32Array.from(types),
    ...extra,
  };
}

function texts(tok: SpmTokenizer, ids: number[]): string[] {
  return ids.map((id) => tok.tokenText(id));
}

describe("SpmTokenizer rules (hand-made vocabularies)", () => {
  const base: [string, number][] = [
    ["▁", -1],
    ["a", -1],
    ["b", -1],
    ["ab", -2],
    ["ba", -2],
    ["▁a", -3],
  ];

  test("equal scores merge the leftmost pair first; a higher score wins wherever it is", () => {
    const tie = new SpmTokenizer(tinyVocab(base, { addSpacePrefix: false }));
    assert.deepEqual(texts(tie, tie.encode("aba", { addSpecial: false })), ["ab", "a"]);
    const right = new SpmTokenizer(
      tinyVocab(
        base.map(([t, s]) => [t, t === "ba" ? -1.5 : s]),
        { addSpacePrefix: false },
      ),
    );
    assert.deepEqual(texts(right, right.encode("aba", { addSpecial: false })), ["a", "ba"]);
  });

  test("spaces become ▁ and a space prefix is added at the start only", () => {
    const tok = new SpmTokenizer(tinyVocab(base));
    assert.deepEqual(texts(tok, tok.encode("a a", { addSpecial: false })), ["▁a", "▁a"]);
    const noPrefix = new SpmTokenizer(tinyVocab(base, { addSpacePrefix: false }));
    assert.deepEqual(texts(noPrefix, noPrefix.encode("a a", { addSpecial: false })), ["a", "▁a"]);
    assert.deepEqual(tok.encode("", { addSpecial: false }), []);
  });

  test("characters outside the vocabulary fall back to UTF-8 byte tokens, or <unk> without them", () => {
    const tok = new SpmTokenizer(tinyVocab(base, { addSpacePrefix: false }));
    assert.deepEqual(texts(tok, tok.encode("aé", { addSpecial: false })), ["a", "<0xC3>", "<0xA9>"]);
    assert.deepEqual(texts(tok, tok.encode("🦙", { addSpecial: false })), [
      "<0xF0>",
      "<0x9F>",
      "<0xA6>",
      "<0x99>",
    ]);
    assert.equal(tok.decode(tok.encode("aé🦙b", { addSpecial: false })), "aé🦙b");
    const noBytes = new SpmTokenizer(tinyVocab(base, { addSpacePrefix: false }, false));
    assert.deepEqual(texts(noBytes, noBytes.encode("éa", { addSpecial: false })), ["<unk>", "<unk>", "a"]);
  });

  test("addSpecial adds BOS by default for SentencePiece and EOS only when asked", () => {
    const tok = new SpmTokenizer(tinyVocab(base));
    assert.equal(tok.bosId, 1);
    assert.equal(tok.eosId, 2);
    assert.deepEqual(texts(tok, tok.encode("a")), ["<s>", "▁a"]);
    assert.deepEqual(texts(tok, tok.encode("")), ["<s>"]);
    const both = new SpmTokenizer(tinyVocab(base, { addBos: false, addEos: true }));
    assert.deepEqual(texts(both, both.encode("a")), ["▁a", "</s>"]);
    const custom = new SpmTokenizer(tinyVocab(base, { bosId: 2, eosId: 99999 }));
    assert.equal(custom.bosId, 2, "an in-range id from the file wins");
    assert.equal(custom.eosId, 2, "an out-of-range id falls back to llama.cpp's default");
  });

  test("control tokens are only recognised with parseSpecial; a space prefix follows them", () => {
    const tok = new SpmTokenizer(tinyVocab([...base, ["<", -5], ["s", -5], [">", -5]]));
    const plain = texts(tok, tok.encode("a<s>a", { addSpecial: false }));
    assert.ok(!plain.includes("<s>"), `got ${plain.join(" ")}`);
    assert.deepEqual(texts(tok, tok.encode("a<s>a", { addSpecial: false, parseSpecial: true })), [
      "▁a",
      "<s>",
      "▁a",
    ]);
  });

  test("user-defined tokens are cut out even without parseSpecial", () => {
    const tok = new SpmTokenizer(
      tinyVocab([...base, ["<x>", 0, TokenType.UserDefined]], { addSpacePrefix: false }),
    );
    assert.deepEqual(texts(tok, tok.encode("a<x>b", { addSpecial: false })), ["a", "<x>", "b"]);
    assert.ok(tok.isSpecial(tok.encode("<x>", { addSpecial: false })[0]));
  });

  test("texts llama.cpp treats as end-of-generation become control tokens whatever their type", () => {
    const tok = new SpmTokenizer(tinyVocab([...base, ["<|im_end|>", 0, TokenType.UserDefined]]));
    const id = tok.vocabSize - 1;
    assert.ok(tok.tokenAttr(id) & TokenAttr.Control);
    // As a control token it is no longer split out of plain text.
    assert.ok(!tok.encode("a<|im_end|>", { addSpecial: false }).includes(id));
    assert.ok(tok.encode("a<|im_end|>", { addSpecial: false, parseSpecial: true }).includes(id));
  });

  test("Phi-3 models strip whitespace after their chat tokens (llama.cpp keys this on general.name)", () => {
    const pieces: [string, number, number?][] = [...base, ["<|end|>", 0, TokenType.Control]];
    const phi = new SpmTokenizer(tinyVocab(pieces, { name: "Phi3" }));
    const other = new SpmTokenizer(tinyVocab(pieces, { name: "llama" }));
    assert.deepEqual(texts(phi, phi.encode("a<|end|>  a", { addSpecial: false, parseSpecial: true })), [
      "▁a",
      "<|end|>",
      "▁a",
    ]);
    assert.deepEqual(texts(other, other.encode("a<|end|>  a", { addSpecial: false, parseSpecial: true })), [
      "▁a",
      "<|end|>",
      "▁",
      "▁",
      "▁a",
    ]);
  });

  test("partitionSpecial cuts every occurrence and honours lstrip/rstrip with C whitespace only", () => {
    const attrs = Uint16Array.of(
      TokenAttr.Control | TokenAttr.Lstrip | TokenAttr.Rstrip,
      TokenAttr.UserDefined,
    );
    const specials = specialMatchers(["<e>", "<e>x"], attrs);
    assert.deepEqual(
      specials.map((s) => s.id),
      [1, 0],
      "longest first",
    );
    assert.deepEqual(partitionSpecial("a \t<e>\n b<e>x<e>", specials, true), [
      { text: "a" },
      { token: 0 },
      { text: "b" },
      { token: 1 },
      { token: 0 },
    ]);
    assert.deepEqual(partitionSpecial("a\u00a0<e>\u3000b", specials, true), [
      { text: "a\u00a0" },
      { token: 0 },
      { text: "\u3000b" },
    ]);
    assert.deepEqual(partitionSpecial("a<e>b", specials, false), [{ text: "a<e>b" }]);
  });

  test("decode drops the prefix space of the first token only, renders or skips control tokens", () => {
    const tok = new SpmTokenizer(tinyVocab(base));
    const ids = tok.encode("a a");
    assert.equal(tok.decode(ids), "<s> a a");
    assert.equal(
      tok.decode(ids, { skipSpecial: true }),
      " a a",
      "llama.cpp only strips the very first token",
    );
    assert.equal(tok.decode(ids.slice(1)), "a a");
    assert.equal(tok.decode([]), "");
    assert.deepEqual(Array.from(tok.tokenBytes(ids[1])), [0x20, 0x61]);
    assert.deepEqual(Array.from(tok.tokenBytes(1)), Array.from(Buffer.from("<s>")));
  });

  test("ids outside the vocabulary are an InputError", () => {
    const tok = new SpmTokenizer(tinyVocab(base));
    assert.throws(() => tok.decode([tok.vocabSize]), InputError);
    assert.throws(() => tok.tokenBytes(-1), InputError);
    assert.throws(() => tok.tokenText(1.5), InputError);
  });
});

function show(ids: readonly number[]): string {
  return `[${ids.join(", ")}]`;
}

const RANDOM_SEED = 20240607;
const RANDOM_PLAIN = 1000;
const RANDOM_SPECIAL = 300;

for (const name of ["llama-spm", "phi-3"]) {
  describe(`SpmTokenizer on ${name} against llama.cpp`, () => {
    let tok: SpmTokenizer;
    let ref: ReferenceTokenizer;
    const inputs = randomTokenizerTexts(RANDOM_SEED, RANDOM_PLAIN);

    before(async () => {
      tok = new SpmTokenizer(vocabOf(name));
      ref = await loadReferenceTokenizer(builtinVocabPath(name));
    });
    after(async () => {
      await ref?.dispose();
    });

    test("llama.cpp's test vectors", () => {
      const vectors = builtinVocabTestVectors(name);
      assert.ok(vectors && vectors.length > 0, `no test vectors for ${name}`);
      const bad: string[] = [];
      for (const v of vectors) {
        const got = tok.encode(v.text, { addSpecial: false });
        if (!sameIds(got, v.ids))
          bad.push(`${JSON.stringify(v.text)}\n  ours ${show(got)}\n  want ${show(v.ids)}`);
      }
      console.log(`${name}: test vectors ${vectors.length - bad.length}/${vectors.length}`);
      assert.equal(bad.length, 0, bad.slice(0, 5).join("\n"));
    });

    for (const [parseSpecial, count] of [
      [false, RANDOM_PLAIN],
      [true, RANDOM_SPECIAL],
    ] as const) {
      test(`${count} random strings, parseSpecial=${parseSpecial}: ids and decode equal llama.cpp`, () => {
        const bad: string[] = [];
        let agreed = 0;
        let decodeAgreed = 0;
        let encodeMs = 0;
        for (const text of inputs.slice(0, count)) {
          const t0 = performance.now();
          const ours = tok.encode(text, { addSpecial: false, parseSpecial });
          encodeMs += performance.now() - t0;
          const want = ref.tokenize(text, { parseSpecial });
          if (sameIds(ours, want)) agreed++;
          else bad.push(`${JSON.stringify(text)}\n  ours ${show(ours)}\n  llama.cpp ${show(want)}`);
          let decodeOk = true;
          for (const special of [true, false]) {
            const d = tok.decode(ours, { skipSpecial: !special });
            const w = ref.detokenize(ours, { special });
            if (d !== w) {
              decodeOk = false;
              bad.push(
                `decode(special=${special}) of ${show(ours)}\n  ours ${JSON.stringify(d)}\n  llama.cpp ${JSON.stringify(w)}`,
              );
            }
          }
          if (decodeOk) decodeAgreed++;
        }
        console.log(
          `${name} parseSpecial=${parseSpecial}: ids ${agreed}/${count}, decode ${decodeAgreed}/${count}, encode ${encodeMs.toFixed(0)} ms`,
        );
        assert.equal(bad.length, 0, bad.slice(0, 5).join("\n"));
      });
    }

    test("decode(encode(x)) gives x back for text without special-token look-alikes", () => {
      for (const text of inputs.slice(0, 200)) {
        if (/<s>|<\/s>|<unk>|<\|/.test(text)) continue;
        assert.equal(tok.decode(tok.encode(text, { addSpecial: false })), text);
      }
    });

    test("addSpecial follows tokenizer.ggml.add_bos_token / add_eos_token", () => {
      assert.equal(tok.vocab.addBos, true);
      assert.equal(tok.vocab.addEos, false);
      const plain = tok.encode("Hello world", { addSpecial: false });
      assert.deepEqual(tok.encode("Hello world"), [tok.vocab.bosId, ...plain]);
      assert.equal(tok.bosId, 1);
      assert.equal(tok.eosId, name === "phi-3" ? 32000 : 2);
      // llama.cpp keeps the first text's space prefix after BOS, so decoding without specials shows it.
      const withBos = tok.encode("Hello world");
      assert.equal(tok.decode(withBos, { skipSpecial: true }), ref.detokenize(withBos, { special: false }));
      assert.equal(tok.decode(withBos), ref.detokenize(withBos, { special: true }));
    });

    test("tokenBytes concatenate to the UTF-8 of decode (plus the prefix space decode drops)", () => {
      for (const text of inputs.slice(0, 300)) {
        const ids = tok.encode(text, { addSpecial: false });
        const joined = Buffer.concat(ids.map((id) => tok.tokenBytes(id)));
        const decoded = Buffer.from(tok.decode(ids), "utf8");
        const prefix =
          ids.length > 0 && tok.tokenBytes(ids[0])[0] === 0x20 ? Buffer.from(" ") : Buffer.alloc(0);
        assert.ok(
          joined.equals(Buffer.concat([prefix, decoded])),
          `${JSON.stringify(text)}: bytes ${JSON.stringify(joined.toString("utf8"))} vs decode ${JSON.stringify(decoded.toString("utf8"))}`,
        );
      }
    });

    test("encoding 1,000 random strings takes well under a second", () => {
      const t0 = performance.now();
      for (const text of inputs) tok.encode(text, { addSpecial: false });
      const ms = performance.now() - t0;
      console.log(`${name}: encoded ${inputs.length} strings in ${ms.toFixed(0)} ms`);
      assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
    });
  });
}
