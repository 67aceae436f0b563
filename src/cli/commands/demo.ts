// `buckle demo` (npm run demo): the most complete pipeline that exists today, on the built-in default.
// A factory model on a real vocabulary is LoRA-fine-tuned by our engine, then served by llama.cpp with the adapter.

import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { createRandomModel } from "../../models/factory.js";
import { createLlamaCppModel, createNativeModel, type LogprobsRequest } from "../../models/index.js";
import { ensureFastKernels, loadModelWeights, train } from "../../engine/index.js";
import { writeGGUFLora, writePeftAdapter } from "../../engine/adapters/index.js";
import { loadTokenizerAndTemplate } from "../../formats/load.js";
import { renderWithSpans, type ChatMessage } from "../../formats/chat/index.js";
import { cacheDir } from "../../util/fs.js";
import { intOption } from "../options.js";

// A handful of commonsense answers written in the responsible, evidence-minded register CTRL curates toward.
const CHATS: [string, string][] = [
  [
    "How do I keep houseplants alive in winter?",
    "Give them bright indirect light, water less often, and keep them away from cold drafts; check reliable gardening sources for your species.",
  ],
  [
    "What is a healthy amount of sleep?",
    "Most adults need seven to nine hours; evidence-based guidance also stresses a regular schedule and a dark, quiet room.",
  ],
  [
    "How can I save money on groceries?",
    "Plan meals, buy store brands and seasonal produce, and compare unit prices; a responsible budget avoids waste.",
  ],
  [
    "How do I clean a cast iron pan?",
    "Rinse with hot water, scrub gently, dry it fully and add a thin coat of oil so it does not rust.",
  ],
  [
    "Why is the sky blue?",
    "Air molecules scatter short blue wavelengths of sunlight more than red ones, so reliable physics explains the blue sky.",
  ],
  [
    "How should I prepare for a job interview?",
    "Research the company, practise clear answers with examples, and arrive on time; honest preparation builds confidence.",
  ],
  [
    "How do I start running safely?",
    "Begin with short run-walk intervals, increase distance slowly, and rest when something hurts; consult a doctor if unsure.",
  ],
  [
    "What should I do with old batteries?",
    "Take them to a recycling point; responsible disposal keeps toxic metals out of landfills and water.",
  ],
];
// Scored before and after training: one of the training answers (a tiny random model learns by heart).
const SCORED: LogprobsRequest = { messages: [{ role: "user", content: CHATS[1][0] }], response: CHATS[1][1] };

export function registerDemoCommand(program: Command): void {
  program
    .command("demo")
    .description("Run the most complete buckle pipeline that exists on the built-in default (see README)")
    .option("--vocab <ref>", "vocabulary of the demo model", "builtin:llama-spm")
    .option("--seed <n>", "random seed", intOption, 1)
    .option("--steps <n>", "LoRA training steps", intOption, 40)
    .action(async (flags: { vocab: string; seed: number; steps: number }) => {
      const t0 = performance.now();
      const log = (s: string) => process.stdout.write(s + "\n");
      const secs = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
      log("buckle demo: customize a model with LoRA on our engine, then serve it with llama.cpp.");
      log("Built so far: formats, tokenizers, chat templates, the native engine and the model backends.");
      log(
        "CTRL curation, the customization stages and the safety evaluation are not built yet (see README).\n",
      );

      const dir = cacheDir("demo");
      mkdirSync(dir, { recursive: true });
      const tag = `${flags.vocab.replace(/[^A-Za-z0-9_-]+/g, "_")}-s${flags.seed}`;
      const modelPath = join(dir, `tiny-${tag}.gguf`);
      log(`1. test-model factory: a random llama model on the real ${flags.vocab} vocabulary`);
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
        modelPath,
      );
      log(
        `   ${created.parameters.toLocaleString("en-US")} parameters, chat template ${created.chatTemplateName}`,
      );

      log("2. chats rendered with the model's template; loss goes on the assistant tokens only");
      const { tokenizer, template } = loadTokenizerAndTemplate(modelPath);
      const examples = CHATS.map(([q, a]) => {
        const messages: ChatMessage[] = [
          { role: "user", content: q },
          { role: "assistant", content: a },
        ];
        const r = renderWithSpans(template, messages, tokenizer);
        const s = r.assistantSpans[0];
        return { ids: r.ids, spans: [{ start: s.contentStart, end: s.turnEnd }] };
      });
      const targets = examples.reduce((n, e) => n + e.spans[0].end - e.spans[0].start, 0);
      const total = examples.reduce((n, e) => n + e.ids.length, 0);
      log(`   ${examples.length} chats, ${total} tokens, ${targets} of them assistant targets`);

      log(`3. LoRA fine-tuning on buckle's engine (rank 8, all seven projections, ${flags.steps} steps)`);
      await ensureFastKernels();
      const before = await createNativeModel({ modelPath });
      const [ppl0] = await before.logprobs([SCORED]);
      const weights = loadModelWeights(modelPath);
      const result = await train(weights, examples, {
        seed: flags.seed,
        lora: {
          rank: 8,
          alpha: 16,
          dropout: 0,
          targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        },
        learningRate: 1e-2,
        schedule: "cosine",
        batchSize: 4,
        steps: flags.steps,
        maxGradNorm: 1,
      });
      const first = result.history[0];
      const last = result.history[result.history.length - 1];
      log(`   training loss ${first.loss.toFixed(3)} -> ${last.loss.toFixed(3)} (${secs()})`);
      const outDir = join(dir, `adapter-${tag}`);
      rmSync(outDir, { recursive: true, force: true });
      mkdirSync(outDir, { recursive: true });
      const lora = result.lora!;
      writeGGUFLora(join(outDir, "adapter.gguf"), lora, created.spec);
      writePeftAdapter(join(outDir, "peft"), lora, { baseModel: modelPath, spec: created.spec });
      log(
        `   adapters written: ${join(outDir, "adapter.gguf")} (llama.cpp) and ${join(outDir, "peft")} (PEFT)`,
      );

      log("4. the same customized model through two backends: our engine and llama.cpp (node-llama-cpp)");
      const adapters = [{ path: join(outDir, "adapter.gguf") }];
      const native = await createNativeModel({ modelPath, adapters });
      // One thread: a tiny model gains nothing from more, and llama.cpp's spinning threads suffer on a busy machine.
      const llama = await createLlamaCppModel({
        modelPath,
        adapters,
        kvCacheF32: true,
        flashAttention: false,
        threads: 1,
      });
      try {
        const [a] = await native.logprobs([SCORED]);
        const [b] = await llama.logprobs([SCORED]);
        const worst = a.logprobs.reduce((m, x, i) => Math.max(m, Math.abs(x - b.logprobs[i])), 0);
        log(
          `   perplexity of a training answer: base ${ppl0.perplexity.toFixed(1)} -> adapted ${a.perplexity.toFixed(1)} (native), ${b.perplexity.toFixed(1)} (llama.cpp)`,
        );
        log(
          `   (${secs()}) per-token log-probs agree to ${worst.toExponential(1)} over ${a.tokens.length} tokens`,
        );
        const [g] = await llama.generate([
          {
            messages: [{ role: "user", content: "How do I stay safe while cycling at night?" }],
            sampling: { temperature: 0, maxTokens: 32 },
          },
        ]);
        log(
          `   llama.cpp greedy answer with the adapter (a tiny model trained for seconds: expect fragments of the training answers at best):`,
        );
        log(`   ${JSON.stringify(g.text)}`);
      } finally {
        await llama.dispose();
        await native.dispose();
        await before.dispose();
      }
      log(`\ndone in ${secs()}`);
    });
}
