// Converts a Hugging Face tokenizer.json (+ tokenizer_config.json) into VocabData the way llama.cpp's
// converter would, so a checkpoint without a GGUF tokenizes exactly like its converted GGUF.

import { InputError } from "../../util/errors.js";
import { TokenType, type VocabData } from "../tokenizer/types.js";

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** Hugging Face's original pre-tokenizer patterns and the GGUF `pre` value llama.cpp uses for them. */
const SPLIT_PATTERNS: Record<string, string> = {
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+":
    "llama-bpe",
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+":
    "qwen2",
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+":
    "qwen35",
};

/** The regex GPT-2's ByteLevel pre-tokenizer applies when use_regex is on. */
const GPT2_BYTELEVEL = "(ByteLevel with use_regex)";

const SPM_SPACE = "\u2581";

/**
 * VocabData for a Hugging Face tokenizer.json. Supported: byte-level BPE (GPT-2, Llama 3, Qwen2, StarCoder
 * layouts; model "gpt2" with the matching `pre`) and SentencePiece-style BPE with byte fallback (Llama 2,
 * Mistral; model "llama"). `tokenizerConfig` (tokenizer_config.json) supplies bos/eos and add_bos/add_eos.
 * `where` names the file in error messages.
 */
export function vocabDataFromTokenizerJson(
  json: unknown,
  tokenizerConfig?: unknown,
  where = "tokenizer.json",
): VocabData {
  if (!isObject(json) || !isObject(json.model)) {
    throw new InputError(`${where}: not a Hugging Face tokenizer.json (no "model" object)`);
  }
  const model = json.model;
  const type = typeof model.type === "string" ? model.type : isObject(model.vocab) ? "BPE" : "unknown";
  if (type !== "BPE") {
    throw new InputError(`${where}: tokenizer model type "${type}" is not supported`, {
      hint: "only BPE tokenizers (byte-level like GPT-2/Llama 3/Qwen2, or SentencePiece-style with byte_fallback) convert; WordPiece and Unigram do not",
    });
  }
  if (!isObject(model.vocab)) throw new InputError(`${where}: model.vocab is missing or not an object`);
  const merges = readMerges(model.merges, where);
  const config = isObject(tokenizerConfig) ? tokenizerConfig : undefined;
  const added = readAddedTokens(json.added_tokens, where);

  const byteLevel = hasType(json.pre_tokenizer, "ByteLevel") || hasType(json.decoder, "ByteLevel");
  if (byteLevel) return byteLevelVocab(json, model.vocab, merges, added, config, where);
  if (model.byte_fallback === true || usesMetaspace(json)) {
    return sentencePieceVocab(json, model, merges, added, config, where);
  }
  throw new InputError(
    `${where}: BPE tokenizer with neither a ByteLevel pre-tokenizer nor SentencePiece-style byte fallback`,
    { hint: "only byte-level BPE and SentencePiece-style BPE tokenizers are supported" },
  );
}

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

function readAddedTokens(v: unknown, where: string): AddedToken[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new InputError(`${where}: added_tokens is not an array`);
  return v.map((t, i) => {
    if (!isObject(t) || typeof t.content !== "string" || !Number.isInteger(t.id) || (t.id as number) < 0) {
      throw new InputError(`${where}: added_tokens[${i}] needs an integer "id" and a string "content"`);
    }
    return { id: t.id as number, content: t.content, special: t.special === true };
  });
}

function readMerges(v: unknown, where: string): string[] {
  if (!Array.isArray(v)) throw new InputError(`${where}: model.merges is missing or not an array`);
  return v.map((m, i) => {
    if (typeof m === "string") return m;
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === "string" && typeof m[1] === "string") {
      // Pair form (transformers >= 4.45) allows spaces inside parts; GGUF's "a b" form cannot, so
      // llama.cpp's converter writes them as U+0120 like the byte-level table does.
      return m.map((part: string) => part.replaceAll(" ", "\u0120")).join(" ");
    }
    throw new InputError(`${where}: model.merges[${i}] is neither "a b" nor ["a", "b"]`);
  });
}

/** Does `node` (a pre-tokenizer / decoder / normalizer) or any member of its Sequence have this type? */
function hasType(node: unknown, type: string): boolean {
  return components(node).some((c) => c.type === type);
}

function components(node: unknown): Json[] {
  if (!isObject(node)) return [];
  for (const key of ["pretokenizers", "decoders", "normalizers"]) {
    const list = node[key];
    if (node.type === "Sequence" && Array.isArray(list)) return list.flatMap(components);
  }
  return [node];
}

function usesMetaspace(json: Json): boolean {
  return (
    hasType(json.pre_tokenizer, "Metaspace") ||
    components(json.normalizer).some(
      (c) => c.type === "Replace" && c.content === SPM_SPACE && patternText(c.pattern) === " ",
    )
  );
}

function patternText(p: unknown): string | undefined {
  if (!isObject(p)) return undefined;
  const v = p.Regex ?? p.String;
  return typeof v === "string" ? v : undefined;
}

/** llama.cpp's converter treats these added tokens as control even when not marked special. */
function looksSpecial(t: string): boolean {
  return (
    ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].includes(t) ||
    (t.startsWith("<|") && t.endsWith("|>")) ||
    (t.startsWith("<｜") && t.endsWith("｜>")) ||
    (t.startsWith("<unused") && t.endsWith(">"))
  );
}

/** Token list and types: vocab ids, then added tokens over them; holes become "[PAD<id>]". */
function tokenTable(
  vocab: Json,
  added: AddedToken[],
  where: string,
  addedType: (t: AddedToken) => { text: string; type: TokenType },
  normalType: (text: string) => TokenType,
): { tokens: string[]; types: Int32Array } {
  let size = 0;
  const byId = new Map<number, string>();
  for (const [text, id] of Object.entries(vocab)) {
    if (!Number.isInteger(id) || (id as number) < 0)
      throw new InputError(`${where}: vocab id of "${text}" is not an index`);
    byId.set(id as number, text);
    size = Math.max(size, (id as number) + 1);
  }
  for (const t of added) size = Math.max(size, t.id + 1);
  const tokens: string[] = new Array(size);
  const types = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    const text = byId.get(i);
    tokens[i] = text ?? `[PAD${i}]`;
    types[i] = text === undefined ? TokenType.Unused : normalType(text);
  }
  for (const t of added) {
    const { text, type } = addedType(t);
    tokens[t.id] = text;
    types[t.id] = type;
  }
  return { tokens, types };
}

/** bos/eos ids and add_* flags: tokenizer_config.json first, else the post-processor template. */
function specialTokens(json: Json, tokens: string[], added: AddedToken[], config: Json | undefined) {
  const contentOf = (v: unknown): string | undefined =>
    typeof v === "string" ? v : isObject(v) && typeof v.content === "string" ? v.content : undefined;
  // Like llama.cpp's converter: ids come from added_tokens only (first match).
  const idOf = (content: string | undefined) =>
    content === undefined ? undefined : added.find((t) => t.content === content)?.id;
  let bosId = idOf(contentOf(config?.bos_token));
  let eosId = idOf(contentOf(config?.eos_token));
  let addBos = typeof config?.add_bos_token === "boolean" ? config.add_bos_token : undefined;
  let addEos = typeof config?.add_eos_token === "boolean" ? config.add_eos_token : undefined;

  const template = components(json.post_processor).find((c) => c.type === "TemplateProcessing");
  const single = Array.isArray(template?.single) ? template.single : [];
  const specialIn = (item: unknown): number | undefined => {
    if (!isObject(item) || !isObject(item.SpecialToken)) return undefined;
    const content = item.SpecialToken.id;
    return typeof content === "string" ? (idOf(content) ?? tokens.indexOf(content)) : undefined;
  };
  if (single.length > 1) {
    const first = specialIn(single[0]);
    const last = specialIn(single[single.length - 1]);
    if (first !== undefined && first >= 0) {
      bosId ??= first;
      addBos ??= first === bosId;
    }
    if (last !== undefined && last >= 0) {
      eosId ??= last;
      addEos ??= last === eosId;
    }
  }
  return { bosId, eosId, addBos, addEos };
}

function byteLevelVocab(
  json: Json,
  vocab: Json,
  merges: string[],
  added: AddedToken[],
  config: Json | undefined,
  where: string,
): VocabData {
  const pre = detectPre(json.pre_tokenizer, where);
  const { tokens, types } = tokenTable(
    vocab,
    added,
    where,
    (t) =>
      t.special || looksSpecial(t.content)
        ? { text: t.content, type: TokenType.Control }
        : { text: t.content.replaceAll(SPM_SPACE, " "), type: TokenType.UserDefined },
    () => TokenType.Normal,
  );
  return {
    model: "gpt2",
    pre,
    tokens,
    tokenTypes: types,
    merges,
    ...definedOnly(specialTokens(json, tokens, added, config)),
  };
}

/** The GGUF `pre` value for a byte-level pre-tokenizer, or an error saying what was found. */
function detectPre(node: unknown, where: string): string {
  const parts = components(node);
  const byteLevel = parts.find((c) => c.type === "ByteLevel");
  const others = parts.filter((c) => c.type !== "ByteLevel");
  const useRegex = byteLevel !== undefined && byteLevel.use_regex !== false;
  if (useRegex && others.length === 0) return "gpt-2";
  if (
    useRegex &&
    others.length === 1 &&
    others[0].type === "Digits" &&
    others[0].individual_digits === true
  ) {
    return "starcoder";
  }
  if (!useRegex && others.length === 1 && others[0].type === "Split") {
    const pattern = patternText(others[0].pattern);
    const pre = pattern === undefined ? undefined : SPLIT_PATTERNS[pattern];
    if (pre !== undefined) return pre;
  }
  const described = parts
    .map((c) =>
      c.type === "Split"
        ? `Split(${JSON.stringify(patternText(c.pattern))})`
        : c.type === "ByteLevel" && useRegex
          ? GPT2_BYTELEVEL
          : String(c.type),
    )
    .join(", ");
  throw new InputError(`${where}: byte-level BPE pre-tokenizer not supported: ${described || "none"}`, {
    hint: "supported: GPT-2 (ByteLevel regex), Llama 3 and Qwen2/Qwen3.5 Split patterns, StarCoder (Digits + ByteLevel)",
  });
}

/**
 * SentencePiece-style BPE (Llama 2, Mistral) as a llama.cpp "llama" vocabulary. llama.cpp's SentencePiece
 * tokenizer repeatedly merges the adjacent pair whose concatenation is the highest-scoring token. Giving
 * each token the score -(rank of the first merge that produces it) makes that the lowest-rank merge, so
 * it replays the BPE merges in order. Tokens no merge produces get a score below every merge: llama.cpp
 * can still form them when nothing better is left, which BPE would not (a rare difference).
 */
function sentencePieceVocab(
  json: Json,
  model: Json,
  merges: string[],
  added: AddedToken[],
  config: Json | undefined,
  where: string,
): VocabData {
  const unk = typeof model.unk_token === "string" ? model.unk_token : undefined;
  const { tokens, types } = tokenTable(
    model.vocab as Json,
    added,
    where,
    (t) => {
      // Added tokens already in the model vocabulary (<unk>, <s>, </s>) keep SentencePiece's typing.
      if (t.content === unk) return { text: t.content, type: TokenType.Unknown };
      return t.special || looksSpecial(t.content) || /^<\/?s>$/.test(t.content)
        ? { text: t.content, type: TokenType.Control }
        : { text: t.content, type: TokenType.UserDefined };
    },
    (text) =>
      text === unk
        ? TokenType.Unknown
        : /^<0x[0-9A-Fa-f]{2}>$/.test(text)
          ? TokenType.Byte
          : TokenType.Normal,
  );

  const idOf = new Map<string, number>();
  tokens.forEach((t, i) => idOf.set(t, i));
  const scores = new Float32Array(tokens.length).fill(-(merges.length + 1));
  const scored = new Uint8Array(tokens.length);
  merges.forEach((m, rank) => {
    const sp = m.indexOf(" ", 1);
    if (sp < 0) return;
    const id = idOf.get(m.slice(0, sp) + m.slice(sp + 1));
    if (id !== undefined && !scored[id]) {
      scored[id] = 1;
      scores[id] = -rank;
    }
  });
  for (let i = 0; i < tokens.length; i++) {
    // Single characters, bytes and specials are never a merge result; 0 keeps them neutral.
    if (!scored[i] && (types[i] !== TokenType.Normal || [...tokens[i]].length === 1)) scores[i] = 0;
  }

  const addSpacePrefix =
    components(json.normalizer).some((c) => c.type === "Prepend" && c.prepend === SPM_SPACE) ||
    components(json.pre_tokenizer).some(
      (c) => c.type === "Metaspace" && c.prepend_scheme !== "never" && c.add_prefix_space !== false,
    );
  const special = specialTokens(json, tokens, added, config);
  return {
    model: "llama",
    tokens,
    scores,
    tokenTypes: types,
    ...definedOnly({ ...special, unkId: unk === undefined ? undefined : idOf.get(unk) }),
    addSpacePrefix,
  };
}

function definedOnly<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
