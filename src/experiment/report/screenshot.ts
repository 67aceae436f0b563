// Renders the illustrative sample report and saves a full-page screenshot of it (docs/report-screenshot.png).
// Usage: npm run build && node dist/experiment/report/screenshot.js [out.png]

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { withReportPage } from "./browser.js";
import { sampleReportData } from "./sample-data.js";
import { writeReport } from "./write.js";

async function main(out: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "buckle-report-shot-"));
  try {
    const { html } = writeReport(dir, sampleReportData());
    const errors = await withReportPage(html, async (page, log) => {
      await page.screenshot({ path: out, fullPage: true });
      return log.errors;
    });
    if (errors.length) throw new Error(`the page logged errors:\n${errors.join("\n")}`);
    process.stdout.write(`${out}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main(resolve(process.argv[2] ?? "docs/report-screenshot.png")).catch((err: unknown) => {
  process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
});
