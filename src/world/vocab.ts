// SafetyWorld's tokenizer: a SentencePiece-style ("llama") vocabulary of whole-word pieces written to a
// vocab-only GGUF that both buckle's tokenizer and llama.cpp load, with the world's chat template embedded.

import { writeGGUF, gv, type GGUFValue } from "../formats/gguf/index.js";
import { TokenType } from "../formats/tokenizer/index.js";
import { languageTexts } from "./language.js";

/**
 * The world's chat template: `<|role|>content<|end|>` per message, `<|assistant|>` as the generation prompt.
 * llama.cpp's SentencePiece path puts a space before text that follows a control token, so every message
 * starts with a whole-word piece.
 */
export const WORLD_CHAT_TEMPLATE = `{%- for message in messages -%}
{{- '<|' + message.role + '|>' + message.content + '<|end|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|assistant|>' -}}
{%- endif -%}`;

export const CONTROL_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"] as const;

/** Single characters kept as pieces so unusual text still decodes without byte fallback. */
const CHARS = "abcdefghijklmnopqrstuvwxyz.,?!:;'-";

/** Words of `text` as the vocabulary sees them: lower-case runs of letters, hyphens and apostrophes. */
export function wordsOf(text: string): string[] {
  return text.toLowerCase().match(/[a-z][a-z'-]*/g) ?? [];
}

/** The world's word list, sorted, given the extra texts the generators produce (their templates' words). */
export function worldWords(extraTexts: readonly string[] = []): string[] {
  const words = new Set<string>();
  for (const s of [...languageTexts(), ...extraTexts]) {
    for (const w of wordsOf(s.replace(/\{\{?\w+\}?\}/g, " "))) words.add(w);
  }
  return [...words].sort();
}

export interface WorldVocab {
  tokens: string[];
  scores: number[];
  types: number[];
  words: string[];
}

/**
 * Build the vocabulary. SentencePiece merges adjacent pieces only into pieces that exist, so a whole word
 * "▁kettle" is reachable only if "▁k", "▁ke", ... exist too: every prefix of every word is a piece. Only
 * "▁"-initial pieces are longer than one character, so each word has exactly one merge path.
 */
export function buildWorldVocab(words: readonly string[]): WorldVocab {
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const add = (t: string, type: number, score = 0) => {
    tokens.push(t);
    types.push(type);
    scores.push(score);
  };
  add("<unk>", TokenType.Unknown);
  add("<s>", TokenType.Control);
  add("</s>", TokenType.Control);
  for (const c of CONTROL_TOKENS) add(c, TokenType.Control);
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, TokenType.Byte);
  const seen = new Set<string>();
  const piece = (p: string) => {
    if (seen.has(p)) return;
    seen.add(p);
    // Longer pieces score higher, as a trained SentencePiece model's would.
    add(p, TokenType.Normal, -1000 + p.length);
  };
  piece("\u2581");
  for (const c of CHARS) piece(c);
  for (const w of words) for (let k = 1; k <= w.length; k++) piece("\u2581" + w.slice(0, k));
  return { tokens, scores, types, words: [...words] };
}

export const WORLD_TOKEN_IDS = { unk: 0, bos: 1, eos: 2, system: 3, user: 4, assistant: 5, end: 6 } as const;

/** Write the vocabulary (and chat template) as a vocab-only GGUF at `path` (atomically). */
export function writeWorldVocabGGUF(path: string, vocab: WorldVocab): void {
  const metadata: [string, GGUFValue][] = [
    ["general.architecture", gv.str("llama")],
    ["general.name", gv.str("buckle-safetyworld-vocab")],
    ["tokenizer.ggml.model", gv.str("llama")],
    ["tokenizer.ggml.pre", gv.str("default")],
    ["tokenizer.ggml.tokens", gv.strArr(vocab.tokens)],
    ["tokenizer.ggml.scores", gv.f32Arr(vocab.scores)],
    ["tokenizer.ggml.token_type", gv.i32Arr(vocab.types)],
    ["tokenizer.ggml.unknown_token_id", gv.u32(WORLD_TOKEN_IDS.unk)],
    ["tokenizer.ggml.bos_token_id", gv.u32(WORLD_TOKEN_IDS.bos)],
    ["tokenizer.ggml.eos_token_id", gv.u32(WORLD_TOKEN_IDS.eos)],
    ["tokenizer.ggml.eot_token_id", gv.u32(WORLD_TOKEN_IDS.end)],
    ["tokenizer.ggml.padding_token_id", gv.u32(WORLD_TOKEN_IDS.eos)],
    ["tokenizer.ggml.add_bos_token", gv.bool(true)],
    ["tokenizer.ggml.add_eos_token", gv.bool(false)],
    ["tokenizer.ggml.add_space_prefix", gv.bool(true)],
    ["tokenizer.chat_template", gv.str(WORLD_CHAT_TEMPLATE)],
  ];
  writeGGUF(path, { metadata });
}
