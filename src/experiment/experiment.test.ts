import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { createRandomModel } from "../models/factory.js";
import { tinyModelOptions } from "../testing/models.js";
import { createWorld } from "../world/index.js";
import { writeDataset } from "../data/index.js";
import { Store } from "../store/index.js";
import { parseExperimentConfig, type ExperimentConfigInput } from "./config.js";
import { parseReportData } from "./report/index.js";

const cli = fileURLToPath(new URL("../cli/main.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "buckle-experiment-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

// A random factory model on a real vocabulary, and the world's data written as ordinary dataset files, so the
// general (non-organism) path is what runs: file datasets, a model reference, keyword judges.
const modelPath = join(dir, "tiny.gguf");
createRandomModel(tinyModelOptions(5, { hiddenSize: 32, intermediateSize: 64 }), modelPath);
const world = createWorld(3);
const file = (name: string, samples: Parameters<typeof writeDataset>[1]) => {
  const p = join(dir, name);
  writeDataset(p, samples, "openai");
  return p;
};
const config: ExperimentConfigInput = {
  name: "mini",
  seeds: [1, 2],
  model: { ref: modelPath },
  backend: "native",
  threads: 1,
  data: {
    pool: file("pool.jsonl", world.pool.slice(0, 4)),
    safety: file("safety.jsonl", world.safetyData.slice(0, 4)),
  },
  curation: {
    judge: "none",
    settings: { rounds: 1, beamWidth: 2, temperatures: [1.0], topPs: [0.9, 1.0], maxTokens: 8 },
  },
  attacks: [{ name: "ExHarm", kind: "exharm", data: file("exharm.jsonl", world.exharm.slice(0, 6)) }],
  defences: ["nodef", "in", "post"],
  training: {
    recipe: { epochs: 1, batchSize: 4, loraRank: 4, loraAlpha: 8, learningRate: 0.001, checkpointEvery: 1 },
  },
  evaluation: {
    harmful: file(
      "harmful.jsonl",
      world.evalHarmful.slice(0, 4).map((s) => ({ ...s, messages: s.messages })),
    ),
    benign: file("benign.jsonl", world.evalBenign.slice(0, 3)),
    judges: ["keyword"],
    maxTokens: 6,
  },
};
const configPath = join(dir, "mini.yaml");
writeFileSync(configPath, stringify(config));

const run = (runDir: string) =>
  spawnSync(process.execPath, [cli, "run", configPath, "--run-dir", runDir, "--json"], { encoding: "utf8" });

test("config errors name the field's path and what was expected", () => {
  assert.throws(
    () => parseExperimentConfig({ ...config, seeds: ["x"] }, "c.yaml"),
    /c\.yaml: invalid experiment config:\n {2}seeds\.0: /,
  );
  assert.throws(() => parseExperimentConfig({ ...config, defences: ["nodef", "bogus"] }), /defences\.1: /);
  assert.throws(
    () => parseExperimentConfig({ ...config, attacks: [{ name: "A", kind: "exharm", epochs: 3 }] }),
    /attacks\.0/,
  );
  assert.throws(
    () => parseExperimentConfig({ ...config, defences: ["nodef", "nodef"] }),
    /"NoDef" is listed twice/,
  );
});

test("a two-seed mini experiment completes, resumes after kill -9 to the same table, and its report renders", async () => {
  const clean = join(dir, "clean");
  const first = run(clean);
  assert.equal(first.status, 0, first.stderr);
  const out = JSON.parse(first.stdout) as { files: { html: string; markdown: string } };
  assert.ok(existsSync(out.files.html) && existsSync(out.files.markdown));
  const report = parseReportData(JSON.parse(readFileSync(join(clean, "report-data.json"), "utf8")));
  const rows = new Set(report.cells.map((c) => c.defence));
  for (const r of ["NoDef", "In-attack", "Post-attack", "Aligned (no attack)"]) assert.ok(rows.has(r), r);
  const nodef = report.cells.find((c) => c.defence === "NoDef")!;
  assert.equal(nodef.metrics.sr?.n, 8, "4 prompts x 2 seeds");
  assert.equal(nodef.metrics.sr?.perSeed?.length, 2);
  const html = readFileSync(out.files.html, "utf8");
  assert.match(html, /<table/);

  // the same command killed mid-run and rerun ends with the same cells
  const killed = join(dir, "killed");
  const child = spawn(process.execPath, [cli, "run", configPath, "--run-dir", killed], { stdio: "ignore" });
  const storePath = join(killed, "run.sqlite");
  await new Promise<void>((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      let done = 0;
      if (existsSync(storePath)) {
        try {
          const s = Store.open(storePath);
          done = s.count("steps");
          s.close();
        } catch {
          /* the writer may hold it briefly */
        }
      }
      if (done >= 3 || Date.now() - started > 120_000) {
        clearInterval(poll);
        child.kill("SIGKILL");
        if (done < 3) reject(new Error("the run made no progress in 120 s"));
      }
    }, 100);
    child.on("exit", () => resolve());
  });
  assert.ok(!existsSync(join(killed, "report-data.json")), "the kill came before the end");
  const resumed = run(killed);
  assert.equal(resumed.status, 0, resumed.stderr);
  const again = parseReportData(JSON.parse(readFileSync(join(killed, "report-data.json"), "utf8")));
  assert.deepEqual(again.cells, report.cells);

  // a different config in the same run directory is refused
  writeFileSync(configPath, stringify({ ...config, seeds: [1] }));
  const refused = run(killed);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /holds a run of a different config/);
});
