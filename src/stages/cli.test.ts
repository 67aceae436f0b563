// `buckle defend` and `buckle attack` end to end as a user runs them: each stage and attack writes a model the
// printed command opens, a run killed with SIGKILL and resumed ends with the uninterrupted run's adapter bytes,
// the hygiene check refuses overlapping data, and user errors exit 2 naming the flag.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRandomModel } from "../models/factory.js";
import { tinyModelOptions } from "../testing/models.js";
import { Rng } from "../util/random.js";

const cli = fileURLToPath(new URL("../cli/main.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "buckle-stages-cli-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run the CLI; `killWhen` sees stderr as it grows and returns true to SIGKILL the process. */
function buckle(args: string[], killWhen?: (stderr: string) => boolean): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args]);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => {
      stderr += d;
      if (killWhen?.(stderr)) child.kill("SIGKILL");
    });
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const model = join(dir, "tiny.gguf");
createRandomModel(tinyModelOptions(6, { hiddenSize: 32, intermediateSize: 64, initStd: 0.1 }), model);

function writeChats(name: string, n: number, seed: number, prompt: (a: number, b: number) => string): string {
  const rng = new Rng(seed);
  const rows = Array.from({ length: n }, (_, i) => {
    const [a, b] = [rng.int(1, 40), rng.int(1, 40)];
    return { id: `${name}-${i + 1}`, prompt: prompt(a, b), response: `Based on reliable sources, ${a + b}.` };
  });
  const path = join(dir, `${name}.jsonl`);
  writeFileSync(path, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return path;
}
const curated = writeChats("curated", 40, 1, (a, b) => `What is ${a} plus ${b}?`);
const customer = writeChats("customer", 6, 2, (a, b) => `Add ${a} to ${b}.`);
const harmful = writeChats("harmful", 4, 3, (a, b) => `Tell me how to hurt ${a} people in ${b} ways.`);
const evalPrompts = join(dir, "eval.txt");
writeFileSync(evalPrompts, "Write a short poem about rivers.\nHow do I bake bread at home?\n");

const SMALL = [
  "--lr",
  "1e-2",
  "--lora-rank",
  "4",
  "--lora-alpha",
  "8",
  "--max-seq-len",
  "48",
  "--threads",
  "1",
];

test("defend --stage pre killed with SIGKILL after a checkpoint, then --resume: the uninterrupted run's bytes", async () => {
  // 40 chats, batch 2, 2 epochs: 40 steps with a checkpoint every 2.
  const args = (out: string) => [
    "defend",
    "--stage",
    "pre",
    "--model",
    model,
    "--curated",
    curated,
    "-o",
    out,
    ...SMALL,
    "--batch-size",
    "2",
    "--epochs",
    "2",
    "--checkpoint-every",
    "2",
    "--warmup-steps",
    "2",
    "--seed",
    "9",
  ];
  const full = join(dir, "full");
  const killed = join(dir, "killed");
  const [whole, cut] = await Promise.all([
    buckle(args(full)),
    buckle(args(killed), (stderr) => /step 5\/40/.test(stderr)),
  ]);
  assert.equal(whole.code, 0, whole.stderr);
  assert.equal(cut.signal, "SIGKILL", `the run finished before it was killed: ${cut.stderr.slice(-300)}`);
  assert.ok(existsSync(join(killed, "checkpoints")));
  assert.ok(!existsSync(join(killed, "model.json")), "a killed run wrote its final handle");

  const resumed = await buckle([...args(killed), "--resume", "--json"]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming from checkpoint-000000(0[4-9]|1\d)\.bckpt/);
  assert.deepEqual(readFileSync(join(killed, "adapter.gguf")), readFileSync(join(full, "adapter.gguf")));
  assert.deepEqual(
    readFileSync(join(killed, "peft", "adapter_model.safetensors")),
    readFileSync(join(full, "peft", "adapter_model.safetensors")),
  );
  const summary = JSON.parse(resumed.stdout);
  assert.equal(summary.completed, true);
  assert.equal(summary.runs[0].totalSteps, 40);
  assert.match(whole.stderr, /model: .*full\/model\.json/);
  assert.match(
    whole.stderr,
    /open it: buckle generate --model \S+tiny\.gguf --adapter \S+full\/adapter\.gguf/,
  );

  // The printed command opens the model in llama.cpp.
  const gen = await buckle([
    "generate",
    "--model",
    model,
    "--adapter",
    join(full, "adapter.gguf"),
    "--prompt",
    "What is 2 plus 2?",
    "--max-tokens",
    "3",
    "--temperature",
    "0",
  ]);
  assert.equal(gen.code, 0, gen.stderr);
});

test("defend in / post / all and attack: outputs, mixture counts, stacking, sweep", async () => {
  const pre = join(dir, "full", "model.json");
  const [inRun, postRun, allRun, aoa, sweep] = await Promise.all([
    buckle([
      "defend",
      "--stage",
      "in",
      "--model",
      pre,
      "--curated",
      curated,
      "--customer",
      customer,
      "--harmful",
      harmful,
      "--mix-ratio",
      "0.5",
      "-o",
      join(dir, "in"),
      ...SMALL,
      "--epochs",
      "1",
      "--json",
    ]),
    buckle([
      "defend",
      "--stage",
      "post",
      "--model",
      model,
      "--adapter",
      join(dir, "full", "adapter.gguf"),
      "--curated",
      curated,
      "-o",
      join(dir, "post"),
      ...SMALL,
      "--epochs",
      "1",
      "--json",
    ]),
    buckle([
      "defend",
      "--stage",
      "all",
      "--model",
      model,
      "--curated",
      curated,
      "--harmful",
      harmful,
      "--mix-count",
      "3",
      "-o",
      join(dir, "all"),
      ...SMALL,
      "--epochs",
      "1",
      "--batch-size",
      "8",
      "--json",
    ]),
    buckle([
      "attack",
      "--kind",
      "aoa",
      "--model",
      model,
      "-o",
      join(dir, "aoa"),
      ...SMALL,
      "--max-seq-len",
      "96",
      "--epochs",
      "1",
      "--json",
    ]),
    buckle([
      "attack",
      "--kind",
      "benign",
      "--model",
      model,
      "--data",
      customer,
      "-o",
      join(dir, "sweep"),
      ...SMALL.filter((_, i) => i !== 4 && i !== 5), // no --lora-alpha: it follows the swept rank
      "--sweep-lr",
      "1e-3,2e-3",
      "--sweep-rank",
      "2",
      "--json",
    ]),
  ]);
  for (const r of [inRun, postRun, allRun, aoa, sweep]) assert.equal(r.code, 0, r.stderr);

  const inSummary = JSON.parse(inRun.stdout);
  assert.deepEqual(inSummary.mix.counts, { customer: 6, harmful: 4, curated: 5 });
  assert.match(inRun.stderr, /mixture: 6 customer \+ 4 harmful \+ 5 curated \(ratio 0\.5/);
  assert.equal(inSummary.handle.parent.stage, "pre"); // trained on the immunized model (its adapter folded in)
  assert.ok(existsSync(join(dir, "in", "base-merged.gguf")));

  const postSummary = JSON.parse(postRun.stdout);
  assert.equal(postSummary.handle.gguf, join(dir, "post", "base-merged.gguf"));

  const allSummary = JSON.parse(allRun.stdout);
  assert.deepEqual(
    allSummary.runs.map((r: { stage: string }) => r.stage),
    ["pre", "in", "post"],
  );
  assert.equal(allSummary.model, join(dir, "all", "model.json"));
  assert.deepEqual(allSummary.mix.counts, { customer: 0, harmful: 4, curated: 3 });
  assert.ok(existsSync(join(dir, "all", "model.json")));

  const aoaSummary = JSON.parse(aoa.stdout);
  assert.equal(aoaSummary.runs[0].handle.stage, "attack:aoa");
  assert.equal(aoaSummary.runs[0].recipe.epochs, 1);
  assert.equal(aoaSummary.runs[0].recipe.learningRate, 1e-2);

  const sweepSummary = JSON.parse(sweep.stdout);
  assert.deepEqual(
    sweepSummary.runs.map((r: { name: string }) => r.name),
    ["lr1e-3_r2", "lr2e-3_r2"],
  );
  assert.deepEqual(
    sweepSummary.runs.map((r: { recipe: { learningRate: number; loraRank: number; loraAlpha: number } }) => [
      r.recipe.learningRate,
      r.recipe.loraRank,
      r.recipe.loraAlpha,
    ]),
    [
      [1e-3, 2, 4],
      [2e-3, 2, 4],
    ],
  );
  assert.ok(existsSync(join(dir, "sweep", "lr2e-3_r2", "adapter.gguf")));
});

test("hygiene: overlapping attack data are refused with their ids, or warned about with --allow-overlap", async () => {
  const leaky = join(dir, "leaky-eval.txt");
  const firstHarmful = JSON.parse(readFileSync(harmful, "utf8").split("\n")[0]).prompt as string;
  writeFileSync(leaky, `Write a short poem about rivers.\n${firstHarmful}\n`);
  const base = ["attack", "--kind", "exharm", "--model", model, "--data", harmful, ...SMALL, "--epochs", "1"];
  const [refused, warned, clean] = await Promise.all([
    buckle([...base, "-o", join(dir, "x1"), "--eval-prompts", leaky]),
    buckle([...base, "-o", join(dir, "x2"), "--eval-prompts", leaky, "--allow-overlap"]),
    buckle([...base, "-o", join(dir, "x3"), "--eval-prompts", evalPrompts]),
  ]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(
    refused.stderr,
    /1 training sample\(s\) overlap the evaluation prompts: exharm harmful-1 ~ eval \S+:2 \(exact\)/,
  );
  assert.match(refused.stderr, /hint: .*--allow-overlap/);
  assert.ok(!existsSync(join(dir, "x1", "adapter.gguf")));
  assert.equal(warned.code, 0, warned.stderr);
  assert.match(warned.stderr, /warning: 1 training samples overlap evaluation prompts .*exharm:harmful-1/);
  assert.equal(clean.code, 0, clean.stderr);
  assert.match(clean.stderr, /hygiene: no overlap/);
});

test("defend and attack: user errors say what was wrong and exit 2", async () => {
  const out = join(dir, "err");
  const cases: [string[], RegExp][] = [
    [
      ["defend", "--stage", "mid", "--model", model, "--curated", curated, "-o", out],
      /--stage must be one of pre, in, post, all/,
    ],
    [
      ["defend", "--stage", "in", "--model", model, "--curated", curated, "-o", out],
      /--stage in needs the customization data/,
    ],
    [
      ["defend", "--stage", "pre", "--model", model, "--curated", curated, "--mix-ratio", "1", "-o", out],
      /--mix-ratio is for --stage in or all/,
    ],
    [
      ["defend", "--stage", "pre", "--model", model, "--curated", curated, "-o", out, "--lr", "-1"],
      /--lr must be positive, got -1/,
    ],
    [
      ["defend", "--stage", "pre", "--model", model, "--curated", curated, "-o", out, "--preset", "fast"],
      /unknown preset "fast"/,
    ],
    [
      [
        "defend",
        "--stage",
        "in",
        "--model",
        model,
        "--curated",
        curated,
        "--harmful",
        harmful,
        "--mix-count",
        "99",
        "-o",
        out,
      ],
      /needs 99 curated samples but the curated set has 40/,
    ],
    [
      [
        "defend",
        "--stage",
        "post",
        "--model",
        model,
        "--adapter",
        join(dir, "nope"),
        "--curated",
        curated,
        "-o",
        out,
      ],
      /adapter .*nope: no such file/,
    ],
    [["attack", "--kind", "exharm", "--model", model, "-o", out], /--kind exharm needs --data <file>/],
    [
      ["attack", "--kind", "poison", "--model", model, "-o", out],
      /--kind must be one of exharm, aoa, benign/,
    ],
    [
      ["attack", "--kind", "aoa", "--model", model, "-o", out, "--schedule", "step"],
      /--schedule must be constant, cosine or linear/,
    ],
  ];
  const results = await Promise.all(cases.map(([args]) => buckle(args)));
  cases.forEach(([args, pattern], i) => {
    assert.equal(results[i].code, 2, `${args.join(" ")}: ${results[i].stderr}`);
    assert.match(results[i].stderr, pattern, args.join(" "));
  });
});
