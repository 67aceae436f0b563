import { test } from "node:test";
import assert from "node:assert/strict";
import { fuzzSafetensors } from "./fuzz.js";

test("fuzzing 300 cases: no crash, hang, mismatch or large allocation; both outcomes occur", () => {
  const report = fuzzSafetensors({ cases: 300, seed: 1234 });
  const summary = JSON.stringify({ ...report, byMutation: undefined });
  assert.equal(report.cases, 300);
  assert.equal(report.crash, 0, summary);
  assert.equal(report.hang, 0, summary);
  assert.equal(report.mismatch, 0, summary);
  assert.equal(report.overAlloc, 0, summary);
  assert.ok(report.maxAllocGrowthBytes < 64 * 1024 * 1024, summary);
  // A fuzzer that never builds a readable file or never breaks one tests nothing.
  assert.ok(report.ok >= 30, summary);
  assert.ok(report.formatError >= 150, summary);
  assert.ok(report.byMutation.none.ok === report.byMutation.none.cases, summary);
  assert.doesNotThrow(() => JSON.parse(JSON.stringify(report)));
});

test("fuzzer is deterministic for a seed and can rerun a single case", () => {
  const a = fuzzSafetensors({ cases: 40, seed: 7 });
  const b = fuzzSafetensors({ cases: 40, seed: 7 });
  const strip = (r: typeof a) => JSON.stringify({ ...r, totalMs: 0, maxCaseMs: 0, maxAllocGrowthBytes: 0 });
  assert.equal(strip(a), strip(b));
  const seen: number[] = [];
  const one = fuzzSafetensors({
    cases: 1,
    seed: 7,
    firstCase: 5,
    onProgress: (done, total) => seen.push(done, total),
  });
  assert.deepEqual(seen, [1, 1]);
  assert.equal(one.cases, 1);
  assert.equal(one.firstCase, 5);
  // The allocation check is live: with a 1-byte budget some case must trip it.
  assert.ok(fuzzSafetensors({ cases: 20, seed: 7, maxAllocBytes: 1 }).overAlloc > 0);
});
