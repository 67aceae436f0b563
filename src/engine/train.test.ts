// Training: schedules, gradient accumulation, a LoRA run that learns a fixed answer pattern, full fine-tuning,
// and resume after an interruption giving a bit-identical adapter.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../util/random.js";
import { cloneLora } from "./lora.js";
import { tinyModel, tinySpec } from "./testing.js";
import { learningRateAt, train, type TrainConfig, type TrainExample } from "./train.js";
import { LORA_TARGETS, type LoraPair, type LoraWeights } from "./types.js";

const dir = mkdtempSync(join(tmpdir(), "buckle-engine-train-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Token-level "chats": [BOS, USER, q1..qk, ASSISTANT, answer..., EOS] with random questions and one fixed
 * answer; loss only on the answer tokens (and EOS), as the chat template's assistant spans would select.
 */
const BOS = 0;
const USER = 1;
const ASSISTANT = 2;
const EOS = 3;
function chats(n: number, seed: number, vocab: number): TrainExample[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const q = Array.from({ length: rng.int(3, 7) }, () => rng.int(10, vocab - 1));
    const answer = [4, 5, 6, 7, 8, 9, EOS];
    const ids = [BOS, USER, ...q, ASSISTANT, ...answer];
    const start = ids.length - answer.length;
    return { ids, spans: [{ start, end: ids.length }] };
  });
}

function flat(lora: LoraWeights): Float32Array[] {
  return lora.layers.flatMap((l) => (Object.values(l) as LoraPair[]).flatMap((p) => [p.a, p.b]));
}

test("learning-rate schedules: warmup, then constant, cosine or linear decay", () => {
  const c: TrainConfig = { seed: 1, learningRate: 1e-3, batchSize: 1, warmupSteps: 4, schedule: "cosine" };
  assert.equal(learningRateAt(c, 0, 20), 2.5e-4);
  assert.equal(learningRateAt(c, 3, 20), 1e-3);
  assert.equal(learningRateAt(c, 4, 20), 1e-3);
  assert.ok(Math.abs(learningRateAt(c, 12, 20) - 5e-4) < 1e-12);
  assert.ok(learningRateAt(c, 19, 20) < 2e-5);
  assert.equal(
    learningRateAt({ ...c, schedule: "linear", minLrRatio: 0.1 }, 12, 20),
    1e-3 * (0.1 + 0.9 * 0.5),
  );
  assert.equal(learningRateAt({ ...c, schedule: "constant" }, 19, 20), 1e-3);
});

test("gradient accumulation: 2 micro-batches of 2 make the same step as 1 batch of 4", async () => {
  const spec = tinySpec({ vocabSize: 30 });
  const data = chats(4, 3, 30);
  const base: TrainConfig = {
    seed: 5,
    lora: { rank: 4, alpha: 8, dropout: 0, targets: [...LORA_TARGETS] },
    learningRate: 1e-2,
    batchSize: 4,
    steps: 2,
    maxGradNorm: 0,
  };
  const a = await train(tinyModel(spec, 1), data, base);
  const b = await train(tinyModel(spec, 1), data, { ...base, batchSize: 2, gradAccumSteps: 2 });
  assert.equal(a.history.length, 2);
  assert.ok(Math.abs(a.history[0].loss - b.history[0].loss) < 1e-6);
  const fa = flat(a.lora as LoraWeights);
  const fb = flat(b.lora as LoraWeights);
  let maxDiff = 0;
  let moved = 0;
  const init = flat(
    cloneLora((await train(tinyModel(spec, 1), data, { ...base, steps: 0 })).lora as LoraWeights),
  );
  fa.forEach((x, i) => {
    for (let j = 0; j < x.length; j++) {
      maxDiff = Math.max(maxDiff, Math.abs(x[j] - fb[i][j]));
      moved = Math.max(moved, Math.abs(x[j] - init[i][j]));
    }
  });
  assert.ok(moved > 1e-3, "the adapter moved");
  assert.ok(maxDiff < 1e-5, `accumulated vs single batch: ${maxDiff}`);
});

test("LoRA learns a fixed answer pattern: held-out loss falls below 15% of its start", async (t) => {
  const V = 40;
  const model = tinyModel(
    tinySpec({ vocabSize: V, hiddenSize: 32, intermediateSize: 64, headDim: 8 }),
    7,
    0.2,
  );
  const trainSet = chats(48, 11, V);
  const evalSet = chats(16, 12, V);
  const seen: number[] = [];
  const result = await train(
    model,
    trainSet,
    {
      seed: 3,
      lora: { rank: 8, alpha: 16, dropout: 0.05, targets: [...LORA_TARGETS] },
      learningRate: 1e-2,
      schedule: "cosine",
      warmupSteps: 5,
      weightDecay: 0.01,
      batchSize: 8,
      epochs: 5,
      evalEvery: 10,
    },
    { evalSet, onProgress: (p) => seen.push(p.step) },
  );
  assert.equal(result.totalSteps, 30);
  assert.deepEqual(
    seen,
    Array.from({ length: 30 }, (_, i) => i + 1),
  );
  const first = result.evals[0].loss;
  const last = result.evals[result.evals.length - 1].loss;
  t.diagnostic(
    `held-out loss ${first.toFixed(3)} -> ${last.toFixed(3)}; evals at ${result.evals.map((e) => e.step)}`,
  );
  assert.deepEqual(
    result.evals.map((e) => e.step),
    [0, 10, 20, 30],
  );
  assert.ok(last < 0.15 * first, `held-out loss ${first} -> ${last}`);
  assert.ok(result.history.every((p) => p.tokensPerSecond > 0 && p.lr > 0));
});

test("resume after an interruption yields a bit-identical adapter", async () => {
  const V = 30;
  const spec = tinySpec({ vocabSize: V });
  const data = chats(10, 21, V);
  const config: TrainConfig = {
    seed: 9,
    lora: { rank: 4, alpha: 8, dropout: 0.1, targets: ["q_proj", "v_proj", "o_proj", "down_proj"] },
    learningRate: 5e-3,
    schedule: "cosine",
    warmupSteps: 2,
    weightDecay: 0.1,
    batchSize: 2,
    gradAccumSteps: 2,
    epochs: 3,
    checkpointEvery: 3,
  };
  const whole = await train(tinyModel(spec, 2), data, { ...config, checkpointDir: join(dir, "whole") });
  assert.equal(whole.step, 8);

  const ckdir = join(dir, "interrupted");
  const abort = new AbortController();
  const part = await train(
    tinyModel(spec, 2),
    data,
    { ...config, checkpointDir: ckdir },
    { signal: abort.signal, onProgress: (p) => p.step === 5 && abort.abort() },
  );
  assert.equal(part.stopped, true);
  assert.equal(part.step, 5);
  assert.deepEqual(readdirSync(ckdir), ["checkpoint-00000003.bckpt"]);
  // the process "died" after step 5: steps 4 and 5 are redone from the step-3 checkpoint
  const resumed = await train(
    tinyModel(spec, 2),
    data,
    { ...config, checkpointDir: ckdir },
    { resumeFrom: ckdir },
  );
  assert.equal(resumed.step, 8);
  const a = flat(whole.lora as LoraWeights);
  const b = flat(resumed.lora as LoraWeights);
  a.forEach((x, i) => assert.deepEqual(x, b[i]));
  assert.deepEqual(
    resumed.history.map((p) => p.loss),
    whole.history.map((p) => p.loss),
  );
  // an uninterrupted run differs from one with another seed (the check above is not vacuous)
  const other = await train(tinyModel(spec, 2), data, { ...config, seed: 10 });
  assert.notDeepEqual(flat(other.lora as LoraWeights)[0], a[0]);

  await assert.rejects(
    train(tinyModel(spec, 2), data, { ...config, learningRate: 1e-3 }, { resumeFrom: ckdir }),
    /learningRate differs/,
  );
  await assert.rejects(
    train(tinyModel(spec, 2), chats(10, 22, V), config, { resumeFrom: ckdir }),
    /training data differ/,
  );
});

test("full fine-tuning updates every base weight and lowers the loss", async () => {
  const V = 30;
  const model = tinyModel(tinySpec({ vocabSize: V, tiedEmbeddings: true }), 3, 0.2);
  const before = model.layers[1].wDown.data.slice();
  const normBefore = model.outputNorm.slice();
  const result = await train(model, chats(16, 31, V), {
    seed: 1,
    fullFineTune: true,
    learningRate: 3e-3,
    batchSize: 8,
    steps: 20,
  });
  assert.equal(result.lora, undefined);
  assert.ok(
    result.history[19].loss < 0.7 * result.history[0].loss,
    `${result.history[0].loss} -> ${result.history[19].loss}`,
  );
  assert.notDeepEqual(model.layers[1].wDown.data, before);
  assert.notDeepEqual(model.outputNorm, normBefore);
  const q8 = tinyModel(tinySpec({ vocabSize: V }), 3);
  q8.layers[0].wq = {
    ...q8.layers[0].wq,
    type: "f16",
    data: new Uint16Array(q8.layers[0].wq.rows * q8.layers[0].wq.cols),
  };
  await assert.rejects(
    train(q8, chats(4, 1, V), { seed: 1, fullFineTune: true, learningRate: 1e-3, batchSize: 2 }),
    /needs f32/,
  );
});
