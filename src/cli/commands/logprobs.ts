// `buckle logprobs`: how likely a model (optionally with a LoRA adapter) finds a response to a prompt:
// the chat is rendered with the model's template and only the response's own tokens are scored.

import type { Command } from "commander";
import { intOption } from "../options.js";
import { BACKENDS, openModelFromFlags } from "../open-model.js";
import type { ChatMessage } from "../../formats/chat/index.js";
import { InputError } from "../../util/errors.js";

interface LogprobsFlags {
  threads?: number;
  model: string;
  backend?: string;
  prompt: string;
  response: string;
  system?: string;
  raw?: boolean;
  adapter?: string;
  json?: boolean;
}

export function registerLogprobsCommand(program: Command): void {
  program
    .command("logprobs")
    .description("Per-token log-probabilities of a response to a prompt, with the model's chat template")
    .requiredOption(
      "-m, --model <ref>",
      "a model reference: file.gguf, HF directory, native:, llamacpp:, openai:...",
    )
    .option(
      "--backend <name>",
      `${BACKENDS.join(" | ")} (default: from the reference; llamacpp for .gguf files)`,
    )
    .requiredOption("-p, --prompt <text>", "the user message (or, with --raw, the text before the response)")
    .requiredOption("-r, --response <text>", "the assistant answer to score")
    .option("--system <text>", "a system message before the prompt")
    .option("--raw", "no chat template: score the response as a continuation of the prompt text")
    .option("--adapter <path>", "a LoRA adapter: a GGUF LoRA file or a PEFT directory")
    .option("--threads <n>", "CPU threads (default: all cores)", intOption)
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  buckle logprobs --model tiny.gguf --backend native --prompt 'Hi' --response 'Hello!' --json\n" +
        "  buckle logprobs --model tiny.gguf --backend llamacpp --adapter out/adapter.gguf -p 'Hi' -r 'Hello!'\n",
    )
    .action(async (flags: LogprobsFlags) => {
      if (flags.response === "") throw new InputError("--response is empty: there is nothing to score");
      if (flags.raw && flags.system !== undefined)
        throw new InputError("--system needs the chat template; leave out --raw");
      const { model, tokenizer } = await openModelFromFlags(flags);
      try {
        const messages: ChatMessage[] = [
          ...(flags.system !== undefined ? [{ role: "system" as const, content: flags.system }] : []),
          { role: "user", content: flags.prompt },
        ];
        const [scored] = await model.logprobs([
          flags.raw
            ? { prompt: flags.prompt, response: flags.response }
            : { messages, response: flags.response },
        ]);
        if (scored.tokens.length === 0) {
          throw new InputError("--response has no tokens of its own after the chat template is applied");
        }
        const utf8 = new TextDecoder("utf-8", { fatal: false });
        const tokens = scored.tokens.map((id, i) => ({
          id,
          ...(tokenizer
            ? { text: utf8.decode(tokenizer.tokenBytes(id)), piece: tokenizer.tokenText(id) }
            : {}),
          logprob: scored.logprobs[i],
        }));
        const sum = scored.logprobs.reduce((s, x) => s + x, 0);
        const info = model.info();
        const result = {
          model: flags.model,
          modelId: info.id,
          backend: info.backend,
          adapter: flags.adapter ?? null,
          template: flags.raw ? null : info.chatTemplate,
          ids: scored.tokens,
          tokens,
          count: scored.tokens.length,
          sumLogprob: sum,
          meanLogprob: sum / scored.tokens.length,
          perplexity: scored.perplexity,
        };
        if (flags.json) {
          process.stdout.write(JSON.stringify(result, null, 2) + "\n");
          return;
        }
        process.stdout.write(`${info.id} (${info.backend}); template: ${result.template ?? "none (raw)"}\n`);
        for (const t of tokens) {
          const text = "text" in t ? JSON.stringify(t.text) : "";
          process.stdout.write(`${String(t.id).padStart(7)}  ${t.logprob.toFixed(4).padStart(9)}  ${text}\n`);
        }
        process.stdout.write(
          `${result.count} tokens: mean log-prob ${result.meanLogprob.toFixed(4)}, sum ${sum.toFixed(4)}, perplexity ${result.perplexity.toFixed(3)}\n`,
        );
      } finally {
        await model.dispose();
      }
    });
}
