// CSV parsing and writing: RFC 4180 quoting, line numbers of rows that span lines, and the errors that
// name file:line for malformed input.

import { test } from "node:test";
import assert from "node:assert/strict";
import { parseCsv, toCsv } from "./csv.js";

test("quoted fields hold commas, doubled quotes and newlines; rows keep their starting line", () => {
  const text =
    "\uFEFFprompt,response,category\r\n" +
    'plain,"a, b",x\r\n' +
    '"say ""hi""","line one\r\nline two\nline three",y\r\n' +
    "\r\n" +
    'last,,""\r\n';
  const table = parseCsv(text, "t.csv");
  assert.deepEqual(table.header, ["prompt", "response", "category"]);
  assert.deepEqual(table.rows, [
    { line: 2, cells: ["plain", "a, b", "x"] },
    { line: 3, cells: ['say "hi"', "line one\r\nline two\nline three", "y"] },
    { line: 7, cells: ["last", "", ""] },
  ]);
});

test("no trailing newline, LF only, and a header-only file", () => {
  assert.deepEqual(parseCsv("a,b\n1,2", "t.csv").rows, [{ line: 2, cells: ["1", "2"] }]);
  assert.deepEqual(parseCsv("a,b\n", "t.csv"), { header: ["a", "b"], rows: [] });
});

test("malformed CSV names file:line and says what to do", () => {
  const cases: [string, RegExp][] = [
    ["a,b\n1,2\n1,2,3\n", /^InputError: t\.csv:3: the row has 3 cells but the header has 2/],
    ['a,b\n1,2\n"open,2\n3,4\n', /^InputError: t\.csv:3: a quoted field is never closed/],
    ['a,b\n"x"y,2\n', /^InputError: t\.csv:2: text after a closing quote/],
    ["a,A\n1,2\n", /t\.csv:1: header column 2 "A" repeats column 1/],
    ["a,,c\n", /t\.csv:1: header column 2 has no name/],
    ["\uFEFF\n\n", /t\.csv: the CSV file is empty/],
  ];
  for (const [text, pattern] of cases) assert.throws(() => parseCsv(text, "t.csv"), pattern, text);
  try {
    parseCsv('a\n"x\n', "t.csv");
    assert.fail("expected an error");
  } catch (err) {
    assert.match((err as { hint?: string }).hint ?? "", /double quotes/);
  }
});

test("toCsv quotes only where needed and reads back identically", () => {
  const header = ["prompt", "response", "note"];
  const rows = [
    ["plain", "with, comma", 'with "quote"'],
    ["multi\nline", " leading space", ""],
    ["crlf\r\ninside", "ok", "trailing space "],
  ];
  const text = toCsv(header, rows);
  assert.equal(text.split("\n")[1], 'plain,"with, comma","with ""quote"""');
  assert.deepEqual(
    parseCsv(text, "r.csv").rows.map((r) => r.cells),
    rows,
  );
  // A single-column row holding "" must not vanish as a blank line.
  assert.deepEqual(
    parseCsv(toCsv(["only"], [[""], ["x"]]), "r.csv").rows.map((r) => r.cells),
    [[""], ["x"]],
  );
  assert.throws(() => toCsv(["a", "b"], [["1"]]), /row 1 has 1 cells but the header has 2/);
});
