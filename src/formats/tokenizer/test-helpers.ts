// Helpers shared by the tokenizer tests (here and in ../hf): loading the bundled vocabularies and
// comparing id sequences. A plain module, not a test file, so the test runner does not pick it up.

import { openGGUF, type GGUFFile } from "../gguf/index.js";
import { builtinVocabPath } from "../vocabs.js";
import { vocabDataFromGGUF } from "./gguf.js";
import type { VocabData } from "./types.js";

/** The vocabulary of an open GGUF file, closing the file afterwards. */
export function vocabOfFile(file: GGUFFile): VocabData {
  try {
    return vocabDataFromGGUF(file);
  } finally {
    file.close();
  }
}

/** The vocabulary of one of the bundled llama.cpp vocab-only GGUFs ("llama-spm", "qwen2", ...). */
export function loadBuiltinVocab(name: string): VocabData {
  return vocabOfFile(openGGUF(builtinVocabPath(name)));
}

/** Whether two id sequences are equal. */
export function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
