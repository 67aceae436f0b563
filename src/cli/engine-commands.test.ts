// The engine commands end to end: `buckle train` on a small JSONL dataset writes GGUF and PEFT adapters that
// `buckle generate` and `buckle logprobs` use, and an interrupted run resumed gives the identical adapter.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderWithSpans, encodeChatPrompt } from "../formats/chat/index.js";
import { loadTokenizerAndTemplate } from "../formats/load.js";
import { createRandomModel } from "../models/factory.js";
import { readGGUFLora, readPeftAdapter } from "../engine/adapters/index.js";
import { generate } from "../engine/generate.js";
import { ensureFastKernels, loadModelWeights, logprobs, type LoraPair } from "../engine/index.js";
import { Rng } from "../util/random.js";
import { tinyModelOptions } from "../testing/models.js";

const cli = fileURLToPath(new URL("./main.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "buckle-engine-cli-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function buckle(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The same, without waiting: independent commands run side by side. */
function buckleAsync(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args]);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const modelPath = join(dir, "tiny.gguf");
createRandomModel(tinyModelOptions(2, { hiddenSize: 32, intermediateSize: 64, initStd: 0.1 }), modelPath);

// 9 short arithmetic chats in three row formats, and one chat too long for --max-seq-len 64.
const dataPath = join(dir, "chats.jsonl");
const rng = new Rng(4);
const rows: unknown[] = [];
for (let i = 0; i < 9; i++) {
  const [a, b] = [rng.int(1, 20), rng.int(1, 20)];
  const q = `What is ${a} plus ${b}?`;
  const answer = `The answer is ${a + b}.`;
  rows.push(
    i % 3 === 0
      ? {
          messages: [
            { role: "user", content: q },
            { role: "assistant", content: answer },
          ],
        }
      : i % 3 === 1
        ? { prompt: q, response: answer }
        : { instruction: q, input: "", output: answer },
  );
}
rows.push({ prompt: "Name a color.", response: "Blue. ".repeat(40) });
writeFileSync(dataPath, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");

const TRAIN_FLAGS = [
  "--model",
  modelPath,
  "--data",
  dataPath,
  "--lora-rank",
  "4",
  "--lora-alpha",
  "8",
  "--lr",
  "1e-2",
  "--epochs",
  "2",
  "--batch-size",
  "2",
  "--grad-accum",
  "2",
  "--max-seq-len",
  "64",
  "--warmup-steps",
  "1",
  "--checkpoint-every",
  "2",
  "--seed",
  "7",
];

test("train writes GGUF and PEFT adapters that generate and logprobs use", async () => {
  await ensureFastKernels();
  const out = join(dir, "run");
  const merged = join(dir, "merged.gguf");
  const r = buckle("train", ...TRAIN_FLAGS, "-o", out, "--json", "--eval-data", dataPath, "--merge", merged);
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.completed, true);
  assert.equal(summary.totalSteps, 5); // ceil(2 epochs x 10 chats / 4 per step)
  assert.equal(summary.step, 5);
  assert.equal(summary.data.truncated, 1);
  assert.equal(summary.data.examples, 10);
  assert.deepEqual(
    summary.evals.map((e: { step: number }) => e.step),
    [0, 5],
  );
  assert.equal(summary.outputs.merged, merged);
  assert.match(r.stderr, /1 of 10 chats are longer than --max-seq-len 64 and were truncated \(lines 10 /);
  assert.match(
    r.stderr,
    /step 5\/5 {2}epoch \d+ {2}loss \d+\.\d{4} {2}eval \d+\.\d{4} {2}lr \S+ {2}\S+ tok\/s {2}ETA 0:00/,
  );
  for (const f of ["adapter.gguf", "peft/adapter_config.json", "peft/adapter_model.safetensors"])
    assert.ok(existsSync(join(out, f)), f);
  const record = JSON.parse(readFileSync(join(out, "train-config.json"), "utf8"));
  assert.equal(record.config.seed, 7);
  assert.match(record.data.sha256, /^[0-9a-f]{64}$/);
  assert.match(record.template, /tokenizer\.chat_template/);
  assert.deepEqual(readdirSync(join(out, "checkpoints")), [
    "checkpoint-00000004.bckpt",
    "checkpoint-00000005.bckpt",
  ]);

  // The two exports hold the same adapter, and training moved it away from B = 0.
  const model = loadModelWeights(modelPath);
  const lora = readGGUFLora(join(out, "adapter.gguf"), model.spec);
  assert.deepEqual(readPeftAdapter(join(out, "peft"), model.spec), lora);
  const b = (lora.layers[1].down_proj as LoraPair).b;
  assert.ok(b.some((x) => Math.abs(x) > 1e-3));

  // logprobs scores only the response's tokens; the adapter changes them; GGUF and PEFT agree.
  const lp = (...extra: string[]) => {
    const res = buckle(
      "logprobs",
      "--model",
      modelPath,
      "--backend",
      "native",
      "--prompt",
      "What is 2 plus 3?",
      "--response",
      "The answer is 5.",
      "--json",
      ...extra,
    );
    assert.equal(res.code, 0, res.stderr);
    return JSON.parse(res.stdout);
  };
  const withGguf = lp("--adapter", join(out, "adapter.gguf"));
  const withPeft = lp("--adapter", join(out, "peft"));
  const base = lp();
  assert.deepEqual(withPeft.tokens, withGguf.tokens);
  const { tokenizer, template } = loadTokenizerAndTemplate(modelPath);
  const chat = renderWithSpans(
    template,
    [
      { role: "user", content: "What is 2 plus 3?" },
      { role: "assistant", content: "The answer is 5." },
    ],
    tokenizer,
  );
  const span = chat.assistantSpans[0];
  assert.deepEqual(withGguf.ids, chat.ids.slice(span.contentStart, span.contentEnd));
  assert.equal(tokenizer.decode(withGguf.ids), "The answer is 5.");
  const expected = logprobs(model, chat.ids, span.contentStart, span.contentEnd, { lora });
  // The CLI and this process both run the fast kernels; float32 sums may still differ in the last bits.
  withGguf.tokens.forEach((t: { logprob: number }, i: number) =>
    assert.ok(Math.abs(t.logprob - expected[i]) < 1e-5, `token ${i}: ${t.logprob} vs ${expected[i]}`),
  );
  assert.ok(Math.abs(withGguf.meanLogprob - expected.reduce((s, x) => s + x, 0) / expected.length) < 1e-5);
  assert.ok(Math.abs(withGguf.perplexity - Math.exp(-withGguf.meanLogprob)) < 1e-9);
  assert.ok(Math.abs(withGguf.meanLogprob - base.meanLogprob) > 1e-3, "the adapter changed nothing");
  // The merged model scores like base + adapter.
  const fromMerged = lp("--model", merged);
  fromMerged.tokens.forEach((t: { logprob: number }, i: number) =>
    assert.ok(Math.abs(t.logprob - withGguf.tokens[i].logprob) < 1e-4, `token ${i}`),
  );

  // generate --adapter: greedy output equals the engine's own, through the GGUF file and the PEFT directory.
  const gen = (adapter: string, ...extra: string[]) =>
    buckle(
      "generate",
      "--model",
      modelPath,
      "--backend",
      "native",
      "--adapter",
      adapter,
      "--prompt",
      "What is 4 plus 4?",
      "--temperature",
      "0",
      "--max-tokens",
      "6",
      ...extra,
    );
  const g = gen(join(out, "adapter.gguf"), "--json");
  assert.equal(g.code, 0, g.stderr);
  const sample = JSON.parse(g.stdout).samples[0];
  const promptIds = encodeChatPrompt(template, [{ role: "user", content: "What is 4 plus 4?" }], tokenizer);
  const [mine] = await generate(
    model,
    tokenizer,
    [{ promptIds, sampling: { temperature: 0, topK: 40, topP: 0.95, minP: 0.05 }, maxTokens: 6, seed: 1 }],
    { lora, template },
  );
  assert.deepEqual(sample.tokens, mine.tokens);
  assert.equal(sample.text, mine.text);
  const streamed = gen(join(out, "peft"));
  assert.equal(streamed.code, 0, streamed.stderr);
  assert.equal(streamed.stdout, mine.text + "\n");
});

test("train --max-steps then --resume gives the same adapter as an uninterrupted run", () => {
  const full = join(dir, "full");
  const parts = join(dir, "parts");
  const whole = buckle("train", ...TRAIN_FLAGS, "-o", full);
  assert.equal(whole.code, 0, whole.stderr);
  // Stops after step 3; the latest checkpoint is step 2, so the resumed run redoes step 3.
  const first = buckle("train", ...TRAIN_FLAGS, "-o", parts, "--max-steps", "3");
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /stopped at step 3 of 5; latest checkpoint: .*checkpoint-00000002\.bckpt/);
  assert.equal(JSON.parse(readFileSync(join(parts, "train-config.json"), "utf8")).completed, false);
  assert.notDeepEqual(readFileSync(join(parts, "adapter.gguf")), readFileSync(join(full, "adapter.gguf")));

  const again = buckle("train", ...TRAIN_FLAGS, "-o", parts);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already holds checkpoints of an earlier run/);
  const changed = buckle("train", ...TRAIN_FLAGS, "-o", parts, "--resume", "--lr", "2e-2");
  assert.equal(changed.code, 2);
  assert.match(changed.stderr, /cannot resume .*learningRate differs/);

  const resumed = buckle("train", ...TRAIN_FLAGS, "-o", parts, "--resume");
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming from checkpoint-00000002\.bckpt/);
  assert.match(resumed.stderr, /step 3\/5/);
  assert.equal(JSON.parse(readFileSync(join(parts, "train-config.json"), "utf8")).completed, true);
  assert.deepEqual(readFileSync(join(parts, "adapter.gguf")), readFileSync(join(full, "adapter.gguf")));
  assert.deepEqual(
    readFileSync(join(parts, "peft", "adapter_model.safetensors")),
    readFileSync(join(full, "peft", "adapter_model.safetensors")),
  );
});

test("engine commands: user errors say what was wrong and exit 2", async () => {
  const bad = join(dir, "bad.jsonl");
  writeFileSync(bad, '{"prompt": "a", "response": "b"}\n{"prompt": "a"}\n');
  const cases: [string[], RegExp][] = [
    [
      ["train", "--model", modelPath, "--data", bad, "-o", join(dir, "x")],
      /bad\.jsonl:2: field "response" is missing/,
    ],
    [
      ["train", ...TRAIN_FLAGS, "-o", join(dir, "y"), "--targets", "q_proj,qq"],
      /--targets: unknown projection "qq"/,
    ],
    [["train", ...TRAIN_FLAGS, "-o", join(dir, "z"), "--resume"], /--resume: no checkpoint in/],
    [
      ["train", ...TRAIN_FLAGS, "-o", join(dir, "z"), "--schedule", "step"],
      /--schedule must be constant, cosine or linear/,
    ],
    [
      ["logprobs", "--model", modelPath, "--backend", "gpu9", "--prompt", "a", "--response", "b"],
      /--backend must be one of native, llamacpp, openai/,
    ],
    [
      ["logprobs", "--model", modelPath, "--backend", "openai", "--prompt", "a", "--response", "b"],
      /--backend openai needs an openai:<model>@<url> reference/,
    ],
    [["generate", "--model", modelPath], /exactly one of --prompt <text> or --chat/],
    [["generate", "--model", "builtin:llama-spm", "--prompt", "hi"], /is a vocabulary, not a model/],
    [
      ["generate", "--model", modelPath, "--prompt", "hi", "--adapter", join(dir, "nope")],
      /--adapter: no such file or directory .*nope/,
    ],
    [["generate", "--model", modelPath, "--prompt", "hi", "--temperature", "-1"], /temperature must be/],
    [
      ["generate", "--model", modelPath, "--backend", "native", "--prompt", "hi", "--adapter", modelPath],
      /not a LoRA adapter/,
    ],
    [
      ["generate", "--model", modelPath, "--backend", "llamacpp", "--prompt", "hi", "--adapter", modelPath],
      /not a LoRA adapter/,
    ],
  ];
  const results = await Promise.all(cases.map(([args]) => buckleAsync(...args)));
  cases.forEach(([args, pattern], i) => {
    assert.equal(results[i].code, 2, `${args.join(" ")}: ${results[i].stderr}`);
    assert.match(results[i].stderr, pattern, args.join(" "));
  });
});
