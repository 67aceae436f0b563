import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { parseJudgeSpecs } from "../cli/commands/eval.js";
import { createRandomModel } from "../models/factory.js";
import { tinyModelOptions } from "../testing/models.js";
import { InputError } from "../util/errors.js";
import type { EvalReport } from "./index.js";

const dir = mkdtempSync(join(tmpdir(), "buckle-eval-cli-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test("--judge specs parse, model refs may contain colons", () => {
  assert.deepEqual(parseJudgeSpecs("keyword, safety:openai:llama@http://h:8000/v1"), [
    { kind: "keyword", ref: undefined },
    { kind: "safety", ref: "openai:llama@http://h:8000/v1" },
  ]);
  assert.throws(() => parseJudgeSpecs("safety"), InputError);
  assert.throws(() => parseJudgeSpecs("vibes:x.gguf"), InputError);
});

test("buckle eval writes the store, the report and a table that flags built-in sets", async () => {
  const modelPath = join(dir, "tiny.gguf");
  createRandomModel(tinyModelOptions(9, { hiddenSize: 32, intermediateSize: 64 }), modelPath);
  const out = join(dir, "out");
  // a separate process, so the command's stdout is its own (the test runner reports on this one's)
  const script = `import { Command } from ${JSON.stringify(import.meta.resolve("commander"))};
    import { registerEvalCommand } from ${JSON.stringify(new URL("../cli/commands/eval.js", import.meta.url).href)};
    const program = new Command("buckle");
    registerEvalCommand(program);
    await program.parseAsync(process.argv.slice(2), { from: "user" });`;
  const args = [
    "eval",
    "-m",
    `native:${modelPath}`,
    "--harmful",
    "builtin:harmful-smoke",
    "--over-refusal",
    "builtin:xstest-smoke",
    "--judge",
    "keyword",
    "--limit",
    "2",
    "--max-tokens",
    "4",
    "-o",
    out,
  ];
  const scriptPath = join(dir, "eval-cli.mjs");
  writeFileSync(scriptPath, script);
  const run = spawnSync(process.execPath, [scriptPath, ...args], { encoding: "utf8" });
  assert.equal(run.status, 0, run.stderr);
  const printed = run.stdout;
  assert.match(run.stderr, /harmful-smoke generate 2\/2/);
  assert.ok(existsSync(join(out, "eval.sqlite")));
  const report = JSON.parse(readFileSync(join(out, "eval-report.json"), "utf8")) as EvalReport;
  assert.deepEqual(report.builtinSets, ["builtin:harmful-smoke", "builtin:xstest-smoke"]);
  assert.equal(report.sets[0].judges.keyword.asr.n, 2);
  assert.match(printed, /BUILT-IN SMOKE SET/);
  assert.match(printed, /keyword\s+asr/);
});
