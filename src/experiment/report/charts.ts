// Small SVG chart helpers for the self-contained HTML report: grouped bars with CI whiskers, lines with CI
// bands, and box-plus-strip distributions. Output is a string of inline SVG; no scripts, fonts or CSS files.

import { quantile } from "../../evaluation/index.js";
import { Rng } from "../../util/random.js";
import { escapeHtml as esc } from "./escape.js";

/** Okabe-Ito colours: distinguishable with the common colour-vision deficiencies. */
export const PALETTE = [
  "#0072B2",
  "#E69F00",
  "#009E73",
  "#D55E00",
  "#CC79A7",
  "#56B4E9",
  "#7F7F7F",
  "#000000",
];

interface ChartBase {
  /** Unique within the page: used for the title/desc ids that label the SVG for screen readers. */
  id: string;
  title: string;
  /** A sentence saying what the chart shows, read by screen readers (SVG <desc>). */
  description: string;
  width?: number;
  height?: number;
}

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"';
const CHAR_W = 6.2; // average glyph width at font-size 11, for layout only

const r1 = (v: number) => Math.round(v * 10) / 10;

/** A number with three significant digits and no trailing zeros: 50, 4.2, 0.125. */
export function shortNumber(v: number): string {
  return String(Number(v.toPrecision(3)));
}

/** Round tick values spanning [lo, hi]: steps of 1, 2 or 5 times a power of ten. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  const step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  }
  return ticks;
}

/** Ticks for a log axis: 1, 2, 5 x 10^k inside [lo, hi], thinned to powers of ten when there are many. */
export function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let k = Math.floor(Math.log10(lo)); k <= Math.ceil(Math.log10(hi)); k++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** k;
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push(Number(v.toPrecision(12)));
    }
  }
  return ticks.length > 8 ? ticks.filter((v) => Number.isInteger(Math.log10(v))) : ticks;
}

/** A linear or log scale mapping data values to pixels. */
function scale(domain: [number, number], range: [number, number], log = false): (v: number) => number {
  const [d0, d1] = log ? [Math.log10(domain[0]), Math.log10(domain[1])] : domain;
  const span = d1 - d0 || 1;
  return (v) => range[0] + (((log ? Math.log10(v) : v) - d0) / span) * (range[1] - range[0]);
}

function open(c: ChartBase, width: number, height: number): string {
  return (
    `<svg class="chart" id="${esc(c.id)}" role="img" aria-labelledby="${esc(c.id)}-title ${esc(c.id)}-desc" ` +
    `viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" ${FONT} font-size="11">` +
    `<title id="${esc(c.id)}-title">${esc(c.title)}</title><desc id="${esc(c.id)}-desc">${esc(c.description)}</desc>`
  );
}

/** Horizontal grid lines, y tick labels and the rotated y-axis label. */
function yAxis(
  ticks: number[],
  y: (v: number) => number,
  x0: number,
  x1: number,
  format: (v: number) => string,
  label: string,
  top: number,
  bottom: number,
): string {
  let s = `<g class="axis y">`;
  for (const t of ticks) {
    const py = r1(y(t));
    s += `<line x1="${x0}" x2="${x1}" y1="${py}" y2="${py}" stroke="#e3e3e3"/>`;
    s += `<text x="${x0 - 5}" y="${py + 3.5}" text-anchor="end" fill="#444">${esc(format(t))}</text>`;
  }
  s += `<line x1="${x0}" x2="${x0}" y1="${top}" y2="${bottom}" stroke="#888"/>`;
  const cy = r1((top + bottom) / 2);
  s += `<text transform="translate(13 ${cy}) rotate(-90)" text-anchor="middle" fill="#222">${esc(label)}</text></g>`;
  return s;
}

/** A one-row legend of coloured swatches starting at (x, y). */
function legend(items: { label: string; color: string; dashed?: boolean }[], x: number, y: number): string {
  let s = `<g class="legend">`;
  let px = x;
  for (const it of items) {
    s += it.dashed
      ? `<line x1="${px}" x2="${px + 14}" y1="${y - 4}" y2="${y - 4}" stroke="${it.color}" stroke-width="2" stroke-dasharray="4 3"/>`
      : `<rect x="${px}" y="${y - 9}" width="14" height="10" fill="${it.color}"/>`;
    s += `<text x="${px + 18}" y="${y}" fill="#222">${esc(it.label)}</text>`;
    px += 30 + it.label.length * CHAR_W;
  }
  return s + `</g>`;
}

export interface Bar {
  series: string;
  value: number;
  ci95?: [number, number];
  /** Extra text for the bar's tooltip (e.g. "n=520"). */
  detail?: string;
}

export interface BarGroup {
  label: string;
  bars: Bar[];
}

export interface BarChartOptions extends ChartBase {
  groups: BarGroup[];
  /** Series in legend and bar order (default: order of first appearance). */
  seriesOrder?: string[];
  yLabel: string;
  yDomain: [number, number];
  format: (v: number) => string;
}

/** Grouped vertical bars with 95% CI whiskers; each bar carries a tooltip with its value and interval. */
export function barChart(o: BarChartOptions): string {
  const series = o.seriesOrder ?? [...new Set(o.groups.flatMap((g) => g.bars.map((b) => b.series)))];
  const colour = new Map(series.map((s, i) => [s, PALETTE[i % PALETTE.length]]));
  const longest = Math.max(...o.groups.map((g) => g.label.length));
  const width = o.width ?? Math.max(440, Math.min(1000, 70 + o.groups.length * (series.length * 22 + 34)));
  const rotate = longest * CHAR_W > (width - 70) / Math.max(1, o.groups.length) - 8;
  const margin = {
    top: series.length > 1 ? 34 : 14,
    right: 12,
    bottom: rotate ? 18 + longest * 4.6 : 30,
    left: 58,
  };
  const height = o.height ?? 300;
  const x0 = margin.left;
  const x1 = width - margin.right;
  const yTop = margin.top;
  const yBottom = height - margin.bottom;
  const y = scale(o.yDomain, [yBottom, yTop]);
  const band = (x1 - x0) / Math.max(1, o.groups.length);
  const barW = Math.min(28, (band * 0.8) / Math.max(1, series.length));
  let s = open(o, width, height);
  s += yAxis(niceTicks(o.yDomain[0], o.yDomain[1]), y, x0, x1, o.format, o.yLabel, yTop, yBottom);
  if (series.length > 1)
    s += legend(
      series.map((label) => ({ label, color: colour.get(label) ?? PALETTE[0] })),
      x0,
      14,
    );
  o.groups.forEach((g, gi) => {
    const gx = x0 + band * gi + band / 2;
    const start = gx - (barW * series.length) / 2;
    s += `<g class="group">`;
    for (const b of g.bars) {
      const si = Math.max(0, series.indexOf(b.series));
      const bx = r1(start + si * barW + 1);
      const clamp = (v: number) => Math.min(o.yDomain[1], Math.max(o.yDomain[0], v));
      const yv = r1(y(clamp(b.value)));
      const y0 = r1(y(clamp(Math.max(o.yDomain[0], 0))));
      const ci = b.ci95 ? ` [${o.format(b.ci95[0])}, ${o.format(b.ci95[1])}]` : "";
      const tip = `${g.label} / ${b.series}: ${o.format(b.value)}${ci}${b.detail ? `, ${b.detail}` : ""}`;
      s +=
        `<rect class="mark bar" x="${bx}" y="${Math.min(yv, y0)}" width="${r1(barW - 2)}" ` +
        `height="${r1(Math.max(0.5, Math.abs(y0 - yv)))}" fill="${colour.get(b.series)}"><title>${esc(tip)}</title></rect>`;
      if (b.ci95) {
        const cx = r1(bx + (barW - 2) / 2);
        const lo = r1(y(clamp(b.ci95[0])));
        const hi = r1(y(clamp(b.ci95[1])));
        s += `<path class="whisker" d="M${cx} ${lo}V${hi}M${cx - 3} ${lo}h6M${cx - 3} ${hi}h6" stroke="#222" stroke-width="1.2" fill="none"/>`;
      }
    }
    s += rotate
      ? `<text transform="translate(${r1(gx + 3)} ${yBottom + 10}) rotate(-40)" text-anchor="end" fill="#222">${esc(g.label)}</text>`
      : `<text x="${r1(gx)}" y="${yBottom + 16}" text-anchor="middle" fill="#222">${esc(g.label)}</text>`;
    s += `</g>`;
  });
  s += `<line x1="${x0}" x2="${x1}" y1="${yBottom}" y2="${yBottom}" stroke="#888"/>`;
  return s + `</svg>`;
}

export interface LinePoint {
  x: number;
  y: number;
  lo?: number;
  hi?: number;
}

export interface LineSeries {
  label: string;
  points: LinePoint[];
  dashed?: boolean;
  color?: string;
  /** Draw a circle at each point (default: when the series has at most 30 points). */
  markers?: boolean;
}

export interface LineChartOptions extends ChartBase {
  series: LineSeries[];
  xLabel: string;
  yLabel: string;
  yDomain?: [number, number];
  logY?: boolean;
  format: (v: number) => string;
  xFormat?: (v: number) => string;
  /** Integer x ticks only (rounds, steps). */
  integerX?: boolean;
}

function extent(values: number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** Lines (solid or dashed) with an optional shaded CI band per series and a legend. */
export function lineChart(o: LineChartOptions): string {
  const width = o.width ?? 560;
  const height = o.height ?? 280;
  const hasLegend = o.series.length > 1 || o.series.some((s) => s.dashed);
  const margin = { top: hasLegend ? 30 : 12, right: 14, bottom: 40, left: 58 };
  const xs = o.series.flatMap((s) => s.points.map((p) => p.x));
  const ys = o.series.flatMap((s) => s.points.flatMap((p) => [p.y, p.lo ?? p.y, p.hi ?? p.y]));
  let [xLo, xHi] = extent(xs);
  if (xLo === xHi) [xLo, xHi] = [xLo - 1, xHi + 1];
  let yDomain = o.yDomain;
  if (!yDomain) {
    const [lo, hi] = extent(ys);
    if (o.logY) yDomain = [lo / 1.2, hi * 1.2];
    else {
      const pad = (hi - lo || Math.abs(hi) || 1) * 0.08;
      yDomain = [lo - pad, hi + pad];
    }
  }
  const x0 = margin.left;
  const x1 = width - margin.right;
  const yTop = margin.top;
  const yBottom = height - margin.bottom;
  const x = scale([xLo, xHi], [x0, x1]);
  const y = scale(yDomain, [yBottom, yTop], o.logY);
  const clampY = (v: number) => Math.min(yDomain[1], Math.max(yDomain[0], v));
  const xFormat = o.xFormat ?? ((v: number) => String(v));
  let s = open(o, width, height);
  const yt = o.logY ? logTicks(yDomain[0], yDomain[1]) : niceTicks(yDomain[0], yDomain[1]);
  s += yAxis(yt, y, x0, x1, o.format, o.yLabel, yTop, yBottom);
  let xt = niceTicks(xLo, xHi, 6);
  if (o.integerX) xt = [...new Set(xt.map(Math.round))].filter((v) => v >= xLo && v <= xHi);
  s += `<g class="axis x"><line x1="${x0}" x2="${x1}" y1="${yBottom}" y2="${yBottom}" stroke="#888"/>`;
  for (const t of xt) {
    const px = r1(x(t));
    s += `<line x1="${px}" x2="${px}" y1="${yBottom}" y2="${yBottom + 4}" stroke="#888"/>`;
    s += `<text x="${px}" y="${yBottom + 16}" text-anchor="middle" fill="#444">${esc(xFormat(t))}</text>`;
  }
  s += `<text x="${r1((x0 + x1) / 2)}" y="${height - 6}" text-anchor="middle" fill="#222">${esc(o.xLabel)}</text></g>`;
  const colourOf = (sr: LineSeries, i: number) => sr.color ?? PALETTE[i % PALETTE.length];
  o.series.forEach((sr, i) => {
    const c = colourOf(sr, i);
    const pts = [...sr.points].sort((a, b) => a.x - b.x);
    if (pts.some((p) => p.lo !== undefined && p.hi !== undefined)) {
      const upper = pts.map((p) => `${r1(x(p.x))} ${r1(y(clampY(p.hi ?? p.y)))}`);
      const lower = pts.map((p) => `${r1(x(p.x))} ${r1(y(clampY(p.lo ?? p.y)))}`).reverse();
      s += `<path class="band" d="M${upper.join("L")}L${lower.join("L")}Z" fill="${c}" fill-opacity="0.15" stroke="none"/>`;
    }
    const d = pts.map((p, j) => `${j === 0 ? "M" : "L"}${r1(x(p.x))} ${r1(y(clampY(p.y)))}`).join("");
    const dash = sr.dashed ? ` stroke-dasharray="5 4"` : "";
    s += `<path class="mark line" d="${d}" fill="none" stroke="${c}" stroke-width="2"${dash}><title>${esc(sr.label)}</title></path>`;
    if (sr.markers ?? pts.length <= 30) {
      for (const p of pts) {
        const ci = p.lo !== undefined && p.hi !== undefined ? ` [${o.format(p.lo)}, ${o.format(p.hi)}]` : "";
        const tip = `${sr.label}, ${o.xLabel} ${xFormat(p.x)}: ${o.format(p.y)}${ci}`;
        s += `<circle class="mark point" cx="${r1(x(p.x))}" cy="${r1(y(clampY(p.y)))}" r="3" fill="${c}"><title>${esc(tip)}</title></circle>`;
      }
    }
  });
  if (hasLegend)
    s += legend(
      o.series.map((sr, i) => ({ label: sr.label, color: colourOf(sr, i), dashed: sr.dashed })),
      x0,
      14,
    );
  return s + `</svg>`;
}

// one quantile rule for the bootstrap intervals and the box plots
export { quantile };

export interface DistributionGroup {
  label: string;
  values: number[];
  color?: string;
}

export interface DistributionPanel {
  label: string;
  /** A second, lighter title line (e.g. which model the panel's label stands for). */
  sublabel?: string;
  groups: DistributionGroup[];
}

export interface DistributionChartOptions extends ChartBase {
  panels: DistributionPanel[];
  yLabel: string;
  logY?: boolean;
  format: (v: number) => string;
  /** Seed of the horizontal jitter of the strip points (the picture is reproducible). */
  seed?: number;
  /** At most this many points per group are drawn in the strip (an even subsample); the box uses all. */
  maxPoints?: number;
}

/**
 * Side-by-side panels sharing one y axis; in each, one box plot (quartiles, median, whiskers to the most
 * extreme value within 1.5 IQR) per group with the individual values as a jittered strip behind it.
 */
export function distributionChart(o: DistributionChartOptions): string {
  const groupsPerPanel = Math.max(1, ...o.panels.map((p) => p.groups.length));
  const margin = { top: 42, right: 12, bottom: 44, left: 58 };
  const panelW = Math.max(180, groupsPerPanel * 84);
  const gap = 18;
  const width =
    o.width ?? margin.left + o.panels.length * panelW + (o.panels.length - 1) * gap + margin.right;
  const height = o.height ?? 300;
  const all = o.panels.flatMap((p) => p.groups.flatMap((g) => g.values));
  const [lo, hi] = extent(all);
  const yDomain: [number, number] = o.logY
    ? [lo / 1.25, hi * 1.25]
    : [lo - (hi - lo || 1) * 0.08, hi + (hi - lo || 1) * 0.08];
  const yTop = margin.top;
  const yBottom = height - margin.bottom;
  const y = scale(yDomain, [yBottom, yTop], o.logY);
  const rng = new Rng(o.seed ?? 1);
  const maxPoints = o.maxPoints ?? 150;
  let s = open(o, width, height);
  const yt = o.logY ? logTicks(yDomain[0], yDomain[1]) : niceTicks(yDomain[0], yDomain[1]);
  s += yAxis(yt, y, margin.left, width - margin.right, o.format, o.yLabel, yTop, yBottom);
  o.panels.forEach((panel, pi) => {
    const px0 = margin.left + pi * (panelW + gap);
    const band = panelW / Math.max(1, panel.groups.length);
    s += `<g class="panel"><text x="${r1(px0 + panelW / 2)}" y="15" text-anchor="middle" font-weight="600" fill="#222">${esc(panel.label)}</text>`;
    if (panel.sublabel)
      s += `<text x="${r1(px0 + panelW / 2)}" y="29" text-anchor="middle" fill="#555">${esc(panel.sublabel)}</text>`;
    panel.groups.forEach((g, gi) => {
      const c = g.color ?? PALETTE[gi % PALETTE.length];
      const cx = px0 + band * gi + band / 2;
      const sorted = [...g.values].sort((a, b) => a - b);
      const q1 = quantile(sorted, 0.25);
      const med = quantile(sorted, 0.5);
      const q3 = quantile(sorted, 0.75);
      const iqr = q3 - q1;
      const wLo = sorted.find((v) => v >= q1 - 1.5 * iqr) ?? sorted[0];
      const wHi = [...sorted].reverse().find((v) => v <= q3 + 1.5 * iqr) ?? sorted[sorted.length - 1];
      const stride = Math.max(1, sorted.length / maxPoints);
      const halfBox = Math.min(22, band * 0.3);
      for (let k = 0; k < sorted.length; k += stride) {
        const v = g.values[Math.floor(k)];
        const jx = cx + (rng.next() - 0.5) * halfBox * 2.6;
        s += `<circle class="mark dot" cx="${r1(jx)}" cy="${r1(y(v))}" r="2" fill="${c}" fill-opacity="0.35"/>`;
      }
      const tip =
        `${panel.label} / ${g.label}: median ${o.format(med)}, quartiles ${o.format(q1)} to ${o.format(q3)}, ` +
        `n=${sorted.length}`;
      s += `<path class="whisker" d="M${r1(cx)} ${r1(y(wLo))}V${r1(y(q1))}M${r1(cx)} ${r1(y(q3))}V${r1(y(wHi))}" stroke="#333" fill="none"/>`;
      s +=
        `<rect class="mark box" x="${r1(cx - halfBox)}" y="${r1(y(q3))}" width="${r1(halfBox * 2)}" ` +
        `height="${r1(Math.max(1, y(q1) - y(q3)))}" fill="${c}" fill-opacity="0.55" stroke="#333"><title>${esc(tip)}</title></rect>`;
      s += `<line x1="${r1(cx - halfBox)}" x2="${r1(cx + halfBox)}" y1="${r1(y(med))}" y2="${r1(y(med))}" stroke="#111" stroke-width="2"/>`;
      s += `<text x="${r1(cx)}" y="${yBottom + 16}" text-anchor="middle" fill="#222">${esc(g.label)}</text>`;
      s += `<text x="${r1(cx)}" y="${yBottom + 30}" text-anchor="middle" fill="#666" font-size="10">n=${sorted.length}</text>`;
    });
    s += `<line x1="${px0}" x2="${px0 + panelW}" y1="${yBottom}" y2="${yBottom}" stroke="#888"/></g>`;
  });
  return s + `</svg>`;
}
