import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRandomModel } from "../models/factory.js";
import { tinyModelOptions } from "../testing/models.js";
import { Store } from "../store/index.js";

const cli = fileURLToPath(new URL("../cli/main.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "buckle-curation-kill-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const modelPath = join(dir, "tiny.gguf");
createRandomModel(tinyModelOptions(9, { hiddenSize: 32, intermediateSize: 64 }), modelPath);
const poolPath = join(dir, "pool.jsonl");
writeFileSync(
  poolPath,
  [
    ["How do I boil an egg?", "Put it in boiling water for eight minutes."],
    ["Name a fruit.", "An apple is a common fruit."],
    ["What is rain?", "Rain is water falling from clouds."],
  ]
    .map(([instruction, output]) => JSON.stringify({ instruction, input: "", output }))
    .join("\n") + "\n",
);

function args(out: string): string[] {
  return [
    cli,
    "curate",
    "--pool",
    poolPath,
    "--reviser",
    `native:${modelPath}`,
    "--judge",
    "none",
    "--out",
    out,
    "--rounds",
    "2",
    "--beam",
    "2",
    "--temperatures",
    "0.4,1.0",
    "--top-ps",
    "0.6,1.0",
    "--max-tokens",
    "6",
    "--keep-truncated",
    "--readability-ratio",
    "0",
    "--seed",
    "11",
    "--threads",
    "1",
    "--json",
  ];
}

function runToEnd(out: string): { computed: { generations: number } } {
  const r = spawnSync(process.execPath, args(out), { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const finals = (out: string) =>
  readFileSync(join(out, "provenance.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { id: string; final: unknown; lineage: unknown });

test("kill -9 mid-run, rerun: nothing finished is recomputed and the curated set equals an uninterrupted run's", async () => {
  const whole = join(dir, "whole");
  const first = runToEnd(whole);
  assert.equal(first.computed.generations, 3 * 2 * 2 * 4);

  const killed = join(dir, "killed");
  const child = spawn(process.execPath, args(killed), { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // Kill once some generations are in the store (each is committed as it finishes).
  let cached = 0;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && child.exitCode === null) {
    await new Promise((r) => setTimeout(r, 40));
    try {
      const store = Store.open(join(killed, "curation.sqlite"));
      cached = store.cacheCount("generate");
      store.close();
    } catch {
      continue; // the child has not created the store yet
    }
    if (cached >= 6) break;
  }
  child.kill("SIGKILL");
  await exited;
  assert.ok(cached >= 6 && cached < 48, `killed after ${cached} generations`);

  const resumed = runToEnd(killed);
  assert.ok(
    resumed.computed.generations <= 48 - cached,
    `rerun computed ${resumed.computed.generations} generations; ${cached} were stored`,
  );
  assert.equal(
    readFileSync(join(killed, "curated.jsonl"), "utf8"),
    readFileSync(join(whole, "curated.jsonl"), "utf8"),
  );
  assert.deepEqual(
    finals(killed).map((f) => [f.id, f.final, f.lineage]),
    finals(whole).map((f) => [f.id, f.final, f.lineage]),
  );
});
