// One place that turns a model reference into its tokenizer and chat template: a GGUF file (full or
// vocab-only), `builtin:<name>`, or a Hugging Face directory with tokenizer.json.

import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { openGGUF } from "./gguf/index.js";
import { ChatTemplate, templateForVocab } from "./chat/index.js";
import { createTokenizer, vocabDataFromGGUF, type Tokenizer } from "./tokenizer/index.js";
import { builtinVocabPath } from "./vocabs.js";
import { vocabDataFromTokenizerJson } from "./hf/tokenizer-json.js";
import { InputError } from "../util/errors.js";

export interface TokenizerAndTemplate {
  tokenizer: Tokenizer;
  template: ChatTemplate;
  /** Where they were read from. */
  source: string;
}

/** Tokenizer and chat template of `ref`: a .gguf path, `builtin:<name>`, or an HF checkpoint directory. */
export function loadTokenizerAndTemplate(ref: string): TokenizerAndTemplate {
  if (ref.startsWith("builtin:")) {
    const name = ref.slice("builtin:".length);
    const fromFile = loadFromGGUF(builtinVocabPath(name));
    // llama.cpp's vocab-only files carry no chat template: use the one the factory would embed.
    if (fromFile.template.isFallback)
      fromFile.template = ChatTemplate.builtin(templateForVocab(name), templateTokens(fromFile.tokenizer));
    return fromFile;
  }
  if (!existsSync(ref)) {
    throw new InputError(`model ${ref} does not exist`, {
      hint: "pass a .gguf file, builtin:<name> (see `buckle vocab list`), or a Hugging Face model directory",
    });
  }
  if (statSync(ref).isDirectory()) return loadFromHFDirectory(ref);
  return loadFromGGUF(ref);
}

function templateTokens(tokenizer: Tokenizer): { bosToken?: string; eosToken?: string } {
  return {
    bosToken: tokenizer.bosId === undefined ? undefined : tokenizer.tokenText(tokenizer.bosId),
    eosToken: tokenizer.eosId === undefined ? undefined : tokenizer.tokenText(tokenizer.eosId),
  };
}

function loadFromGGUF(path: string): TokenizerAndTemplate {
  const file = openGGUF(path);
  try {
    const vocab = vocabDataFromGGUF(file);
    const tokenizer = createTokenizer(vocab);
    const template = ChatTemplate.fromGGUFMetadata((key) => file.metadata.get(key)?.value, vocab.tokens);
    return { tokenizer, template, source: path };
  } catch (err) {
    if (err instanceof InputError && !err.message.includes(path)) {
      throw new InputError(`${path}: ${err.message}`, { hint: err.hint, cause: err });
    }
    throw err;
  } finally {
    file.close();
  }
}

function loadFromHFDirectory(dir: string): TokenizerAndTemplate {
  const tokPath = join(dir, "tokenizer.json");
  if (!existsSync(tokPath)) {
    throw new InputError(`${dir} has no tokenizer.json`, {
      hint: "buckle reads Hugging Face tokenizers from tokenizer.json (+ tokenizer_config.json)",
    });
  }
  const configPath = join(dir, "tokenizer_config.json");
  const config = existsSync(configPath) ? readJson(configPath) : undefined;
  const vocab = vocabDataFromTokenizerJson(readJson(tokPath), config, tokPath);
  const tokenizer = createTokenizer(vocab);
  const template =
    config === undefined
      ? ChatTemplate.fallback(templateTokens(tokenizer))
      : ChatTemplate.fromTokenizerConfig(config);
  return { tokenizer, template, source: dir };
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new InputError(`${path}: not valid JSON (${(err as Error).message})`);
  }
}
