import { test } from "node:test";
import assert from "node:assert/strict";
import { renderMarkdown } from "./markdown.js";
import { sampleReportData } from "./sample-data.js";
import { Rng } from "../../util/random.js";
import type { ReportData } from "./data.js";

const PAPER_ROWS = [
  "NoDef",
  "RandDrop-50%",
  "PPLDrop-50%",
  "Uncurated",
  "SafetyData",
  "Pre",
  "In",
  "Post",
  "All",
];

/** Rows of the first table after `heading`, split on unescaped pipes. */
function tableAfter(md: string, marker: string): string[][] {
  const lines = md.slice(md.indexOf(marker)).split("\n");
  const start = lines.findIndex((l) => l.startsWith("|"));
  const rows: string[][] = [];
  for (let i = start; i < lines.length && lines[i].startsWith("|"); i++)
    rows.push(
      lines[i]
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim()),
    );
  return rows;
}

test("the main table has the paper's shape: defences in order by attacks, value ± CI half-width", () => {
  const data = sampleReportData();
  new Rng(3).shuffle(data.cells); // the renderer orders rows itself
  const md = renderMarkdown(data);
  const rows = tableAfter(md, "Each cell: SR");
  assert.deepEqual(rows[0], ["Defence", "ExHarm", "AOA", "Benign"]);
  assert.deepEqual(rows[1], ["---", "---", "---", "---"]);
  assert.deepEqual(
    rows.slice(2).map((r) => r[0]),
    PAPER_ROWS,
  );
  for (const r of rows.slice(2)) {
    assert.equal(r.length, 4);
    for (const c of r.slice(1))
      assert.match(c, /^\d+\.\d ± \d+\.\d \/ \d\.\d\d ± \d\.\d\d \/ \d\.\d\d ± \d\.\d\d$/);
  }
  const post = data.cells.find((c) => c.defence === "Post" && c.attack === "AOA")!.metrics;
  const expected =
    `${(post.sr!.value * 100).toFixed(1)} ± ${(((post.sr!.ci95[1] - post.sr!.ci95[0]) / 2) * 100).toFixed(1)} / ` +
    `${post.sSafe!.value.toFixed(2)} ± ${((post.sSafe!.ci95[1] - post.sSafe!.ci95[0]) / 2).toFixed(2)} / ` +
    `${post.sHelp!.value.toFixed(2)} ± ${((post.sHelp!.ci95[1] - post.sHelp!.ci95[0]) / 2).toFixed(2)}`;
  assert.equal(rows[2 + PAPER_ROWS.indexOf("Post")][2], expected);
  assert.match(md, /\[report\.html\]\(report\.html\)/);
  assert.match(md, /> \*\*Illustrative sample data\*\*/);
  for (const heading of [
    "Stage comparison",
    "against curation rounds",
    "Perplexity",
    "Training loss",
    "Curated samples",
    "Timings",
    "Reproducibility",
  ])
    assert.ok(md.includes(heading), heading);
});

test("missing cells, unknown defences and hostile names keep the table intact", () => {
  const data = sampleReportData();
  const partial: ReportData = {
    schemaVersion: 1,
    run: { ...data.run, smokeData: true, illustrative: false },
    cells: [
      { defence: "All", attack: "ExHarm", metrics: { sr: data.cells[0].metrics.sr } },
      { defence: "My | <b>defence</b>", attack: "AOA\nnew", metrics: {} },
      { defence: "NoDef", attack: "ExHarm", metrics: data.cells[0].metrics },
    ],
  };
  const md = renderMarkdown(partial);
  const rows = tableAfter(md, "Each cell: SR");
  assert.equal(rows.length, 5);
  for (const r of rows) assert.equal(r.length, 3, JSON.stringify(r));
  assert.deepEqual(
    rows.slice(2).map((r) => r[0]),
    ["NoDef", "All", "My \\| &lt;b&gt;defence&lt;/b&gt;"],
  );
  assert.equal(rows[1][0], "---");
  assert.equal(rows[3][2], "not run");
  assert.match(rows[3][1], /^\d+\.\d ± \d+\.\d \/ – \/ –$/);
  assert.ok(!md.includes("<b>"));
  assert.match(md, /> \*\*Built-in smoke data\*\*/);
  assert.ok(!/undefined|NaN/.test(md));
});
