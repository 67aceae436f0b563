// Chat templates: turn a list of role/content messages into the exact prompt text a model was tuned on,
// by running the model's own Jinja template (GGUF metadata or tokenizer_config.json) or buckle's fallback.

import { Environment, Interpreter, Template } from "@huggingface/jinja";
import { InputError } from "../../util/errors.js";
import {
  FALLBACK_TEMPLATE_NAME,
  FALLBACK_TEMPLATE_SOURCE,
  builtinTemplates,
  isBuiltinTemplateName,
  type BuiltinTemplateName,
} from "./builtin.js";

export type ChatRole = "system" | "user" | "assistant";

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface ChatTemplateOptions {
  /** Text of the BOS token, passed to the template as `bos_token` (default ""). */
  bosToken?: string;
  /** Text of the EOS token, passed to the template as `eos_token` (default ""). */
  eosToken?: string;
  /** Shown in error messages; defaults to where the template came from. */
  name?: string;
  /**
   * The date `strftime_now()` reports to templates that print today's date (Llama 3.2 and later).
   * Pin it when the rendered text must be reproducible; default: the clock at render time.
   */
  now?: Date;
}

export interface RenderOptions {
  /** Append the template's opening of an assistant turn, for generation. Default false. */
  addGenerationPrompt?: boolean;
}

const ROLES: ReadonlySet<string> = new Set(["system", "user", "assistant"]);

/** Thrown by the template's own `raise_exception(...)`, so errors can say the template refused. */
class TemplateRaised extends Error {}

export class ChatTemplate {
  readonly source: string;
  readonly name: string;
  readonly bosToken: string;
  readonly eosToken: string;
  /** True when the model had no template and buckle's ChatML fallback is used instead. */
  readonly isFallback: boolean;
  private readonly now: Date | undefined;
  private readonly compiled: Template;

  private constructor(source: string, options: ChatTemplateOptions, isFallback: boolean) {
    this.source = source;
    this.name = options.name ?? "chat template";
    this.bosToken = options.bosToken ?? "";
    this.eosToken = options.eosToken ?? "";
    this.isFallback = isFallback;
    this.now = options.now;
    try {
      this.compiled = new Template(source);
    } catch (err) {
      throw new InputError(`chat template "${this.name}" cannot be parsed: ${errorText(err)}`, {
        hint: "the template must be Jinja as Hugging Face transformers accepts it",
        cause: err,
      });
    }
  }

  /** A template from Jinja source. */
  static fromString(source: string, options: ChatTemplateOptions = {}): ChatTemplate {
    return new ChatTemplate(source, options, false);
  }

  /** buckle's ChatML template for models without one; `isFallback` is true and the name is "buckle-fallback-chatml". */
  static fallback(options: Omit<ChatTemplateOptions, "name"> = {}): ChatTemplate {
    return new ChatTemplate(FALLBACK_TEMPLATE_SOURCE, { ...options, name: FALLBACK_TEMPLATE_NAME }, true);
  }

  /** One of the formats in `builtinTemplates` (chatml, llama2, llama3, mistral, phi3, zephyr). */
  static builtin(name: BuiltinTemplateName, options: Omit<ChatTemplateOptions, "name"> = {}): ChatTemplate {
    if (!isBuiltinTemplateName(name)) {
      throw new InputError(`unknown built-in chat template "${String(name)}"`, {
        hint: `known: ${Object.keys(builtinTemplates).join(", ")}`,
      });
    }
    return new ChatTemplate(builtinTemplates[name], { ...options, name: `buckle-${name}` }, false);
  }

  /**
   * The template a GGUF file carries, given the already-read values: `tokenizer.chat_template` (or a
   * named variant) and the texts of the BOS/EOS tokens. No template (undefined or empty) gives the fallback.
   */
  static fromGGUF(fields: {
    chatTemplate?: string;
    bosToken?: string;
    eosToken?: string;
    name?: string;
    now?: Date;
  }): ChatTemplate {
    const { chatTemplate, ...options } = fields;
    if (chatTemplate === undefined || chatTemplate.trim() === "") return ChatTemplate.fallback(options);
    return new ChatTemplate(chatTemplate, { name: "GGUF tokenizer.chat_template", ...options }, false);
  }

  /**
   * Same as {@link fromGGUF}, reading the keys through `get` (any GGUF metadata reader) and the BOS/EOS
   * texts from `tokens` (tokenizer.ggml.tokens). `templateName` picks `tokenizer.chat_template.<name>`.
   */
  static fromGGUFMetadata(
    get: (key: string) => unknown,
    tokens: readonly string[],
    options: { templateName?: string; name?: string; now?: Date } = {},
  ): ChatTemplate {
    const key = options.templateName
      ? `tokenizer.chat_template.${options.templateName}`
      : "tokenizer.chat_template";
    const template = get(key);
    if (template !== undefined && typeof template !== "string") {
      throw new InputError(`GGUF metadata ${key} is not a string`);
    }
    if (options.templateName && template === undefined) {
      throw new InputError(`GGUF metadata has no chat template named "${options.templateName}" (${key})`);
    }
    const tokenTextOf = (idKey: string): string | undefined => {
      const raw = get(idKey);
      if (raw === undefined) return undefined;
      const id = typeof raw === "bigint" ? Number(raw) : raw;
      if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= tokens.length) {
        throw new InputError(`GGUF metadata ${idKey} = ${String(raw)} is not a token id of this vocabulary`);
      }
      return tokens[id];
    };
    const generalName = get("general.name");
    return ChatTemplate.fromGGUF({
      chatTemplate: template,
      bosToken: tokenTextOf("tokenizer.ggml.bos_token_id"),
      eosToken: tokenTextOf("tokenizer.ggml.eos_token_id"),
      name:
        options.name ??
        (template === undefined
          ? undefined
          : typeof generalName === "string"
            ? `${generalName} (${key})`
            : `GGUF ${key}`),
      now: options.now,
    });
  }

  /**
   * The template of a Hugging Face tokenizer_config.json (parsed JSON): `chat_template` is a string or a list
   * of `{name, template}` (the one named `templateName`, else "default", is used); `bos_token`/`eos_token` are
   * strings or `{content}` objects. No `chat_template` gives the fallback.
   */
  static fromTokenizerConfig(
    json: unknown,
    options: { templateName?: string; name?: string; now?: Date } = {},
  ): ChatTemplate {
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw new InputError("tokenizer_config.json is not a JSON object");
    }
    const config = json as Record<string, unknown>;
    const bosToken = specialTokenText(config.bos_token, "bos_token");
    const eosToken = specialTokenText(config.eos_token, "eos_token");
    const raw = config.chat_template;
    if (raw === undefined || raw === null) {
      if (options.templateName) {
        throw new InputError(
          `tokenizer_config.json has no chat_template, so none named "${options.templateName}"`,
        );
      }
      return ChatTemplate.fallback({ bosToken, eosToken, now: options.now });
    }
    let source: string;
    let picked: string | undefined;
    if (typeof raw === "string") {
      if (options.templateName && options.templateName !== "default") {
        throw new InputError(
          `tokenizer_config.json has a single chat_template, not one named "${options.templateName}"`,
        );
      }
      source = raw;
    } else if (Array.isArray(raw)) {
      const named = new Map<string, string>();
      for (const [i, entry] of raw.entries()) {
        const e = entry as { name?: unknown; template?: unknown } | null;
        if (
          typeof e !== "object" ||
          e === null ||
          typeof e.name !== "string" ||
          typeof e.template !== "string"
        ) {
          throw new InputError(
            `tokenizer_config.json chat_template[${i}] is not {"name": string, "template": string}`,
          );
        }
        named.set(e.name, e.template);
      }
      picked = options.templateName ?? "default";
      const found = named.get(picked);
      if (found === undefined) {
        throw new InputError(`tokenizer_config.json has no chat template named "${picked}"`, {
          hint: `available: ${[...named.keys()].join(", ") || "(none)"}`,
        });
      }
      source = found;
    } else {
      throw new InputError(
        "tokenizer_config.json chat_template is neither a string nor a list of named templates",
      );
    }
    return new ChatTemplate(
      source,
      {
        bosToken,
        eosToken,
        now: options.now,
        name:
          options.name ??
          (picked ? `tokenizer_config.json chat_template "${picked}"` : "tokenizer_config.json"),
      },
      false,
    );
  }

  /** The prompt text for `messages`; template errors become InputError naming this template. */
  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    validateMessages(messages);
    const now = this.now ?? new Date();
    const variables: Record<string, unknown> = {
      ...JINJA_GLOBALS,
      // Fresh plain objects: the engine wraps them, and templates must not see caller-side extra fields.
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      bos_token: this.bosToken,
      eos_token: this.eosToken,
      add_generation_prompt: options.addGenerationPrompt ?? false,
      raise_exception: (message: unknown) => {
        throw new TemplateRaised(String(message));
      },
      strftime_now: (format: unknown) => strftime(now, String(format)),
      // `tools`, `documents` and the like stay undefined: buckle renders plain conversations.
    };
    try {
      // Our own environment rather than Template.render, whose fixed globals cannot be replaced: buckle's
      // raise_exception must be told apart from engine errors, and strftime_now must honour `now`.
      const env = new Environment();
      for (const [key, value] of Object.entries(variables)) env.set(key, value);
      const result = new Interpreter(env).run(this.compiled.parsed).value;
      if (typeof result !== "string") throw new Error(`the template produced ${typeof result}, not text`);
      return result;
    } catch (err) {
      if (err instanceof TemplateRaised) {
        throw new InputError(`chat template "${this.name}" rejected the conversation: ${err.message}`, {
          hint: "the template's own check failed; make the conversation fit the model's format (roles, order)",
          cause: err,
        });
      }
      throw new InputError(`chat template "${this.name}" failed to render: ${errorText(err)}`, {
        cause: err,
      });
    }
  }
}

// The names Jinja (and transformers' chat rendering) predefine, other than the per-render ones above.
const JINJA_GLOBALS: Readonly<Record<string, unknown>> = {
  true: true,
  false: false,
  none: null,
  True: true,
  False: false,
  None: null,
  range: (start: number, stop?: number, step = 1): number[] => {
    if (stop === undefined) [start, stop] = [0, start];
    if (step === 0) throw new Error("range() step must not be zero");
    const out: number[] = [];
    for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
    return out;
  },
};

function specialTokenText(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  if (typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  throw new InputError(`tokenizer_config.json ${field} is neither a string nor an object with "content"`);
}

function validateMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages)) throw new InputError("chat messages must be a list");
  messages.forEach((m, i) => {
    const role: unknown = (m as { role?: unknown } | null)?.role;
    if (typeof role !== "string" || !ROLES.has(role)) {
      throw new InputError(
        `chat message ${i} has role ${JSON.stringify(role)}; expected system, user or assistant`,
      );
    }
    if (typeof m.content !== "string") {
      throw new InputError(`chat message ${i} (${role}) has no text content`);
    }
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];
const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

// Python's strftime with the C locale, for the directives chat templates use; English names regardless of
// the machine's locale so that renders do not depend on where they run.
function strftime(date: Date, format: string): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return format.replace(/%[YymdeBbAaHIMSpj%]/g, (d) => {
    switch (d) {
      case "%Y":
        return String(date.getFullYear());
      case "%y":
        return pad(date.getFullYear() % 100);
      case "%m":
        return pad(date.getMonth() + 1);
      case "%d":
        return pad(date.getDate());
      case "%e":
        return String(date.getDate()).padStart(2, " ");
      case "%B":
        return MONTHS[date.getMonth()];
      case "%b":
        return MONTHS[date.getMonth()].slice(0, 3);
      case "%A":
        return DAYS[date.getDay()];
      case "%a":
        return DAYS[date.getDay()].slice(0, 3);
      case "%H":
        return pad(date.getHours());
      case "%I":
        return pad(((date.getHours() + 11) % 12) + 1);
      case "%M":
        return pad(date.getMinutes());
      case "%S":
        return pad(date.getSeconds());
      case "%p":
        return date.getHours() < 12 ? "AM" : "PM";
      case "%j": {
        const day = Date.UTC(date.getFullYear(), date.getMonth(), date.getDate());
        return pad(Math.round((day - Date.UTC(date.getFullYear(), 0, 1)) / 86_400_000) + 1, 3);
      }
      default:
        return "%";
    }
  });
}
