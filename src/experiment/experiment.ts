// One call from config to report: run (or resume) the experiment, collect the report document, write report.md,
// report.html and report-data.json into the run directory, and give back the table for the terminal.

import { join, resolve } from "node:path";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { Store } from "../store/index.js";
import { collectReport } from "./collect.js";
import {
  CONFIG_FILE,
  runExperiment,
  STORE_FILE,
  type ExperimentResult,
  type RunExperimentOptions,
} from "./run.js";
import { writeReport, type ReportData } from "./report/index.js";

export interface ExperimentOutcome {
  result: ExperimentResult;
  report: ReportData;
  files: { markdown: string; html: string; data?: string };
}

/** Run `config` in `runDir` and write its report there. */
export async function runAndReport(
  options: RunExperimentOptions & { command?: string },
): Promise<ExperimentOutcome> {
  const result = await runExperiment(options);
  const snapshot = JSON.parse(readFileSync(join(result.runDir, CONFIG_FILE), "utf8")) as { created?: string };
  const store = Store.open(join(result.runDir, STORE_FILE));
  try {
    const report = collectReport(options.config, result, store, {
      created: snapshot.created ?? new Date().toISOString(),
      command: options.command,
    });
    const files = writeReport(result.runDir, report, { includeData: true });
    return { result, report, files };
  } finally {
    store.close();
  }
}

/** The paper-shaped table as fixed-width text: rows defences, columns attacks, cells SR [CI], refusal rate, S_HELP. */
export function formatTable(report: ReportData): string {
  const attacks = [...new Set(report.cells.map((c) => c.attack))];
  const defences = [...new Set(report.cells.map((c) => c.defence))];
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const cellText = (defence: string, attack: string): string => {
    const c = report.cells.find((x) => x.defence === defence && x.attack === attack);
    if (!c) return "";
    const sr = c.metrics.sr;
    const help = c.metrics.sHelp;
    const parts: string[] = [];
    if (sr) parts.push(`SR ${pct(sr.value)} [${pct(sr.ci95[0])}, ${pct(sr.ci95[1])}]`);
    const refused = c.metrics.refusalRate;
    if (refused) parts.push(`refused ${pct(refused.value)}`);
    if (help) parts.push(`help ${help.value.toFixed(2)}`);
    return parts.join("  ");
  };
  const header = ["defence", ...attacks];
  const rows = defences.map((d) => [d, ...attacks.map((a) => cellText(d, a))]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** Run directories under `root` (those with a config snapshot), newest first. */
export function listRuns(
  root: string,
): { dir: string; name: string; created: string; hash: string; done: boolean }[] {
  const base = resolve(root);
  if (!existsSync(base)) return [];
  const out: { dir: string; name: string; created: string; hash: string; done: boolean }[] = [];
  const visit = (dir: string, depth: number): void => {
    const snap = join(dir, CONFIG_FILE);
    if (existsSync(snap)) {
      try {
        const s = JSON.parse(readFileSync(snap, "utf8")) as {
          hash: string;
          created: string;
          config: { name: string };
        };
        out.push({
          dir,
          name: s.config?.name ?? "?",
          created: s.created ?? "?",
          hash: s.hash ?? "?",
          done: existsSync(join(dir, "report.html")),
        });
      } catch {
        /* not a run directory */
      }
      return;
    }
    if (depth === 0) return;
    for (const entry of readdirSafe(dir)) visit(join(dir, entry), depth - 1);
  };
  visit(base, 2);
  return out.sort((a, b) => b.created.localeCompare(a.created));
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir).filter((e) => statSync(join(dir, e)).isDirectory());
  } catch {
    return [];
  }
}
