import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { findChromium, withReportPage } from "./browser.js";
import { hostileReportData as hostileReport } from "./sample-data.js";
import { writeReport } from "./write.js";

const chromium = findChromium();
const required = process.env.BUCKLE_REQUIRE_CHROMIUM === "1";
const skip =
  chromium || required
    ? false
    : "no Chromium at /usr/bin/chromium (apt-get install chromium, or set BUCKLE_CHROMIUM); BUCKLE_REQUIRE_CHROMIUM=1 makes this a failure";

test(
  "the HTML report renders in headless Chromium: no errors, drawn charts, full table, inert hostile text",
  { skip, timeout: 180_000 },
  async () => {
    assert.ok(chromium, "BUCKLE_REQUIRE_CHROMIUM=1 but no Chromium was found (apt-get install chromium)");
    const dir = mkdtempSync(join(tmpdir(), "buckle-report-browser-"));
    try {
      const { html } = writeReport(dir, hostileReport());
      await withReportPage(html, async (page, log) => {
        const result = await page.evaluate(() => {
          const charts = Array.from(document.querySelectorAll("svg.chart")).map((svg) => {
            const marks = Array.from(svg.querySelectorAll(".mark"));
            const drawn = marks.filter((m) => {
              const b = (m as SVGGraphicsElement).getBBox();
              return b.width > 0 || b.height > 0;
            });
            const box = svg.getBoundingClientRect();
            return {
              id: svg.id,
              marks: marks.length,
              drawn: drawn.length,
              width: box.width,
              height: box.height,
            };
          });
          const rows = Array.from(document.querySelectorAll("#main-table tbody tr th[scope=row]")).map(
            (th) => th.textContent,
          );
          const cols = Array.from(document.querySelectorAll("#main-table thead th")).map(
            (th) => th.textContent,
          );
          const answer = document.querySelector("#examples .answer")?.textContent ?? "";
          const w = window as unknown as { pwned?: number };
          return {
            charts,
            rows,
            cols,
            answer,
            pwned: w.pwned,
            images: document.images.length,
            iframes: document.querySelectorAll("iframe").length,
            hiddenButtons: document.querySelectorAll("button[data-toggle][hidden]").length,
            buttons: document.querySelectorAll("button[data-toggle]").length,
          };
        });
        assert.deepEqual(log.errors, []);
        assert.deepEqual(
          [...new Set(log.requests)],
          [pathToFileURL(html).href],
          "the page loads nothing else",
        );
        assert.deepEqual(result.rows, [
          "NoDef",
          "RandDrop-50%",
          "PPLDrop-50%",
          "Uncurated",
          "SafetyData",
          "Pre",
          "In",
          "Post",
          "All",
        ]);
        assert.deepEqual(result.cols, ["Defence", "<svg onload=window.pwned=4>", "AOA", "Benign"]);
        assert.equal(result.charts.length, 11);
        for (const c of result.charts) {
          assert.ok(c.marks > 0 && c.drawn === c.marks, `${c.id}: ${c.drawn} of ${c.marks} marks drawn`);
          assert.ok(c.width > 100 && c.height > 100, `${c.id} is ${c.width}x${c.height}`);
        }
        assert.equal(result.pwned, undefined);
        assert.equal(result.images, 0);
        assert.equal(result.iframes, 0);
        assert.ok(result.answer.startsWith("<script>window.pwned=1</script><img src=x"));
        // The inline script ran under the CSP (its buttons were revealed) and works.
        assert.equal(result.hiddenButtons, 0);
        assert.ok(result.buttons > 0);
        await page.click('button[data-toggle="open"][data-target="#examples"]');
        const closed = await page.evaluate(
          () => document.querySelectorAll("#examples details:not([open])").length,
        );
        assert.equal(closed, 0);
        assert.deepEqual(log.errors, []);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
