// Fuzz test for the GGUF reader: a few hundred mutated files opened from disk must each end in success or a
// FileFormatError — no other exception, no hang, no allocation the file cannot justify.

import { test } from "node:test";
import assert from "node:assert/strict";
import { fuzzCase, fuzzGGUF } from "./fuzz.js";
import { parseGGUF } from "./reader.js";

test("fuzz: 300 mutated files from disk give no crash, hang or over-allocation", () => {
  const seen: number[] = [];
  const report = fuzzGGUF({ cases: 300, seed: 20240611, onProgress: (done) => seen.push(done) });
  assert.equal(report.source, "file");
  assert.deepEqual(report.crashes, [], JSON.stringify(report.crashes, null, 2));
  assert.equal(report.outcomes.crash, 0);
  assert.equal(report.outcomes.hang, 0);
  assert.equal(report.outcomes.overAlloc, 0);
  assert.ok(report.maxArrayBuffersGrowthBytes < 64 * 1024 * 1024);
  assert.ok(report.maxHeapGrowthBytes < 64 * 1024 * 1024);
  const { ok, formatError } = report.outcomes;
  assert.equal(ok + formatError, 300);
  // Both outcomes must be common, or the mutations are not reaching the interesting code.
  assert.ok(ok > 20 && formatError > 150, JSON.stringify(report.outcomes));
  assert.ok(Object.keys(report.formatErrorKinds).length > 15);
  assert.ok(Object.keys(report.mutations).length > 12);
  assert.equal(seen.length, 300);
  assert.equal(seen[299], 300);
  assert.doesNotThrow(() => JSON.stringify(report));
});

test("fuzz: deterministic per seed, different across seeds, unmutated bases are valid", () => {
  const a = fuzzGGUF({ cases: 40, seed: 7, source: "buffer" });
  const b = fuzzGGUF({ cases: 40, seed: 7, source: "buffer" });
  assert.deepEqual(a.outcomes, b.outcomes);
  assert.deepEqual(a.formatErrorKinds, b.formatErrorKinds);
  assert.deepEqual(a.mutations, b.mutations);
  assert.deepEqual(fuzzCase(7, 3), fuzzCase(7, 3));
  assert.notDeepEqual(fuzzCase(7, 3).bytes, fuzzCase(8, 3).bytes);
  let unmutated = 0;
  for (let i = 0; i < 400; i++) {
    const c = fuzzCase(99, i);
    if (c.mutations[0] !== "none") continue;
    unmutated++;
    try {
      parseGGUF(c.bytes);
    } catch (err) {
      // Bases plant a duplicate key or tensor name now and then; nothing else may fail.
      assert.match((err as Error).message, /duplicate (metadata key|tensor name)/);
    }
  }
  assert.ok(unmutated > 5);
});
