// `buckle train`: LoRA fine-tuning of a GGUF model on an SFT dataset, with loss on assistant tokens only,
// progress on stderr, resumable checkpoints, and the adapter written as GGUF LoRA and PEFT.

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import type { Command } from "commander";
import { ensureFastKernels } from "../../engine/index.js";
import { readSftFile, type SftExample } from "../../data/sft.js";
import { renderWithSpans, type ChatTemplate } from "../../formats/chat/index.js";
import type { Tokenizer } from "../../formats/tokenizer/index.js";
import { mergeLoraIntoGGUF, writeGGUFLora, writePeftAdapter } from "../../engine/adapters/index.js";
import {
  latestCheckpoint,
  LORA_TARGETS,
  train,
  type LoraTarget,
  type LrSchedule,
  type TrainConfig,
  type TrainExample,
  type TrainProgress,
  type TrainResult,
} from "../../engine/index.js";
import { BuckleError, InputError } from "../../util/errors.js";
import { writeFileAtomic } from "../../util/fs.js";
import { packageVersion } from "../../util/version.js";
import { intOption, numberOption } from "../options.js";
import { loadModelAndAdapter } from "../open-model.js";

interface TrainFlags {
  threads?: number;
  model: string;
  data: string;
  output: string;
  loraRank: number;
  loraAlpha: number;
  loraDropout: number;
  targets: string;
  lr: number;
  epochs: number;
  batchSize: number;
  gradAccum: number;
  maxSeqLen: number;
  schedule: string;
  warmupSteps: number;
  weightDecay: number;
  clip: number;
  seed: number;
  evalData?: string;
  evalEvery: number;
  checkpointEvery: number;
  resume?: boolean;
  maxSteps?: number;
  merge?: string;
  json?: boolean;
}

export function registerTrainCommand(program: Command): void {
  program
    .command("train")
    .description("Fine-tune a LoRA adapter on a chat dataset (loss on the assistant's tokens only)")
    .requiredOption("-m, --model <file.gguf>", "the base model")
    .requiredOption(
      "-d, --data <file>",
      "training data: JSONL or JSON (OpenAI messages, prompt/response, Alpaca)",
    )
    .requiredOption("-o, --output <dir>", "where the adapter, config and checkpoints go")
    .option("--lora-rank <n>", "LoRA rank", intOption, 16)
    .option("--lora-alpha <x>", "LoRA alpha (scale = alpha / rank)", numberOption, 32)
    .option("--lora-dropout <p>", "dropout on the adapters' input", numberOption, 0.05)
    .option("--targets <list>", `comma-separated projections, or "all" (${LORA_TARGETS.join(",")})`, "all")
    .option("--lr <x>", "peak learning rate", numberOption, 2e-4)
    .option("--epochs <n>", "passes over the data", numberOption, 1)
    .option("--batch-size <n>", "sequences per micro-batch", intOption, 4)
    .option("--grad-accum <n>", "micro-batches per optimizer step", intOption, 1)
    .option("--max-seq-len <n>", "longer chats are truncated (and reported)", intOption, 512)
    .option("--schedule <name>", "constant | cosine | linear (after warmup)", "cosine")
    .option("--warmup-steps <n>", "linear warmup steps", intOption, 0)
    .option("--weight-decay <x>", "AdamW weight decay", numberOption, 0)
    .option("--clip <x>", "clip the global gradient norm (0 = off)", numberOption, 1)
    .option("--seed <n>", "seed of the adapter init, data order and dropout", intOption, 1)
    .option(
      "--eval-data <file>",
      "held-out data, evaluated at the start, every --eval-every steps and the end",
    )
    .option("--eval-every <n>", "evaluation interval in steps (0 = start and end only)", intOption, 0)
    .option(
      "--checkpoint-every <n>",
      "checkpoint interval in steps (the last step always writes one)",
      intOption,
      50,
    )
    .option("--resume", "continue from the latest checkpoint in <dir>/checkpoints")
    .option(
      "--max-steps <n>",
      "stop after this step (the schedule still spans the whole run); --resume continues",
      intOption,
    )
    .option("--merge <out.gguf>", "also write the base model with the adapter merged in")
    .option("--json", "print a JSON summary on stdout")
    .addHelpText(
      "after",
      "\nExamples:\n  buckle train --model tiny.gguf --data chats.jsonl -o out --epochs 3 --lr 1e-3\n" +
        "  buckle train --model tiny.gguf --data chats.jsonl -o out --epochs 3 --lr 1e-3 --resume\n\n" +
        "Writes <dir>/adapter.gguf (llama.cpp LoRA), <dir>/peft/ (PEFT), <dir>/train-config.json and\n" +
        "<dir>/checkpoints/. Progress goes to stderr; Ctrl-C stops after the current step.\n",
    )
    .option("--threads <n>", "CPU threads for the engine (default: all cores)", intOption)
    .action(async (flags: TrainFlags) => {
      const maxSteps = flags.maxSteps;
      if (maxSteps !== undefined && maxSteps < 1)
        throw new InputError(`--max-steps must be at least 1, got ${maxSteps}`);
      const config = trainConfigFromFlags(flags);
      const out = resolve(flags.output);
      const checkpointDir = join(out, "checkpoints");
      const resumeFrom = flags.resume ? latestCheckpoint(checkpointDir) : undefined;
      if (flags.resume && !resumeFrom) {
        throw new InputError(`--resume: no checkpoint in ${checkpointDir}`, {
          hint: "run without --resume to start training",
        });
      }
      if (!flags.resume && latestCheckpoint(checkpointDir)) {
        throw new InputError(`${checkpointDir} already holds checkpoints of an earlier run`, {
          hint: "pass --resume to continue that run, or choose another output directory",
        });
      }
      config.checkpointDir = checkpointDir;

      await ensureFastKernels(flags.threads);
      const { model, tokenizer, template } = loadModelAndAdapter(flags.model, undefined);
      const spec = model.spec;
      const log = (s: string) => process.stderr.write(s + "\n");
      let maxLen = flags.maxSeqLen;
      if (!(maxLen >= 2)) throw new InputError(`--max-seq-len must be at least 2, got ${maxLen}`);
      if (maxLen > spec.contextLength) {
        log(
          `note: --max-seq-len ${maxLen} is above the model's context ${spec.contextLength}; using ${spec.contextLength}`,
        );
        maxLen = spec.contextLength;
      }
      const data = tokenizeDataset(readSftFile(flags.data), tokenizer, template, maxLen);
      reportTruncation(log, `training data ${flags.data}`, data, maxLen);
      if (data.examples.length === 0)
        throw new InputError(`${flags.data}: no example has assistant tokens within --max-seq-len ${maxLen}`);
      const evalData = flags.evalData
        ? tokenizeDataset(readSftFile(flags.evalData), tokenizer, template, maxLen)
        : undefined;
      if (evalData) reportTruncation(log, `eval data ${flags.evalData}`, evalData, maxLen);

      const perStep = config.batchSize * (config.gradAccumSteps ?? 1);
      const totalSteps = Math.ceil(((config.epochs ?? 1) * data.examples.length) / perStep);
      log(
        `training ${basename(flags.model)} (${spec.arch}, template ${template.name}) on ${data.examples.length} chats ` +
          `(${data.tokens} tokens, ${data.targets} trained): ${totalSteps} steps of ${perStep} sequences` +
          (resumeFrom ? `, resuming from ${basename(resumeFrom)}` : ""),
      );
      mkdirSync(checkpointDir, { recursive: true });

      const controller = new AbortController();
      let interrupted = false;
      const onSigint = () => {
        interrupted = true;
        log("interrupt: stopping after the current step");
        controller.abort();
      };
      process.once("SIGINT", onSigint);
      const started = Date.now();
      let stepsThisRun = 0;
      let result: TrainResult;
      try {
        result = await train(model, data.examples, config, {
          evalSet: evalData?.examples,
          resumeFrom,
          signal: controller.signal,
          onProgress: (p) => {
            stepsThisRun++;
            log(progressLine(p, (Date.now() - started) / stepsThisRun / 1000));
            if (maxSteps !== undefined && p.step >= maxSteps) controller.abort();
          },
        });
      } finally {
        process.removeListener("SIGINT", onSigint);
      }
      const lora = result.lora;
      if (!lora) throw new BuckleError("training returned no adapter");

      const adapterPath = join(out, "adapter.gguf");
      const peftDir = join(out, "peft");
      writeGGUFLora(adapterPath, lora, spec, { baseName: basename(flags.model).replace(/\.gguf$/i, "") });
      writePeftAdapter(peftDir, lora, { baseModel: resolve(flags.model), spec });
      const completed = result.step >= result.totalSteps;
      let merged: string | undefined;
      if (flags.merge && completed) {
        merged = mergeLoraIntoGGUF(flags.model, lora, flags.merge).path;
      }
      const lastCheckpoint = latestCheckpoint(checkpointDir);
      const last = result.history[result.history.length - 1];
      const record = {
        buckle: packageVersion(),
        node: process.version,
        completed,
        step: result.step,
        totalSteps: result.totalSteps,
        model: { path: resolve(flags.model), arch: spec.arch, vocabSize: spec.vocabSize },
        template: template.name,
        data: datasetRecord(flags.data, data),
        evalData: evalData ? datasetRecord(flags.evalData as string, evalData) : null,
        maxSeqLen: maxLen,
        config: { ...config, checkpointDir: "checkpoints" },
        seeds: { train: config.seed, note: "adapter init, data order and dropout all derive from this seed" },
        finalLoss: last?.loss ?? null,
        evals: result.evals,
        outputs: {
          adapter: "adapter.gguf",
          peft: "peft",
          checkpoint: lastCheckpoint ? join("checkpoints", basename(lastCheckpoint)) : null,
          merged: merged ?? null,
        },
      };
      writeFileAtomic(join(out, "train-config.json"), JSON.stringify(record, null, 2) + "\n");

      if (!completed) {
        log(
          `${interrupted ? "interrupted" : "stopped"} at step ${result.step} of ${result.totalSteps}; ` +
            `latest checkpoint: ${lastCheckpoint ?? "none"}; continue with --resume` +
            (flags.merge ? " (--merge is written when training completes)" : ""),
        );
      }
      log(
        `wrote ${adapterPath}, ${peftDir}/, ${join(out, "train-config.json")}${merged ? `, ${merged}` : ""}`,
      );
      if (flags.json) {
        process.stdout.write(
          JSON.stringify({ output: out, ...record, history: result.history }, null, 2) + "\n",
        );
      }
    });
}

function trainConfigFromFlags(flags: TrainFlags): TrainConfig {
  const schedules: LrSchedule[] = ["constant", "cosine", "linear"];
  if (!schedules.includes(flags.schedule as LrSchedule))
    throw new InputError(`--schedule must be constant, cosine or linear, got "${flags.schedule}"`);
  const targets = parseTargets(flags.targets);
  const positive = (name: string, v: number) => {
    if (!(v > 0)) throw new InputError(`${name} must be positive, got ${v}`);
  };
  positive("--lr", flags.lr);
  positive("--epochs", flags.epochs);
  positive("--batch-size", flags.batchSize);
  positive("--grad-accum", flags.gradAccum);
  positive("--lora-alpha", flags.loraAlpha);
  positive("--checkpoint-every", flags.checkpointEvery);
  if (flags.warmupSteps < 0) throw new InputError(`--warmup-steps must be >= 0, got ${flags.warmupSteps}`);
  if (flags.clip < 0) throw new InputError(`--clip must be >= 0 (0 = off), got ${flags.clip}`);
  if (flags.evalEvery < 0) throw new InputError(`--eval-every must be >= 0, got ${flags.evalEvery}`);
  return {
    seed: flags.seed,
    lora: { rank: flags.loraRank, alpha: flags.loraAlpha, dropout: flags.loraDropout, targets },
    learningRate: flags.lr,
    schedule: flags.schedule as LrSchedule,
    warmupSteps: flags.warmupSteps,
    weightDecay: flags.weightDecay,
    maxGradNorm: flags.clip,
    batchSize: flags.batchSize,
    gradAccumSteps: flags.gradAccum,
    epochs: flags.epochs,
    evalEvery: flags.evalEvery,
    checkpointEvery: flags.checkpointEvery,
  };
}

function parseTargets(list: string): LoraTarget[] {
  if (list.trim() === "all") return [...LORA_TARGETS];
  const names = list
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  for (const n of names) {
    if (!(LORA_TARGETS as readonly string[]).includes(n)) {
      throw new InputError(`--targets: unknown projection "${n}"`, {
        hint: `use "all" or some of ${LORA_TARGETS.join(",")}`,
      });
    }
  }
  if (names.length === 0) throw new InputError("--targets is empty");
  return [...new Set(names)] as LoraTarget[];
}

interface TokenizedDataset {
  examples: TrainExample[];
  /** Rows cut at the length limit, and rows dropped because no assistant token was left. */
  truncated: { file: string; line: number; tokens: number }[];
  dropped: { file: string; line: number }[];
  tokens: number;
  targets: number;
  sha256: string;
  rows: number;
}

/**
 * Render every chat with the template; the loss covers each assistant answer and its end-of-turn tokens
 * (contentStart..turnEnd). Chats longer than maxLen keep their first maxLen tokens.
 */
function tokenizeDataset(
  rows: SftExample[],
  tokenizer: Tokenizer,
  template: ChatTemplate,
  maxLen: number,
): TokenizedDataset {
  const out: TokenizedDataset = {
    examples: [],
    truncated: [],
    dropped: [],
    tokens: 0,
    targets: 0,
    sha256: rows.length ? createHash("sha256").update(readFileSync(rows[0].file)).digest("hex") : "",
    rows: rows.length,
  };
  for (const row of rows) {
    let rendered;
    try {
      rendered = renderWithSpans(template, row.messages, tokenizer);
    } catch (err) {
      if (err instanceof InputError)
        throw new InputError(`${row.file}:${row.line}: ${err.message}`, { hint: err.hint, cause: err });
      throw err;
    }
    let ids = rendered.ids;
    if (ids.length > maxLen) {
      out.truncated.push({ file: row.file, line: row.line, tokens: ids.length });
      ids = ids.slice(0, maxLen);
    }
    const spans = rendered.assistantSpans
      .map((s) => ({ start: s.contentStart, end: Math.min(s.turnEnd, ids.length) }))
      .filter((s) => s.end > s.start);
    if (spans.length === 0) {
      out.dropped.push({ file: row.file, line: row.line });
      continue;
    }
    out.examples.push({ ids, spans });
    out.tokens += ids.length;
    out.targets += spans.reduce((s, sp) => s + sp.end - Math.max(1, sp.start), 0);
  }
  return out;
}

function reportTruncation(log: (s: string) => void, file: string, d: TokenizedDataset, maxLen: number): void {
  if (d.truncated.length === 0) return;
  const lines = d.truncated.slice(0, 5).map((t) => `${t.line} (${t.tokens} tokens)`);
  log(
    `warning: ${file}: ${d.truncated.length} of ${d.rows} chats are longer than --max-seq-len ${maxLen} and were ` +
      `truncated (lines ${lines.join(", ")}${d.truncated.length > 5 ? ", ..." : ""})` +
      (d.dropped.length ? `; ${d.dropped.length} had no assistant token left and were dropped` : ""),
  );
}

function datasetRecord(path: string, d: TokenizedDataset): Record<string, unknown> {
  return {
    path: resolve(path),
    sha256: d.sha256,
    rows: d.rows,
    examples: d.examples.length,
    tokens: d.tokens,
    targetTokens: d.targets,
    truncated: d.truncated.length,
    dropped: d.dropped.length,
  };
}

function progressLine(p: TrainProgress, secondsPerStep: number): string {
  const eta = Math.round(secondsPerStep * (p.totalSteps - p.step));
  const tps =
    p.tokensPerSecond >= 1000 ? `${(p.tokensPerSecond / 1000).toFixed(1)}k` : p.tokensPerSecond.toFixed(0);
  const evalPart = p.evalLoss === undefined ? "" : `  eval ${p.evalLoss.toFixed(4)}`;
  return (
    `step ${p.step}/${p.totalSteps}  epoch ${p.epoch + 1}  loss ${p.loss.toFixed(4)}${evalPart}  ` +
    `lr ${p.lr.toExponential(2)}  ${tps} tok/s  ETA ${formatDuration(eta)}`
  );
}

function formatDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const mm = String(m).padStart(h ? 2 : 1, "0");
  return `${h ? `${h}:` : ""}${mm}:${String(s).padStart(2, "0")}`;
}
