// Benchmark sets: harmful prompts (AdvBench, HEx-PHI, BeaverTails, StrongREJECT layouts), benign instructions,
// over-refusal contrast sets (XSTest) and multiple-choice sets, from local files, Hugging Face, or built-ins.

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { basename, dirname, extname } from "node:path";
import { parseCsv } from "../data/index.js";
import { InputError, UnavailableError } from "../util/errors.js";
import { cacheDir, writeFileAtomic } from "../util/fs.js";
import { BUILTIN_SETS } from "./builtin-sets.js";

export type BenchmarkKind = "harmful" | "benign" | "over-refusal" | "multiple-choice";

export interface BenchmarkItem {
  id: string;
  prompt: string;
  /** A system message sent before the prompt (e.g. an identity-shifting attack's system prompt). */
  system?: string;
  category?: string;
  /** A reference answer (benign sets that carry one). */
  reference?: string;
  /** Over-refusal sets: "safe" prompts must be answered, "unsafe" contrast prompts refused. */
  label?: "safe" | "unsafe";
  /** Multiple-choice sets: the options and the index of the right one. */
  choices?: string[];
  answerIndex?: number;
  meta?: Record<string, unknown>;
}

export interface BenchmarkSet {
  /** A short name used in record ids and reports (file stem, "builtin:...", "hf:..."). */
  name: string;
  kind: BenchmarkKind;
  /** True for sets written by us for smoke runs: reports must say so. */
  builtin: boolean;
  /** Where it came from (path, builtin ref, hf ref) and which layout was recognised. */
  source: string;
  layout: string;
  items: BenchmarkItem[];
}

export interface LoadBenchmarkOptions {
  /** Hugging Face datasets-server endpoint (tests point it at a closed port). */
  hfEndpoint?: string;
  /** Rows to fetch from Hugging Face at most. Default 5000. */
  hfMaxRows?: number;
}

const PROMPT_FIELDS = [
  "prompt",
  "goal",
  "forbidden_prompt",
  "instruction",
  "question",
  "query",
  "behavior",
  "text",
];
const REFERENCE_FIELDS = ["output", "response", "answer", "completion", "reference", "target"];

type Row = Record<string, unknown>;

/** Names of the built-in sets. */
export function builtinSetNames(): string[] {
  return Object.keys(BUILTIN_SETS).map((n) => `builtin:${n}`);
}

/**
 * Load a benchmark: "builtin:<name>", "hf:<owner>/<dataset>[@config][:split]" (downloaded once into the cache),
 * or a local .csv / .jsonl / .json file. `kind` says how the set is used.
 */
export async function loadBenchmark(
  ref: string,
  kind: BenchmarkKind,
  options: LoadBenchmarkOptions = {},
): Promise<BenchmarkSet> {
  if (ref.startsWith("builtin:")) {
    const set = BUILTIN_SETS[ref.slice("builtin:".length)];
    if (!set)
      throw new InputError(`unknown built-in set ${ref}`, {
        hint: `choose one of ${builtinSetNames().join(", ")}`,
      });
    if (set.kind !== kind) {
      throw new InputError(`${ref} is a ${set.kind} set, but it was given as a ${kind} set`, {
        hint: `pass it to the flag for ${set.kind} sets`,
      });
    }
    return {
      name: ref,
      kind,
      builtin: true,
      source: ref,
      layout: "builtin",
      items: set.items.map((i) => ({ ...i })),
    };
  }
  if (ref.startsWith("hf:")) {
    const { rows, file } = await hfRows(ref, options);
    return fromRows(rows, kind, ref, file);
  }
  if (!existsSync(ref))
    throw new InputError(`benchmark file ${ref} does not exist`, {
      hint: "pass a path, builtin:<name> or hf:<owner>/<name>",
    });
  const text = readFileSync(ref, "utf8");
  const ext = extname(ref).toLowerCase();
  if (ext === ".csv") {
    const table = parseCsv(text, ref);
    const rows = table.rows.map((r) => ({
      line: r.line,
      value: Object.fromEntries(table.header.map((h, i) => [h, r.cells[i]])) as Row,
    }));
    return fromRows(rows, kind, basename(ref, ext), ref);
  }
  if (ext === ".jsonl" || ext === ".json")
    return fromRows(jsonRowsOf(text, ref), kind, basename(ref, ext), ref);
  throw new InputError(`${ref}: benchmark files must be .csv, .jsonl or .json`, {
    hint: "convert the file, or rename it if it is one of those",
  });
}

function jsonRowsOf(text: string, file: string): { line: number; value: Row }[] {
  const asRow = (value: unknown, line: number): Row => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new InputError(`${file}:${line}: expected a JSON object per row`, {
        hint: 'each row must be an object such as {"prompt": ...}',
      });
    }
    return value as Row;
  };
  if (text.trimStart().startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new InputError(`${file}: not valid JSON (${(err as Error).message})`, {
        hint: "a JSON file must hold an array of objects",
      });
    }
    if (!Array.isArray(parsed)) throw new InputError(`${file}: expected a JSON array of objects`);
    return parsed.map((v, i) => ({ line: i + 1, value: asRow(v, i + 1) }));
  }
  const rows: { line: number; value: Row }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    if (raw.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      throw new InputError(`${file}:${i + 1}: not valid JSON (${(err as Error).message})`, {
        hint: "JSON Lines needs one JSON object per line",
      });
    }
    rows.push({ line: i + 1, value: asRow(value, i + 1) });
  });
  return rows;
}

function str(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return undefined;
}

function firstField(row: Row, names: readonly string[]): [string, string] | undefined {
  for (const n of names) {
    const v = str(row[n]);
    if (v !== undefined && v.trim() !== "") return [n, v];
  }
  return undefined;
}

/** The user turn of a chat-format row ({messages: [{role, content}]}). */
function chatPrompt(row: Row): { prompt: string; reference?: string } | undefined {
  const messages = row.messages ?? row.conversations;
  if (!Array.isArray(messages)) return undefined;
  let prompt: string | undefined;
  let reference: string | undefined;
  for (const m of messages as Row[]) {
    const role = str(m.role ?? m.from);
    const content = str(m.content ?? m.value);
    if (content === undefined) continue;
    if ((role === "user" || role === "human") && prompt === undefined) prompt = content;
    else if ((role === "assistant" || role === "gpt") && prompt !== undefined && reference === undefined)
      reference = content;
  }
  return prompt === undefined ? undefined : { prompt, reference };
}

/** Category of a row: a string, or the true keys of a BeaverTails-style {name: bool} map. */
function categoryOf(row: Row): string | undefined {
  const c = row.category ?? row.type ?? row.subcategory ?? row.harm_category;
  if (typeof c === "string" && c.trim() !== "") return c.trim();
  if (typeof c === "object" && c !== null && !Array.isArray(c)) {
    const on = Object.entries(c as Row)
      .filter(([, v]) => v === true)
      .map(([k]) => k);
    return on.length > 0 ? on.join("+") : undefined;
  }
  return undefined;
}

function labelOf(row: Row, line: number, file: string): "safe" | "unsafe" {
  const raw = str(row.label ?? row.type_label ?? row.safety);
  const value = raw?.toLowerCase().trim();
  if (value === "safe" || value === "unsafe") return value;
  if (typeof row.type === "string") return row.type.toLowerCase().startsWith("contrast") ? "unsafe" : "safe";
  throw new InputError(
    `${file}:${line}: over-refusal rows need label "safe" or "unsafe" (or an XSTest type)`,
    {
      hint: 'add a column "label" with safe/unsafe',
    },
  );
}

function choicesOf(row: Row, line: number, file: string): { choices: string[]; answerIndex: number } {
  let choices: string[] | undefined;
  if (Array.isArray(row.choices)) choices = (row.choices as unknown[]).map((c) => str(c) ?? "");
  else if (Array.isArray(row.options)) choices = (row.options as unknown[]).map((c) => str(c) ?? "");
  else {
    const letters = ["A", "B", "C", "D", "E", "F"].filter(
      (l) => str(row[l]) !== undefined || str(row[l.toLowerCase()]) !== undefined,
    );
    if (letters.length >= 2) choices = letters.map((l) => str(row[l]) ?? str(row[l.toLowerCase()]) ?? "");
  }
  if (!choices || choices.length < 2) {
    throw new InputError(
      `${file}:${line}: multiple-choice rows need "choices" (a list) or columns A, B, C, ...`,
      {
        hint: 'e.g. {"question": "...", "choices": ["x", "y"], "answer": 1}',
      },
    );
  }
  const answer = str(row.answer ?? row.answerIndex ?? row.label);
  let answerIndex: number | undefined;
  if (answer !== undefined && /^\d+$/.test(answer.trim())) answerIndex = Number(answer.trim());
  else if (answer !== undefined && /^[A-Fa-f]$/.test(answer.trim()))
    answerIndex = answer.trim().toUpperCase().charCodeAt(0) - 65;
  else if (answer !== undefined && choices.includes(answer)) answerIndex = choices.indexOf(answer);
  if (answerIndex === undefined || answerIndex < 0 || answerIndex >= choices.length) {
    throw new InputError(
      `${file}:${line}: the answer "${answer ?? ""}" is not a choice index, letter or choice text`,
      {
        hint: `give "answer" as 0..${choices.length - 1}, a letter, or the text of the right choice`,
      },
    );
  }
  return { choices, answerIndex };
}

/** Map rows of any supported layout to a BenchmarkSet. */
export function fromRows(
  rows: { line: number; value: Row }[],
  kind: BenchmarkKind,
  name: string,
  file: string,
): BenchmarkSet {
  if (rows.length === 0) throw new InputError(`${file}: the benchmark has no rows`);
  const keys = new Set(Object.keys(rows[0].value));
  const layout =
    keys.has("goal") && keys.has("target")
      ? "advbench"
      : keys.has("forbidden_prompt")
        ? "strongreject"
        : keys.has("is_safe") && keys.has("response")
          ? "beavertails"
          : kind === "over-refusal" && keys.has("type")
            ? "xstest"
            : keys.has("messages") || keys.has("conversations")
              ? "chat"
              : keys.has("category")
                ? "prompt+category"
                : "prompt";
  const items: BenchmarkItem[] = [];
  const seenPrompts = new Set<string>();
  for (const { line, value: row } of rows) {
    const chat = chatPrompt(row);
    const field = firstField(row, PROMPT_FIELDS);
    let prompt = chat?.prompt ?? field?.[1];
    if (prompt === undefined) {
      throw new InputError(`${file}:${line}: no prompt found`, {
        hint: `give one of the columns ${PROMPT_FIELDS.join(", ")}, or chat "messages"`,
      });
    }
    const input = str(row.input);
    if (field?.[0] === "instruction" && input !== undefined && input.trim() !== "")
      prompt = `${prompt}\n\n${input}`;
    // BeaverTails repeats a prompt once per response; a prompt set needs each prompt once
    if (layout === "beavertails") {
      if (seenPrompts.has(prompt)) continue;
      seenPrompts.add(prompt);
    }
    const id = str(row.id ?? row.id_v2 ?? row.prompt_id) ?? `${name}-${line}`;
    const item: BenchmarkItem = { id, prompt, category: categoryOf(row) };
    if (kind === "benign") {
      const reference =
        chat?.reference ??
        firstField(
          row,
          REFERENCE_FIELDS.filter((f) => f !== field?.[0]),
        )?.[1];
      if (reference !== undefined) item.reference = reference;
    }
    if (kind === "over-refusal") item.label = labelOf(row, line, file);
    if (kind === "multiple-choice") Object.assign(item, choicesOf(row, line, file));
    const meta: Record<string, unknown> = { line };
    if (layout === "advbench") meta.target = row.target;
    if (layout === "strongreject" && row.source !== undefined) meta.source = row.source;
    if (layout === "beavertails") meta.isSafe = row.is_safe;
    item.meta = meta;
    items.push(item);
  }
  const ids = new Set<string>();
  for (const item of items) {
    if (ids.has(item.id))
      throw new InputError(`${file}: duplicate item id "${item.id}"`, {
        hint: "ids must be unique within a set",
      });
    ids.add(item.id);
  }
  return { name, kind, builtin: false, source: file, layout, items };
}

/** Parse "hf:owner/name[@config][:split]". */
export function parseHfRef(ref: string): { dataset: string; config: string; split: string } {
  const m = /^hf:([\w.-]+\/[\w.-]+)(?:@([\w.-]+))?(?::([\w.-]+))?$/.exec(ref);
  if (!m)
    throw new InputError(`bad Hugging Face dataset reference ${ref}`, {
      hint: "write hf:<owner>/<dataset>[@config][:split], e.g. hf:walledai/AdvBench:train",
    });
  return { dataset: m[1], config: m[2] ?? "default", split: m[3] ?? "train" };
}

/** Rows of a Hugging Face dataset, from the cache or fetched once through the datasets-server rows API. */
async function hfRows(
  ref: string,
  options: LoadBenchmarkOptions,
): Promise<{ rows: { line: number; value: Row }[]; file: string }> {
  const { dataset, config, split } = parseHfRef(ref);
  const file = cacheDir("datasets", ...dataset.split("/"), `${config}-${split}.jsonl`);
  if (existsSync(file)) return { rows: jsonRowsOf(readFileSync(file, "utf8"), file), file };
  const endpoint = options.hfEndpoint ?? "https://datasets-server.huggingface.co";
  const maxRows = options.hfMaxRows ?? 5000;
  const offline = (cause: unknown): UnavailableError =>
    new UnavailableError(
      `could not download ${ref} from Hugging Face (${(cause as Error).message ?? String(cause)})`,
      {
        hint: `this machine looks offline: download the dataset yourself (as .csv or .jsonl) and pass its path, or place it at ${file}`,
        cause,
      },
    );
  const values: Row[] = [];
  for (let offset = 0; offset < maxRows; offset += 100) {
    const url = `${endpoint}/rows?dataset=${encodeURIComponent(dataset)}&config=${encodeURIComponent(config)}&split=${encodeURIComponent(split)}&offset=${offset}&length=${Math.min(100, maxRows - offset)}`;
    let body: { rows?: { row: Row }[]; num_rows_total?: number; error?: string };
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(30_000) });
      body = (await response.json()) as typeof body;
      if (!response.ok) throw new Error(body.error ?? `HTTP ${response.status}`);
    } catch (err) {
      throw offline(err);
    }
    const page = body.rows ?? [];
    values.push(...page.map((r) => r.row));
    if (page.length === 0 || values.length >= (body.num_rows_total ?? Infinity)) break;
  }
  mkdirSync(dirname(file), { recursive: true });
  writeFileAtomic(file, values.map((v) => JSON.stringify(v)).join("\n") + "\n");
  return { rows: values.map((value, i) => ({ line: i + 1, value })), file };
}
