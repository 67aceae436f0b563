// `buckle bench`: the benchmark suite (fuzzers, tokenizers, engine, backends) with JSON on stdout.
// The same as `npm run bench`; results to record go in docs/BENCH*.md.

import type { Command } from "commander";
import { BENCH_SECTIONS, runBench } from "../../bench/run.js";
import { intOption } from "../options.js";

export function registerBenchCommand(program: Command): void {
  program
    .command("bench")
    .description("Run the benchmarks next to their peers (llama.cpp, PyTorch) and print JSON")
    .option("--only <sections>", `comma-separated: ${BENCH_SECTIONS.join(", ")} (default: all)`)
    .option("--fuzz-cases <n>", "cases per file-format fuzzer", intOption, 10000)
    .option("--seed <n>", "seed of fuzzers and test strings", intOption, 1)
    .option("--json", "print JSON (the only output format; accepted for scripts)")
    .addHelpText("after", "\nExample:\n  buckle bench --only engine --json > engine.json\n")
    .action(async (flags: { only?: string; fuzzCases: number; seed: number }) => {
      const results = await runBench({
        only: flags.only?.split(","),
        fuzzCases: flags.fuzzCases,
        seed: flags.seed,
      });
      process.stdout.write(JSON.stringify(results, null, 2) + "\n");
    });
}
