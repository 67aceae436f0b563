// llama.cpp's special-token behaviour shared by the SentencePiece (spm) and byte-level BPE tokenizers:
// the token texts it recognises (EOT/EOM/EOG, fill-in-the-middle), the attribute corrections it
// applies by token text and model name, and the partitioning of input text around special tokens.
// Everything here follows src/llama-vocab.cpp (llama_vocab::impl::load and tokenizer_st_partition).

import { TokenType, type VocabData } from "./types.js";

/**
 * llama.cpp's per-token attribute bits (llama_token_attr). GGUF only stores a token type; llama.cpp
 * derives these from it and then patches some by token text and model name, which changes how the
 * text is split around special tokens, so both tokenizers need the same derived bits.
 */
export const TokenAttr = {
  Undefined: 0,
  Unknown: 1 << 0,
  Unused: 1 << 1,
  Normal: 1 << 2,
  Control: 1 << 3,
  UserDefined: 1 << 4,
  Byte: 1 << 5,
  Normalized: 1 << 6,
  Lstrip: 1 << 7,
  Rstrip: 1 << 8,
  SingleWord: 1 << 9,
} as const;

/** Tokens searched for in raw text by tokenizer_st_partition (llama.cpp's cache_special_tokens). */
export const SPECIAL_ATTRS = TokenAttr.Control | TokenAttr.UserDefined | TokenAttr.Unknown;
/** llama.cpp's attr_special: left as text without parseSpecial and left out of decode without special. */
export const HIDDEN_ATTRS = TokenAttr.Control | TokenAttr.Unknown;

/**
 * VocabData with the GGUF `general.name`, on which llama.cpp keys a few per-token quirks. VocabData
 * now carries `name` itself; the alias stays for callers that import it.
 */
export type NamedVocabData = VocabData;

// The token-text lists of llama_vocab::impl::load, in its order.

/** End-of-turn texts: the first one found becomes the EOT token when the GGUF names none. */
export const EOT_TEXTS: readonly string[] = [
  "<|eot_id|>",
  "<|im_end|>",
  "<|end|>",
  "<end_of_turn>",
  "<|endoftext|>",
  "<|end_of_text|>",
  "<EOT>",
  "_<EOT>",
  "[EOT]",
  "<｜end▁of▁sentence｜>",
  "<end_of_utterance>",
];
/** End-of-message texts: the first one found becomes the EOM token when the GGUF names none. */
export const EOM_TEXTS: readonly string[] = ["<|eom_id|>"];
/** Fill-in-the-middle texts per role: prefix, suffix, middle, pad, repo, file separator. */
export const FIM_TEXTS: readonly (readonly string[])[] = [
  [
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
  ],
  [
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
  ],
  [
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
  ],
  ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
  ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"],
  ["<|file_sep|>"],
];
/** End-of-generation texts: every one present is promoted to control, whatever the GGUF says. */
export const EOG_TEXTS: readonly string[] = [
  "<|eot_id|>",
  "<|im_end|>",
  "<|end|>",
  "<|return|>",
  "<|call|>",
  "<|flush|>",
  "<|calls|>",
  "<end_of_turn>",
  "<|endoftext|>",
  "</s>",
  "<|eom_id|>",
  "<EOT>",
  "_<EOT>",
  "[EOT]",
  "[EOS]",
  "<|end_of_text|>",
  "<end_of_utterance>",
  "<eos>",
  "<turn|>",
  "<|tool_response>",
  "<｜end▁of▁sentence｜>",
  "[e~[",
];
/** gpt-oss chat markers llama.cpp always renders, so it turns them into plain user-defined tokens. */
export const ALWAYS_RENDERED_TEXTS: readonly string[] = [
  "<|channel|>",
  "<|message|>",
  "<|start|>",
  "<|constrain|>",
];

/** The token text llama.cpp uses: empty strings are renamed so that every token stays addressable. */
export function llamaTokenTexts(tokens: readonly string[]): string[] {
  return tokens.map((t, i) => (t === "" ? `[EMPTY_${i}]` : t));
}

const ATTR_OF_TYPE: Readonly<Record<number, number>> = {
  [TokenType.Unknown]: TokenAttr.Unknown,
  [TokenType.Unused]: TokenAttr.Unused,
  [TokenType.Normal]: TokenAttr.Normal,
  [TokenType.Control]: TokenAttr.Control,
  [TokenType.UserDefined]: TokenAttr.UserDefined,
  [TokenType.Byte]: TokenAttr.Byte,
};

/**
 * llama.cpp's attribute bits for every token (see TokenAttr), including its text- and name-based
 * corrections. `texts` are the tokens after llamaTokenTexts.
 */
export function llamaTokenAttributes(vocab: VocabData, texts: readonly string[]): Uint16Array {
  const n = texts.length;
  const attrs = new Uint16Array(n);
  const types = vocab.tokenTypes;
  for (let i = 0; i < n; i++) {
    attrs[i] = types ? (ATTR_OF_TYPE[types[i]] ?? TokenAttr.Undefined) : TokenAttr.Normal;
  }
  // llama.cpp's token_to_id: for a text that occurs twice, the last id wins.
  const byText = new Map<string, number>();
  for (let i = 0; i < n; i++) byText.set(texts[i], i);
  const idOf = (t: string): number | undefined => byText.get(t);

  // Roles found by text (EOT, EOM, each FIM role) promote one token each, and only when the GGUF
  // does not name the role's id. llama.cpp takes whichever listed text its unordered_map yields
  // first; that order is unspecified, so here the first listed text present wins (vocabularies with
  // a single match per role, the usual case, come out the same). VocabData carries no FIM ids, so
  // the FIM roles are always searched.
  const roles: [readonly string[], number | undefined][] = [
    [EOT_TEXTS, vocab.eotId],
    [EOM_TEXTS, vocab.eomId],
    ...FIM_TEXTS.map((t): [readonly string[], undefined] => [t, undefined]),
  ];
  for (const [list, roleId] of roles) {
    if (roleId !== undefined) continue;
    const id = list.map(idOf).find((x) => x !== undefined);
    if (id !== undefined) attrs[id] |= TokenAttr.Control;
  }
  // Unlike the roles, every end-of-generation text present is promoted.
  for (const t of EOG_TEXTS) {
    const id = idOf(t);
    if (id !== undefined) attrs[id] |= TokenAttr.Control;
  }
  for (const t of ALWAYS_RENDERED_TEXTS) {
    const id = idOf(t);
    if (id !== undefined) attrs[id] = TokenAttr.UserDefined;
  }
  // In harmony (o200k) and solar-open vocabularies "<|end|>" ends a message, not generation:
  // llama.cpp demotes it when "<|return|>" and a call marker ("<|call|>" or "<|calls|>") are both
  // present, or a call marker and "<|flush|>".
  const has = (t: string): boolean => byText.has(t);
  const hasCall = has("<|call|>") || has("<|calls|>");
  const end = idOf("<|end|>");
  if (end !== undefined && hasCall && (has("<|return|>") || has("<|flush|>"))) {
    attrs[end] = TokenAttr.UserDefined;
  }
  // Gemma 4 / PaddleOCR: "</s>" is plain text when "<|tool_response>" is there.
  const eos = idOf("</s>");
  if (eos !== undefined && has("<|tool_response>")) attrs[eos] = TokenAttr.Normal;

  // Per-model attributes, checked in llama.cpp's order (an if / else-if chain): jina mask tokens
  // (llama.cpp also matches some general.architecture values, which VocabData does not carry),
  // Phi-3, ModernBERT.
  const name = (vocab.name ?? "").toLowerCase();
  const setBits = (t: string, bits: number): void => {
    const id = idOf(t);
    if (id !== undefined) attrs[id] |= bits;
  };
  if (/jina-v2-(de|es|code)/.test(vocab.pre ?? "")) {
    setBits("<mask>", TokenAttr.Lstrip);
  } else if (name.includes("phi-3") || name.includes("phi3")) {
    // Phi-3's tokenizer.json declares rstrip on its added tokens; llama.cpp hard-codes the same.
    for (let i = 0; i < n; i++) if (attrs[i] & SPECIAL_ATTRS) attrs[i] |= TokenAttr.Rstrip;
    setBits("</s>", TokenAttr.Rstrip);
    for (const t of ["<unk>", "<s>", "<|endoftext|>"]) {
      const id = idOf(t);
      if (id !== undefined) attrs[id] &= ~TokenAttr.Rstrip;
    }
  } else if (name.includes("modern-bert")) {
    setBits("[MASK]", TokenAttr.Lstrip);
  }
  return attrs;
}

/** A special token that is searched for in raw text, longest first (llama.cpp's order). */
export interface SpecialMatcher {
  id: number;
  text: string;
  attr: number;
}

/**
 * Control, user-defined and unknown tokens sorted by UTF-8 length, longest first. llama.cpp's sort
 * is not stable; ties are broken here by id, which only matters for equal-length tokens that overlap.
 */
export function specialMatchers(texts: readonly string[], attrs: Uint16Array): SpecialMatcher[] {
  const out: (SpecialMatcher & { bytes: number })[] = [];
  for (let id = 0; id < texts.length; id++) {
    const attr = attrs[id];
    if (attr & SPECIAL_ATTRS) {
      out.push({ id, text: texts[id], attr, bytes: Buffer.byteLength(texts[id], "utf8") });
    }
  }
  out.sort((a, b) => b.bytes - a.bytes || a.id - b.id);
  return out.map(({ id, text, attr }) => ({ id, text, attr }));
}

/** A piece of input after special-token partitioning: raw text, or an already-known token id. */
export type Fragment = { token: number; text?: undefined } | { token?: undefined; text: string };

// C isspace() in the "C" locale: llama.cpp strips only these around lstrip/rstrip tokens.
function isCSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/**
 * Split `text` around special tokens the way llama.cpp's tokenizer_st_partition does: each special
 * token in turn (longest first) is cut out of every remaining raw fragment, leftmost occurrence first.
 * Without parseSpecial, control and unknown tokens stay text but user-defined tokens are still cut out.
 */
export function partitionSpecial(
  text: string,
  specials: readonly SpecialMatcher[],
  parseSpecial: boolean,
): Fragment[] {
  if (text === "") return [];
  let frags: Fragment[] = [{ text }];
  for (const sp of specials) {
    if (!parseSpecial && sp.attr & HIDDEN_ATTRS) continue;
    // Fragments are pieces of `text`, so a token absent from it cannot be in any of them.
    if (!text.includes(sp.text)) continue;
    const next: Fragment[] = [];
    const lstrip = (sp.attr & TokenAttr.Lstrip) !== 0;
    const rstrip = (sp.attr & TokenAttr.Rstrip) !== 0;
    for (const f of frags) {
      if (f.text === undefined) {
        next.push(f);
        continue;
      }
      const s = f.text;
      let base = 0;
      while (true) {
        const m = s.indexOf(sp.text, base);
        if (m < 0) {
          if (base < s.length) next.push(base === 0 ? f : { text: s.slice(base) });
          break;
        }
        if (m > base) {
          let end = m;
          if (lstrip) while (end > base && isCSpace(s.charCodeAt(end - 1))) end--;
          if (end > base) next.push({ text: s.slice(base, end) });
        }
        next.push({ token: sp.id });
        base = m + sp.text.length;
        if (rstrip) while (base < s.length && isCSpace(s.charCodeAt(base))) base++;
      }
    }
    frags = next;
  }
  return frags;
}

const utf8 = new TextEncoder();

/**
 * What one token prints as in llama.cpp's token_to_piece with special = true: special tokens their
 * text, byte tokens their byte, unused and undefined tokens nothing. Normal tokens are the one case
 * the tokenizers differ on, so `normal` renders those.
 */
export function tokenPiece(text: string, attr: number, normal: (text: string) => Uint8Array): Uint8Array {
  if (attr & SPECIAL_ATTRS) return utf8.encode(text);
  if (attr & TokenAttr.Normal) return normal(text);
  // "<0xXX>"; anything unparsable gives byte 0 (NaN & 0xff).
  if (attr & TokenAttr.Byte) return Uint8Array.of(parseInt(text.slice(3, 5), 16) & 0xff);
  return new Uint8Array(0);
}

/**
 * Everything llama.cpp derives from a vocabulary about its special tokens, as both tokenizers use it:
 * token texts, attribute bits, the matching order, partitioning and the special-aware parts of
 * token_to_piece / detokenize.
 */
export class LlamaSpecialTokens {
  /** Token texts as llama.cpp holds them (empty ones renamed "[EMPTY_i]"). */
  readonly texts: string[];
  readonly attrs: Uint16Array;
  /** Special tokens in matching order: longest UTF-8 text first. */
  readonly matchers: SpecialMatcher[];

  constructor(vocab: VocabData) {
    this.texts = llamaTokenTexts(vocab.tokens);
    this.attrs = llamaTokenAttributes(vocab, this.texts);
    this.matchers = specialMatchers(this.texts, this.attrs);
  }

  /** `text` split around special tokens (see partitionSpecial). */
  partition(text: string, parseSpecial: boolean): Fragment[] {
    return partitionSpecial(text, this.matchers, parseSpecial);
  }

  /** Control or user-defined: Tokenizer.isSpecial. */
  isSpecial(id: number): boolean {
    return (this.attrs[id] & (TokenAttr.Control | TokenAttr.UserDefined)) !== 0;
  }

  /** Left out when decoding without special tokens (llama.cpp's attr_special). */
  isHidden(id: number): boolean {
    return (this.attrs[id] & HIDDEN_ATTRS) !== 0;
  }

  /** token_to_piece with special = true (see tokenPiece). */
  piece(id: number, normal: (text: string) => Uint8Array): Uint8Array {
    return tokenPiece(this.texts[id], this.attrs[id], normal);
  }
}
