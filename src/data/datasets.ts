// Dataset files in the common formats (openai, sharegpt, alpaca, prompt-response as JSONL or a JSON array;
// CSV; .txt prompt lists) read into Samples and written back losslessly. Formats are auto-detected.
//
// Ids: a row's "id" field when present (string or number), else "<file basename>:<line>". Fields a format
// does not use go to sample.meta and are written back as keys or columns. docs/DATASETS.md has the details.

import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, extname } from "node:path";
import type { ChatMessage } from "../formats/chat/index.js";
import { InputError } from "../util/errors.js";
import { writeFileAtomic } from "../util/fs.js";
import { parseCsv, toCsv } from "./csv.js";
import { describe, jsonRows } from "./json-rows.js";
import {
  detectRowFormat,
  exchangeOf,
  parseRow,
  RESPONSE_KEYS,
  sampleToRow,
  SHAPES_HINT,
  type RowFormat,
} from "./rows.js";
import type { Sample } from "./sample.js";

export type DatasetFormat = "openai" | "sharegpt" | "alpaca" | "prompt-response" | "csv" | "prompts";
export type DatasetContainer = "jsonl" | "json" | "csv" | "text";

export const DATASET_FORMATS: readonly DatasetFormat[] = [
  "openai",
  "sharegpt",
  "alpaca",
  "prompt-response",
  "csv",
  "prompts",
];

export interface Dataset {
  samples: Sample[];
  format: DatasetFormat;
  /** The file it was read from (also every sample's `source`). */
  path: string;
  container: DatasetContainer;
}

export interface ReadDatasetOptions {
  /** Read every row as this format instead of detecting it from the extension and the rows' keys. */
  format?: DatasetFormat;
  /** allow rows with no assistant answer (prompt sets). Default false */
  allowPromptOnly?: boolean;
}

/** Column names (case-insensitive) that hold a CSV dataset's prompt, in the order they are preferred. */
export const CSV_PROMPT_COLUMNS = ["prompt", "goal", "instruction", "question", "forbidden_prompt", "query"];
/** Column names (case-insensitive) that hold a CSV dataset's response, in the order they are preferred. */
export const CSV_RESPONSE_COLUMNS = ["response", "target", "output", "answer", "completion"];

/** Read a dataset file; see {@link parseDataset}. */
export function readDataset(path: string, options: ReadDatasetOptions = {}): Dataset {
  if (!existsSync(path))
    throw new InputError(`no such dataset file: ${path}`, {
      hint: "check the path (relative paths start at the working directory)",
    });
  if (statSync(path).isDirectory())
    throw new InputError(`${path} is a directory, not a dataset file`, {
      hint: "name the .jsonl, .json, .csv or .txt file",
    });
  return parseDataset(readFileSync(path, "utf8"), path, options);
}

/**
 * Parse dataset text; `file` names it in ids, `source` and errors, and its extension helps detect the format
 * (.csv is CSV, .txt a prompt list, anything else JSONL or, when the text starts with "[", a JSON array).
 */
export function parseDataset(text: string, file: string, options: ReadDatasetOptions = {}): Dataset {
  const body = text.replace(/^\uFEFF/, "");
  const allowPromptOnly = options.allowPromptOnly ?? false;
  if (body.trim() === "") throw new InputError(`${file}: the dataset has no rows`, { hint: SHAPES_HINT });
  if (options.format !== undefined && !DATASET_FORMATS.includes(options.format))
    throw new InputError(`unknown dataset format "${String(options.format)}"`, {
      hint: `use one of ${DATASET_FORMATS.join(", ")}`,
    });
  if (options.format === "prompts" && !allowPromptOnly)
    throw new InputError(`${file}: a prompts file has no answers, and answers are needed here`, {
      hint: "prompt lists serve generation and evaluation; training data needs a format with responses",
    });
  const container = containerToRead(body, file, options.format);
  switch (container) {
    case "csv":
      return { samples: csvSamples(body, file, allowPromptOnly), format: "csv", path: file, container };
    case "text":
      if (!allowPromptOnly)
        throw new InputError(
          `${file}: a .txt file is a prompt list with no answers, and answers are needed here`,
          {
            hint: "training data needs a format with responses (JSONL, JSON or CSV); " + SHAPES_HINT,
          },
        );
      return { samples: textSamples(body, file), format: "prompts", path: file, container };
    default:
      return { ...jsonSamples(body, file, options.format, allowPromptOnly), path: file, container };
  }
}

function containerToRead(body: string, file: string, format: DatasetFormat | undefined): DatasetContainer {
  const ext = extname(file).toLowerCase();
  const looksJson = /^\s*[[{]/.test(body);
  if (format === "csv" || (format === undefined && ext === ".csv")) return "csv";
  if (format === undefined && ext === ".txt") return "text";
  if (format === "prompts" && (ext === ".txt" || !looksJson)) return "text";
  if (format === undefined && !looksJson && ext !== ".jsonl" && ext !== ".json")
    throw new InputError(
      `${file}: cannot tell the dataset format (the text is not JSON, and the name does not say)`,
      {
        hint: "name the file .jsonl, .json, .csv or .txt, or pass the format explicitly; " + SHAPES_HINT,
      },
    );
  return body.trimStart().startsWith("[") ? "json" : "jsonl";
}

/** Tracks ids so a repeated one is reported with both lines. */
class IdRegistry {
  private readonly lines = new Map<string, number>();
  constructor(private readonly file: string) {}
  add(id: string, line: number): void {
    const first = this.lines.get(id);
    if (first !== undefined)
      throw new InputError(`${this.file}:${line}: id "${id}" is also used on line ${first}`, {
        hint: "every row of a dataset needs a distinct id (rows without one get <file>:<line>)",
      });
    this.lines.set(id, line);
  }
}

function buildSample(
  id: string,
  messages: ChatMessage[],
  file: string,
  tags: string[] | undefined,
  meta: Record<string, unknown> | undefined,
): Sample {
  const sample: Sample = { id, messages, source: file };
  if (tags !== undefined) sample.tags = tags;
  if (meta !== undefined) sample.meta = meta;
  return sample;
}

function jsonSamples(
  body: string,
  file: string,
  format: DatasetFormat | undefined,
  allowPromptOnly: boolean,
): { samples: Sample[]; format: DatasetFormat } {
  const rows = jsonRows(body, file);
  if (rows.length === 0) throw new InputError(`${file}: the dataset has no rows`, { hint: SHAPES_HINT });
  const base = basename(file);
  const ids = new IdRegistry(file);
  let fileFormat: RowFormat | undefined =
    format === "prompts" ? "prompt-response" : format === "csv" ? undefined : format;
  const detected = fileFormat === undefined;
  let firstLine = 0;
  let anyResponse = false;
  const samples = rows.map(({ value, line }) => {
    const where = `${file}:${line}`;
    if (value === null || typeof value !== "object" || Array.isArray(value))
      throw new InputError(`${where}: the row is not a JSON object`, { hint: SHAPES_HINT });
    const row = value as Record<string, unknown>;
    if (detected) {
      const rowFormat = detectRowFormat(row);
      if (rowFormat === undefined) {
        const keys = Object.keys(row).slice(0, 6).join(", ");
        throw new InputError(`${where}: unknown row format (fields: ${keys || "none"})`, {
          hint: SHAPES_HINT,
        });
      }
      if (fileFormat === undefined) {
        fileFormat = rowFormat;
        firstLine = line;
      } else if (rowFormat !== fileFormat)
        throw new InputError(
          `${where}: this row is in ${rowFormat} format, but the file's first row (line ${firstLine}) is ${fileFormat}`,
          { hint: "one file holds one format; convert the odd rows or split the file" },
        );
    }
    const parsed = parseRow(row, fileFormat as RowFormat, where, allowPromptOnly);
    if (format === "prompts" && parsed.hasResponse) {
      const key = RESPONSE_KEYS.find((k) => row[k] !== undefined && row[k] !== null) ?? "response";
      throw new InputError(`${where}: field "${key}": a prompts file holds prompts only`, {
        hint: "read the file as prompt-response instead (its prompts are still there for generation)",
      });
    }
    anyResponse ||= parsed.hasResponse;
    const id = parsed.id ?? `${base}:${line}`;
    ids.add(id, line);
    return buildSample(id, parsed.messages, file, parsed.tags, parsed.meta);
  });
  const finalFormat: DatasetFormat =
    format ?? (fileFormat === "prompt-response" && !anyResponse ? "prompts" : (fileFormat as RowFormat));
  return { samples, format: finalFormat };
}

function csvSamples(body: string, file: string, allowPromptOnly: boolean): Sample[] {
  const { header, rows } = parseCsv(body, file);
  if (rows.length === 0)
    throw new InputError(`${file}: the dataset has no rows (only a header)`, { hint: SHAPES_HINT });
  const lower = header.map((h) => h.toLowerCase());
  const columnOf = (names: readonly string[]): number => {
    for (const name of names) {
      const i = lower.indexOf(name);
      if (i >= 0) return i;
    }
    return -1;
  };
  const promptCol = columnOf(CSV_PROMPT_COLUMNS);
  const responseCol = columnOf(CSV_RESPONSE_COLUMNS.filter((c) => c !== lower[promptCol]));
  const columnsHint =
    `a CSV dataset needs a prompt column (${CSV_PROMPT_COLUMNS.join(", ")}) and, for training, a response ` +
    `column (${CSV_RESPONSE_COLUMNS.join(", ")}); names are case-insensitive and other columns go to meta`;
  if (promptCol < 0)
    throw new InputError(`${file}:1: no prompt column among ${header.map((h) => `"${h}"`).join(", ")}`, {
      hint: columnsHint,
    });
  if (responseCol < 0 && !allowPromptOnly)
    throw new InputError(`${file}:1: no response column among ${header.map((h) => `"${h}"`).join(", ")}`, {
      hint: columnsHint,
    });
  const idCol = lower.indexOf("id");
  const systemCol = lower.indexOf("system");
  const tagsCol = lower.indexOf("tags");
  // Alpaca-style CSVs keep the instruction's context in an "input" column, joined as Alpaca's prompt does.
  const inputCol = lower[promptCol] === "instruction" ? lower.indexOf("input") : -1;
  const used = new Set([promptCol, responseCol, idCol, systemCol, tagsCol, inputCol]);
  const base = basename(file);
  const ids = new IdRegistry(file);
  return rows.map(({ line, cells }) => {
    const where = `${file}:${line}`;
    const empty = (col: number, what = "is empty"): never => {
      throw new InputError(`${where}: field "${header[col]}" ${what}`, { hint: columnsHint });
    };
    const prompt = cells[promptCol];
    if (prompt.trim() === "") empty(promptCol);
    const input = inputCol >= 0 ? cells[inputCol] : "";
    const messages: ChatMessage[] = [];
    if (systemCol >= 0 && cells[systemCol] !== "") {
      if (cells[systemCol].trim() === "") empty(systemCol);
      messages.push({ role: "system", content: cells[systemCol] });
    }
    messages.push({ role: "user", content: input.trim() !== "" ? `${prompt}\n\n${input}` : prompt });
    // A CSV cannot tell an absent answer from an empty one: an empty response cell is a prompt-only row.
    const response = responseCol >= 0 ? cells[responseCol] : "";
    if (response.trim() !== "") messages.push({ role: "assistant", content: response });
    else if (!allowPromptOnly) empty(responseCol, "is empty (training rows need an answer)");
    let id = `${base}:${line}`;
    if (idCol >= 0) {
      if (cells[idCol].trim() === "") empty(idCol);
      id = cells[idCol];
    }
    ids.add(id, line);
    const tags =
      tagsCol >= 0
        ? cells[tagsCol]
            .split(";")
            .map((t) => t.trim())
            .filter((t) => t !== "")
        : [];
    const meta: Record<string, unknown> = {};
    header.forEach((name, col) => {
      if (!used.has(col) && cells[col] !== "") meta[name] = cells[col];
    });
    return buildSample(
      id,
      messages,
      file,
      tags.length > 0 ? tags : undefined,
      Object.keys(meta).length > 0 ? meta : undefined,
    );
  });
}

function textSamples(body: string, file: string): Sample[] {
  const base = basename(file);
  const samples: Sample[] = [];
  body.split("\n").forEach((raw, i) => {
    const prompt = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (prompt.trim() === "") return;
    samples.push({ id: `${base}:${i + 1}`, messages: [{ role: "user", content: prompt }], source: file });
  });
  return samples;
}

/** Write samples to `path` atomically in `format`; see {@link formatDataset} for what each format can hold. */
export function writeDataset(
  path: string,
  samples: readonly Sample[],
  format: DatasetFormat,
  options: { container?: "jsonl" | "json" } = {},
): void {
  writeFileAtomic(path, formatDataset(samples, format, { file: path, container: options.container }));
}

/**
 * The file text for `samples` in `format`. The container is CSV for "csv", a plain prompt list for "prompts"
 * into a .txt file, else `options.container`, else JSON for a .json file and JSONL otherwise. A sample the
 * format cannot hold (a multi-turn chat in alpaca, an answer in prompts, a meta key that would read back as a
 * format field, an empty message, a repeated id) is an InputError naming the sample.
 * A .txt prompt list keeps only the prompt text: ids become <file>:<line>, tags and meta are dropped.
 */
export function formatDataset(
  samples: readonly Sample[],
  format: DatasetFormat,
  options: { file?: string; container?: "jsonl" | "json" } = {},
): string {
  if (!DATASET_FORMATS.includes(format))
    throw new InputError(`unknown dataset format "${String(format)}"`, {
      hint: `use one of ${DATASET_FORMATS.join(", ")}`,
    });
  const file = options.file ?? "";
  const ext = extname(file).toLowerCase();
  if (ext === ".csv" && format !== "csv")
    throw new InputError(`${file}: a .csv file would be read back as CSV, not ${format}`, {
      hint: "write format csv, or give the file a .jsonl or .json name",
    });
  if (format === "csv" && file !== "" && ext !== ".csv")
    throw new InputError(`${file}: CSV output needs a .csv file name (it is detected by the extension)`);
  if (ext === ".txt" && format !== "prompts")
    throw new InputError(`${file}: a .txt file is read back as a prompt list, not ${format}`, {
      hint: "use a .jsonl or .json name",
    });
  const seen = new Set<string>();
  for (const s of samples) {
    if (seen.has(s.id))
      throw new InputError(`sample "${s.id}": the id appears twice`, {
        hint: "give every sample a distinct id",
      });
    seen.add(s.id);
  }
  if (format === "csv") return samplesToCsv(samples);
  if (format === "prompts" && ext === ".txt" && options.container === undefined)
    return samplesToText(samples);
  const rows = samples.map((s) => sampleToRow(s, format));
  const container = options.container ?? (ext === ".json" ? "json" : "jsonl");
  if (container === "json") return JSON.stringify(rows, null, 2) + "\n";
  return rows.map((r) => JSON.stringify(r) + "\n").join("");
}

function samplesToText(samples: readonly Sample[]): string {
  return samples
    .map((s) => {
      const row = sampleToRow(s, "prompts");
      const prompt = row.prompt as string;
      if (/[\r\n]/.test(prompt))
        throw new InputError(
          `sample "${s.id}": the prompt spans several lines, which a .txt prompt list cannot hold`,
          {
            hint: "write prompts as .jsonl instead",
          },
        );
      return prompt + "\n";
    })
    .join("");
}

function samplesToCsv(samples: readonly Sample[]): string {
  const exchanges = samples.map((s) => {
    const ex = exchangeOf(s, "csv");
    for (const m of s.messages)
      if (m.content.trim() === "")
        throw new InputError(
          `sample "${s.id}": ${m.role === "assistant" ? "an" : "a"} ${m.role} message is empty`,
          {
            hint: "datasets cannot hold empty messages; drop or fill the sample",
          },
        );
    return ex;
  });
  const hasSystem = exchanges.some((e) => e.system !== undefined);
  const hasResponse = exchanges.some((e) => e.response !== undefined);
  const hasTags = samples.some((s) => (s.tags?.length ?? 0) > 0);
  const reserved = new Set(["id", "system", "prompt", "response", "tags"]);
  // Without a response column, a meta column named like one would be read back as the answer.
  if (!hasResponse) for (const c of CSV_RESPONSE_COLUMNS) reserved.add(c);
  const metaColumns: string[] = [];
  const metaSeen = new Set<string>();
  for (const s of samples)
    for (const key of Object.keys(s.meta ?? {})) {
      if (reserved.has(key.toLowerCase()))
        throw new InputError(
          `sample "${s.id}": meta field "${key}" would be read back as a csv column of its own`,
          {
            hint: "rename or drop that meta field before writing",
          },
        );
      if (metaSeen.has(key.toLowerCase())) {
        if (!metaColumns.includes(key))
          throw new InputError(
            `sample "${s.id}": meta field "${key}" differs from another sample's only by case`,
            {
              hint: "CSV column names are compared case-insensitively; rename one of them",
            },
          );
        continue;
      }
      metaSeen.add(key.toLowerCase());
      metaColumns.push(key);
    }
  const header = [
    "id",
    ...(hasSystem ? ["system"] : []),
    "prompt",
    ...(hasResponse ? ["response"] : []),
    ...(hasTags ? ["tags"] : []),
    ...metaColumns,
  ];
  const rows = samples.map((s, i) => {
    const ex = exchanges[i];
    const tags = s.tags ?? [];
    const badTag = tags.find((t) => t.includes(";") || t.trim() !== t || t === "");
    if (badTag !== undefined)
      throw new InputError(`sample "${s.id}": tag ${describe(badTag)} cannot be written to CSV`, {
        hint: 'CSV tags are one ";"-separated cell; tags must be non-empty, without ";" or edge spaces',
      });
    return [
      s.id,
      ...(hasSystem ? [ex.system ?? ""] : []),
      ex.prompt,
      ...(hasResponse ? [ex.response ?? ""] : []),
      ...(hasTags ? [tags.join(";")] : []),
      ...metaColumns.map((k) => cellText(s.meta?.[k])),
    ];
  });
  return toCsv(header, rows);
}

/** A meta value as CSV text: strings as they are, other values as JSON (CSV holds text only). */
function cellText(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}
