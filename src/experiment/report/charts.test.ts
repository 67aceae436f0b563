import { test } from "node:test";
import assert from "node:assert/strict";
import {
  barChart,
  distributionChart,
  lineChart,
  logTicks,
  niceTicks,
  quantile,
  shortNumber,
} from "./charts.js";

test("tick helpers give round values inside the domain", () => {
  assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(1, 5), [1, 2, 3, 4, 5]);
  assert.deepEqual(niceTicks(0.37, 2.41), [0.5, 1, 1.5, 2]);
  assert.deepEqual(logTicks(1.5, 60), [2, 5, 10, 20, 50]);
  assert.deepEqual(logTicks(0.5, 5000), [1, 10, 100, 1000]);
  assert.equal(shortNumber(4.2199), "4.22");
  assert.equal(shortNumber(50), "50");
  assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
});

/** Numeric attributes of every element with class `cls` in an SVG string. */
function marks(svg: string, cls: string): Record<string, number>[] {
  return [...svg.matchAll(new RegExp(`<(?:rect|circle|path) class="${cls}"([^>]*)>`, "g"))].map((m) =>
    Object.fromEntries([...m[1].matchAll(/(\w+)="([\d.-]+)"/g)].map((a) => [a[1], Number(a[2])])),
  );
}

test("bar heights are proportional to values and every bar has a whisker and a tooltip", () => {
  const svg = barChart({
    id: "t",
    title: "T",
    description: "D",
    groups: [
      {
        label: "A",
        bars: [
          { series: "x", value: 1, ci95: [0.9, 1] },
          { series: "y", value: 0.5, ci95: [0.4, 0.6] },
        ],
      },
      { label: "B", bars: [{ series: "x", value: 0.25 }] },
    ],
    yLabel: "SR",
    yDomain: [0, 1],
    format: (v) => `${v * 100}%`,
  });
  const bars = marks(svg, "mark bar");
  assert.equal(bars.length, 3);
  assert.ok(Math.abs(bars[1].height / bars[0].height - 0.5) < 0.01);
  assert.ok(Math.abs(bars[2].height / bars[0].height - 0.25) < 0.01);
  assert.equal((svg.match(/class="whisker"/g) ?? []).length, 2);
  assert.match(svg, /<title>A \/ y: 50% \[40%, 60%\]<\/title>/);
  assert.match(svg, /role="img" aria-labelledby="t-title t-desc"/);
});

test("a line chart draws one path per series, a band for CIs and a point per value", () => {
  const svg = lineChart({
    id: "l",
    title: "L",
    description: "D",
    series: [
      { label: "a", points: [0, 1, 2].map((x) => ({ x, y: x / 2, lo: x / 2 - 0.1, hi: x / 2 + 0.1 })) },
      { label: "b", points: [0, 2].map((x) => ({ x, y: 0.2 })), dashed: true },
    ],
    xLabel: "round",
    yLabel: "SR",
    format: String,
  });
  assert.equal((svg.match(/class="mark line"/g) ?? []).length, 2);
  assert.equal((svg.match(/class="band"/g) ?? []).length, 1);
  assert.equal(marks(svg, "mark point").length, 5);
  assert.match(svg, /stroke-dasharray="5 4"/);
});

test("a distribution chart draws a box per group at the quartiles, on a log axis", () => {
  const values = [1, 2, 4, 8, 16];
  const svg = distributionChart({
    id: "d",
    title: "D",
    description: "D",
    panels: [{ label: "robust", groups: [{ label: "safe", values }] }],
    yLabel: "ppl",
    logY: true,
    format: shortNumber,
    height: 300,
  });
  const [box] = marks(svg, "mark box");
  const dots = marks(svg, "mark dot");
  assert.equal(dots.length, 5);
  // On a log axis equal ratios are equal distances: the box (2..8) spans two doublings, dots one apart.
  const ys = dots.map((d) => d.cy).sort((a, b) => b - a);
  const step = ys[0] - ys[1];
  for (let i = 1; i < 4; i++) assert.ok(Math.abs(ys[i] - ys[i + 1] - step) < 0.3);
  assert.ok(Math.abs(box.height - 2 * step) < 0.5);
});
