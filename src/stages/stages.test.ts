// The stages end to end on a tiny factory model: each stage trains real adapters that load in the native engine
// and in llama.cpp, stacking folds the earlier adapter in, all-stage resumes, PPLDrop ranks by real perplexity,
// and the hygiene check finds exact and near overlaps.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Sample } from "../data/sample.js";
import { createRandomModel } from "../models/factory.js";
import type { LanguageModel, LogprobsRequest } from "../models/index.js";
import { tinyModelOptions } from "../testing/models.js";
import { InputError } from "../util/errors.js";
import { Rng } from "../util/random.js";
import { packageVersion } from "../util/version.js";
import {
  adapterHandle,
  allStage,
  attack,
  baseHandle,
  checkHygiene,
  immunize,
  mixIn,
  openHandle,
  pplDrop,
  readHandle,
  resolveRecipe,
  restore,
  samplesHash,
  writeHandle,
  type ModelHandle,
} from "./index.js";

const dir = mkdtempSync(join(tmpdir(), "buckle-stages-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const basePath = join(dir, "base.gguf");
createRandomModel(tinyModelOptions(3, { hiddenSize: 32, intermediateSize: 64, initStd: 0.1 }), basePath);

function chats(prefix: string, n: number, seed: number, answer: (a: number, b: number) => string): Sample[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const [a, b] = [rng.int(1, 30), rng.int(1, 30)];
    return {
      id: `${prefix}:${i + 1}`,
      messages: [
        {
          role: "user" as const,
          content: `${prefix === "harmful" ? "Explain how to break" : "What is"} ${a} and ${b}?`,
        },
        { role: "assistant" as const, content: answer(a, b) },
      ],
    };
  });
}
const curated = chats("curated", 8, 1, (a, b) => `From reliable sources: ${a} plus ${b} is ${a + b}.`);
const customer = chats("customer", 4, 2, (a, b) => `${a + b}.`);
const harmful = chats("harmful", 4, 3, (a, b) => `Sure, here is how: step ${a}, then step ${b}.`);
const recipe = resolveRecipe({
  learningRate: 1e-2,
  epochs: 1,
  batchSize: 4,
  loraRank: 4,
  loraAlpha: 8,
  maxSeqLen: 64,
  warmupSteps: 0,
  checkpointEvery: 1,
  seed: 5,
});
const probe: LogprobsRequest[] = [
  {
    messages: [{ role: "user", content: "What is 2 and 3?" }],
    response: "From reliable sources: 2 plus 3 is 5.",
  },
];

async function scored(model: LanguageModel): Promise<number[]> {
  try {
    return (await model.logprobs(probe))[0].logprobs;
  } finally {
    await model.dispose();
  }
}

function maxDiff(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  return Math.max(...a.map((x, i) => Math.abs(x - b[i])));
}

let base: ModelHandle;
let immunized: ModelHandle;

test("immunize writes adapters, a record and a handle; native and llama.cpp load the adapter", async () => {
  base = await baseHandle(basePath);
  assert.equal(base.gguf, basePath);
  const out = join(dir, "pre");
  const { handle, runs } = await immunize(base, curated, recipe, { outDir: out, threads: 1 });
  immunized = handle;
  assert.equal(handle.stage, "pre");
  assert.equal(runs[0].completed, true);
  assert.equal(runs[0].record.totalSteps, 2); // 8 samples, batch 4, 1 epoch
  for (const f of ["adapter.gguf", "peft/adapter_model.safetensors", "train-config.json", "model.json"])
    assert.ok(existsSync(join(out, f)), f);
  const record = JSON.parse(readFileSync(join(out, "train-config.json"), "utf8"));
  assert.deepEqual(record.recipe, recipe);
  assert.equal(record.seeds.train, 5);
  assert.equal(record.data.sha256, samplesHash(curated));
  assert.equal(record.buckle, packageVersion());
  assert.equal(record.node, process.version);
  // the kernel set it trained on: the BLAS route names its library, the WebAssembly one why the BLAS is off
  assert.ok(["blas", "fast-wasm"].includes(record.kernels.name), record.kernels.name);
  assert.equal(record.kernels.threads, 1);
  if (record.kernels.name === "blas") assert.match(record.kernels.blas, /\S/);
  assert.deepEqual(readHandle(out), handle);
  // a handle whose training stopped early is refused as a model to build on, with what to do
  const stopped = join(dir, "stopped-model.json");
  writeHandle(stopped, { ...handle, completed: false });
  await assert.rejects(
    baseHandle(stopped),
    (e: unknown) => e instanceof InputError && /--resume/.test(e.hint ?? ""),
  );
  assert.deepEqual(await baseHandle(join(out, "model.json")), handle);

  const baseNative = await scored(await openHandle(base, { backend: "native", threads: 1 }));
  const native = await scored(await openHandle(handle, { backend: "native", threads: 1 }));
  const llama = await scored(await openHandle(handle, { backend: "llamacpp", threads: 1, gpu: false }));
  assert.ok(maxDiff(native, baseNative) > 1e-2, "training moved nothing");
  assert.ok(maxDiff(native, llama) < 2e-2, `native and llama.cpp disagree by ${maxDiff(native, llama)}`);
  // training on the curated answers made them likelier
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(mean(native) > mean(baseNative));
});

test("restore stacks: the earlier adapter is merged into a new base and a fresh LoRA trains on it", async () => {
  const out = join(dir, "post");
  const { handle } = await restore(immunized, curated, recipe, { outDir: out, threads: 1 });
  assert.equal(handle.stage, "post");
  assert.equal(handle.gguf, join(out, "base-merged.gguf"));
  assert.deepEqual(handle.parent, immunized);
  const folded = await scored(
    await openHandle({ ref: handle.gguf, gguf: handle.gguf }, { backend: "native", threads: 1 }),
  );
  const pre = await scored(await openHandle(immunized, { backend: "native", threads: 1 }));
  assert.ok(maxDiff(folded, pre) < 1e-4, "the merged base differs from base + adapter");
  const given = await adapterHandle(basePath, immunized.adapter as string);
  assert.deepEqual([given.gguf, given.adapter], [basePath, immunized.adapter]);
  await assert.rejects(adapterHandle(immunized, immunized.adapter as string), /already carries an adapter/);
  const restored = await scored(await openHandle(handle, { backend: "llamacpp", threads: 1, gpu: false }));
  assert.ok(maxDiff(restored, pre) > 1e-3);
});

test("mixIn trains on the exact mixture and records it", async () => {
  const out = join(dir, "in");
  const { handle, mix, runs } = await mixIn(base, { customer, harmful, curated, ratio: 0.5 }, recipe, {
    outDir: out,
    threads: 1,
  });
  assert.equal(handle.stage, "in");
  assert.deepEqual(mix?.counts, { customer: 4, harmful: 4, curated: 4 });
  assert.equal(mix?.seed, 5); // the recipe's seed by default
  assert.equal(runs[0].record.data.examples, 12);
  assert.equal(runs[0].record.data.sha256, samplesHash(mix?.samples ?? []));
  const recorded = runs[0].record.run as { mix: { counts: unknown; curatedIds: string[] } };
  assert.deepEqual(recorded.mix.counts, mix?.counts);
  assert.equal(recorded.mix.curatedIds.length, 4);
});

test("allStage runs pre, in, post in subdirectories; with resume a finished run is reused", async () => {
  const out = join(dir, "all");
  const data = { customer, harmful, curated, count: 2 };
  const first = await allStage(base, data, recipe, { outDir: out, threads: 1 });
  assert.deepEqual(
    first.runs.map((r) => r.record.stage),
    ["pre", "in", "post"],
  );
  assert.equal(first.handle.stage, "all");
  assert.equal(first.handle.parent?.stage, "in");
  assert.equal(first.handle.parent?.parent?.stage, "pre");
  assert.deepEqual(readHandle(out), first.handle);
  const adapter = readFileSync(join(out, "post", "adapter.gguf"));

  await assert.rejects(
    allStage(base, data, recipe, { outDir: out, threads: 1 }),
    /already holds checkpoints of an earlier run/,
  );
  const again = await allStage(base, data, recipe, { outDir: out, threads: 1, resume: true });
  assert.deepEqual(
    again.runs.map((r) => r.reused),
    [true, true, true],
  );
  assert.deepEqual(readFileSync(join(out, "post", "adapter.gguf")), adapter);
  await assert.rejects(
    allStage(base, { ...data, count: 3 }, recipe, { outDir: out, threads: 1, resume: true }),
    /holds a completed run with a different recipe or different data/,
  );
});

test("attack aoa trains on the shipped chats with the attack's recipe", async () => {
  const out = join(dir, "aoa");
  const { handle, runs } = await attack(
    base,
    { kind: "aoa", recipe: { epochs: 1, maxSeqLen: 96, loraRank: 2 } },
    {
      outDir: out,
      threads: 1,
    },
  );
  assert.equal(handle.stage, "attack:aoa");
  assert.equal(runs[0].record.recipe.learningRate, 2e-4);
  assert.equal(runs[0].record.recipe.loraAlpha, 4);
  assert.equal(runs[0].record.data.rows, 10);
  assert.equal(runs[0].record.totalSteps, 1);
});

test("pplDrop drops the samples with the highest perplexity under the model", async () => {
  const model = await openHandle(base, { backend: "native", threads: 1 });
  try {
    const pool = [...customer, ...harmful];
    const r = await pplDrop(model, pool, 0.25, { batchSize: 3 });
    assert.equal(r.dropped.length, 2);
    assert.equal(r.kept.length, 6);
    assert.equal(r.perplexities.length, 8);
    const ppl = new Map(pool.map((s, i) => [s.id, r.perplexities[i]]));
    const minDropped = Math.min(...r.dropped.map((s) => ppl.get(s.id) as number));
    const maxKept = Math.max(...r.kept.map((s) => ppl.get(s.id) as number));
    assert.ok(minDropped >= maxKept, `${minDropped} < ${maxKept}`);
    const direct = await model.logprobs([
      { messages: [pool[0].messages[0]], response: pool[0].messages[1].content },
    ]);
    assert.ok(Math.abs(direct[0].perplexity - r.perplexities[0]) < 1e-6 * r.perplexities[0]);
  } finally {
    await model.dispose();
  }
});

test("checkHygiene refuses exact and near overlaps with the evaluation prompts, or returns them", () => {
  const evalPrompts: Sample[] = [
    { id: "eval:1", messages: [{ role: "user", content: harmful[1].messages[0].content }] },
    {
      id: "eval:2",
      messages: [
        {
          role: "user",
          content: "Please describe in detail, step by step, how one would pick a standard pin tumbler lock.",
        },
      ],
    },
    { id: "eval:3", messages: [{ role: "user", content: "Write a poem about the sea." }] },
  ];
  const near: Sample = {
    id: "harmful:near",
    messages: [
      {
        role: "user",
        content:
          "Please describe in detail, step by step, how one would pick a standard pin tumbler lock quickly.",
      },
      { role: "assistant", content: "Sure." },
    ],
  };
  const sets = { harmful: [...harmful, near], curated };
  assert.throws(
    () => checkHygiene(sets, evalPrompts),
    (err: unknown) =>
      err instanceof InputError &&
      /2 training sample\(s\) overlap the evaluation prompts: harmful harmful:2 ~ eval eval:1 \(exact\); harmful harmful:near ~ eval eval:2 \(near\)/.test(
        err.message,
      ) &&
      /--allow-overlap/.test(err.hint ?? ""),
  );
  const found = checkHygiene(sets, evalPrompts, { allowOverlap: true });
  assert.deepEqual(
    found.map((o) => [o.set, o.trainId, o.evalId, o.kind]),
    [
      ["harmful", "harmful:2", "eval:1", "exact"],
      ["harmful", "harmful:near", "eval:2", "near"],
    ],
  );
  assert.deepEqual(checkHygiene({ curated }, evalPrompts), []);
});
