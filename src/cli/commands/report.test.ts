import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sampleReportData } from "../../experiment/report/sample-data.js";

const cli = fileURLToPath(new URL("../main.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "buckle-report-cli-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function buckle(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function runDir(name: string, content: string): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, "report-data.json"), content);
  return d;
}

test("buckle report renders a run directory in place, or into --out with a copy of the data", () => {
  const run = runDir("ok", JSON.stringify(sampleReportData()));
  const inPlace = buckle("report", run);
  assert.equal(inPlace.code, 0, inPlace.stderr);
  assert.deepEqual(inPlace.stdout.trim().split("\n"), [join(run, "report.md"), join(run, "report.html")]);
  assert.match(readFileSync(join(run, "report.html"), "utf8"), /<table class="main"/);

  const out = join(dir, "elsewhere");
  const moved = buckle("report", run, "--out", out, "--json");
  assert.equal(moved.code, 0, moved.stderr);
  const written = JSON.parse(moved.stdout) as Record<string, string>;
  assert.deepEqual(Object.keys(written).sort(), ["data", "html", "markdown"]);
  for (const p of Object.values(written)) assert.ok(p.startsWith(out) && existsSync(p), p);
});

test("buckle report names the bad field, the bad JSON position, or the missing file", () => {
  const data = sampleReportData();
  data.cells[1].metrics.sr!.value = 90;
  const bad = buckle("report", runDir("bad", JSON.stringify(data, null, 2)));
  assert.equal(bad.code, 2);
  assert.match(
    bad.stderr,
    /report-data\.json is not a valid report document:\n {2}cells\[1\]\.metrics\.sr\.value: Too big/,
  );
  assert.match(bad.stderr, /hint: see docs\/REPORT\.md/);

  const truncated = buckle("report", runDir("truncated", '{\n  "schemaVersion": 1,\n  "run": {'));
  assert.equal(truncated.code, 2);
  assert.match(truncated.stderr, /report-data\.json: not valid JSON( at line 3, column \d+)?:/);

  const empty = join(dir, "empty");
  mkdirSync(empty);
  const missing = buckle("report", empty);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /has no report-data\.json/);
  assert.equal(buckle("report", join(dir, "nope")).code, 2);
});
