// The engine on the fast WebAssembly kernels (weights and activations in their heap, attention as matrix
// products) against the same engine on the reference kernels: forward logits, log-probs, KV-cached decoding,
// and a LoRA training step's loss and gradients.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../util/random.js";
import { lossAndGrad } from "./backward.js";
import { decode, forward, KVCache, logitsOf, scoreTokens } from "./forward.js";
import { getFastKernels } from "./kernels/fast.js";
import { referenceKernels } from "./kernels/reference.js";
import { createLora, zeroLoraGrads, type LoraGradPair } from "./lora.js";
import { f32Numerics } from "./numerics.js";
import { tinyModel, tinySpec } from "./testing.js";
import { LORA_TARGETS, type LoraPair } from "./types.js";

const fast = getFastKernels();
test.before(async () => fast.init({ threads: 2 }));
test.after(async () => fast.dispose());

// Big enough for several attention row blocks (64 rows) and for products that use both threads.
const spec = tinySpec({
  vocabSize: 300,
  hiddenSize: 64,
  intermediateSize: 96,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 16,
  contextLength: 256,
});
const rng = new Rng(7);
const seqs = [150, 70, 3].map((len) => Array.from({ length: len }, () => rng.int(0, spec.vocabSize - 1)));

function setup() {
  const model = tinyModel(spec, 11, 0.1);
  const lora = createLora(spec, { rank: 4, alpha: 8, dropout: 0.1, targets: [...LORA_TARGETS] }, 3);
  const r = new Rng(5);
  for (const l of lora.layers)
    for (const p of Object.values(l) as LoraPair[])
      for (let i = 0; i < p.b.length; i++) p.b[i] = r.normal() * 0.05;
  return { model, lora };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

test("fast kernels: forward logits and log-probs equal the reference kernels' (< 1e-4)", () => {
  const { model, lora } = setup();
  const refNm = f32Numerics(referenceKernels);
  const fastNm = f32Numerics(fast);
  const rows = Array.from({ length: 223 }, (_, i) => i);
  const ref = logitsOf(model, forward(model, seqs, { lora, numerics: refNm }), rows);
  const got = logitsOf(model, forward(model, seqs, { lora, numerics: fastNm }), rows);
  assert.ok(fast.inHeap(model.layers[0].wq.data as Float32Array), "weights were placed in the heap");
  assert.ok(maxDiff(ref, got) < 1e-4, `logits differ by ${maxDiff(ref, got)}`);
  const reqs = seqs.map((ids) => ({ ids, start: 1, end: ids.length }));
  const lpRef = scoreTokens(model, reqs, { lora, numerics: refNm });
  const lpFast = scoreTokens(model, reqs, { lora, numerics: fastNm });
  for (let k = 0; k < reqs.length; k++) assert.ok(maxDiff(lpRef[k], lpFast[k]) < 1e-4);
});

test("fast kernels: KV-cached decoding (cache in the heap) equals the reference", () => {
  const { model, lora } = setup();
  const run = (nmK: typeof fast | typeof referenceKernels) => {
    const nm = f32Numerics(nmK);
    const cache = new KVCache(model, 2, 200, nmK);
    const out: number[] = [];
    const first = decode(
      model,
      cache,
      [
        { seq: 0, tokens: seqs[0].slice(0, 100) },
        { seq: 1, tokens: seqs[1] },
      ],
      { lora, numerics: nm },
    );
    out.push(...first);
    for (let t = 100; t < 110; t++) {
      const l = decode(
        model,
        cache,
        [
          { seq: 0, tokens: [seqs[0][t]] },
          { seq: 1, tokens: [seqs[0][t]] },
        ],
        { lora, numerics: nm },
      );
      out.push(...l);
    }
    cache.dispose();
    return out;
  };
  const ref = run(referenceKernels);
  const got = run(fast);
  assert.ok(maxDiff(ref, got) < 1e-4, `decode logits differ by ${maxDiff(ref, got)}`);
});

test("fast kernels: a LoRA training step's loss and gradients equal the reference's", () => {
  const { model, lora } = setup();
  const train = seqs.map((ids) => ({ ids, mask: new Uint8Array(ids.length).fill(1) }));
  const grads = (k: typeof fast | typeof referenceKernels) => {
    const g = zeroLoraGrads(lora, (n) => new Float32Array(n));
    const r = lossAndGrad(model, train, { lora, loraGrads: g, numerics: f32Numerics(k), dropoutSeed: 9 });
    return { r, g };
  };
  const ref = grads(referenceKernels);
  const got = grads(fast);
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
          maxDiff(a[f], b[f]) < 1e-3 * scale,
          `layer ${l} ${t}.${f}: ${maxDiff(a[f], b[f])} of ${scale}`,
        );
      }
    }
  });
});
