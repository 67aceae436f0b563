// Splits JSON Lines or a top-level JSON array into rows, each with the 1-based line it starts on, so
// dataset errors can point at file:line. Internal to the data room.

import { InputError } from "../util/errors.js";

export interface JsonRow {
  value: unknown;
  line: number;
}

/** Rows of a JSONL text (blank lines skipped) or of a JSON array (text starting with "["). */
export function jsonRows(text: string, file: string): JsonRow[] {
  return text.trimStart().startsWith("[") ? arrayRows(text, file) : jsonlRows(text, file);
}

export function jsonlRows(text: string, file: string): JsonRow[] {
  const rows: JsonRow[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === "") return;
    try {
      rows.push({ value: JSON.parse(raw), line: i + 1 });
    } catch (err) {
      throw new InputError(`${file}:${i + 1}: not valid JSON (${(err as Error).message})`, {
        hint: "JSON Lines needs one complete JSON object per line; a JSON array file must start with [",
      });
    }
  });
  return rows;
}

export function arrayRows(text: string, file: string): JsonRow[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new InputError(`${file}: not valid JSON (${(err as Error).message})`, {
      hint: "a file starting with [ is read as one JSON array of rows; check brackets and commas",
    });
  }
  if (!Array.isArray(parsed)) throw new InputError(`${file}: expected a JSON array of rows`);
  const lines = itemLines(text);
  return parsed.map((value, i) => ({ value, line: lines[i] ?? 1 }));
}

/** 1-based line on which each item of the top-level JSON array starts (the text is valid JSON). */
function itemLines(text: string): number[] {
  const lines: number[] = [];
  let line = 1;
  let depth = 0;
  let inString = false;
  let expectItem = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\n") line++;
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === " " || c === "\t" || c === "\r" || c === "\n") continue;
    if (depth === 1 && expectItem && c !== "]") {
      lines.push(line);
      expectItem = false;
    }
    if (c === '"') inString = true;
    else if (c === "[" || c === "{") {
      depth++;
      if (depth === 1) expectItem = true;
    } else if (c === "]" || c === "}") depth--;
    else if (c === "," && depth === 1) expectItem = true;
  }
  return lines;
}

/** A value as short JSON for error messages. */
export function describe(v: unknown): string {
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}
