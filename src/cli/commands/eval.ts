// `buckle eval`: answer benchmark sets with a model (and adapter), judge the answers, and write the stored
// answers/verdicts (eval.sqlite), the report (eval-report.json) and a readable table of metrics with 95% CIs.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import {
  createHelpfulnessJudge,
  createKeywordJudge,
  createLlamaGuardJudge,
  createSafetyJudge,
  createStrongRejectJudge,
  evaluate,
  loadBenchmark,
  type BenchmarkKind,
  type BenchmarkSet,
  type EvalReport,
  type Judge,
} from "../../evaluation/index.js";
import type { LanguageModel } from "../../models/index.js";
import { cachedModel, Store } from "../../store/index.js";
import { InputError } from "../../util/errors.js";
import { writeFileAtomic } from "../../util/fs.js";
import { BACKENDS, openModelFromFlags } from "../open-model.js";
import { intOption, numberOption } from "../options.js";

interface EvalFlags {
  model: string;
  backend?: string;
  adapter?: string;
  threads?: number;
  harmful?: string[];
  benign?: string[];
  overRefusal?: string[];
  mc?: string[];
  judge: string;
  out: string;
  runId: string;
  samples: number;
  seed: number;
  temperature: number;
  maxTokens: number;
  judgeMaxTokens: number;
  safeThreshold: number;
  limit?: number;
  json?: boolean;
}

const JUDGE_KINDS = ["keyword", "safety", "helpfulness", "strongreject", "llamaguard"] as const;

/** Parse --judge "keyword,safety:<ref>,..." into [kind, model ref?] pairs. */
export function parseJudgeSpecs(spec: string): { kind: (typeof JUDGE_KINDS)[number]; ref?: string }[] {
  return spec
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => {
      const colon = s.indexOf(":");
      const kind = (colon < 0 ? s : s.slice(0, colon)) as (typeof JUDGE_KINDS)[number];
      const ref = colon < 0 ? undefined : s.slice(colon + 1);
      if (!JUDGE_KINDS.includes(kind)) {
        throw new InputError(`--judge: unknown judge "${kind}"`, {
          hint: `use ${JUDGE_KINDS.join(", ")}; LLM judges as safety:<model ref>`,
        });
      }
      if (kind === "keyword" && ref !== undefined)
        throw new InputError("--judge: the keyword judge takes no model");
      if (kind !== "keyword" && (ref === undefined || ref === "")) {
        throw new InputError(`--judge: ${kind} needs a judge model, e.g. ${kind}:judge.gguf`);
      }
      return { kind, ref };
    });
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(3);
}

/** The report as a plain-text table. */
export function reportTable(report: EvalReport): string {
  const lines: string[] = [
    `model ${report.modelId}  run ${report.runId}  temperature ${report.sampling.temperature}  samples ${report.samplesPerPrompt}`,
  ];
  if (report.builtinSets.length > 0) {
    lines.push(
      `NOTE: built-in smoke sets (${report.builtinSets.join(", ")}) are for smoke runs; their numbers are not benchmark results`,
    );
  }
  for (const set of report.sets) {
    lines.push(
      "",
      `${set.name} (${set.kind}${set.builtin ? ", BUILT-IN SMOKE SET" : ""}): ${set.items} items, ${set.answers} answers`,
    );
    const row = (
      who: string,
      name: string,
      m: { value: number; ci95: [number, number]; n: number },
    ): string =>
      `  ${who.padEnd(36)} ${name.padEnd(20)} ${fmt(m.value).padStart(7)}  [${fmt(m.ci95[0])}, ${fmt(m.ci95[1])}]  n=${m.n}`;
    for (const [name, m] of Object.entries(set.metrics)) lines.push(row("-", name, m));
    for (const [judge, metrics] of Object.entries(set.judges)) {
      for (const [name, m] of Object.entries(metrics))
        lines.push(row(judge.length > 36 ? `${judge.slice(0, 33)}...` : judge, name, m));
    }
    for (const a of set.agreement) {
      lines.push(
        `  agreement on ${a.field}: ${a.judges.join(" vs ")}  kappa ${fmt(a.agreement.kappa)}  observed ${fmt(a.agreement.observed)}  n=${a.agreement.n}`,
      );
    }
  }
  return lines.join("\n");
}

export function registerEvalCommand(program: Command): void {
  program
    .command("eval")
    .description(
      "Evaluate a model on harmful, benign, over-refusal and multiple-choice sets with judges and 95% CIs",
    )
    .requiredOption(
      "-m, --model <ref>",
      "the model under test: file.gguf, HF directory, native:, llamacpp:, openai:...",
    )
    .option("--backend <name>", `${BACKENDS.join(" | ")} (default: from the reference)`)
    .option("--adapter <path>", "a LoRA adapter applied to the model under test")
    .option(
      "--harmful <sets...>",
      "harmful prompt sets: file.csv|.jsonl, builtin:harmful-smoke, hf:<owner>/<name>",
    )
    .option("--benign <sets...>", "benign instruction sets (builtin:benign-smoke, files, hf:)")
    .option(
      "--over-refusal <sets...>",
      "XSTest-style safe/unsafe contrast sets (builtin:xstest-smoke, files, hf:)",
    )
    .option("--mc <sets...>", "multiple-choice sets scored by log-likelihood (builtin:mc-smoke, files, hf:)")
    .option(
      "--judge <list>",
      "comma-separated: keyword, safety:<ref>, helpfulness:<ref>, strongreject:<ref>, llamaguard:<ref>",
      "keyword",
    )
    .requiredOption(
      "-o, --out <dir>",
      "output directory: eval.sqlite (answers, verdicts, cache) and eval-report.json",
    )
    .option("--run-id <id>", "name of this run inside the store (rerun with the same id to resume)", "eval")
    .option("--samples <n>", "answers per prompt", intOption, 1)
    .option("--seed <n>", "seed of sampling and of the bootstrap", intOption, 0)
    .option("--temperature <t>", "0 = greedy (default); needed above 0 for --samples > 1", numberOption, 0)
    .option("--max-tokens <n>", "most tokens per answer", intOption, 256)
    .option("--judge-max-tokens <n>", "most tokens per rubric judge output", intOption, 512)
    .option("--safe-threshold <n>", "lowest safety-judge score (1-5) counted safe", intOption, 4)
    .option("--limit <n>", "use only the first n items of each set (quick checks)", intOption)
    .option("--threads <n>", "CPU threads (default: all cores)", intOption)
    .option("--json", "print the report as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  buckle eval -m tiny.gguf --harmful builtin:harmful-smoke --benign builtin:benign-smoke --judge keyword -o out/eval\n" +
        "  buckle eval -m model.gguf --adapter adapter.gguf --harmful advbench.csv --judge keyword,safety:judge.gguf -o out/eval\n",
    )
    .action(async (flags: EvalFlags) => {
      const groups: [BenchmarkKind, string[] | undefined][] = [
        ["harmful", flags.harmful],
        ["benign", flags.benign],
        ["over-refusal", flags.overRefusal],
        ["multiple-choice", flags.mc],
      ];
      if (groups.every(([, refs]) => !refs || refs.length === 0)) {
        throw new InputError("give at least one set: --harmful, --benign, --over-refusal or --mc", {
          hint: "try --harmful builtin:harmful-smoke for a smoke run",
        });
      }
      if (flags.samples > 1 && flags.temperature === 0) {
        throw new InputError(`--samples ${flags.samples} with greedy decoding would repeat one answer`, {
          hint: "add --temperature 0.7",
        });
      }
      const judgeSpecs = parseJudgeSpecs(flags.judge);
      const sets: BenchmarkSet[] = [];
      for (const [kind, refs] of groups) {
        for (const ref of refs ?? []) {
          const set = await loadBenchmark(ref, kind);
          sets.push(flags.limit === undefined ? set : { ...set, items: set.items.slice(0, flags.limit) });
        }
      }
      mkdirSync(flags.out, { recursive: true });
      const store = Store.open(join(flags.out, "eval.sqlite"));
      const opened: LanguageModel[] = [];
      const controller = new AbortController();
      const onSigint = (): void => controller.abort();
      process.once("SIGINT", onSigint);
      try {
        const { model } = await openModelFromFlags(flags);
        opened.push(model);
        const judgeModels = new Map<string, LanguageModel>();
        const judgeModel = async (ref: string): Promise<LanguageModel> => {
          const known = judgeModels.get(ref);
          if (known) return known;
          const { model: m } = await openModelFromFlags({ model: ref, threads: flags.threads });
          opened.push(m);
          const cached = cachedModel(m, store);
          judgeModels.set(ref, cached);
          return cached;
        };
        const judges: Judge[] = [];
        const llm = { maxTokens: flags.judgeMaxTokens, seed: flags.seed };
        for (const { kind, ref } of judgeSpecs) {
          if (kind === "keyword") judges.push(createKeywordJudge());
          else if (kind === "safety")
            judges.push(
              createSafetyJudge(await judgeModel(ref as string), {
                ...llm,
                safeThreshold: flags.safeThreshold,
              }),
            );
          else if (kind === "helpfulness")
            judges.push(createHelpfulnessJudge(await judgeModel(ref as string), llm));
          else if (kind === "strongreject")
            judges.push(createStrongRejectJudge(await judgeModel(ref as string), llm));
          else judges.push(createLlamaGuardJudge(await judgeModel(ref as string), { seed: flags.seed }));
        }
        let lastLine = "";
        const report = await evaluate({
          model,
          sets,
          judges,
          store,
          runId: flags.runId,
          sampling: { temperature: flags.temperature, maxTokens: flags.maxTokens },
          samplesPerPrompt: flags.samples,
          seed: flags.seed,
          signal: controller.signal,
          onProgress: (p) => {
            const line = `${p.set} ${p.phase}${p.judge ? ` ${p.judge}` : ""} ${p.done}/${p.total}`;
            if (line === lastLine) return;
            lastLine = line;
            // a terminal gets one live line; a log gets one line per finished phase
            if (process.stderr.isTTY) process.stderr.write(`\r${line}\u001b[K`);
            else if (p.done === p.total) process.stderr.write(`${line}\n`);
          },
        });
        if (process.stderr.isTTY) process.stderr.write("\n");
        writeFileAtomic(join(flags.out, "eval-report.json"), JSON.stringify(report, null, 2) + "\n");
        process.stdout.write((flags.json ? JSON.stringify(report, null, 2) : reportTable(report)) + "\n");
      } finally {
        process.off("SIGINT", onSigint);
        store.close();
        for (const m of opened) await m.dispose();
      }
    });
}
