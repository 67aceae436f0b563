// For the engine's tests: the engine on a kernel set against the same engine on the reference kernels, on one small
// model with a LoRA adapter (big enough for several attention row blocks and for products that use two threads):
// forward logits and log-probs, KV-cached decoding, and a LoRA training step's loss and gradients.

import assert from "node:assert/strict";
import { maxAbsDiff } from "../testing/llama-reference.js";
import { Rng } from "../util/random.js";
import { lossAndGrad } from "./backward.js";
import { decode, forward, KVCache, logitsOf, scoreTokens } from "./forward.js";
import type { Kernels } from "./kernels/index.js";
import { referenceKernels } from "./kernels/reference.js";
import { createLora, zeroLoraGrads, type LoraGradPair } from "./lora.js";
import { f32Numerics } from "./numerics.js";
import { tinyModel, tinySpec } from "./testing.js";
import { LORA_TARGETS, type LoraPair } from "./types.js";

const spec = tinySpec({
  vocabSize: 300,
  hiddenSize: 64,
  intermediateSize: 96,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 16,
  contextLength: 256,
});

function sequences(): number[][] {
  const rng = new Rng(7);
  return [150, 70, 3].map((len) => Array.from({ length: len }, () => rng.int(0, spec.vocabSize - 1)));
}

function setup() {
  const model = tinyModel(spec, 11, 0.1);
  const lora = createLora(spec, { rank: 4, alpha: 8, dropout: 0.1, targets: [...LORA_TARGETS] }, 3);
  const r = new Rng(5);
  for (const l of lora.layers)
    for (const p of Object.values(l) as LoraPair[])
      for (let i = 0; i < p.b.length; i++) p.b[i] = r.normal() * 0.05;
  return { model, lora, seqs: sequences() };
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Forward logits of 223 rows and per-token log-probs equal the reference kernels' to `tol`. */
export function checkForwardAgainstReference(k: Kernels, tol = 1e-4): void {
  const { model, lora, seqs } = setup();
  const refNm = f32Numerics(referenceKernels);
  const nm = f32Numerics(k);
  const rows = Array.from({ length: 223 }, (_, i) => i);
  const ref = logitsOf(model, forward(model, seqs, { lora, numerics: refNm }), rows);
  const got = logitsOf(model, forward(model, seqs, { lora, numerics: nm }), rows);
  if (k.heap)
    assert.ok(k.heap.inHeap(model.layers[0].wq.data as Float32Array), "weights were placed in the heap");
  assert.ok(maxAbsDiff(ref, got) < tol, `logits differ by ${maxAbsDiff(ref, got)}`);
  const reqs = seqs.map((ids) => ({ ids, start: 1, end: ids.length }));
  const lpRef = scoreTokens(model, reqs, { lora, numerics: refNm });
  const lpGot = scoreTokens(model, reqs, { lora, numerics: nm });
  for (let i = 0; i < reqs.length; i++) assert.ok(maxAbsDiff(lpRef[i], lpGot[i]) < tol);
}

/** Two sequences decoded with a KV cache (a 100-token prefill, then 10 steps) equal the reference's to `tol`. */
export function checkDecodeAgainstReference(k: Kernels, tol = 1e-4): void {
  const { model, lora, seqs } = setup();
  const run = (kk: Kernels) => {
    const nm = f32Numerics(kk);
    const cache = new KVCache(model, 2, 200, kk);
    const out: number[] = [];
    const first = [
      { seq: 0, tokens: seqs[0].slice(0, 100) },
      { seq: 1, tokens: seqs[1] },
    ];
    out.push(...decode(model, cache, first, { lora, numerics: nm }));
    for (let t = 100; t < 110; t++) {
      const step = [
        { seq: 0, tokens: [seqs[0][t]] },
        { seq: 1, tokens: [seqs[0][t]] },
      ];
      out.push(...decode(model, cache, step, { lora, numerics: nm }));
    }
    cache.dispose();
    return out;
  };
  const d = maxAbsDiff(run(referenceKernels), run(k));
  assert.ok(d < tol, `decode logits differ by ${d}`);
}

/** A LoRA training step (dropout on): loss to 1e-5 per token, every adapter gradient to 1e-3 of its scale. */
export function checkLoraStepAgainstReference(k: Kernels): void {
  const { model, lora, seqs } = setup();
  const train = seqs.map((ids) => ({ ids, mask: new Uint8Array(ids.length).fill(1) }));
  const grads = (kk: Kernels) => {
    const g = zeroLoraGrads(lora, (n) => new Float32Array(n));
    const r = lossAndGrad(model, train, { lora, loraGrads: g, numerics: f32Numerics(kk), dropoutSeed: 9 });
    return { r, g };
  };
  const ref = grads(referenceKernels);
  const got = grads(k);
  assert.equal(got.r.count, ref.r.count);
  assert.ok(
    Math.abs(got.r.lossSum - ref.r.lossSum) < 1e-5 * ref.r.count,
    `loss ${got.r.lossSum} vs ${ref.r.lossSum}`,
  );
  ref.g.layers.forEach((layer, l) => {
    for (const t of LORA_TARGETS) {
      const a = layer[t] as LoraGradPair;
      const b = got.g.layers[l][t] as LoraGradPair;
      for (const f of ["a", "b"] as const) {
        const scale = Math.max(1e-6, maxAbs(a[f]));
        assert.ok(
          maxAbsDiff(a[f], b[f]) < 1e-3 * scale,
          `layer ${l} ${t}.${f}: ${maxAbsDiff(a[f], b[f])} of ${scale}`,
        );
      }
    }
  });
}
