// `buckle demo` (npm run demo): the most complete pipeline that exists today, on the built-in default.
// Today that is the foundation: a factory model on a real vocabulary, its chat spans, and llama.cpp running it.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { createRandomModel } from "../../models/factory.js";
import { loadTokenizerAndTemplate } from "../../formats/load.js";
import { renderWithSpans, type ChatMessage } from "../../formats/chat/index.js";
import { cacheDir } from "../../util/fs.js";
import { intOption } from "../options.js";

const DEMO_CHAT: ChatMessage[] = [
  { role: "system", content: "You are a careful, responsible assistant." },
  { role: "user", content: "How do I keep houseplants alive in winter?" },
  {
    role: "assistant",
    content: "Give them bright indirect light, water less often, and keep them away from cold drafts.",
  },
];

export function registerDemoCommand(program: Command): void {
  program
    .command("demo")
    .description("Run the most complete buckle pipeline that exists on the built-in default (see README)")
    .option("--vocab <ref>", "vocabulary of the demo model", "builtin:llama-spm")
    .option("--seed <n>", "random seed", intOption, 1)
    .action(async (flags: { vocab: string; seed: number }) => {
      const t0 = performance.now();
      const log = (s: string) => process.stdout.write(s + "\n");
      log("buckle demo: the foundation layer (formats, tokenizers, chat templates, test models).");
      log("The CTRL curation, customization stages and evaluation are not built yet; see README.\n");

      const dir = cacheDir("demo");
      mkdirSync(dir, { recursive: true });
      const path = join(dir, `tiny-${flags.vocab.replace(/[^A-Za-z0-9_-]+/g, "_")}-s${flags.seed}.gguf`);
      log(`1. test-model factory: random llama model on ${flags.vocab}`);
      const created = createRandomModel(
        {
          arch: "llama",
          hiddenSize: 64,
          numLayers: 2,
          numHeads: 4,
          numKvHeads: 2,
          intermediateSize: 128,
          vocab: flags.vocab,
          seed: flags.seed,
          initStd: 0.1,
        },
        path,
      );
      log(
        `   ${path}: ${created.parameters.toLocaleString("en-US")} parameters, template ${created.chatTemplateName}`,
      );

      log("2. our tokenizer and the model's own chat template, with the assistant's token span");
      const { tokenizer, template } = loadTokenizerAndTemplate(path);
      const rendered = renderWithSpans(template, DEMO_CHAT, tokenizer, { addGenerationPrompt: false });
      const span = rendered.assistantSpans[0];
      log(
        `   ${rendered.ids.length} tokens; assistant content = tokens [${span.contentStart}, ${span.contentEnd}), end of turn up to ${span.turnEnd}`,
      );
      log(
        `   decoded span: ${JSON.stringify(tokenizer.decode(rendered.ids.slice(span.contentStart, span.contentEnd)))}`,
      );

      log("3. llama.cpp (node-llama-cpp) loads the file, tokenizes identically, and generates from it");
      const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
      const llama = await getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.error });
      const model = await llama.loadModel({ modelPath: path });
      try {
        const promptIds = renderWithSpans(template, DEMO_CHAT.slice(0, 2), tokenizer, {
          addGenerationPrompt: true,
        }).ids;
        const theirs = Array.from(
          model.tokenize(template.render(DEMO_CHAT.slice(0, 2), { addGenerationPrompt: true }), true),
        );
        const same =
          JSON.stringify(theirs) === JSON.stringify(promptIds.slice(promptIds.length - theirs.length));
        log(
          `   prompt: ${promptIds.length} tokens (llama.cpp's tokenization ${same ? "identical" : "DIFFERS"})`,
        );
        const context = await model.createContext({ contextSize: 256 });
        try {
          const sequence = context.getSequence();
          const out: number[] = [];
          for await (const token of sequence.evaluate(promptIds as never, { temperature: 0 })) {
            out.push(token as number);
            if (out.length >= 12) break;
          }
          log(
            `   greedy continuation (random weights, so gibberish): ${JSON.stringify(tokenizer.decode(out))}`,
          );
        } finally {
          await context.dispose();
        }
      } finally {
        await model.dispose();
      }
      log(`\ndone in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    });
}
