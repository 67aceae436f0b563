// Tokenizer speed: ours against llama.cpp's (node-llama-cpp) on the same random strings and vocabulary.

import { loadTokenizer } from "../formats/tokenizer/index.js";
import { loadReferenceTokenizer, randomTokenizerTexts } from "../formats/tokenizer/parity.js";
import { builtinVocabPath } from "../formats/vocabs.js";

export async function benchTokenizers(opts: {
  seed: number;
  strings: number;
}): Promise<Record<string, unknown>> {
  const texts = randomTokenizerTexts(opts.seed, opts.strings);
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
  const out: Record<string, unknown> = { strings: texts.length, bytes };
  for (const name of ["llama-spm", "phi-3", "llama-bpe", "qwen2", "gpt-2"]) {
    const path = builtinVocabPath(name);
    const ours = loadTokenizer(path);
    const ref = await loadReferenceTokenizer(path);
    const time = (f: (t: string) => number[]): { ms: number; tokens: number } => {
      for (const t of texts.slice(0, 200)) f(t); // warm-up
      const t0 = performance.now();
      let tokens = 0;
      for (const t of texts) tokens += f(t).length;
      return { ms: performance.now() - t0, tokens };
    };
    const a = time((t) => ours.encode(t, { addSpecial: false }));
    const b = time((t) => ref.tokenize(t));
    let agree = 0;
    for (const t of texts)
      if (JSON.stringify(ours.encode(t, { addSpecial: false })) === JSON.stringify(ref.tokenize(t))) agree++;
    out[name] = {
      oursMBps: bytes / 1e6 / (a.ms / 1000),
      llamaCppMBps: bytes / 1e6 / (b.ms / 1000),
      ratio: b.ms / a.ms,
      agree: `${agree}/${texts.length}`,
    };
    await ref.dispose();
  }
  return out;
}
