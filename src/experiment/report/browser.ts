// Headless Chromium (Debian's chromium driven by playwright-core) for checking the HTML report the way a reader
// sees it: the browser test and the docs screenshot open a rendered report from a file:// URL.

import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Page } from "playwright-core";
import { UnavailableError } from "../../util/errors.js";

/** A Chromium binary: $BUCKLE_CHROMIUM, else Debian's or Ubuntu's usual paths; undefined when none is there. */
export function findChromium(): string | undefined {
  const candidates = [process.env.BUCKLE_CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"];
  return candidates.find((p): p is string => !!p && existsSync(p));
}

// Quiet, offline, stateless: no first-run UI, no background fetches, no GPU, nothing kept between runs.
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export interface ReportPageLog {
  /** Console messages of type error, uncaught page errors and failed requests. */
  errors: string[];
  /** Every URL the page requested (a self-contained report requests only itself). */
  requests: string[];
}

/**
 * Open `htmlPath` in a fresh headless Chromium (new user-data dir, removed afterwards), wait for load, and
 * run `fn` on the page. Throws UnavailableError when no Chromium is installed.
 */
export async function withReportPage<T>(
  htmlPath: string,
  fn: (page: Page, log: ReportPageLog) => Promise<T>,
  options: { width?: number; height?: number } = {},
): Promise<T> {
  const executablePath = findChromium();
  if (!executablePath)
    throw new UnavailableError("no Chromium found for the report's browser check", {
      hint: "apt-get install chromium, or set BUCKLE_CHROMIUM to a Chromium binary",
    });
  const { chromium } = await import("playwright-core");
  const userDataDir = mkdtempSync(join(tmpdir(), "buckle-chromium-"));
  try {
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: ARGS,
      viewport: { width: options.width ?? 1200, height: options.height ?? 900 },
      timeout: 90_000,
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const log: ReportPageLog = { errors: [], requests: [] };
      page.on("console", (m) => {
        if (m.type() === "error") log.errors.push(`console: ${m.text()}`);
      });
      page.on("pageerror", (e) => log.errors.push(`page error: ${e.message}`));
      page.on("requestfailed", (r) => log.errors.push(`request failed: ${r.url()}`));
      page.on("request", (r) => log.requests.push(r.url()));
      await page.goto(pathToFileURL(htmlPath).href, { waitUntil: "load" });
      return await fn(page, log);
    } finally {
      await context.close();
    }
  } finally {
    rmSync(userDataDir, { recursive: true, force: true });
  }
}
