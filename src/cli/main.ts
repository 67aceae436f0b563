#!/usr/bin/env node
// The `buckle` command line: parses flags, shows progress and calls the library; no logic of its own.
// Errors a user can cause print what was wrong and what to do, and exit with status 2.

import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { BuckleError } from "../util/errors.js";
import { packageVersion } from "../util/version.js";
import { registerModelCommands } from "./commands/model.js";
import { registerTokenizeCommand } from "./commands/tokenize.js";
import { registerVocabCommands } from "./commands/vocab.js";
import { registerDemoCommand } from "./commands/demo.js";
import { registerBenchCommand } from "./commands/bench.js";
import { registerGenerateCommand } from "./commands/generate.js";
import { registerLogprobsCommand } from "./commands/logprobs.js";
import { registerTrainCommand } from "./commands/train.js";
import { registerReportCommand } from "./commands/report.js";
import { registerDoctorCommand } from "./commands/doctor.js";
import { registerDefendCommand } from "./commands/defend.js";
import { registerAttackCommand } from "./commands/attack.js";
import { registerCurateCommand } from "./commands/curate.js";
import { registerEvalCommand } from "./commands/eval.js";
import { registerWorldCommands } from "./commands/world.js";
import { registerRunCommands } from "./commands/run.js";

export function buildProgram(): Command {
  const program = new Command("buckle")
    .description(
      "Keep customized LLMs safe against jailbreak-by-fine-tuning with data curation (CTRL / Buckle Up).",
    )
    .version(packageVersion(), "-V, --version")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  registerModelCommands(program);
  registerTokenizeCommand(program);
  registerVocabCommands(program);
  registerDemoCommand(program);
  registerBenchCommand(program);
  registerGenerateCommand(program);
  registerLogprobsCommand(program);
  registerTrainCommand(program);
  registerReportCommand(program);
  registerDoctorCommand(program);
  registerDefendCommand(program);
  registerAttackCommand(program);
  registerCurateCommand(program);
  registerEvalCommand(program);
  registerWorldCommands(program);
  registerRunCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit through here with code 0; usage errors were already printed.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof BuckleError) {
      process.stderr.write(`error: ${err.message}\n`);
      if (err.hint) process.stderr.write(`  hint: ${err.hint}\n`);
      return 2;
    }
    process.stderr.write(`internal error: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}

function invokedDirectly(): boolean {
  try {
    return realpathSync(process.argv[1] ?? "") === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
