// Tokenizer parity tooling: seeded random test strings and llama.cpp's own tokenization of them
// (through node-llama-cpp on the same GGUF file), the reference our tokenizers must equal.

import { Rng } from "../../util/random.js";

const WORDS = [
  "the",
  "Hello",
  "world",
  "safety",
  "model",
  "don't",
  "I'm",
  "we're",
  "they'll",
  "it's",
  "You've",
  "HELLO",
  "résumé",
  "naïve",
  "Äpfel",
  "straße",
  "über",
  "façade",
  "東京",
  "日本語",
  "北京大学",
  "привет",
  "Бълга",
  "مرحبا",
  "שלום",
  "नमस्ते",
  "สวัสดี",
  "안녕하세요",
  "ελληνικά",
  "Ελλάδα",
  "ñandú",
  "İstanbul",
  "ǅemal",
  "llama.cpp",
  "tokenizer",
  "__init__",
  "camelCaseName",
  "snake_case_name",
  "x86_64",
  "0x1F",
  "3.14159",
];
const EMOJI = ["🦙", "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇩🇪", "🇯🇵", "❤️", "🔥", "🏳️‍🌈", "✨", "🤖", "🧑🏿‍💻", "☕"];
const SPACES = [
  " ",
  "  ",
  "   ",
  "\t",
  "\n",
  "\n\n",
  "\r\n",
  " \n ",
  "\u00a0",
  "\u3000",
  "\u2009",
  "\t\t\n",
  "\n   \n",
];
const PUNCT = [
  ".",
  ",",
  "!",
  "?",
  "...",
  ";",
  ":",
  "-",
  "--",
  "'",
  '"',
  "(",
  ")",
  "[",
  "]",
  "{",
  "}",
  "/",
  "\\",
  "@",
  "#",
  "$",
  "%",
  "&",
  "*",
  "+",
  "=",
  "<",
  ">",
  "|",
  "~",
  "`",
  "^",
  "_",
];
const CODE = [
  "function f(x) { return x * 2; }",
  "for (let i = 0; i < n; i++) {\n\tsum += a[i];\n}",
  "def main():\n    print('hi')\n",
  "if (a != b && c >= d) return;",
  "#include <stdio.h>",
  "SELECT * FROM t WHERE id = 42;",
  "x = [1, 2, 3]  # comment",
  '<div class="a">text</div>',
  "   indented\n        more",
  "const s = `${a}-${b}`;",
];
const SPECIAL_LIKE = [
  "<s>",
  "</s>",
  "<unk>",
  "<|endoftext|>",
  "<|im_start|>",
  "<|im_end|>",
  "<|begin_of_text|>",
  "<|eot_id|>",
  "[INST]",
  "<|user|>",
  "<|end|>",
];

function randomCodePoint(rng: Rng): string {
  const r = rng.next();
  let cp: number;
  if (r < 0.4) cp = rng.int(0x20, 0x7e);
  else if (r < 0.6) cp = rng.int(0xa0, 0x2fff);
  else if (r < 0.75) cp = rng.int(0x3000, 0x9fff);
  else if (r < 0.85) cp = rng.int(0xac00, 0xd7a3);
  else if (r < 0.93) cp = rng.int(0x1f300, 0x1faff);
  else if (r < 0.97) cp = rng.int(0x10000, 0x2ffff);
  else cp = rng.int(0x00, 0x1f); // control characters
  // Surrogates are not code points: keep strings valid UTF-16 so both sides see the same UTF-8.
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41;
  return String.fromCodePoint(cp);
}

function digits(rng: Rng): string {
  let s = "";
  const n = rng.int(1, 12);
  for (let i = 0; i < n; i++) s += String(rng.int(0, 9));
  return s;
}

/**
 * `count` seeded strings mixing words in many scripts, emoji (ZWJ sequences, flags, skin tones),
 * digit runs, runs of whitespace and newlines, punctuation, code and special-token look-alikes.
 */
export function randomTokenizerTexts(seed: number, count: number): string[] {
  const rng = new Rng(seed);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const parts: string[] = [];
    const n = rng.int(1, 14);
    for (let j = 0; j < n; j++) {
      const r = rng.next();
      if (r < 0.3) parts.push(rng.pick(WORDS));
      else if (r < 0.42) parts.push(rng.pick(SPACES));
      else if (r < 0.5) parts.push(rng.pick(EMOJI));
      else if (r < 0.58) parts.push(digits(rng));
      else if (r < 0.68) parts.push(rng.pick(PUNCT));
      else if (r < 0.74) parts.push(rng.pick(CODE));
      else if (r < 0.78) parts.push(rng.pick(SPECIAL_LIKE));
      else {
        let s = "";
        const m = rng.int(1, 6);
        for (let k = 0; k < m; k++) s += randomCodePoint(rng);
        parts.push(s);
      }
      if (rng.next() < 0.5) parts.push(" ");
    }
    out.push(parts.join(""));
  }
  return out;
}

export interface ReferenceTokenizer {
  tokenize(text: string, options?: { parseSpecial?: boolean }): number[];
  detokenize(ids: readonly number[], options?: { special?: boolean }): string;
  dispose(): Promise<void>;
}

/**
 * llama.cpp's tokenizer on a GGUF file, via node-llama-cpp (vocab only, no weights needed).
 * tokenize() calls llama_tokenize with add_special=false, like llama.cpp's test-tokenizer-0 vectors.
 */
export async function loadReferenceTokenizer(ggufPath: string): Promise<ReferenceTokenizer> {
  const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
  const llama = await getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.disabled });
  const model = await llama.loadModel({ modelPath: ggufPath, vocabOnly: true });
  return {
    tokenize: (text, options) => Array.from(model.tokenize(text, options?.parseSpecial ?? false) as number[]),
    detokenize: (ids, options) => model.detokenize(ids as never, options?.special ?? false),
    dispose: () => model.dispose(),
  };
}
