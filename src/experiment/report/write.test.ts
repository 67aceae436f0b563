import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeReport } from "./write.js";
import { parseReportData } from "./data.js";
import { sampleReportData } from "./sample-data.js";
import { InputError } from "../../util/errors.js";

const dir = mkdtempSync(join(tmpdir(), "buckle-report-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test("writeReport writes the three files, and the data file reads back as the same document", () => {
  const data = sampleReportData();
  const out = join(dir, "run1");
  const written = writeReport(out, data);
  assert.deepEqual(readdirSync(out).sort(), ["report-data.json", "report.html", "report.md"]);
  assert.deepEqual(parseReportData(JSON.parse(readFileSync(written.data!, "utf8"))), data);
  assert.match(readFileSync(written.html, "utf8"), /^<!doctype html>/);
  assert.match(readFileSync(written.markdown, "utf8"), /^# buckle report: /);
  const second = writeReport(join(dir, "run2"), data, { includeData: false });
  assert.equal(second.data, undefined);
  assert.deepEqual(readdirSync(join(dir, "run2")).sort(), ["report.html", "report.md"]);
});

test("writeReport refuses an invalid document before writing anything", () => {
  const data = sampleReportData();
  data.cells[5].metrics.overRefusal!.value = 12;
  const out = join(dir, "bad");
  assert.throws(
    () => writeReport(out, data),
    (e: unknown) => e instanceof InputError && /cells\[5\]\.metrics\.overRefusal\.value/.test(e.message),
  );
  assert.throws(() => readdirSync(out), /ENOENT/);
});
