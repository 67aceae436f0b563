// `buckle run <config>` runs (or resumes) an experiment and writes its report; `buckle ls` lists run directories.
// Progress goes to stderr, one line per step; the paper-shaped table goes to stdout at the end.

import { basename, join, resolve } from "node:path";
import type { Command } from "commander";
import {
  formatTable,
  listRuns,
  readExperimentConfig,
  runAndReport,
  type ExperimentConfig,
  type StepEvent,
} from "../../experiment/index.js";
import { ensureFastKernels } from "../../engine/index.js";

/** A progress printer for step events: one line when a step starts or ends, a throttled line while it runs. */
export function stepPrinter(
  write: (line: string) => void = (l) => process.stderr.write(l + "\n"),
): (e: StepEvent) => void {
  let lastProgress = 0;
  let done = 0;
  return (e) => {
    const now = Date.now();
    switch (e.type) {
      case "skip":
        done++;
        write(`  = ${e.label} (done in an earlier run)`);
        break;
      case "start":
        write(`  > ${e.label}`);
        break;
      case "progress":
        if (now - lastProgress > 2000 && e.fraction !== undefined) {
          lastProgress = now;
          write(`    ${(100 * e.fraction).toFixed(0)}%${e.message ? ` ${e.message}` : ""}`);
        }
        break;
      case "done":
        done++;
        write(`  ✓ ${e.label} (${e.seconds.toFixed(1)} s) [${done} steps done]`);
        break;
      case "fail":
        write(`  ✗ ${e.label}: ${e.error}`);
        break;
    }
  };
}

export async function runConfig(
  config: ExperimentConfig,
  runDir: string,
  flags: { json?: boolean; command?: string },
): Promise<void> {
  await ensureFastKernels(config.threads);
  const started = Date.now();
  const controller = new AbortController();
  const onSignal = () => {
    process.stderr.write("\nstopping after the running step (run the same command again to resume)...\n");
    controller.abort();
  };
  process.once("SIGINT", onSignal);
  try {
    process.stderr.write(`run directory: ${runDir}\n`);
    const outcome = await runAndReport({
      config,
      runDir,
      onEvent: stepPrinter(),
      log: (l) => process.stderr.write(`${l}\n`),
      signal: controller.signal,
      command: flags.command,
    });
    const seconds = (Date.now() - started) / 1000;
    if (flags.json) {
      process.stdout.write(
        JSON.stringify(
          { runDir: outcome.result.runDir, seconds, files: outcome.files, cells: outcome.report.cells },
          null,
          2,
        ) + "\n",
      );
      return;
    }
    process.stdout.write(`\n${formatTable(outcome.report)}\n\n`);
    process.stdout.write(`report: ${outcome.files.html}\n        ${outcome.files.markdown}\n`);
    process.stdout.write(`time: ${seconds.toFixed(1)} s\n`);
  } finally {
    process.off("SIGINT", onSignal);
  }
}

export function registerRunCommands(program: Command): void {
  program
    .command("run <config>")
    .description("Run (or resume) an experiment from a YAML or JSON config and write its report")
    .option("-o, --run-dir <dir>", "run directory (default runs/<config name>)")
    .option("--json", "print the run directory, files and cells as JSON")
    .addHelpText(
      "after",
      "\nRerunning the same command resumes: finished steps are skipped, stopped training continues from its\n" +
        "checkpoint, and model calls are answered from the run's store. docs/EXPERIMENTS.md describes the config.\n\n" +
        "Examples:\n  buckle run examples/organism-quick.yaml\n  buckle run my-paper-table.yaml --run-dir runs/table1\n",
    )
    .action(async (configPath: string, flags: { runDir?: string; json?: boolean }) => {
      const config = readExperimentConfig(configPath);
      const runDir = resolve(
        flags.runDir ?? join("runs", config.name || basename(configPath).replace(/\.[^.]+$/, "")),
      );
      await runConfig(config, runDir, { json: flags.json, command: `buckle run ${configPath}` });
    });

  program
    .command("ls [dir]")
    .description("List experiment run directories (default ./runs), newest first")
    .option("--json", "print JSON")
    .action((dir: string | undefined, flags: { json?: boolean }) => {
      const runs = listRuns(dir ?? "runs");
      if (flags.json) {
        process.stdout.write(JSON.stringify(runs, null, 2) + "\n");
        return;
      }
      if (runs.length === 0) {
        process.stdout.write(`no runs under ${resolve(dir ?? "runs")}\n`);
        return;
      }
      for (const r of runs)
        process.stdout.write(
          `${r.created}  ${r.done ? "done   " : "partial"}  ${r.name.padEnd(24)}  ${r.dir}\n`,
        );
    });
}
