// `buckle logprobs`: how likely a model (optionally with a LoRA adapter) finds a response to a prompt:
// the chat is rendered with the model's template and only the response's own tokens are scored.

import type { Command } from "commander";
import { intOption } from "../options.js";
import { ensureFastKernels } from "../../engine/index.js";
import type { ChatMessage } from "../../formats/chat/index.js";
import { renderWithSpans } from "../../formats/chat/index.js";
import { logprobs, perplexity } from "../../engine/index.js";
import { InputError } from "../../util/errors.js";
import { loadModelAndAdapter } from "./generate.js";

interface LogprobsFlags {
  threads?: number;
  model: string;
  backend: string;
  prompt: string;
  response: string;
  system?: string;
  adapter?: string;
  json?: boolean;
}

export function registerLogprobsCommand(program: Command): void {
  program
    .command("logprobs")
    .description("Per-token log-probabilities of a response to a prompt, with the model's chat template")
    .requiredOption("-m, --model <ref>", "a GGUF model file or a Hugging Face model directory")
    .option("--backend <name>", "scoring backend (only native for now)", "native")
    .requiredOption("-p, --prompt <text>", "the user message")
    .requiredOption("-r, --response <text>", "the assistant answer to score")
    .option("--system <text>", "a system message before the prompt")
    .option("--adapter <path>", "a LoRA adapter: a GGUF LoRA file or a PEFT directory")
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      "\nExample:\n  buckle logprobs --model tiny.gguf --backend native --prompt 'Hi' --response 'Hello!' --json\n",
    )
    .option("--threads <n>", "CPU threads for the engine (default: all cores)", intOption)
    .action(async (flags: LogprobsFlags) => {
      if (flags.backend !== "native") {
        throw new InputError(`--backend ${flags.backend} is not available: only "native" works for now`, {
          hint: "the llamacpp and openai backends come with the model-backends work; use --backend native",
        });
      }
      if (flags.response === "") throw new InputError("--response is empty: there is nothing to score");
      await ensureFastKernels(flags.threads);
      const { model, tokenizer, template, lora } = loadModelAndAdapter(flags.model, flags.adapter);
      const messages: ChatMessage[] = [
        ...(flags.system !== undefined ? [{ role: "system" as const, content: flags.system }] : []),
        { role: "user", content: flags.prompt },
        { role: "assistant", content: flags.response },
      ];
      const rendered = renderWithSpans(template, messages, tokenizer);
      const span = rendered.assistantSpans[rendered.assistantSpans.length - 1];
      const { contentStart, contentEnd } = span;
      if (contentEnd === contentStart)
        throw new InputError("--response has no tokens of its own after the chat template is applied");
      const lps = logprobs(model, rendered.ids, contentStart, contentEnd, lora ? { lora } : {});
      const utf8 = new TextDecoder("utf-8", { fatal: false });
      const tokens = Array.from(lps, (logprob, i) => {
        const id = rendered.ids[contentStart + i];
        return { id, text: utf8.decode(tokenizer.tokenBytes(id)), piece: tokenizer.tokenText(id), logprob };
      });
      const sum = lps.reduce((s, x) => s + x, 0);
      const result = {
        model: flags.model,
        backend: "native",
        adapter: flags.adapter ?? null,
        template: template.name,
        promptTokens: contentStart,
        responseSpan: { start: contentStart, end: contentEnd },
        ids: rendered.ids.slice(contentStart, contentEnd),
        tokens,
        count: lps.length,
        sumLogprob: sum,
        meanLogprob: sum / lps.length,
        perplexity: perplexity(lps),
      };
      if (flags.json) {
        process.stdout.write(JSON.stringify(result, null, 2) + "\n");
        return;
      }
      process.stdout.write(
        `template: ${template.name}; response tokens [${contentStart}, ${contentEnd}) of ${rendered.ids.length}\n`,
      );
      for (const t of tokens)
        process.stdout.write(
          `${String(t.id).padStart(7)}  ${t.logprob.toFixed(4).padStart(9)}  ${JSON.stringify(t.text)}\n`,
        );
      process.stdout.write(
        `mean log-prob ${result.meanLogprob.toFixed(4)}, sum ${sum.toFixed(4)}, perplexity ${result.perplexity.toFixed(3)}\n`,
      );
    });
}
