// Reads a tokenizer's vocabulary and rules from GGUF metadata (tokenizer.ggml.*) into VocabData,
// checking the shapes llama.cpp relies on so that a bad file fails here rather than mid-encode.

import { GGUFValueType, type GGUFFile } from "../gguf/index.js";
import { FileFormatError } from "../../util/errors.js";
import type { VocabData } from "./types.js";

const K = "tokenizer.ggml.";

/**
 * The tokenizer described by an open GGUF file. Special-token ids are returned as stored (llama.cpp
 * ignores out-of-range ones and the tokenizers do the same); defaults that depend on the model type
 * (e.g. SentencePiece's add_bos) are left undefined here and applied by the tokenizer.
 */
export function vocabDataFromGGUF(file: GGUFFile): VocabData {
  const model = file.getString(`${K}model`);
  if (model === undefined) {
    throw new FileFormatError(file.path, undefined, `no ${K}model key, so the tokenizer type is unknown`, {
      hint: "the file was converted without a tokenizer; use a GGUF that embeds its vocabulary",
    });
  }
  const tokens = file.getStringArray(`${K}tokens`);
  if (tokens === undefined) {
    throw new FileFormatError(file.path, undefined, `no ${K}tokens key: the file has no vocabulary`, {
      hint: "use a GGUF that embeds its vocabulary",
    });
  }
  const n = tokens.length;

  const scores = readScores(file, `${K}scores`);
  if (scores !== undefined && scores.length < n) {
    throw new FileFormatError(
      file.path,
      undefined,
      `${K}scores has ${scores.length} entries for ${n} tokens`,
    );
  }
  const tokenTypes = file.getInt32Array(`${K}token_type`);
  if (tokenTypes !== undefined && tokenTypes.length < n) {
    throw new FileFormatError(
      file.path,
      undefined,
      `${K}token_type has ${tokenTypes.length} entries for ${n} tokens`,
    );
  }

  const id = (key: string): number | undefined => file.getNumber(`${K}${key}`);
  const out: VocabData = {
    model,
    pre: file.getString(`${K}pre`),
    tokens,
    scores,
    tokenTypes,
    merges: file.getStringArray(`${K}merges`),
    bosId: id("bos_token_id"),
    eosId: id("eos_token_id"),
    eotId: id("eot_token_id"),
    eomId: id("eom_token_id"),
    unkId: id("unknown_token_id"),
    sepId: id("seperator_token_id") ?? id("separator_token_id"),
    padId: id("padding_token_id"),
    maskId: id("mask_token_id"),
    addBos: file.getBool(`${K}add_bos_token`),
    addEos: file.getBool(`${K}add_eos_token`),
    addSpacePrefix: file.getBool(`${K}add_space_prefix`),
    removeExtraWhitespaces: file.getBool(`${K}remove_extra_whitespaces`),
    name: file.getString("general.name"),
  };
  // Absent keys stay absent, so spreading VocabData over defaults behaves as expected.
  for (const key of Object.keys(out) as (keyof VocabData)[]) if (out[key] === undefined) delete out[key];
  return out;
}

// llama.cpp accepts scores stored as f32 or as i32.
function readScores(file: GGUFFile, key: string): Float32Array | undefined {
  const v = file.metadata.get(key);
  if (v !== undefined && v.type === GGUFValueType.ARRAY && v.itemType === GGUFValueType.INT32) {
    return Float32Array.from(file.getInt32Array(key) ?? []);
  }
  return file.getFloat32Array(key);
}
