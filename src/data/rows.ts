// Converts one JSON dataset row to a chat and back, for each row format (openai, sharegpt, alpaca,
// prompt-response), with errors that name file:line and the field. Internal to the data room.

import type { ChatMessage, ChatRole } from "../formats/chat/index.js";
import { InputError } from "../util/errors.js";
import { describe } from "./json-rows.js";
import type { Sample } from "./sample.js";

export type RowFormat = "openai" | "sharegpt" | "alpaca" | "prompt-response";

export const SHAPES_HINT =
  'accepted rows: {"messages": [{"role": "user", "content": "..."}, ...]} (openai); ' +
  '{"conversations": [{"from": "human", "value": "..."}, ...]} (sharegpt); ' +
  '{"instruction": "...", "input"?: "...", "output": "..."} (alpaca); ' +
  '{"prompt": "...", "response": "..."} (prompt-response; also query/question with answer/completion/output); ' +
  "a CSV with a prompt column; a .txt file with one prompt per line. See docs/DATASETS.md";

/** Keys naming the prompt of a prompt-response row, in the order they are preferred. */
export const PROMPT_KEYS = ["prompt", "query", "question"] as const;
/** Keys naming the response of a prompt-response row, in the order they are preferred. */
export const RESPONSE_KEYS = ["response", "answer", "completion", "output"] as const;

/** The format a row's keys point to, or undefined when no known key is present. */
export function detectRowFormat(row: Record<string, unknown>): RowFormat | undefined {
  if ("messages" in row) {
    const first: unknown = Array.isArray(row.messages) ? row.messages[0] : undefined;
    const sharegptLike =
      first !== null &&
      typeof first === "object" &&
      !("role" in first) &&
      ("from" in first || "value" in first);
    return sharegptLike ? "sharegpt" : "openai";
  }
  if ("conversations" in row) return "sharegpt";
  if ("instruction" in row) return "alpaca";
  if (PROMPT_KEYS.some((k) => k in row)) return "prompt-response";
  if ("output" in row) return "alpaca";
  if (RESPONSE_KEYS.some((k) => k in row)) return "prompt-response";
  return undefined;
}

export interface ParsedRow {
  messages: ChatMessage[];
  id?: string;
  tags?: string[];
  meta?: Record<string, unknown>;
  /** Whether the row carried an answer (an assistant message at the end). */
  hasResponse: boolean;
}

/** Read one row as `format`. `where` is "file:line"; prompt-only rows pass only with allowPromptOnly. */
export function parseRow(
  row: unknown,
  format: RowFormat,
  where: string,
  allowPromptOnly: boolean,
  hint: string = SHAPES_HINT,
): ParsedRow {
  if (row === null || typeof row !== "object" || Array.isArray(row))
    throw new InputError(`${where}: the row is not a JSON object`, { hint });
  const r = row as Record<string, unknown>;
  const used = new Set<string>(["id", "tags"]);
  const fail = (field: string, what: string, fieldHint = hint): never => {
    throw new InputError(`${where}: field "${field}" ${what}`, { hint: fieldHint });
  };
  /** A string field; undefined/null count as absent, "" (or only spaces) as empty unless allowEmpty. */
  const str = (key: string, required: boolean, allowEmpty = false): string | undefined => {
    used.add(key);
    const v = r[key];
    if (v === undefined || v === null) return required ? fail(key, "is missing") : undefined;
    if (typeof v !== "string") return fail(key, `must be a string, got ${describe(v)}`);
    if (!allowEmpty && v.trim() === "") return fail(key, "is empty");
    return v;
  };
  const firstKey = (keys: readonly string[]): string | undefined =>
    keys.find((k) => r[k] !== undefined && r[k] !== null);
  const systemMessages = (): ChatMessage[] => {
    const s = str("system", false);
    return s === undefined ? [] : [{ role: "system", content: s }];
  };
  const promptOnlyCheck = (field: string): void => {
    if (!allowPromptOnly)
      fail(
        field,
        "is missing",
        `training rows need an answer (prompt-only rows pass only in prompt sets); ${hint}`,
      );
  };

  let messages: ChatMessage[];
  switch (format) {
    case "openai":
      used.add("messages");
      messages = parseTurns(r.messages, "messages", "role", "content", where, hint);
      break;
    case "sharegpt": {
      const key = "conversations" in r || !("messages" in r) ? "conversations" : "messages";
      used.add(key);
      messages = parseTurns(r[key], key, "from", "value", where, hint);
      break;
    }
    case "alpaca": {
      const instruction = str("instruction", true) as string;
      const input = str("input", false, true);
      const output = str("output", false);
      if (output === undefined) promptOnlyCheck("output");
      const user = input !== undefined && input.trim() !== "" ? `${instruction}\n\n${input}` : instruction;
      messages = [...systemMessages(), { role: "user", content: user }];
      if (output !== undefined) messages.push({ role: "assistant", content: output });
      break;
    }
    case "prompt-response": {
      const promptKey = firstKey(PROMPT_KEYS) ?? "prompt";
      const responseKey = firstKey(RESPONSE_KEYS);
      const prompt = str(promptKey, true) as string;
      const response = responseKey === undefined ? undefined : str(responseKey, true);
      if (response === undefined) promptOnlyCheck("response");
      messages = [...systemMessages(), { role: "user", content: prompt }];
      if (response !== undefined) messages.push({ role: "assistant", content: response });
      break;
    }
  }
  const last = messages[messages.length - 1];
  const hasResponse = last.role === "assistant";
  if (!messages.some((m) => m.role === "user"))
    throw new InputError(`${where}: the chat has no user message`, { hint });
  if (!hasResponse && !allowPromptOnly)
    throw new InputError(
      `${where}: no assistant message at the end of the chat; there is nothing to learn from`,
      { hint: "every training row needs an answer (a final assistant message, response, or output)" },
    );

  const parsed: ParsedRow = { messages, hasResponse };
  if (r.id !== undefined && r.id !== null) {
    if (typeof r.id === "number" && Number.isFinite(r.id)) parsed.id = String(r.id);
    else if (typeof r.id === "string" && r.id.trim() !== "") parsed.id = r.id;
    else fail("id", `must be a non-empty string or a number, got ${describe(r.id)}`);
  }
  if (r.tags !== undefined && r.tags !== null) {
    if (!Array.isArray(r.tags) || r.tags.some((t) => typeof t !== "string" || t === ""))
      fail("tags", `must be a list of non-empty strings, got ${describe(r.tags)}`);
    if ((r.tags as string[]).length > 0) parsed.tags = (r.tags as string[]).slice();
  }
  const meta: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) if (!used.has(k)) meta[k] = v;
  if (Object.keys(meta).length > 0) parsed.meta = meta;
  return parsed;
}

const SHAREGPT_ROLES: Record<string, ChatRole> = {
  system: "system",
  human: "user",
  user: "user",
  gpt: "assistant",
  assistant: "assistant",
};

function parseTurns(
  value: unknown,
  key: string,
  roleKey: "role" | "from",
  contentKey: "content" | "value",
  where: string,
  hint: string,
): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0)
    throw new InputError(`${where}: field "${key}" must be a non-empty array, got ${describe(value)}`, {
      hint,
    });
  return value.map((m: unknown, i): ChatMessage => {
    const field = `${key}[${i}]`;
    if (m === null || typeof m !== "object" || Array.isArray(m))
      throw new InputError(`${where}: field "${field}" must be an object, got ${describe(m)}`, { hint });
    const turn = m as Record<string, unknown>;
    const rawRole = turn[roleKey];
    const role =
      roleKey === "role"
        ? rawRole === "system" || rawRole === "user" || rawRole === "assistant"
          ? rawRole
          : undefined
        : typeof rawRole === "string"
          ? SHAREGPT_ROLES[rawRole]
          : undefined;
    if (role === undefined) {
      const allowed =
        roleKey === "role"
          ? '"system", "user" or "assistant"'
          : '"system", "human", "gpt", "user" or "assistant"';
      throw new InputError(
        `${where}: field "${field}.${roleKey}" must be ${allowed}, got ${describe(rawRole)}`,
        {
          hint: "tool and function messages are not supported; leave them out of the dataset",
        },
      );
    }
    const content =
      contentKey === "content"
        ? contentText(turn.content, `${field}.content`, where)
        : stringTurn(turn.value, `${field}.value`, where);
    if (content.trim() === "")
      throw new InputError(`${where}: field "${field}.${contentKey}" is empty`, { hint });
    return { role, content };
  });
}

function stringTurn(value: unknown, field: string, where: string): string {
  if (typeof value !== "string")
    throw new InputError(`${where}: field "${field}" must be a string, got ${describe(value)}`);
  return value;
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

/** A sample's chat split into the one exchange that alpaca, prompt-response, CSV and prompts hold. */
export interface Exchange {
  system?: string;
  prompt: string;
  response?: string;
}

/** The sample as one exchange, or an InputError naming the sample when its chat is longer. */
export function exchangeOf(sample: Sample, formatName: string): Exchange {
  const msgs = sample.messages;
  let i = 0;
  const exchange: Partial<Exchange> = {};
  if (msgs[i]?.role === "system") exchange.system = msgs[i++].content;
  if (msgs[i]?.role === "user") exchange.prompt = msgs[i++].content;
  if (msgs[i]?.role === "assistant") exchange.response = msgs[i++].content;
  if (exchange.prompt === undefined || i !== msgs.length)
    throw new InputError(
      `sample "${sample.id}": ${formatName} holds one exchange (an optional system message, a user message and ` +
        `its answer), but this sample's chat is ${msgs.map((m) => m.role).join(", ") || "empty"}`,
      { hint: "write multi-turn chats as openai or sharegpt" },
    );
  return exchange as Exchange;
}

/** The JSON row for `sample` in `format` (format fields after "id"; meta keys after them). */
export function sampleToRow(sample: Sample, format: RowFormat | "prompts"): Record<string, unknown> {
  const row: Record<string, unknown> = { id: sample.id };
  // Meta keys that would be read back as format fields (or flip format detection) cannot be kept.
  const reserved = new Set(["id", "tags", "messages", "conversations"]);
  switch (format) {
    case "openai":
      row.messages = sample.messages.map((m) => ({ role: m.role, content: m.content }));
      break;
    case "sharegpt": {
      const from = { system: "system", user: "human", assistant: "gpt" } as const;
      row.conversations = sample.messages.map((m) => ({ from: from[m.role], value: m.content }));
      break;
    }
    case "alpaca": {
      const ex = exchangeOf(sample, "alpaca");
      for (const k of ["instruction", "input", "output", "system"]) reserved.add(k);
      if (ex.system !== undefined) row.system = ex.system;
      row.instruction = ex.prompt;
      if (ex.response !== undefined) row.output = ex.response;
      break;
    }
    case "prompt-response":
    case "prompts": {
      const ex = exchangeOf(sample, format);
      for (const k of ["instruction", "prompt", "system"]) reserved.add(k);
      if (format === "prompts" && (ex.system !== undefined || ex.response !== undefined))
        throw new InputError(
          `sample "${sample.id}": a prompts file holds a single user prompt, but this sample has ` +
            (ex.system !== undefined ? "a system message" : "an answer"),
          { hint: "write it as prompt-response (or openai), or keep only the prompt" },
        );
      if (ex.system !== undefined) row.system = ex.system;
      row.prompt = ex.prompt;
      if (ex.response !== undefined) row.response = ex.response;
      else for (const k of RESPONSE_KEYS) reserved.add(k);
      reserved.add("response");
      break;
    }
  }
  for (const m of sample.messages)
    if (m.content.trim() === "")
      throw new InputError(
        `sample "${sample.id}": ${m.role === "assistant" ? "an" : "a"} ${m.role} message is empty`,
        {
          hint: "datasets cannot hold empty messages; drop or fill the sample",
        },
      );
  if (sample.tags !== undefined && sample.tags.length > 0) row.tags = sample.tags.slice();
  for (const [k, v] of Object.entries(sample.meta ?? {})) {
    if (reserved.has(k))
      throw new InputError(
        `sample "${sample.id}": meta field "${k}" would be read back as a ${format} field`,
        {
          hint: "rename or drop that meta field before writing",
        },
      );
    if (v !== undefined) row[k] = v;
  }
  return row;
}
