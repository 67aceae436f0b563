// `buckle curate`: curate a commonsense pool with CTRL (Buckle Up by default): reads the pool, opens the
// reviser, scorer and judge, runs the resumable beam search with a progress bar, and writes the outputs.

import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { readDataset, selectSamples, type DatasetFormat, type Sample } from "../../data/index.js";
import { createHelpfulnessJudge, type Judge } from "../../evaluation/index.js";
import type { LanguageModel } from "../../models/index.js";
import { Store } from "../../store/index.js";
import {
  curate,
  planCuration,
  resolveCurationConfig,
  writeCurationOutputs,
  type CurationConfigInput,
  type CurationProgress,
} from "../../curation/index.js";
import { InputError } from "../../util/errors.js";
import { BACKENDS, openModelFromFlags } from "../open-model.js";
import { intOption, numberListOption, numberOption } from "../options.js";

interface CurateFlags {
  pool: string;
  format?: string;
  reviser: string;
  scorer?: string;
  judge?: string;
  judgeMaxTokens: number;
  backend?: string;
  threads?: number;
  out?: string;
  rate?: number;
  count?: number;
  strategy: string;
  seed: number;
  variant: string;
  rounds?: number;
  beam?: number;
  objective?: string;
  temperatures?: number[];
  topPs?: number[];
  samplesPerSetting?: number;
  phrases?: string;
  phrasesPerCall?: number;
  template?: string;
  helpfulnessRatio?: number;
  readabilityRatio?: number;
  maxTokens?: number;
  keepTruncated?: boolean;
  maxSamples?: number;
  dryRun?: boolean;
  json?: boolean;
}

function readPhrases(path: string): string[] {
  if (!existsSync(path)) throw new InputError(`--phrases: no such file ${path}`);
  const phrases = readFileSync(path, "utf8")
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  if (phrases.length === 0)
    throw new InputError(`--phrases: ${path} has no phrases`, {
      hint: "one phrase per line; # starts a comment",
    });
  return phrases;
}

/** The config the flags describe (only fields given; the schema fills the rest). */
export function configFromFlags(flags: CurateFlags): CurationConfigInput {
  if (flags.variant !== "buckle-up" && flags.variant !== "ctrl-2024")
    throw new InputError(`--variant must be buckle-up or ctrl-2024, got "${flags.variant}"`);
  if (flags.objective !== undefined && flags.objective !== "ppl-max" && flags.objective !== "ppl-min")
    throw new InputError(`--objective must be ppl-max or ppl-min, got "${flags.objective}"`);
  const filter: { helpfulnessRatio?: number; readabilityRatio?: number } = {};
  if (flags.helpfulnessRatio !== undefined) filter.helpfulnessRatio = flags.helpfulnessRatio;
  if (flags.readabilityRatio !== undefined) filter.readabilityRatio = flags.readabilityRatio;
  if (flags.template !== undefined && !existsSync(flags.template))
    throw new InputError(`--template: no such file ${flags.template}`);
  return {
    variant: flags.variant,
    seed: flags.seed,
    ...(flags.rounds !== undefined ? { rounds: flags.rounds } : {}),
    ...(flags.beam !== undefined ? { beamWidth: flags.beam } : {}),
    ...(flags.objective !== undefined ? { objective: flags.objective as "ppl-max" | "ppl-min" } : {}),
    ...(flags.temperatures !== undefined ? { temperatures: flags.temperatures } : {}),
    ...(flags.topPs !== undefined ? { topPs: flags.topPs } : {}),
    ...(flags.samplesPerSetting !== undefined ? { samplesPerSetting: flags.samplesPerSetting } : {}),
    ...(flags.phrases !== undefined ? { seedPhrases: readPhrases(flags.phrases) } : {}),
    ...(flags.phrasesPerCall !== undefined ? { phrasesPerCall: flags.phrasesPerCall } : {}),
    ...(flags.template !== undefined ? { revisionTemplate: readFileSync(flags.template, "utf8") } : {}),
    ...(flags.maxTokens !== undefined ? { maxTokens: flags.maxTokens } : {}),
    ...(flags.keepTruncated ? { truncated: "keep" as const } : {}),
    filter,
  };
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--:--";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h ? `${h}:` : ""}${String(m).padStart(h ? 2 : 1, "0")}:${String(s % 60).padStart(2, "0")}`;
}

/** A progress bar on stderr: redrawn in place on a terminal, a line every few seconds otherwise. */
function progressBar(): { update: (p: CurationProgress) => void; end: () => void } {
  const tty = process.stderr.isTTY === true;
  let phaseKey = "";
  let phaseStart = 0;
  let lastPrint = 0;
  let lastLine = "";
  const render = (p: CurationProgress): string => {
    const elapsed = (Date.now() - phaseStart) / 1000;
    const rate = elapsed > 0 ? p.done / elapsed : 0;
    const eta = rate > 0 ? (p.total - p.done) / rate : Infinity;
    const width = 24;
    const filled = p.total > 0 ? Math.round((p.done / p.total) * width) : width;
    const where = p.round === 0 ? "originals" : `round ${p.round}/${p.rounds}`;
    return (
      `${where} ${p.phase.padEnd(8)} [${"#".repeat(filled)}${" ".repeat(width - filled)}] ` +
      `${p.done}/${p.total}  ${rate.toFixed(2)}/s  ETA ${formatDuration(eta)}`
    );
  };
  return {
    update(p) {
      const key = `${p.round}:${p.phase}`;
      if (key !== phaseKey) {
        if (!tty && lastLine !== "") process.stderr.write(lastLine + "\n");
        phaseKey = key;
        phaseStart = Date.now();
      }
      lastLine = render(p);
      const now = Date.now();
      if (tty) process.stderr.write(`\r${lastLine}\x1b[K`);
      else if (now - lastPrint > 5000 || p.done === p.total) {
        process.stderr.write(lastLine + "\n");
        lastPrint = now;
        lastLine = "";
      }
    },
    end() {
      if (tty && lastLine !== "") process.stderr.write("\n");
      lastLine = "";
    },
  };
}

export function registerCurateCommand(program: Command): void {
  program
    .command("curate")
    .description("Curate a commonsense pool with CTRL (Buckle Up by default): resumable, cached, batched")
    .requiredOption(
      "--pool <file>",
      "the commonsense pool: alpaca JSON/JSONL, ShareGPT, OpenAI chat, prompt/response JSONL, CSV",
    )
    .option("--format <name>", "read the pool as this format instead of detecting it")
    .requiredOption("--reviser <ref>", "the model that rewrites responses (any model reference)")
    .option(
      "--scorer <ref>",
      "the model whose perplexity counts: the model being defended (default: the reviser)",
    )
    .option("--judge <ref>", "the helpfulness judge model, or none (default: the reviser)")
    .option("--judge-max-tokens <n>", "judge output budget", intOption, 256)
    .option("--backend <name>", `${BACKENDS.join(" | ")} for local model files (default: from the reference)`)
    .option("--threads <n>", "CPU threads for local models", intOption)
    .option(
      "--out <dir>",
      "output directory: curation.sqlite, curated.<ext>, provenance.jsonl, summary.json, config.json",
    )
    .option("--rate <x>", "curate this fraction of the pool (0-1]", numberOption)
    .option("--count <n>", "curate this many samples of the pool", intOption)
    .option("--strategy <name>", "how --rate/--count pick samples: stride | random", "stride")
    .option("--seed <n>", "run seed: selection, phrases and every generation derive from it", intOption, 0)
    .option(
      "--variant <name>",
      "buckle-up (default) | ctrl-2024: prompt, seed phrases, objective",
      "buckle-up",
    )
    .option("--rounds <n>", "beam-search rounds (default 5)", intOption)
    .option("--beam <k>", "beam width (default 3)", intOption)
    .option("--objective <name>", "ppl-max (Buckle Up) | ppl-min (CTRL-2024); default by variant")
    .option("--temperatures <list>", "temperature grid (default 0.2,0.4,0.6,0.8,1.0)", numberListOption)
    .option("--top-ps <list>", "top-p grid (default 0.2,0.4,0.6,0.8,1.0)", numberListOption)
    .option("--samples-per-setting <n>", "outputs per beam text and grid point (default 1)", intOption)
    .option("--phrases <file>", "seed phrases, one per line (default: the built-in list for buckle-up)")
    .option(
      "--phrases-per-call <n>",
      "seed phrases sampled into each revision prompt (default 5; 0 for ctrl-2024)",
      intOption,
    )
    .option("--template <file>", "revision prompt template with {{query}}, {{response}}, {{phrases}}")
    .option(
      "--helpfulness-ratio <x>",
      "filter: helpfulness >= x times the original's (default 0.9)",
      numberOption,
    )
    .option(
      "--readability-ratio <x>",
      "filter: readability >= x times the original's (default 0.9)",
      numberOption,
    )
    .option("--max-tokens <n>", "most tokens per revision (default 512)", intOption)
    .option("--keep-truncated", "keep revisions cut off by --max-tokens instead of rejecting them")
    .option("--max-samples <n>", "curate at most this many samples (after --rate/--count)", intOption)
    .option(
      "--dry-run",
      "print the number of generations, scorings and judge calls a fresh run makes, and stop",
    )
    .option("--json", "print the summary as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  buckle curate --pool alpaca.json --reviser llamacpp:reviser.gguf --scorer model.gguf --out out/curation\n" +
        "  buckle curate --pool pool.jsonl --reviser model.gguf --judge none --rate 0.1 --strategy random --dry-run\n" +
        "Kill it at any moment and rerun the same command: it resumes from out/curation.sqlite.\n",
    )
    .action(async (flags: CurateFlags) => {
      if (flags.strategy !== "stride" && flags.strategy !== "random")
        throw new InputError(`--strategy must be stride or random, got "${flags.strategy}"`);
      if (flags.rate !== undefined && flags.count !== undefined)
        throw new InputError("give at most one of --rate and --count");
      if (flags.maxSamples !== undefined && flags.maxSamples < 1)
        throw new InputError(`--max-samples must be at least 1, got ${flags.maxSamples}`);
      const configInput = configFromFlags(flags);
      const config = resolveCurationConfig(configInput);
      const dataset = readDataset(flags.pool, flags.format ? { format: flags.format as DatasetFormat } : {});
      let pool: Sample[] = dataset.samples;
      if (flags.rate !== undefined || flags.count !== undefined)
        pool = selectSamples(pool, {
          ...(flags.rate !== undefined ? { rate: flags.rate } : { count: flags.count as number }),
          strategy: flags.strategy as "stride" | "random",
          seed: flags.seed,
        });
      if (flags.maxSamples !== undefined) pool = pool.slice(0, flags.maxSamples);
      const judgeRef = flags.judge ?? flags.reviser;
      const useJudge = judgeRef !== "none";

      if (flags.dryRun) {
        const plan = planCuration(pool.length, configInput, { judge: useJudge });
        const out = {
          pool: flags.pool,
          poolSize: dataset.samples.length,
          samples: pool.length,
          ...plan,
          objective: config.objective,
          note:
            "counts of a fresh run; scorings and judge calls are fewer by one per candidate that cleaning rejects, " +
            "and a rerun answers finished work from the store",
        };
        if (flags.json) process.stdout.write(JSON.stringify(out, null, 2) + "\n");
        else
          process.stdout.write(
            `${pool.length} samples x ${config.rounds} rounds x beam ${config.beamWidth} x ` +
              `${config.temperatures.length * config.topPs.length} settings x ${config.samplesPerSetting}\n` +
              `generations: ${plan.generations}\nscorings:    ${plan.scorings}\njudge calls: ${plan.judgeCalls}\n` +
              `(${out.note})\n`,
          );
        return;
      }
      if (flags.out === undefined) throw new InputError("--out <dir> is required (unless --dry-run)");
      if (pool.length === 0) throw new InputError(`${flags.pool}: no samples selected to curate`);

      const opened = new Map<string, LanguageModel>();
      const open = async (ref: string): Promise<LanguageModel> => {
        let model = opened.get(ref);
        if (!model) {
          model = (await openModelFromFlags({ model: ref, backend: flags.backend, threads: flags.threads }))
            .model;
          opened.set(ref, model);
        }
        return model;
      };
      const store = Store.open(join(flags.out, "curation.sqlite"));
      const controller = new AbortController();
      const onSigint = () => controller.abort();
      process.once("SIGINT", onSigint);
      const bar = progressBar();
      try {
        const reviser = await open(flags.reviser);
        const scorer = await open(flags.scorer ?? flags.reviser);
        const judge: Judge | null = useJudge
          ? createHelpfulnessJudge(await open(judgeRef), { maxTokens: flags.judgeMaxTokens })
          : null;
        const started = Date.now();
        const result = await curate({
          pool,
          reviser,
          scorer,
          judge,
          store,
          config: configInput,
          onProgress: bar.update,
          signal: controller.signal,
        });
        bar.end();
        const files = writeCurationOutputs(flags.out, result, {
          format: dataset.format,
          container: dataset.container,
        });
        const seconds = (Date.now() - started) / 1000;
        if (flags.json) {
          process.stdout.write(
            JSON.stringify(
              {
                files,
                seconds,
                configHash: result.configHash,
                summary: result.summary,
                requested: result.requested,
                computed: result.computed,
              },
              null,
              2,
            ) + "\n",
          );
        } else {
          const s = result.summary;
          const fmt = (x: number | null) => (x === null ? "n/a" : x.toFixed(2));
          process.stdout.write(
            `curated ${s.changed}/${s.samples} samples (${s.unchanged} kept their original) in ${seconds.toFixed(1)} s\n` +
              `perplexity  ${fmt(s.perplexity.before.mean)} -> ${fmt(s.perplexity.after.mean)} (${s.objective})\n` +
              (s.helpfulness
                ? `helpfulness ${fmt(s.helpfulness.before.mean)} -> ${fmt(s.helpfulness.after.mean)}\n`
                : "helpfulness not scored (--judge none)\n") +
              `candidates  ${s.candidates.generated} generated, ${s.candidates.survived} passed the filter\n` +
              `computed    ${result.computed.generations} generations, ${result.computed.scorings} scorings, ` +
              `${result.computed.judgeCalls} judge calls (the rest came from the store)\n` +
              `wrote ${files.curated}, ${files.provenance}, ${files.summary}\n`,
          );
        }
      } finally {
        bar.end();
        process.removeListener("SIGINT", onSigint);
        store.close();
        for (const model of opened.values()) await model.dispose();
      }
    });
}
