// `buckle tokenize`: token ids of a text, or a chat rendered with the model's template and its assistant spans.

import { existsSync, readFileSync } from "node:fs";
import type { Command } from "commander";
import { loadTokenizerAndTemplate } from "../../formats/load.js";
import { renderWithSpans, type ChatMessage } from "../../formats/chat/index.js";
import { InputError } from "../../util/errors.js";

interface TokenizeFlags {
  model: string;
  json?: boolean;
  chat?: string;
  addSpecial: boolean;
  parseSpecial?: boolean;
  generationPrompt?: boolean;
}

export function registerTokenizeCommand(program: Command): void {
  program
    .command("tokenize [text]")
    .description(
      "Print the token ids of a text, or render a chat with the model's template and show assistant spans",
    )
    .requiredOption("-m, --model <ref>", "a GGUF file (a vocab-only one will do) or builtin:<name>")
    .option("--chat <messages.json>", 'a JSON file: [{"role": "user", "content": "..."}, ...]')
    .option("--no-add-special", "do not add BOS/EOS")
    .option("--parse-special", "recognise special-token text such as <|im_start|> in the input")
    .option("--generation-prompt", "with --chat: end with the assistant prompt, as for generation")
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  buckle tokenize --model builtin:qwen2 'Hello world'\n  buckle tokenize --model tiny.gguf --chat messages.json --json\n",
    )
    .action((text: string | undefined, flags: TokenizeFlags) => {
      const { tokenizer, template } = loadTokenizerAndTemplate(flags.model);
      if (flags.chat !== undefined) {
        const messages = readMessages(flags.chat);
        const rendered = renderWithSpans(template, messages, tokenizer, {
          addGenerationPrompt: flags.generationPrompt ?? false,
        });
        if (flags.json) {
          process.stdout.write(JSON.stringify({ template: template.name, ...rendered }, null, 2) + "\n");
          return;
        }
        process.stdout.write(
          `template: ${template.name}\n--- rendered ---\n${rendered.text}\n--- ${rendered.ids.length} tokens ---\n`,
        );
        process.stdout.write(rendered.ids.join(" ") + "\n");
        for (const span of rendered.assistantSpans) {
          const content = tokenizer.decode(rendered.ids.slice(span.contentStart, span.contentEnd));
          const end = tokenizer.decode(rendered.ids.slice(span.contentEnd, span.turnEnd));
          process.stdout.write(
            `assistant message ${span.messageIndex}: content tokens [${span.contentStart}, ${span.contentEnd}), ` +
              `end-of-turn tokens [${span.contentEnd}, ${span.turnEnd})\n  content: ${JSON.stringify(content)}\n  end: ${JSON.stringify(end)}\n`,
          );
        }
        return;
      }
      if (text === undefined) throw new InputError("give a text to tokenize, or --chat <messages.json>");
      const ids = tokenizer.encode(text, {
        addSpecial: flags.addSpecial,
        parseSpecial: flags.parseSpecial ?? false,
      });
      if (flags.json) {
        const tokens = ids.map((id) => ({ id, text: tokenizer.tokenText(id) }));
        process.stdout.write(JSON.stringify({ ids, tokens }, null, 2) + "\n");
      } else {
        process.stdout.write(ids.join(" ") + "\n");
      }
    });
}

/** Read and validate a chat: a JSON array of {role, content}, or {"messages": [...]}. */
export function readMessages(file: string): ChatMessage[] {
  if (!existsSync(file)) throw new InputError(`--chat: no such file ${file}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new InputError(`${file}: not valid JSON (${(err as Error).message})`, {
      hint: 'expected [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]',
    });
  }
  const list =
    parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) && "messages" in parsed
      ? (parsed as { messages: unknown }).messages
      : parsed;
  if (!Array.isArray(list) || list.length === 0) {
    throw new InputError(`${file}: expected a non-empty array of messages (or {"messages": [...]})`);
  }
  return list.map((m: unknown, i): ChatMessage => {
    if (m === null || typeof m !== "object") throw new InputError(`${file}: messages[${i}] is not an object`);
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (role !== "system" && role !== "user" && role !== "assistant") {
      throw new InputError(
        `${file}: messages[${i}].role must be "system", "user" or "assistant", got ${JSON.stringify(role)}`,
      );
    }
    if (typeof content !== "string") {
      throw new InputError(
        `${file}: messages[${i}].content must be a string, got ${JSON.stringify(content)}`,
      );
    }
    return { role, content };
  });
}
