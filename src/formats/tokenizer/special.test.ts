// The llama.cpp special-token corrections both tokenizers share, on hand-made vocabularies: the cases
// where spm.ts and bpe.ts used to disagree, settled on llama.cpp's behaviour (src/llama-vocab.cpp).

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { LlamaSpecialTokens, TokenAttr } from "./special.js";
import { TokenType, type VocabData } from "./types.js";

function vocab(tokens: string[], extra: Partial<VocabData> = {}): VocabData {
  return {
    model: "gpt2",
    tokens,
    tokenTypes: Int32Array.from(tokens, () => TokenType.Normal),
    ...extra,
  };
}

const isControl = (s: LlamaSpecialTokens, id: number): boolean => (s.attrs[id] & TokenAttr.Control) !== 0;

describe("llama.cpp special-token attributes", () => {
  test("a FIM role promotes one token (the first listed text present), EOG texts all", () => {
    const s = new LlamaSpecialTokens(vocab(["a", "<fim_prefix>", "<|fim_prefix|>", "<|im_end|>", "<eos>"]));
    assert.equal(isControl(s, 2), true);
    assert.equal(isControl(s, 1), false);
    assert.equal(isControl(s, 3), true);
    assert.equal(isControl(s, 4), true);
    assert.equal(isControl(s, 0), false);
  });

  test('"<|end|>" is demoted with "<|return|>" and either call marker, or a call marker and "<|flush|>"', () => {
    for (const [others, demoted] of [
      [["<|return|>", "<|call|>"], true],
      [["<|return|>", "<|calls|>"], true],
      [["<|call|>", "<|flush|>"], true],
      [["<|calls|>", "<|flush|>"], true],
      [["<|return|>", "<|flush|>"], false],
    ] as const) {
      const s = new LlamaSpecialTokens(vocab(["<|end|>", ...others]));
      assert.equal(
        s.attrs[0],
        demoted ? TokenAttr.UserDefined : TokenAttr.Normal | TokenAttr.Control,
        others.join(),
      );
    }
  });

  test("per-model strip flags apply whatever the tokenizer type", () => {
    const jina = new LlamaSpecialTokens(vocab(["<mask>", "a"], { pre: "jina-v2-code" }));
    assert.ok(jina.attrs[0] & TokenAttr.Lstrip);
    const bert = new LlamaSpecialTokens(vocab(["[MASK]"], { name: "ModernBERT-base modern-bert" }));
    assert.ok(bert.attrs[0] & TokenAttr.Lstrip);
    const tokens = ["<unk>", "<s>", "</s>", "<|user|>"];
    const phi = new LlamaSpecialTokens(
      vocab(tokens, {
        name: "Phi-3-mini",
        tokenTypes: Int32Array.of(TokenType.Unknown, TokenType.Control, TokenType.Control, TokenType.Control),
      }),
    );
    assert.deepEqual(
      Array.from(phi.attrs, (a) => (a & TokenAttr.Rstrip) !== 0),
      [false, false, true, true],
    );
  });

  test("partition honours those flags for user-defined tokens without parseSpecial", () => {
    const s = new LlamaSpecialTokens(
      vocab(["<mask>", "a"], { pre: "jina-v2-de", tokenTypes: Int32Array.of(TokenType.UserDefined, 1) }),
    );
    assert.deepEqual(s.partition("a  <mask> a", false), [{ text: "a" }, { token: 0 }, { text: " a" }]);
  });
});
