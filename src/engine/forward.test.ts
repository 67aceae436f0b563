// Forward-pass properties: KV-cached decoding equals the full forward, scoring equals log-softmax of logits,
// unmerged LoRA equals merged weights, and GGUF (f32/f16/q8_0) and HF checkpoints load to the same model.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GGMLType } from "../formats/gguf/index.js";
import { Rng } from "../util/random.js";
import {
  decode,
  forward,
  KVCache,
  logitsOf,
  logprobs,
  perplexity,
  scoreTokens,
  type EngineWeights,
} from "./forward.js";
import { loadModelWeights } from "./load.js";
import { createLora } from "./lora.js";
import { logSumExp } from "./ops.js";
import { llama3RopeFactors } from "./rope.js";
import { gridRandom, tinyModel, tinySpec, writeTinyGGUF, writeTinyHF } from "./testing.js";
import { LORA_TARGETS, type LoraPair, type LoraWeights, type Matrix } from "./types.js";

const dir = mkdtempSync(join(tmpdir(), "buckle-engine-forward-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function randomIds(rng: Rng, n: number, vocab: number): number[] {
  return Array.from({ length: n }, () => rng.int(0, vocab - 1));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function randomLora(model: EngineWeights, seed: number): LoraWeights {
  const lora = createLora(model.spec, { rank: 3, alpha: 6, dropout: 0.1, targets: [...LORA_TARGETS] }, seed);
  const rng = new Rng(seed + 1);
  for (const layer of lora.layers)
    for (const p of Object.values(layer) as LoraPair[]) p.b.set(gridRandom(rng, p.b.length, 0.2));
  return lora;
}

for (const arch of ["llama", "qwen2"] as const) {
  test(`KV-cached decode equals the full forward at every position (${arch}, batched, with LoRA)`, () => {
    const model = tinyModel(tinySpec({ arch, numLayers: 2, vocabSize: 50 }), 21);
    const V = model.spec.vocabSize;
    const lora = randomLora(model, 4);
    const rng = new Rng(3);
    const seqs = [randomIds(rng, 13, V), randomIds(rng, 9, V), randomIds(rng, 17, V)];
    const prompts = [5, 1, 8];
    const cache = new KVCache(model, 4, 32);
    for (const useLora of [undefined, lora]) {
      const full = seqs.map((s) =>
        logitsOf(
          model,
          forward(model, [s], { lora: useLora }),
          s.map((_, i) => i),
        ),
      );
      for (let k = 0; k < seqs.length; k++) cache.clear(k);
      // prefill all prompts in one batch, every logit returned
      const pre = decode(
        model,
        cache,
        seqs.map((s, k) => ({ seq: k, tokens: s.slice(0, prompts[k]) })),
        { lora: useLora, allLogits: true },
      );
      let row = 0;
      let worst = 0;
      seqs.forEach((_, k) => {
        for (let t = 0; t < prompts[k]; t++, row++) {
          worst = Math.max(
            worst,
            maxAbsDiff(pre.subarray(row * V, (row + 1) * V), full[k].subarray(t * V, (t + 1) * V)),
          );
        }
      });
      // then one token per step for every unfinished sequence
      const pos = prompts.slice();
      while (pos.some((p, k) => p < seqs[k].length)) {
        const live = seqs.map((_, k) => k).filter((k) => pos[k] < seqs[k].length);
        const out = decode(
          model,
          cache,
          live.map((k) => ({ seq: k, tokens: [seqs[k][pos[k]]] })),
          { lora: useLora },
        );
        live.forEach((k, i) => {
          const t = pos[k]++;
          worst = Math.max(
            worst,
            maxAbsDiff(out.subarray(i * V, (i + 1) * V), full[k].subarray(t * V, (t + 1) * V)),
          );
        });
      }
      assert.ok(worst < 1e-5, `decode vs forward: ${worst}`);
    }
  });
}

test("KVCache.copy shares a prompt between sequence slots", () => {
  const model = tinyModel(tinySpec(), 22);
  const cache = new KVCache(model, 3, 16);
  const ids = [3, 1, 4, 1, 5, 9];
  decode(model, cache, [{ seq: 0, tokens: ids.slice(0, 4) }]);
  cache.copy(0, 2);
  const a = decode(model, cache, [{ seq: 2, tokens: ids.slice(4) }]);
  const full = logitsOf(model, forward(model, [ids]), [5]);
  assert.ok(maxAbsDiff(a, full) < 1e-5);
  assert.throws(() => decode(model, cache, [{ seq: 1, tokens: new Array(17).fill(1) }]), /cache holds 16/);
});

test("scoreTokens gives log-softmax of the logits, batched like one by one; perplexity is exp(-mean)", () => {
  const model = tinyModel(tinySpec({ vocabSize: 45 }), 23);
  const V = model.spec.vocabSize;
  const rng = new Rng(8);
  const a = randomIds(rng, 12, V);
  const b = randomIds(rng, 7, V);
  const [sa, sb] = scoreTokens(model, [
    { ids: a, start: 4, end: 10 },
    { ids: b, start: 1, end: 7 },
  ]);
  assert.equal(sa.length, 6);
  assert.equal(sb.length, 6);
  const logits = logitsOf(
    model,
    forward(model, [a]),
    a.map((_, i) => i),
  );
  for (let t = 4; t < 10; t++) {
    const want = logits[(t - 1) * V + a[t]] - logSumExp(logits, (t - 1) * V, V);
    assert.ok(Math.abs(sa[t - 4] - want) < 1e-5);
  }
  assert.ok(maxAbsDiff(sb, logprobs(model, b, 1)) < 1e-6);
  // tokens after `end` must not matter
  assert.ok(maxAbsDiff(sa, logprobs(model, a.slice(0, 10), 4)) < 1e-6);
  const mean = sa.reduce((s, x) => s + x, 0) / sa.length;
  assert.ok(Math.abs(perplexity(sa) - Math.exp(-mean)) < 1e-9);
  assert.ok(perplexity(sa) > 1);
  assert.throws(() => logprobs(model, a, 0), /start/);
});

test("unmerged LoRA forward equals the merged weights W + (alpha/rank) B A", () => {
  const model = tinyModel(tinySpec(), 24);
  const lora = randomLora(model, 9);
  const scale = lora.config.alpha / lora.config.rank;
  const merge = (w: Matrix, p: LoraPair | undefined): Matrix => {
    if (!p) return w;
    const data = (w.data as Float32Array).slice();
    const r = lora.config.rank;
    for (let o = 0; o < p.out; o++) {
      for (let i = 0; i < p.in; i++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += p.b[o * r + k] * p.a[k * p.in + i];
        data[o * p.in + i] += scale * s;
      }
    }
    return { ...w, data };
  };
  const merged: EngineWeights = {
    ...model,
    layers: model.layers.map((l, i) => {
      const a = lora.layers[i];
      return {
        ...l,
        wq: merge(l.wq, a.q_proj),
        wk: merge(l.wk, a.k_proj),
        wv: merge(l.wv, a.v_proj),
        wo: merge(l.wo, a.o_proj),
        wGate: merge(l.wGate, a.gate_proj),
        wUp: merge(l.wUp, a.up_proj),
        wDown: merge(l.wDown, a.down_proj),
      };
    }),
  };
  const ids = [1, 5, 9, 2, 6, 5, 3, 5];
  const rows = ids.map((_, i) => i);
  const unmerged = logitsOf(model, forward(model, [ids], { lora }), rows);
  const base = logitsOf(model, forward(model, [ids]), rows);
  assert.ok(maxAbsDiff(unmerged, logitsOf(merged, forward(merged, [ids]), rows)) < 1e-4);
  assert.ok(maxAbsDiff(unmerged, base) > 1e-2, "the adapter changes the logits");
  // a fresh adapter (B = 0) leaves the model unchanged
  const fresh = createLora(model.spec, lora.config, 1);
  assert.equal(maxAbsDiff(logitsOf(model, forward(model, [ids], { lora: fresh }), rows), base), 0);
});

test("createLora: PEFT-style init, deterministic by seed", () => {
  const spec = tinySpec();
  const config = { rank: 4, alpha: 8, dropout: 0, targets: ["q_proj", "down_proj"] as const };
  const a = createLora(spec, { ...config, targets: [...config.targets] }, 5);
  const b = createLora(spec, { ...config, targets: [...config.targets] }, 5);
  const c = createLora(spec, { ...config, targets: [...config.targets] }, 6);
  const q = a.layers[0].q_proj as LoraPair;
  const down = a.layers[1].down_proj as LoraPair;
  assert.equal(q.a.length, 4 * spec.hiddenSize);
  assert.equal(q.b.length, spec.numHeads * spec.headDim * 4);
  assert.equal(down.in, spec.intermediateSize);
  assert.ok(q.b.every((x) => x === 0));
  const bound = 1 / Math.sqrt(spec.hiddenSize);
  assert.ok(q.a.every((x) => Math.abs(x) <= bound) && q.a.some((x) => Math.abs(x) > bound / 2));
  assert.deepEqual(a.layers[1].down_proj?.a, b.layers[1].down_proj?.a);
  assert.notDeepEqual(a.layers[1].down_proj?.a, c.layers[1].down_proj?.a);
  assert.equal(a.layers[0].k_proj, undefined);
  assert.throws(() => createLora(spec, { rank: 0, alpha: 1, dropout: 0, targets: ["q_proj"] }, 1), /rank/);
});

for (const arch of ["llama", "qwen2"] as const) {
  test(`GGUF (f32, f16, q8_0) and HF checkpoints load to the same model (${arch})`, () => {
    // widths that are multiples of 32 so that q8_0 can store them
    const spec = tinySpec({
      arch,
      hiddenSize: 32,
      intermediateSize: 64,
      headDim: 8,
      tiedEmbeddings: arch === "qwen2",
    });
    const model = tinyModel(spec, 25, 0.2);
    const ids = [4, 8, 15, 16, 23, 39];
    const rows = ids.map((_, i) => i);
    const want = logitsOf(model, forward(model, [ids]), rows);
    const hfDir = join(dir, `hf-${arch}`);
    writeTinyHF(model, hfDir);
    const fromHF = loadModelWeights(hfDir);
    assert.equal(fromHF.spec.tiedEmbeddings, spec.tiedEmbeddings);
    assert.equal(maxAbsDiff(logitsOf(fromHF, forward(fromHF, [ids]), rows), want), 0, "HF f32 is exact");
    for (const [type, tol] of [
      [GGMLType.F32, 0],
      [GGMLType.F16, 0.02],
      [GGMLType.Q8_0, 0.1],
    ] as const) {
      const path = join(dir, `${arch}-${type}.gguf`);
      writeTinyGGUF(model, path, type);
      const native = loadModelWeights(path);
      const f32 = loadModelWeights(path, { keep: "f32" });
      const expectType = type === GGMLType.F32 ? "f32" : type === GGMLType.F16 ? "f16" : "q8_0";
      assert.equal(native.layers[0].wq.type, expectType);
      assert.equal(f32.layers[0].wq.type, "f32");
      assert.equal(native.output === native.tokenEmbd, spec.tiedEmbeddings);
      const a = logitsOf(native, forward(native, [ids]), rows);
      const b = logitsOf(f32, forward(f32, [ids]), rows);
      assert.ok(maxAbsDiff(a, b) < 1e-4, "native storage computes like its f32 dequantization");
      const d = maxAbsDiff(a, want);
      assert.ok(d <= tol, `type ${type}: ${d} > ${tol}`);
      if (type !== GGMLType.F32) assert.ok(d > 0, "a lossy type is not silently stored as f32");
    }
  });
}

test("llama3 rope factors: short wavelengths kept, long ones divided by factor, smooth in between", () => {
  const spec = tinySpec({
    headDim: 64,
    ropeTheta: 500000,
    ropeScaling: {
      type: "llama3",
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalContextLength: 8192,
    },
  });
  const f = llama3RopeFactors(spec);
  assert.equal(f.length, 32);
  assert.equal(f[0], 1);
  assert.equal(f[31], 8);
  for (let i = 1; i < 32; i++) assert.ok(f[i] >= f[i - 1]);
  assert.ok(f.some((x) => x > 1 && x < 8));
});
