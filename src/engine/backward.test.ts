// Gradients of every layer type and of LoRA A/B against central finite differences, all in float64,
// on tiny in-memory models; and the float32 engine's gradients against the float64 ones.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../util/random.js";
import { lossAndGrad, maskFromSpans, zeroBaseGrads, type BaseGrads, type TrainSequence } from "./backward.js";
import type { EngineWeights } from "./forward.js";
import { createLora, zeroLoraGrads, type LoraGrads } from "./lora.js";
import { f32Numerics, f64Numerics, type FArray } from "./numerics.js";
import { gridRandom, namedTensors, tinyModel, tinySpec } from "./testing.js";
import { LORA_TARGETS, type LoraPair, type LoraTarget, type LoraWeights } from "./types.js";

/** Exact in float32 for weights on the 2^-12 grid; truncation error ~eps² is far below the tolerance. */
const EPS = 2 ** -10;
const SAMPLES_PER_TENSOR = 6;
const TOLERANCE = 1e-3;

function batch(vocab: number): TrainSequence[] {
  const rng = new Rng(11);
  const a = Array.from({ length: 9 }, () => rng.int(0, vocab - 1));
  const b = Array.from({ length: 6 }, () => rng.int(0, vocab - 1));
  return [
    { ids: a, mask: maskFromSpans(a.length, [{ start: 3, end: 9 }]) },
    {
      ids: b,
      mask: maskFromSpans(b.length, [
        { start: 1, end: 3 },
        { start: 4, end: 6 },
      ]),
    },
  ];
}

function namedGrads(g: BaseGrads): FArray[] {
  const out: FArray[] = [g.tokenEmbd];
  for (const l of g.layers) {
    out.push(l.attnNorm, l.wq, l.wk, l.wv);
    if (l.bq) out.push(l.bq);
    if (l.bk) out.push(l.bk);
    if (l.bv) out.push(l.bv);
    out.push(l.wo, l.ffnNorm, l.wGate, l.wUp, l.wDown);
  }
  out.push(g.outputNorm);
  if (g.output) out.push(g.output);
  return out;
}

/**
 * ‖g_fd - g‖ / ‖g_fd‖ over a sample of entries of `param`, with g_fd = (L(θ+ε) - L(θ-ε)) / 2ε.
 * Entries are perturbed in place and restored.
 */
function checkTensor(param: Float32Array, grad: FArray, loss: () => number, rng: Rng): number {
  let num = 0;
  let den = 0;
  for (let s = 0; s < SAMPLES_PER_TENSOR; s++) {
    const i = rng.int(0, param.length - 1);
    const w = param[i];
    param[i] = w + EPS;
    const up = loss();
    param[i] = w - EPS;
    const down = loss();
    param[i] = w;
    assert.equal(param[i], w);
    const fd = (up - down) / (2 * EPS);
    num += (fd - grad[i]) ** 2;
    den += fd * fd;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-12);
}

function meanLoss(
  model: EngineWeights,
  seqs: TrainSequence[],
  lora?: LoraWeights,
  dropoutSeed?: number,
): number {
  const r = lossAndGrad(model, seqs, { numerics: f64Numerics, lora, dropoutSeed });
  return r.lossSum / r.count;
}

for (const tied of [false, true]) {
  test(`base-weight gradients match finite differences (GQA 4/2, q/k/v biases, ${tied ? "tied" : "untied"})`, (t) => {
    const model = tinyModel(tinySpec({ tiedEmbeddings: tied }), tied ? 2 : 1);
    const seqs = batch(model.spec.vocabSize);
    const grads = zeroBaseGrads(model, (n) => new Float64Array(n));
    lossAndGrad(model, seqs, { numerics: f64Numerics, baseGrads: grads });
    const rng = new Rng(5);
    const names = namedTensors(model);
    const gs = namedGrads(grads);
    assert.equal(names.length, gs.length);
    let worst = 0;
    names.forEach(([name, param], k) => {
      const err = checkTensor(param, gs[k], () => meanLoss(model, seqs), rng);
      worst = Math.max(worst, err);
      assert.ok(err < TOLERANCE, `${name}: relative error ${err}`);
    });
    t.diagnostic(`worst relative error over ${names.length} tensors: ${worst.toExponential(2)}`);
  });
}

/** LoRA on every projection with random (non-zero) B, so ∂L/∂A is not trivially zero. */
function randomLora(model: EngineWeights, dropout: number): LoraWeights {
  const lora = createLora(model.spec, { rank: 2, alpha: 4, dropout, targets: [...LORA_TARGETS] }, 3);
  const rng = new Rng(9);
  for (const layer of lora.layers) {
    for (const p of Object.values(layer) as LoraPair[]) {
      p.a.set(gridRandom(rng, p.a.length, 0.3));
      p.b.set(gridRandom(rng, p.b.length, 0.3));
    }
  }
  return lora;
}

function loraTensors(lora: LoraWeights, grads: LoraGrads): [string, Float32Array, FArray][] {
  const out: [string, Float32Array, FArray][] = [];
  lora.layers.forEach((layer, l) => {
    for (const t of Object.keys(layer) as LoraTarget[]) {
      const p = layer[t] as LoraPair;
      const g = grads.layers[l][t];
      assert.ok(g);
      out.push([`${l}.${t}.A`, p.a, g.a], [`${l}.${t}.B`, p.b, g.b]);
    }
  });
  return out;
}

for (const dropout of [0, 0.3]) {
  test(`LoRA A/B gradients of all seven projections match finite differences (dropout ${dropout})`, (t) => {
    const model = tinyModel(tinySpec(), 4);
    const seqs = batch(model.spec.vocabSize);
    const lora = randomLora(model, dropout);
    const dropoutSeed = dropout > 0 ? 77 : undefined;
    const grads = zeroLoraGrads(lora, (n) => new Float64Array(n));
    lossAndGrad(model, seqs, { numerics: f64Numerics, lora, loraGrads: grads, dropoutSeed });
    const rng = new Rng(6);
    let worst = 0;
    const tensors = loraTensors(lora, grads);
    assert.equal(tensors.length, 2 * 7 * model.spec.numLayers);
    for (const [name, param, grad] of tensors) {
      const err = checkTensor(param, grad, () => meanLoss(model, seqs, lora, dropoutSeed), rng);
      worst = Math.max(worst, err);
      assert.ok(err < TOLERANCE, `${name}: relative error ${err}`);
    }
    t.diagnostic(`worst relative error over ${tensors.length} LoRA factors: ${worst.toExponential(2)}`);
  });
}

test("dropout changes the loss, and the same seed gives the same loss", () => {
  const model = tinyModel(tinySpec(), 4);
  const seqs = batch(model.spec.vocabSize);
  const lora = randomLora(model, 0.3);
  const a = meanLoss(model, seqs, lora, 1);
  assert.equal(meanLoss(model, seqs, lora, 1), a);
  assert.notEqual(meanLoss(model, seqs, lora, 2), a);
  assert.notEqual(meanLoss(model, seqs, lora, undefined), a);
});

test("float32 engine gradients agree with the float64 ones", () => {
  const model = tinyModel(tinySpec({ numKvHeads: 4 }), 8);
  const seqs = batch(model.spec.vocabSize);
  const lora = randomLora(model, 0);
  const g64 = zeroLoraGrads(lora, (n) => new Float64Array(n));
  const b64 = zeroBaseGrads(model, (n) => new Float64Array(n));
  const r64 = lossAndGrad(model, seqs, { numerics: f64Numerics, lora, loraGrads: g64, baseGrads: b64 });
  const g32 = zeroLoraGrads(lora, (n) => new Float32Array(n));
  const b32 = zeroBaseGrads(model, (n) => new Float32Array(n));
  const r32 = lossAndGrad(model, seqs, { numerics: f32Numerics(), lora, loraGrads: g32, baseGrads: b32 });
  assert.ok(Math.abs(r32.lossSum - r64.lossSum) < 1e-4 * r64.lossSum);
  const pairs: [FArray, FArray][] = [
    ...loraTensors(lora, g64).map(([, , g], i) => [g, loraTensors(lora, g32)[i][2]] as [FArray, FArray]),
    ...namedGrads(b64).map((g, i) => [g, namedGrads(b32)[i]] as [FArray, FArray]),
  ];
  for (const [a, b] of pairs) {
    let num = 0;
    let den = 0;
    for (let i = 0; i < a.length; i++) {
      num += (a[i] - b[i]) ** 2;
      den += a[i] ** 2;
    }
    assert.ok(Math.sqrt(num) <= 1e-4 * Math.sqrt(den) + 1e-9, `relative difference ${Math.sqrt(num / den)}`);
  }
});
