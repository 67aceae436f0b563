// Interop test: llama.cpp (through node-llama-cpp) loads and runs tiny llama models written by our writer,
// in F32, F16 and Q8_0, and its own GGUF parser agrees with what we wrote.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, LlamaLogLevel, readGgufFileInfo, type GgufTensorInfo, type Llama } from "node-llama-cpp";
import { builtinVocabPath, builtinVocabTestVectors } from "../vocabs.js";
import { GGMLType, gv, openGGUF, writeGGUF, type GGUFTensorInput, type GGUFValue } from "./index.js";

const N_EMBD = 64;
const N_LAYER = 2;
const N_FF = 128;
const N_HEAD = 4;
const N_HEAD_KV = 2;
const HEAD_DIM = N_EMBD / N_HEAD;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}

/**
 * A llama whose layers add nothing to the residual stream (attn_output and ffn_down are zero) and whose output
 * matrix is the unit-norm embedding matrix: the logits after token t are cos(e_t, e_j) scaled, so greedy decoding
 * must repeat the last token. That checks every tensor was read at the right place, not just that it loads.
 */
function tinyLlama(vocabSize: number, typeOf: (name: string) => GGMLType): GGUFTensorInput[] {
  const r = rng(42);
  const rand = (n: number, scale: number) => Float32Array.from({ length: n }, () => r() * scale);
  const emb = rand(vocabSize * N_EMBD, 1);
  for (let t = 0; t < vocabSize; t++) {
    let norm = 0;
    for (let i = 0; i < N_EMBD; i++) norm += emb[t * N_EMBD + i] ** 2;
    norm = Math.sqrt(norm);
    for (let i = 0; i < N_EMBD; i++) emb[t * N_EMBD + i] /= norm;
  }
  const ones = () => new Float32Array(N_EMBD).fill(1);
  const tensors: GGUFTensorInput[] = [
    { name: "token_embd.weight", shape: [vocabSize, N_EMBD], type: GGMLType.F32, data: emb },
  ];
  const kvDim = N_HEAD_KV * HEAD_DIM;
  for (let l = 0; l < N_LAYER; l++) {
    const p = `blk.${l}`;
    tensors.push(
      { name: `${p}.attn_norm.weight`, shape: [N_EMBD], type: GGMLType.F32, data: ones },
      {
        name: `${p}.attn_q.weight`,
        shape: [N_EMBD, N_EMBD],
        type: GGMLType.F32,
        data: rand(N_EMBD * N_EMBD, 0.2),
      },
      {
        name: `${p}.attn_k.weight`,
        shape: [kvDim, N_EMBD],
        type: GGMLType.F32,
        data: rand(kvDim * N_EMBD, 0.2),
      },
      {
        name: `${p}.attn_v.weight`,
        shape: [kvDim, N_EMBD],
        type: GGMLType.F32,
        data: rand(kvDim * N_EMBD, 0.2),
      },
      {
        name: `${p}.attn_output.weight`,
        shape: [N_EMBD, N_EMBD],
        type: GGMLType.F32,
        data: new Float32Array(N_EMBD * N_EMBD),
      },
      { name: `${p}.ffn_norm.weight`, shape: [N_EMBD], type: GGMLType.F32, data: ones },
      {
        name: `${p}.ffn_gate.weight`,
        shape: [N_FF, N_EMBD],
        type: GGMLType.F32,
        data: rand(N_FF * N_EMBD, 0.2),
      },
      {
        name: `${p}.ffn_up.weight`,
        shape: [N_FF, N_EMBD],
        type: GGMLType.F32,
        data: rand(N_FF * N_EMBD, 0.2),
      },
      {
        name: `${p}.ffn_down.weight`,
        shape: [N_EMBD, N_FF],
        type: GGMLType.F32,
        data: new Float32Array(N_EMBD * N_FF),
      },
    );
  }
  tensors.push(
    { name: "output_norm.weight", shape: [N_EMBD], type: GGMLType.F32, data: ones },
    { name: "output.weight", shape: [vocabSize, N_EMBD], type: GGMLType.F32, data: emb },
  );
  // llama.cpp keeps 1-D tensors (norms) in F32 whatever the file type.
  return tensors.map((t) => (t.shape.length === 1 ? t : { ...t, type: typeOf(t.name) }));
}

function modelMetadata(vocabPath: string): { meta: [string, GGUFValue][]; vocabSize: number } {
  const vocab = openGGUF(vocabPath);
  try {
    const tokenizer = [...vocab.metadata].filter(([k]) => k.startsWith("tokenizer."));
    const vocabSize = vocab.getStringArray("tokenizer.ggml.tokens")?.length ?? 0;
    const meta: [string, GGUFValue][] = [
      ["general.architecture", gv.str("llama")],
      ["general.name", gv.str("buckle-gguf-test")],
      ["llama.context_length", gv.u32(256)],
      ["llama.embedding_length", gv.u32(N_EMBD)],
      ["llama.block_count", gv.u32(N_LAYER)],
      ["llama.feed_forward_length", gv.u32(N_FF)],
      ["llama.attention.head_count", gv.u32(N_HEAD)],
      ["llama.attention.head_count_kv", gv.u32(N_HEAD_KV)],
      ["llama.attention.layer_norm_rms_epsilon", gv.f32(1e-5)],
      ["llama.rope.freq_base", gv.f32(10000)],
      ["llama.rope.dimension_count", gv.u32(HEAD_DIM)],
      ["llama.vocab_size", gv.u32(vocabSize)],
      ...tokenizer,
    ];
    return { meta, vocabSize };
  } finally {
    vocab.close();
  }
}

const dir = mkdtempSync(join(tmpdir(), "buckle-gguf-llama-"));
let llama: Llama | undefined;
test.after(async () => {
  await llama?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

// Two models keep the runtime down: all-F32, and one mixing Q8_0 (embeddings, attention) with F16 (FFN, output).
const mixed = (name: string) =>
  name.startsWith("token_embd") || name.includes(".attn_") ? GGMLType.Q8_0 : GGMLType.F16;
for (const [label, typeOf] of [
  ["F32", () => GGMLType.F32],
  ["Q8_0 + F16", mixed],
] as const) {
  test(`node-llama-cpp loads and runs a tiny llama we wrote in ${label}`, async () => {
    const vocabPath = builtinVocabPath("llama-spm");
    const { meta, vocabSize } = modelMetadata(vocabPath);
    assert.equal(vocabSize, 32000);
    const modelPath = join(dir, `tiny-${label.replace(/\W+/g, "-")}.gguf`);
    writeGGUF(modelPath, { metadata: meta, tensors: tinyLlama(vocabSize, typeOf) });

    // llama.cpp's own GGUF parser (node-llama-cpp's reader) sees what we wrote.
    const info = await readGgufFileInfo(modelPath, { logWarnings: false });
    assert.equal(info.version, 3);
    assert.equal(info.metadata.general.architecture, "llama");
    assert.equal(info.tensorInfo?.length, 2 + 9 * N_LAYER + 1);
    for (const name of ["blk.1.attn_k.weight", "blk.0.ffn_down.weight", "output.weight"]) {
      const found: GgufTensorInfo | undefined = info.tensorInfo?.find((x) => x.name === name);
      const expected: GGMLType = typeOf(name);
      assert.equal(Number(found?.ggmlType), expected, name);
    }
    const k = info.tensorInfo?.find((t) => t.name === "blk.1.attn_k.weight");
    assert.deepEqual(k?.dimensions.map(Number), [N_EMBD, N_HEAD_KV * HEAD_DIM]);

    llama ??= await getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath });
    try {
      assert.equal(model.trainContextSize, 256);
      // The copied tokenizer metadata tokenizes exactly like llama.cpp's reference vectors for this vocabulary.
      const vectors = builtinVocabTestVectors("llama-spm") ?? [];
      assert.ok(vectors.length > 10);
      for (const v of vectors.slice(0, 8)) {
        assert.deepEqual(model.tokenize(v.text).map(Number), v.ids, `tokenize ${JSON.stringify(v.text)}`);
      }
      // One thread: llama.cpp's worker threads spin, which turns a busy machine's test into seconds of waiting.
      const ctx = await model.createContext({ contextSize: 256, threads: 1 });
      try {
        const seq = ctx.getSequence();
        const prompt = model.tokenize("The quick brown fox");
        const last = Number(prompt[prompt.length - 1]);
        const out: number[] = [];
        for await (const tok of seq.evaluate(prompt, { temperature: 0 })) {
          out.push(Number(tok));
          if (out.length === 3) break;
        }
        assert.deepEqual(out, [last, last, last], "greedy decoding must repeat the last prompt token");
      } finally {
        await ctx.dispose();
      }
    } finally {
      await model.dispose();
    }
  });
}
