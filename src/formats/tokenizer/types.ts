// Tokenizer contracts shared by the SentencePiece-style (spm) and byte-level BPE implementations.

/** llama.cpp token attributes as stored in GGUF `tokenizer.ggml.token_type`. */
export const TokenType = {
  Undefined: 0,
  Normal: 1,
  Unknown: 2,
  Control: 3,
  UserDefined: 4,
  Unused: 5,
  Byte: 6,
} as const;
export type TokenType = (typeof TokenType)[keyof typeof TokenType];

/** Everything a tokenizer needs, as read from GGUF metadata (tokenizer.ggml.*) or a HF tokenizer.json. */
export interface VocabData {
  /** tokenizer.ggml.model: "llama" (SentencePiece), "gpt2" (byte-level BPE), ... */
  model: string;
  /** general.name of the file: llama.cpp switches a few tokenizer quirks on it (e.g. Phi-3's whitespace rule). */
  name?: string;
  /** tokenizer.ggml.pre: the BPE pre-tokenizer variant ("llama-bpe", "qwen2", "gpt-2", "default", ...). */
  pre?: string;
  tokens: string[];
  scores?: Float32Array;
  tokenTypes?: Int32Array;
  /** BPE merges, "a b" per entry, by rank. */
  merges?: string[];
  bosId?: number;
  eosId?: number;
  eotId?: number;
  eomId?: number;
  unkId?: number;
  sepId?: number;
  padId?: number;
  maskId?: number;
  addBos?: boolean;
  addEos?: boolean;
  addSpacePrefix?: boolean;
  removeExtraWhitespaces?: boolean;
}

export interface EncodeOptions {
  /** Add BOS/EOS as the vocabulary's rules say (tokenizer.ggml.add_bos_token, ...). Default true. */
  addSpecial?: boolean;
  /** Recognise the text of control/user-defined tokens (e.g. "<|im_start|>") inside `text`. Default false. */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Leave out control tokens (BOS, EOS, ...). Default false. */
  skipSpecial?: boolean;
}

export interface Tokenizer {
  readonly kind: "spm" | "bpe";
  readonly vocab: VocabData;
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  encode(text: string, options?: EncodeOptions): number[];
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** The raw bytes one token stands for when decoded (used for streaming decode and char offsets). */
  tokenBytes(id: number): Uint8Array;
  /** The vocabulary string of a token. */
  tokenText(id: number): string;
  /** Control or user-defined token (BOS, EOS, <|im_start|>, ...). */
  isSpecial(id: number): boolean;
}
