import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { renderHtml } from "./html.js";
import { hostileReportData as hostileReport, sampleReportData } from "./sample-data.js";

test("untrusted text renders as text: no element or attribute comes from the data", () => {
  const html = renderHtml(hostileReport());
  assert.equal((html.match(/<script/g) ?? []).length, 1, "only the report's own script");
  for (const bad of [
    "<img",
    "<iframe",
    "<svg onload",
    "<b onmouseover",
    "<a href=javascript",
    "<style>body",
    "window.pwned=1</script>",
  ])
    assert.ok(!html.includes(bad), `raw ${bad} in the output`);
  assert.ok(
    html.includes(
      "&lt;script&gt;window.pwned=1&lt;/script&gt;&lt;img src=x onerror=&quot;window.pwned=2&quot;&gt;&quot;quoted&quot; &amp; &#39;single&#39;",
    ),
  );
  assert.ok(
    html.includes("<title>buckle report: run &quot;&gt;&lt;script&gt;window.pwned=3&lt;/script&gt;</title>"),
  );
  assert.ok(html.includes("&lt;svg onload=window.pwned=4&gt;"));
});

test("the page is self-contained and its one script is allowed by hash in the CSP", () => {
  const html = renderHtml(sampleReportData());
  assert.ok(!/\s(src|href)="(?!#)/.test(html), "no external src/href");
  assert.ok(!/<link|@import|url\(/.test(html));
  const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/
    .exec(html)![1]
    .replace(/&#39;/g, "'");
  assert.match(csp, /default-src 'none'/);
  const script = /<script>([\s\S]*?)<\/script>/.exec(html)![1];
  const hash = createHash("sha256").update(script).digest("base64");
  assert.ok(csp.includes(`'sha256-${hash}'`));
  // Nothing depends on the script: its buttons start hidden, sections are native <details>.
  for (const b of html.match(/<button[^>]*>/g) ?? []) assert.match(b, / hidden>$/);
});

test("the table, charts and sections are all there, with accessible labels", () => {
  const html = renderHtml(sampleReportData());
  const tbody = /<table class="main"[\s\S]*?<tbody>([\s\S]*?)<\/tbody>/.exec(html)![1];
  const rows = [...tbody.matchAll(/<tr><th scope="row">([^<]*)<\/th>/g)].map((m) => m[1]);
  assert.deepEqual(rows, [
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
  assert.equal((tbody.match(/<td style="background:hsl/g) ?? []).length, 27);
  const charts = [
    ...html.matchAll(/<svg class="chart" id="([^"]+)" role="img" aria-labelledby="\1-title \1-desc"/g),
  ].map((m) => m[1]);
  assert.deepEqual(charts, [
    "chart-sr",
    "chart-stages",
    "chart-rounds",
    "chart-perplexity",
    "chart-loss-0",
    "chart-loss-1",
    "chart-loss-2",
    "chart-loss-3",
    "chart-overrefusal",
    "chart-utility",
    "chart-help",
  ]);
  assert.ok(html.includes('<div class="badge illustrative"'));
  assert.ok(html.includes("<del>"), "curated diff marks removed words");
  assert.ok(!/undefined|NaN/.test(html));
});

test("a partial run (metadata and cells only) renders the table and the reproducibility section", () => {
  const full = sampleReportData();
  const html = renderHtml({
    schemaVersion: 1,
    run: {
      ...full.run,
      smokeData: true,
      illustrative: undefined,
      promptTemplates: undefined,
      config: undefined,
    },
    cells: [{ defence: "NoDef", attack: "ExHarm", metrics: { sr: full.cells[0].metrics.sr } }],
  });
  assert.ok(html.includes('<div class="badge smoke"'));
  assert.ok(html.includes('id="repro"') && html.includes('id="table"'));
  assert.equal((html.match(/<svg class="chart"/g) ?? []).length, 1, "only the SR chart");
  assert.ok(!/id="(examples|curated|perplexity|loss|rounds|timings)"/.test(html));
  assert.ok(!/undefined|NaN/.test(html));
});
