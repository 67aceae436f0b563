// `buckle report <run-dir>`: re-renders report.md and report.html from a run's report-data.json.
// The document is validated first, so a hand-edited or truncated file fails with the bad field's path.

import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { parseReportData, writeReport } from "../../experiment/report/index.js";
import { FileFormatError, InputError } from "../../util/errors.js";

/** "line 3, column 14" for a character offset into text. */
function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return `line ${line}, column ${offset - before.lastIndexOf("\n")}`;
}

/** Reads and validates a report document; errors name the file and the bad place in it. */
export function readReportData(file: string) {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new InputError(`cannot read ${file}: ${(err as Error).message}`, {
      hint: "pass a run directory that holds report-data.json (written by the experiment runner)",
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const msg = (err as Error).message;
    const pos = /position (\d+)/.exec(msg);
    throw new FileFormatError(
      file,
      undefined,
      `not valid JSON${pos ? ` at ${lineColumn(text, Number(pos[1]))}` : ""}: ${msg}`,
      {
        hint: "the file may be truncated: re-run the experiment's report step to write it again",
      },
    );
  }
  return parseReportData(value, file);
}

export function registerReportCommand(program: Command): void {
  program
    .command("report <run-dir>")
    .description("Render report.md and report.html from <run-dir>/report-data.json")
    .option("-o, --out <dir>", "write the report into this directory instead of <run-dir>")
    .option("--json", "print the written paths as JSON")
    .addHelpText(
      "after",
      "\n<run-dir> may also be the path of a report-data.json file. docs/REPORT.md describes the document.\n\n" +
        "Example:\n  buckle report runs/paper-table --out /tmp/report\n",
    )
    .action((runDir: string, flags: { out?: string; json?: boolean }) => {
      const input = resolve(runDir);
      if (!existsSync(input))
        throw new InputError(`${runDir} does not exist`, { hint: "pass the directory of a finished run" });
      const isDir = statSync(input).isDirectory();
      const file = isDir ? join(input, "report-data.json") : input;
      if (isDir && !existsSync(file))
        throw new InputError(`${runDir} has no report-data.json`, {
          hint: "the experiment runner writes it when a run finishes; pass that run's directory",
        });
      const data = readReportData(file);
      const outDir = resolve(flags.out ?? (isDir ? input : resolve(input, "..")));
      // The data file is copied only when the report goes elsewhere, so the output folder stands on its own.
      const written = writeReport(outDir, data, {
        includeData: resolve(outDir, "report-data.json") !== file,
      });
      if (flags.json) process.stdout.write(JSON.stringify(written, null, 2) + "\n");
      else for (const path of Object.values(written)) process.stdout.write(`${path}\n`);
    });
}
