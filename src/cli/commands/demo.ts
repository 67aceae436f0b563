// `buckle demo` (npm run demo): the main job on the built-in default. Builds (or loads) the model organism,
// curates its commonsense pool with CTRL, runs every defence against ExHarm and AOA over 3 seeds, prints the
// paper-shaped table and writes the full report. A rerun resumes; --fresh starts over.

import { rmSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { demoConfig } from "../../experiment/demo.js";
import { InputError } from "../../util/errors.js";
import { runConfig } from "./run.js";

interface DemoFlags {
  runDir?: string;
  full?: boolean;
  seeds?: string;
  fresh?: boolean;
  json?: boolean;
}

export function registerDemoCommand(program: Command): void {
  program
    .command("demo")
    .description(
      "The paper's every-stage table on the built-in model organism: curate, attack, defend, evaluate, report",
    )
    .option("-o, --run-dir <dir>", "run directory (default runs/demo, or runs/demo-full with --full)")
    .option(
      "--full",
      "the paper's curation settings (5 rounds, the 5 x 5 temperature x top-p grid): much slower",
    )
    .option("--seeds <list>", "comma-separated seeds of the matrix", "1,2,3")
    .option("--fresh", "delete the run directory first instead of resuming it")
    .option("--json", "print the run directory, files and cells as JSON")
    .addHelpText(
      "after",
      "\nThe model organism is a ~190k-parameter model that buckle pretrains and aligns on a synthetic world\n" +
        "(about 1-2 minutes, once; cached). docs/WORLD.md describes it, docs/RESULTS.md the measured table.\n\n" +
        "Examples:\n  buckle demo\n  buckle demo --seeds 1 --run-dir /tmp/demo1\n  buckle demo --full\n",
    )
    .action(async (flags: DemoFlags) => {
      const items = (flags.seeds ?? "1,2,3").split(",").map((s) => s.trim());
      const bad = items.findIndex((s) => !/^\d+$/.test(s));
      if (bad >= 0)
        throw new InputError(`--seeds: seeds.${bad}: expected a whole number, got "${items[bad]}"`, {
          hint: "give comma-separated seeds, e.g. --seeds 1,2,3",
        });
      const seeds = items.map(Number);
      const config = demoConfig({ full: flags.full, seeds });
      const runDir = resolve(flags.runDir ?? (flags.full ? "runs/demo-full" : "runs/demo"));
      if (flags.fresh) rmSync(runDir, { recursive: true, force: true });
      await runConfig(config, runDir, { json: flags.json, command: "buckle demo" });
    });
}
