// Entry point for tokenizers: picks the implementation llama.cpp would use for a vocabulary
// (tokenizer.ggml.model) and loads one straight from a GGUF file.

import { openGGUF } from "../gguf/index.js";
import { InputError } from "../../util/errors.js";
import { BpeTokenizer } from "./bpe.js";
import { vocabDataFromGGUF } from "./gguf.js";
import { SpmTokenizer } from "./spm.js";
import type { Tokenizer, VocabData } from "./types.js";

export * from "./types.js";
export { SpmTokenizer } from "./spm.js";
export { TokenAttr, type NamedVocabData } from "./special.js";
export { BpeTokenizer } from "./bpe.js";
export { vocabDataFromGGUF } from "./gguf.js";

/** tokenizer.ggml.model values buckle can tokenize, with what they mean. */
export const SUPPORTED_TOKENIZER_MODELS: Readonly<Record<string, string>> = {
  llama: "SentencePiece",
  gpt2: "byte-level BPE",
};

/** A tokenizer for `vocab`, chosen by its model type as llama.cpp does. */
export function createTokenizer(vocab: VocabData): Tokenizer {
  switch (vocab.model) {
    case "llama":
      return new SpmTokenizer(vocab);
    case "gpt2":
      return new BpeTokenizer(vocab);
    default: {
      const supported = Object.entries(SUPPORTED_TOKENIZER_MODELS)
        .map(([m, what]) => `"${m}" (${what})`)
        .join(", ");
      throw new InputError(
        `tokenizer model "${vocab.model}" is not supported; supported models: ${supported}`,
        {
          hint: "use a model whose GGUF has tokenizer.ggml.model set to one of these",
        },
      );
    }
  }
}

/** Read the vocabulary embedded in a GGUF file (a vocab-only file is enough) and build its tokenizer. */
export function loadTokenizer(path: string): Tokenizer {
  const file = openGGUF(path);
  let vocab: VocabData;
  try {
    vocab = vocabDataFromGGUF(file);
  } finally {
    file.close();
  }
  try {
    return createTokenizer(vocab);
  } catch (err) {
    if (err instanceof InputError && !err.message.startsWith(path)) {
      throw new InputError(`${path}: ${err.message}`, { hint: err.hint, cause: err });
    }
    throw err;
  }
}
