// Reads a supervised fine-tuning (SFT) dataset file into chats: JSON Lines or a JSON array, in the common
// row formats. Every malformed row is reported with its file:line and field, never skipped silently.
//
// Accepted rows (one per line in .jsonl, or the items of a top-level JSON array):
//   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}   OpenAI chat format;
//       content may also be a list of {"type": "text", "text": "..."} parts, which are joined.
//   {"conversations": [{"from": "system"|"human"|"gpt", "value": "..."}, ...]}      ShareGPT
//   {"prompt": "...", "response": "...", "system"?: "..."}                          one exchange
//   {"instruction": "...", "input"?: "...", "output": "...", "system"?: "..."}     Alpaca; a non-empty input
//       is appended to the instruction after a blank line, as Alpaca's own prompt does.
// Every chat must end with an assistant message (that is what training learns from). Unlike readDataset,
// rows of different formats may be mixed in one file. Blank lines in JSONL are ignored. A file whose first
// character is "[" is read as a JSON array, else as JSONL. The row parsing is shared with datasets.ts.

import { existsSync, readFileSync } from "node:fs";
import type { ChatMessage } from "../formats/chat/index.js";
import { InputError } from "../util/errors.js";
import { jsonRows } from "./json-rows.js";
import { detectRowFormat, parseRow } from "./rows.js";

export interface SftExample {
  messages: ChatMessage[];
  /** Where the row is: file and 1-based line (for a JSON array, the line its item starts on). */
  file: string;
  line: number;
  format: "messages" | "sharegpt" | "prompt-response" | "alpaca";
}

const FORMATS_HINT =
  'each row must be {"messages": [...]}, {"conversations": [...]}, {"prompt": ..., "response": ...} or {"instruction": ..., "output": ...}';

/** Read and validate an SFT dataset file. */
export function readSftFile(path: string): SftExample[] {
  if (!existsSync(path)) throw new InputError(`no such dataset file: ${path}`);
  return parseSft(readFileSync(path, "utf8"), path);
}

/** Parse dataset text (JSONL or a JSON array); `file` is used in error messages. */
export function parseSft(text: string, file: string): SftExample[] {
  const rows = jsonRows(text.replace(/^\uFEFF/, ""), file);
  const examples = rows.map(({ value, line }): SftExample => {
    const where = `${file}:${line}`;
    if (value === null || typeof value !== "object" || Array.isArray(value))
      throw new InputError(`${where}: the row is not a JSON object`, { hint: FORMATS_HINT });
    const format = detectRowFormat(value as Record<string, unknown>);
    if (format === undefined) {
      const keys = Object.keys(value).slice(0, 6).join(", ");
      throw new InputError(`${where}: unknown row format (fields: ${keys || "none"})`, {
        hint: FORMATS_HINT,
      });
    }
    const { messages } = parseRow(value, format, where, false, FORMATS_HINT);
    return { messages, file, line, format: format === "openai" ? "messages" : format };
  });
  if (examples.length === 0) throw new InputError(`${file}: the dataset has no rows`, { hint: FORMATS_HINT });
  return examples;
}
