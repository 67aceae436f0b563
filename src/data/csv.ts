// CSV (RFC 4180) parsing and writing for dataset files: quoted fields with commas, doubled quotes and
// embedded newlines, CRLF, a BOM; every row keeps the 1-based line it starts on so errors can name it.

import { InputError } from "../util/errors.js";

export interface CsvTable {
  header: string[];
  /** Data rows in file order; `line` is the 1-based line the row starts on (quoted newlines span lines). */
  rows: { line: number; cells: string[] }[];
}

const CSV_HINT =
  'write one record per line, separated by commas; a field that holds a comma, a quote or a newline must be wrapped in double quotes, with quotes inside it doubled ("")';

/**
 * Parse CSV text whose first record is the header. Blank lines outside quotes are skipped (a trailing
 * newline is not a row). Throws InputError `file:line: ...` for an unterminated quote, text after a
 * closing quote, a row with a different cell count than the header, or a duplicate or empty header.
 */
export function parseCsv(text: string, file: string): CsvTable {
  const records = splitRecords(text.replace(/^\uFEFF/, ""), file);
  if (records.length === 0) throw new InputError(`${file}: the CSV file is empty`, { hint: CSV_HINT });
  const [first, ...rest] = records;
  const header = first.cells.map((h) => h.trim());
  const seen = new Map<string, number>();
  header.forEach((name, i) => {
    if (name === "")
      throw new InputError(`${file}:${first.line}: header column ${i + 1} has no name`, {
        hint: "the first line must name every column",
      });
    const key = name.toLowerCase();
    if (seen.has(key))
      throw new InputError(
        `${file}:${first.line}: header column ${i + 1} "${name}" repeats column ${(seen.get(key) ?? 0) + 1}`,
        { hint: "give every column a distinct name (names are compared case-insensitively)" },
      );
    seen.set(key, i);
  });
  for (const row of rest) {
    if (row.cells.length !== header.length)
      throw new InputError(
        `${file}:${row.line}: the row has ${row.cells.length} cells but the header has ${header.length}`,
        { hint: CSV_HINT },
      );
  }
  return { header, rows: rest };
}

function splitRecords(text: string, file: string): { line: number; cells: string[] }[] {
  const records: { line: number; cells: string[] }[] = [];
  let cells: string[] = [];
  let field = "";
  let line = 1;
  let recordLine = 1;
  // Whether the current record has any content yet: a record that is only a line break is a blank line.
  let recordStarted = false;
  let i = 0;
  const n = text.length;
  const endRecord = (): void => {
    if (recordStarted) {
      cells.push(field);
      records.push({ line: recordLine, cells });
    }
    cells = [];
    field = "";
    recordStarted = false;
  };
  while (i < n) {
    const c = text[i];
    if (!recordStarted) recordLine = line;
    if (c === '"' && field === "") {
      // A quoted field: runs to the next quote that is not doubled.
      const openLine = line;
      recordStarted = true;
      i++;
      let value = "";
      for (;;) {
        if (i >= n)
          throw new InputError(`${file}:${openLine}: a quoted field is never closed`, {
            hint: `${CSV_HINT}; check for a stray " in this row`,
          });
        const q = text[i];
        if (q === '"') {
          if (text[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (q === "\n") line++;
        value += q;
        i++;
      }
      field = value;
      const next = text[i];
      if (i < n && next !== "," && next !== "\n" && next !== "\r")
        throw new InputError(`${file}:${line}: text after a closing quote (${JSON.stringify(next)})`, {
          hint: `${CSV_HINT}; a quote inside a quoted field must be doubled`,
        });
      continue;
    }
    if (c === ",") {
      recordStarted = true;
      cells.push(field);
      field = "";
      i++;
      continue;
    }
    if (c === "\r" || c === "\n") {
      endRecord();
      i += c === "\r" && text[i + 1] === "\n" ? 2 : 1;
      line++;
      continue;
    }
    recordStarted = true;
    field += c;
    i++;
  }
  endRecord();
  return records;
}

/** A CSV cell as text, quoted when it holds a comma, quote, line break or edge whitespace. */
function csvCell(value: string): string {
  return /[",\r\n]|^\s|\s$/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** Write a header and rows as CSV (LF line ends, trailing newline); every row must match the header width. */
export function toCsv(header: string[], rows: string[][]): string {
  const lines = [header.map(csvCell).join(",")];
  rows.forEach((cells, i) => {
    if (cells.length !== header.length)
      throw new InputError(`CSV row ${i + 1} has ${cells.length} cells but the header has ${header.length}`);
    // A lone empty cell would read back as a blank line (skipped), so it is written as "".
    lines.push(cells.length === 1 && cells[0] === "" ? '""' : cells.map(csvCell).join(","));
  });
  return lines.join("\n") + "\n";
}
