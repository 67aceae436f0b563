// `buckle generate`: sample text from a model on any backend, optionally with a LoRA adapter, a prompt
// wrapped in the model's chat template (or raw), streamed to stdout as it is generated.

import type { Command } from "commander";
import type { ChatMessage } from "../../formats/chat/index.js";
import type { GenerateRequest } from "../../models/index.js";
import { InputError } from "../../util/errors.js";
import { BACKENDS, openModelFromFlags } from "../open-model.js";
import { intOption, numberOption } from "../options.js";
import { readMessages } from "./tokenize.js";

interface GenerateFlags {
  threads?: number;
  model: string;
  backend?: string;
  adapter?: string;
  prompt?: string;
  chat?: string;
  system?: string;
  raw?: boolean;
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  repeatPenalty: number;
  maxTokens: number;
  stop?: string[];
  seed?: number;
  n: number;
  json?: boolean;
}

export function registerGenerateCommand(program: Command): void {
  program
    .command("generate")
    .description("Generate text with a model (and optionally a LoRA adapter) on any backend")
    .requiredOption(
      "-m, --model <ref>",
      "a model reference: file.gguf, HF directory, native:, llamacpp:, openai:...",
    )
    .option(
      "--backend <name>",
      `${BACKENDS.join(" | ")} (default: from the reference; llamacpp for .gguf files)`,
    )
    .option("--adapter <path>", "a LoRA adapter: a GGUF LoRA file or a PEFT directory")
    .option("-p, --prompt <text>", "a user message (the chat template is applied unless --raw)")
    .option("--chat <messages.json>", 'a JSON file: [{"role": "user", "content": "..."}, ...]')
    .option("--system <text>", "a system message put before the prompt or chat")
    .option("--raw", "with --prompt: tokenize the text as is, without the chat template")
    .option("--temperature <t>", "0 = greedy", numberOption, 0.8)
    .option("--top-p <p>", "nucleus sampling; 1 = off", numberOption, 0.95)
    .option("--top-k <k>", "0 = off", intOption, 40)
    .option("--min-p <p>", "0 = off", numberOption, 0.05)
    .option("--repeat-penalty <x>", "1 = off", numberOption, 1)
    .option("--max-tokens <n>", "most tokens to generate per sample", intOption, 256)
    .option("--stop <strings...>", "stop before any of these strings")
    .option("--seed <n>", "random seed (default: random, reported with --json)", intOption)
    .option("-n, --n <samples>", "number of samples, decoded together", intOption, 1)
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  buckle generate --model tiny.gguf --prompt 'Hello' --max-tokens 32 --seed 1\n" +
        "  buckle generate --model tiny.gguf --adapter out/adapter.gguf --chat chat.json -n 4 --json\n",
    )
    .option("--threads <n>", "CPU threads (default: all cores)", intOption)
    .action(async (flags: GenerateFlags) => {
      if ((flags.prompt === undefined) === (flags.chat === undefined))
        throw new InputError("give exactly one of --prompt <text> or --chat <messages.json>");
      if (flags.raw && flags.chat !== undefined)
        throw new InputError("--raw works with --prompt only (a --chat file always uses the template)");
      if (flags.raw && flags.system !== undefined)
        throw new InputError("--system needs the chat template; leave out --raw");
      if (!(flags.n >= 1)) throw new InputError(`--n must be at least 1, got ${flags.n}`);
      if (!(flags.temperature >= 0))
        throw new InputError(`--temperature must be >= 0, got ${flags.temperature}`);
      const messages: ChatMessage[] | undefined = flags.raw
        ? undefined
        : [
            ...(flags.system !== undefined ? [{ role: "system" as const, content: flags.system }] : []),
            ...(flags.chat !== undefined
              ? readMessages(flags.chat)
              : [{ role: "user" as const, content: flags.prompt as string }]),
          ];
      const { model } = await openModelFromFlags(flags);
      const seed = flags.seed ?? Math.floor(Math.random() * 2 ** 31);
      const sampling = {
        temperature: flags.temperature,
        topP: flags.topP,
        topK: flags.topK,
        minP: flags.minP,
        repeatPenalty: flags.repeatPenalty,
        maxTokens: flags.maxTokens,
        stop: flags.stop,
      };
      const requests: GenerateRequest[] = Array.from({ length: flags.n }, (_, i) => ({
        ...(messages ? { messages } : { prompt: flags.prompt as string }),
        sampling: { ...sampling, seed: seed + i },
      }));
      const controller = new AbortController();
      const onSigint = () => controller.abort();
      process.once("SIGINT", onSigint);
      const stream = !flags.json && flags.n === 1;
      try {
        const results = await model.generate(requests, {
          signal: controller.signal,
          onToken: stream ? (_i, text) => process.stdout.write(text) : undefined,
        });
        const info = model.info();
        if (flags.json) {
          const out = {
            model: flags.model,
            modelId: info.id,
            backend: info.backend,
            adapter: flags.adapter ?? null,
            template: flags.raw ? null : info.chatTemplate,
            seed,
            sampling: { ...sampling, stop: flags.stop ?? [] },
            samples: results.map((r, i) => ({ seed: seed + i, ...r })),
          };
          process.stdout.write(JSON.stringify(out, null, 2) + "\n");
        } else if (stream) {
          process.stdout.write("\n");
          if (results[0].finishReason === "cancelled") process.stderr.write("(interrupted)\n");
        } else {
          results.forEach((r, i) =>
            process.stdout.write(
              `--- sample ${i + 1} (seed ${seed + i}, ${r.finishReason}) ---\n${r.text}\n`,
            ),
          );
        }
      } finally {
        process.removeListener("SIGINT", onSigint);
        await model.dispose();
      }
    });
}
