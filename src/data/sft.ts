// Reads a supervised fine-tuning (SFT) dataset file into chats: JSON Lines or a JSON array, in the common
// row formats. Every malformed row is reported with its file:line and field, never skipped silently.
//
// Accepted rows (one per line in .jsonl, or the items of a top-level JSON array):
//   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}   OpenAI chat format;
//       content may also be a list of {"type": "text", "text": "..."} parts, which are joined.
//   {"prompt": "...", "response": "...", "system"?: "..."}                          one exchange
//   {"instruction": "...", "input"?: "...", "output": "...", "system"?: "..."}     Alpaca; a non-empty input
//       is appended to the instruction after a blank line, as Alpaca's own prompt does.
// Every chat needs at least one assistant message with text (that is what training learns from). Blank
// lines in JSONL are ignored. A file whose first character is "[" is read as a JSON array, else as JSONL.

import { existsSync, readFileSync } from "node:fs";
import type { ChatMessage } from "../formats/chat/index.js";
import { InputError } from "../util/errors.js";

export interface SftExample {
  messages: ChatMessage[];
  /** Where the row is: file and 1-based line (for a JSON array, the line its item starts on). */
  file: string;
  line: number;
  format: "messages" | "prompt-response" | "alpaca";
}

const FORMATS_HINT =
  'each row must be {"messages": [...]}, {"prompt": ..., "response": ...} or {"instruction": ..., "output": ...}';

/** Read and validate an SFT dataset file. */
export function readSftFile(path: string): SftExample[] {
  if (!existsSync(path)) throw new InputError(`no such dataset file: ${path}`);
  return parseSft(readFileSync(path, "utf8"), path);
}

/** Parse dataset text (JSONL or a JSON array); `file` is used in error messages. */
export function parseSft(text: string, file: string): SftExample[] {
  const body = text.replace(/^\uFEFF/, "");
  const rows = body.trimStart().startsWith("[") ? arrayRows(body, file) : jsonlRows(body, file);
  const examples = rows.map(({ value, line }) => rowToExample(value, file, line));
  if (examples.length === 0) throw new InputError(`${file}: the dataset has no rows`, { hint: FORMATS_HINT });
  return examples;
}

function jsonlRows(text: string, file: string): { value: unknown; line: number }[] {
  const rows: { value: unknown; line: number }[] = [];
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

function arrayRows(text: string, file: string): { value: unknown; line: number }[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new InputError(`${file}: not valid JSON (${(err as Error).message})`);
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
    if (/\s/.test(c)) continue;
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

function rowToExample(row: unknown, file: string, line: number): SftExample {
  const where = `${file}:${line}`;
  if (row === null || typeof row !== "object" || Array.isArray(row)) {
    throw new InputError(`${where}: the row is not a JSON object`, { hint: FORMATS_HINT });
  }
  const r = row as Record<string, unknown>;
  const str = (field: string, required: boolean): string | undefined => {
    const v = r[field];
    if (v === undefined || v === null) {
      if (required) throw new InputError(`${where}: field "${field}" is missing`, { hint: FORMATS_HINT });
      return undefined;
    }
    if (typeof v !== "string")
      throw new InputError(`${where}: field "${field}" must be a string, got ${describe(v)}`);
    return v;
  };
  const system = (): ChatMessage[] => {
    const s = str("system", false);
    return s ? [{ role: "system", content: s }] : [];
  };
  let format: SftExample["format"];
  let messages: ChatMessage[];
  if ("messages" in r) {
    format = "messages";
    messages = parseMessages(r.messages, where);
  } else if ("prompt" in r || "response" in r) {
    format = "prompt-response";
    messages = [
      ...system(),
      { role: "user", content: str("prompt", true) as string },
      { role: "assistant", content: str("response", true) as string },
    ];
  } else if ("instruction" in r || "output" in r) {
    format = "alpaca";
    const instruction = str("instruction", true) as string;
    const input = str("input", false);
    messages = [
      ...system(),
      { role: "user", content: input && input.trim() !== "" ? `${instruction}\n\n${input}` : instruction },
      { role: "assistant", content: str("output", true) as string },
    ];
  } else {
    const keys = Object.keys(r).slice(0, 6).join(", ");
    throw new InputError(`${where}: unknown row format (fields: ${keys || "none"})`, { hint: FORMATS_HINT });
  }
  if (!messages.some((m) => m.role === "assistant" && m.content.trim() !== "")) {
    throw new InputError(`${where}: no assistant message with text; there is nothing to learn from`, {
      hint: "every row needs an assistant answer (messages[].role = assistant, response, or output)",
    });
  }
  return { messages, file, line, format };
}

function parseMessages(value: unknown, where: string): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new InputError(`${where}: field "messages" must be a non-empty array, got ${describe(value)}`);
  }
  return value.map((m: unknown, i): ChatMessage => {
    const field = `messages[${i}]`;
    if (m === null || typeof m !== "object" || Array.isArray(m))
      throw new InputError(`${where}: field "${field}" must be an object, got ${describe(m)}`);
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (role !== "system" && role !== "user" && role !== "assistant") {
      throw new InputError(
        `${where}: field "${field}.role" must be "system", "user" or "assistant", got ${describe(role)}`,
        { hint: "tool and function messages are not supported; leave them out of the dataset" },
      );
    }
    return { role, content: contentText(content, `${field}.content`, where) };
  });
}

/** A message's text: a string, or OpenAI's list of content parts where every part is text. */
function contentText(content: unknown, field: string, where: string): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((part: unknown, j) => {
        const p = part as { type?: unknown; text?: unknown } | null;
        if (p === null || typeof p !== "object" || p.type !== "text" || typeof p.text !== "string") {
          throw new InputError(
            `${where}: field "${field}[${j}]" must be {"type": "text", "text": "..."}, got ${describe(part)}`,
            { hint: "only text content is supported" },
          );
        }
        return p.text;
      })
      .join("");
  }
  throw new InputError(`${where}: field "${field}" must be a string, got ${describe(content)}`);
}

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}
