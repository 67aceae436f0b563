import { test } from "node:test";
import assert from "node:assert/strict";
import { parseReportData, ReportDataSchema, type ReportData } from "./data.js";
import { sampleReportData } from "./sample-data.js";
import { InputError } from "../../util/errors.js";

/** A deep copy of the sample that a test may break. */
const sample = (): ReportData => JSON.parse(JSON.stringify(sampleReportData())) as ReportData;

function errorOf(value: unknown): string {
  try {
    parseReportData(value, "run/report-data.json");
  } catch (err) {
    assert.ok(err instanceof InputError, `expected InputError, got ${String(err)}`);
    return err.message;
  }
  assert.fail("expected the document to be rejected");
}

test("the sample document is valid and survives a JSON round trip unchanged", () => {
  const data = sampleReportData();
  assert.equal(data.cells.length, 27);
  const again = parseReportData(JSON.parse(JSON.stringify(data)));
  assert.deepEqual(again, data);
  // Deterministic: the same seed gives the same document, another seed another one.
  assert.deepEqual(sampleReportData(), data);
  assert.notDeepEqual(sampleReportData(8).cells[0].metrics.sr, data.cells[0].metrics.sr);
});

test("a minimal document (metadata and cells only) is valid", () => {
  const d = sample();
  const minimal = { schemaVersion: 1, run: d.run, cells: d.cells.slice(0, 1) };
  assert.equal(ReportDataSchema.safeParse(minimal).success, true);
});

test("errors name the bad field by path", () => {
  const pct = sample();
  pct.cells[3].metrics.sr!.value = 83.6; // a percentage where a fraction belongs
  assert.match(
    errorOf(pct),
    /run\/report-data\.json is not a valid report document:\n {2}cells\[3\]\.metrics\.sr\.value: Too big/,
  );

  const noName = sample() as unknown as { run: Record<string, unknown> };
  delete noName.run.name;
  assert.match(errorOf(noName), /run\.name: /);

  const badCi = sample();
  badCi.cells[0].metrics.sHelp!.ci95 = [4, 3];
  assert.match(errorOf(badCi), /cells\[0\]\.metrics\.sHelp\.ci95: ci95 must be \[lo, hi\]/);

  const unknownField = sample() as unknown as { cells: Record<string, unknown>[] };
  unknownField.cells[1].colour = "red";
  assert.match(errorOf(unknownField), /cells\[1\]: Unrecognized key: "colour"/);

  const dup = sample();
  dup.cells.push({ ...dup.cells[4] });
  assert.match(errorOf(dup), /cells\[27\]: duplicate cell \(RandDrop-50%, AOA\); cells\[4\] has the same/);

  const seeds = sample();
  seeds.cells[2].metrics.utility!.perSeed = [0.5, 0.6];
  assert.match(errorOf(seeds), /cells\[2\]\.metrics\.utility\.perSeed: has 2 values but run\.seeds has 3/);

  const stage = sample();
  stage.stageComparison!.entries[1].metric.value = 50;
  assert.match(
    errorOf(stage),
    /stageComparison\.entries\[1\]\.metric: values must lie in sr's range \[0, 1\]/,
  );

  const rounds = sample();
  rounds.curationRounds!.series[0].points[2].metric.ci95 = [0.2, 1.4];
  assert.match(errorOf(rounds), /curationRounds\.series\[0\]\.points\[2\]\.metric: values must lie/);

  const ppl = sample();
  ppl.perplexity!.samples[1].values[5] = -1;
  assert.match(errorOf(ppl), /perplexity\.samples\[1\]\.values\[5\]: Too small/);

  assert.match(errorOf({ ...sample(), schemaVersion: 2 }), /schemaVersion: /);
  assert.match(errorOf({ ...sample(), cells: [] }), /cells: Too small/);
  assert.match(errorOf(null), /\(document\): /);
});

test("an error lists at most 20 issues and counts the rest", () => {
  const d = sample();
  for (const c of d.cells) c.metrics.sr!.value = 50;
  const msg = errorOf(d);
  assert.equal(msg.split("\n").filter((l) => l.startsWith("  cells[")).length, 20);
  assert.match(msg, /\.\.\. and 7 more$/);
});
