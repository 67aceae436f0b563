// Writes a run's report files: report-data.json (the validated document), report.md and report.html.
// Each file is written atomically, so a reader never sees half a report.

import { join, resolve } from "node:path";
import { writeFileAtomic } from "../../util/fs.js";
import { parseReportData, type ReportData } from "./data.js";
import { renderHtml } from "./html.js";
import { renderMarkdown } from "./markdown.js";

export interface WrittenReport {
  markdown: string;
  html: string;
  /** Absent when writeReport was told not to write the data file. */
  data?: string;
}

/**
 * Validate `data` (a bug in the collecting code fails here, naming the bad field) and write report.md,
 * report.html and, unless `includeData` is false, report-data.json into `dir`. Returns the paths written.
 */
export function writeReport(
  dir: string,
  data: ReportData,
  options: { includeData?: boolean } = {},
): WrittenReport {
  const valid = parseReportData(data, "report data");
  const out = resolve(dir);
  const written: WrittenReport = { markdown: join(out, "report.md"), html: join(out, "report.html") };
  if (options.includeData ?? true) {
    written.data = join(out, "report-data.json");
    writeFileAtomic(written.data, JSON.stringify(valid, null, 2) + "\n");
  }
  writeFileAtomic(written.markdown, renderMarkdown(valid));
  writeFileAtomic(written.html, renderHtml(valid));
  return written;
}
