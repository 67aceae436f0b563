// `buckle vocab list|path`: the real tokenizer vocabularies buckle can build test models on.

import type { Command } from "commander";
import { builtinVocabCommit, builtinVocabNames, builtinVocabPath } from "../../formats/vocabs.js";

export function registerVocabCommands(program: Command): void {
  const vocab = program
    .command("vocab")
    .description("Real tokenizer vocabularies shipped with llama.cpp (inside node-llama-cpp)");
  vocab
    .command("list")
    .description("List the names accepted as --vocab builtin:<name>")
    .option("--json", "print JSON")
    .action((opts: { json?: boolean }) => {
      const names = builtinVocabNames();
      if (opts.json) {
        process.stdout.write(JSON.stringify({ llamaCppCommit: builtinVocabCommit(), names }, null, 2) + "\n");
      } else {
        process.stdout.write(`llama.cpp ${builtinVocabCommit().slice(0, 12)}:\n  ${names.join("\n  ")}\n`);
      }
    });
  vocab
    .command("path <name>")
    .description("Extract builtin:<name> into the cache (once) and print its path")
    .action((name: string) => {
      process.stdout.write(builtinVocabPath(name.replace(/^builtin:/, "")) + "\n");
    });
}
