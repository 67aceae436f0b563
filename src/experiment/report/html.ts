// The self-contained HTML report: inline CSS, inline SVG charts, no external resources and nothing that needs
// JavaScript. Every piece of text is escaped; a content security policy blocks any script but our own tiny one.

import { createHash } from "node:crypto";
import { packageVersion } from "../../util/version.js";
import {
  barChart,
  distributionChart,
  lineChart,
  PALETTE,
  shortNumber,
  type BarGroup,
  type LineSeries,
} from "./charts.js";
import {
  METRIC_INFO,
  PPL_MODELS,
  TEXT_KINDS,
  type ExampleAnswer,
  type MetricKey,
  type ReportData,
} from "./data.js";
import { wordDiff } from "./diff.js";
import { escapeHtml as esc } from "./escape.js";
import {
  cellGrid,
  DEFENCE_ABOUT,
  defenceBase,
  formatCi,
  formatDuration,
  formatValue,
  headline,
  compactJson,
  dataKind,
  orderedDefences,
  presentMetrics,
} from "./format.js";

// Progressive enhancement only: "expand all / collapse all" buttons for the <details> sections, shown by the
// script itself so a reader without JavaScript never sees a dead button.
const SCRIPT = `for(const b of document.querySelectorAll("button[data-toggle]")){b.hidden=false;b.addEventListener("click",()=>{const open=b.dataset.toggle==="open";for(const d of document.querySelectorAll(b.dataset.target+" details"))d.open=open;});}`;
const SCRIPT_HASH = createHash("sha256").update(SCRIPT).digest("base64");

const CSS = `
:root{--fg:#1d1d1f;--muted:#5f6368;--line:#d9d9de;--bg:#fff;--soft:#f6f7f9;--warn:#fff4d6;--warnline:#e0b43a}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:1.7rem;margin:0 0 4px}h2{font-size:1.3rem;margin:40px 0 10px;padding-top:8px;border-top:1px solid var(--line)}
h3{font-size:1.05rem;margin:22px 0 6px}
.meta{color:var(--muted);margin:0 0 12px}.meta code{font-size:.85em}
.badge{display:inline-block;padding:6px 12px;border-radius:6px;font-weight:600;margin:6px 8px 6px 0}
.badge.smoke{background:#ffe1e1;border:2px solid #c62828;color:#8e0000}
.badge.illustrative{background:#e8eaf6;border:2px solid #3949ab;color:#1a237e}
.note{padding:8px 12px;border-left:4px solid #8ab4f8;background:var(--soft);margin:6px 0}
.note.warning{border-color:var(--warnline);background:var(--warn)}
nav.toc{background:var(--soft);padding:10px 16px;border-radius:8px;margin:16px 0}
nav.toc ol{margin:0;padding-left:20px;columns:2}
table{border-collapse:collapse;margin:8px 0 4px}
th,td{border:1px solid var(--line);padding:5px 9px;text-align:left;vertical-align:top}
thead th{background:var(--soft)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.main td{min-width:150px;font-variant-numeric:tabular-nums;font-size:.92rem;line-height:1.35}
table.main td .k{display:inline-block;width:58px;color:#333;font-size:.78rem;font-weight:600}
table.main td .ci{color:#444;font-size:.8rem}
table.main td.missing{color:var(--muted);text-align:center;background:#fafafa}
table.main th[scope=row]{white-space:nowrap}
caption{caption-side:bottom;text-align:left;color:var(--muted);font-size:.85rem;padding-top:6px;max-width:900px}
.scale{display:flex;align-items:center;gap:8px;font-size:.8rem;color:var(--muted);margin:6px 0}
.scale span.bar{display:inline-block;width:180px;height:12px;border:1px solid var(--line);background:linear-gradient(90deg,${[0, 0.25, 0.5, 0.75, 1].map((v) => srColour(v)).join(",")})}
.about{font-size:.85rem;color:var(--muted);margin:4px 0 0;padding-left:18px}
figure{margin:14px 0 22px}figcaption{color:var(--muted);font-size:.85rem;max-width:860px}
svg.chart{max-width:100%;height:auto;display:block;background:#fff}
.smallmultiples{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:6px 16px}
details{border:1px solid var(--line);border-radius:6px;margin:8px 0;padding:0 12px}
details[open]{padding-bottom:10px}
summary{cursor:pointer;padding:8px 0;font-weight:600}
summary .sub{font-weight:400;color:var(--muted)}
.example{border-top:1px dashed var(--line);padding-top:8px;margin-top:8px}
.kind{display:inline-block;font-size:.75rem;padding:1px 7px;border-radius:10px;background:#eceff1;margin-right:6px}
.kind.harmful{background:#fde0dc}.kind.benign{background:#e0f2f1}.kind.borderline{background:#fff3e0}
.text{white-space:pre-wrap;word-break:break-word;background:var(--soft);border-radius:6px;padding:8px 10px;margin:4px 0;font-size:.9rem}
.label{font-size:.8rem;font-weight:600;color:var(--muted);text-transform:uppercase;letter-spacing:.03em}
ul.verdicts{margin:4px 0;padding-left:18px;font-size:.88rem}
.v-safe{color:#1b5e20;font-weight:600}.v-unsafe{color:#b71c1c;font-weight:600}.v-unparsed{color:#8d6e00;font-weight:600}
.diff del{background:#ffd7d5;color:#7a1e1a;text-decoration:line-through}
.diff ins{background:#d2f4d3;color:#13501b;text-decoration:none}
.prov{font-size:.85rem;color:var(--muted);margin:4px 0}
.chips span{display:inline-block;background:#e8f0fe;border-radius:10px;padding:1px 8px;margin:2px 4px 2px 0;font-size:.8rem}
pre.code{white-space:pre-wrap;word-break:break-word;background:var(--soft);padding:10px;border-radius:6px;font-size:.82rem;max-height:640px;overflow:auto}
button[data-toggle]{font:inherit;font-size:.85rem;margin-right:6px;padding:2px 10px}
footer{margin-top:40px;color:var(--muted);font-size:.85rem}
@media print{details{break-inside:avoid}nav.toc{display:none}}
`;

/** Background colour of a table cell by its safety rate: red (0) through amber to green (1). */
export function srColour(sr: number): string {
  const hue = Math.round(Math.max(0, Math.min(1, sr)) * 125);
  return `hsl(${hue} 70% 86%)`;
}

interface Section {
  id: string;
  title: string;
  html: string;
}

function metricLine(key: MetricKey, cellMetric: ReportData["cells"][number]["metrics"][MetricKey]): string {
  if (!cellMetric) return `<div><span class="k">${esc(METRIC_INFO[key].label)}</span>–</div>`;
  const tip = `${METRIC_INFO[key].about}; 95% CI ${formatCi(key, cellMetric)}; n=${cellMetric.n}`;
  return (
    `<div title="${esc(tip)}"><span class="k">${esc(METRIC_INFO[key].label)}</span>` +
    `<strong>${esc(formatValue(key, cellMetric.value))}</strong> <span class="ci">${esc(formatCi(key, cellMetric))}</span></div>`
  );
}

function mainTable(data: ReportData): string {
  const { defences, attacks, cell } = cellGrid(data);
  let s = `<table class="main" id="main-table"><caption>Rows: defences; columns: attacks. Each cell: SR (share of harmful prompts answered safely, %), S_SAFE (mean safety score 1–5) and S_HELP (mean helpfulness 0–5 on benign prompts), with 95% confidence intervals in brackets. Cell colour follows SR.</caption>`;
  s += `<thead><tr><th scope="col">Defence</th>${attacks.map((a) => `<th scope="col">${esc(a)}</th>`).join("")}</tr></thead><tbody>`;
  for (const d of defences) {
    s += `<tr><th scope="row">${esc(d)}</th>`;
    for (const a of attacks) {
      const c = cell(d, a);
      if (!c) {
        s += `<td class="missing">not run</td>`;
        continue;
      }
      const bg = c.metrics.sr ? ` style="background:${srColour(c.metrics.sr.value)}"` : "";
      s += `<td${bg}>${(["sr", "sSafe", "sHelp"] as const).map((k) => metricLine(k, c.metrics[k])).join("")}</td>`;
    }
    s += `</tr>`;
  }
  s += `</tbody></table>`;
  s += `<div class="scale" aria-hidden="true">SR 0% <span class="bar"></span> 100%</div>`;
  const known = defences.map(defenceBase).filter((b, i, all): b is string => !!b && all.indexOf(b) === i);
  if (known.length)
    s += `<ul class="about">${known.map((b) => `<li><strong>${esc(b)}</strong>: ${esc(DEFENCE_ABOUT[b])}</li>`).join("")}</ul>`;
  return s;
}

function headlineList(data: ReportData): string {
  const items = headline(data)
    .filter((h) => h.baseline || h.best)
    .map((h) => {
      const parts: string[] = [];
      if (h.baseline)
        parts.push(`${esc(h.baseline.defence)} SR ${esc(formatValue("sr", h.baseline.sr.value))}`);
      if (h.best) {
        const m = h.best.cell.metrics;
        const help = m.sHelp ? `, S_HELP ${esc(formatValue("sHelp", m.sHelp.value))}` : "";
        parts.push(`best ${esc(h.best.defence)} SR ${esc(formatValue("sr", m.sr!.value))}${help}`);
      }
      return `<li><strong>${esc(h.attack)}</strong>: ${parts.join(" → ")}</li>`;
    });
  return items.length ? `<ul class="headline">${items.join("")}</ul>` : "";
}

function secondaryTable(data: ReportData): string {
  const keys = presentMetrics(data.cells).filter((k) => !["sr", "sSafe", "sHelp"].includes(k));
  if (!keys.length) return "";
  const { defences, attacks, cell } = cellGrid(data);
  let s = `<h3>More measures per cell</h3><table class="secondary"><thead><tr><th scope="col">Defence</th><th scope="col">Attack</th>`;
  s += keys
    .map(
      (k) =>
        `<th scope="col" class="num" title="${esc(METRIC_INFO[k].about)}">${esc(METRIC_INFO[k].label)}</th>`,
    )
    .join("");
  s += `</tr></thead><tbody>`;
  for (const d of defences)
    for (const a of attacks) {
      const c = cell(d, a);
      if (!c) continue;
      s += `<tr><th scope="row">${esc(d)}</th><td>${esc(a)}</td>`;
      for (const k of keys) {
        const m = c.metrics[k];
        s += m
          ? `<td class="num">${esc(formatValue(k, m.value))} <span class="ci">${esc(formatCi(k, m))}</span></td>`
          : `<td class="num">–</td>`;
      }
      s += `</tr>`;
    }
  s += `</tbody></table>`;
  s += `<p class="about">${keys.map((k) => `<strong>${esc(METRIC_INFO[k].label)}</strong>: ${esc(METRIC_INFO[k].about)}`).join("; ")}.</p>`;
  return s;
}

function axisFor(key: MetricKey): { domain: [number, number]; format: (v: number) => string; label: string } {
  const info = METRIC_INFO[key];
  return info.kind === "rate"
    ? { domain: [0, 1], format: (v) => `${Math.round(v * 100)}%`, label: `${info.label} (%)` }
    : { domain: info.range, format: (v) => v.toFixed(1), label: info.label };
}

function figure(svg: string, caption: string): string {
  return `<figure>${svg}<figcaption>${esc(caption)}</figcaption></figure>`;
}

/** Bars of one cell metric, grouped by defence, one bar per attack. */
function cellMetricChart(data: ReportData, key: MetricKey, id: string, title: string): string | undefined {
  const { defences, attacks, cell } = cellGrid(data);
  const groups: BarGroup[] = defences
    .map((d) => ({
      label: d,
      bars: attacks.flatMap((a) => {
        const m = cell(d, a)?.metrics[key];
        return m ? [{ series: a, value: m.value, ci95: m.ci95, detail: `n=${m.n}` }] : [];
      }),
    }))
    .filter((g) => g.bars.length > 0);
  if (!groups.length) return undefined;
  const ax = axisFor(key);
  return barChart({
    id,
    title,
    description: `${title}: one bar per attack for each defence, with 95% confidence interval whiskers.`,
    groups,
    seriesOrder: attacks,
    yLabel: ax.label,
    yDomain: ax.domain,
    format: ax.format,
  });
}

function chartsSections(data: ReportData): Section[] {
  const sections: Section[] = [];
  const srChart = cellMetricChart(data, "sr", "chart-sr", "Safety rate by defence and attack");
  let stageHtml = "";
  if (data.stageComparison) {
    const sc = data.stageComparison;
    const stages = orderedDefences(sc.entries.map((e) => e.stage));
    const attacks = [...new Set(sc.entries.map((e) => e.attack))];
    const ax = axisFor(sc.metric);
    const svg = barChart({
      id: "chart-stages",
      title: `${METRIC_INFO[sc.metric].label} by customization stage`,
      description: `Stage comparison: ${METRIC_INFO[sc.metric].about} for each stage where curated data enters, one bar per attack.`,
      groups: stages.map((st) => ({
        label: st,
        bars: sc.entries
          .filter((e) => e.stage === st)
          .map((e) => ({
            series: e.attack,
            value: e.metric.value,
            ci95: e.metric.ci95,
            detail: `n=${e.metric.n}`,
          })),
      })),
      seriesOrder: attacks,
      yLabel: ax.label,
      yDomain: ax.domain,
      format: ax.format,
    });
    stageHtml = figure(
      svg,
      `Where curated data enters: ${METRIC_INFO[sc.metric].about} per stage (bars) with 95% CIs (whiskers).`,
    );
  }
  if (srChart || stageHtml)
    sections.push({
      id: "stages",
      title: "Stage comparison",
      html:
        (srChart
          ? figure(srChart, "Safety rate (judge) of every defence under every attack; whiskers are 95% CIs.")
          : "") + stageHtml,
    });

  if (data.curationRounds) {
    const cr = data.curationRounds;
    const ax = axisFor(cr.metric);
    const series: LineSeries[] = cr.series.map((s) => ({
      label: s.label,
      points: s.points.map((p) => ({
        x: p.round,
        y: p.metric.value,
        lo: p.metric.ci95[0],
        hi: p.metric.ci95[1],
      })),
    }));
    sections.push({
      id: "rounds",
      title: "Safety against curation rounds",
      html: figure(
        lineChart({
          id: "chart-rounds",
          title: `${METRIC_INFO[cr.metric].label} against curation rounds`,
          description: `${METRIC_INFO[cr.metric].about} after fine-tuning on data curated for 0 to N beam-search rounds; shaded bands are 95% CIs.`,
          series,
          xLabel: "curation rounds",
          yLabel: ax.label,
          yDomain: ax.domain,
          format: ax.format,
          integerX: true,
        }),
        "Round 0 is the uncurated data. The paper reports safety rising with rounds and saturating around 5.",
      ),
    });
  }

  if (data.perplexity) {
    const p = data.perplexity;
    const kindColour: Record<string, string> = {
      safe: PALETTE[2],
      harmful: PALETTE[3],
      commonsense: PALETTE[0],
    };
    const panels = PPL_MODELS.filter((m) => p.samples.some((s) => s.model === m)).map((m) => ({
      label: `${m} model`,
      sublabel: p.modelLabels?.[m],
      groups: TEXT_KINDS.flatMap((k) =>
        p.samples
          .filter((s) => s.model === m && s.kind === k)
          .map((s) => ({ label: k, values: s.values, color: kindColour[k] })),
      ),
    }));
    sections.push({
      id: "perplexity",
      title: "Perplexity of safe, harmful and commonsense texts",
      html: figure(
        distributionChart({
          id: "chart-perplexity",
          title: "Perplexity distributions under the robust and the compromised model",
          description:
            "Box plots with individual texts as dots, log scale: perplexity of safe answers, harmful answers and commonsense answers under each model.",
          panels,
          yLabel: "perplexity (log scale)",
          logY: true,
          format: shortNumber,
          seed: 1,
        }),
        "The paper's motivation: a robust model finds safe answers likely (low perplexity) and harmful ones unlikely; a compromised model flips the order. Boxes: quartiles and median; whiskers: 1.5 IQR.",
      ),
    });
  }

  if (data.lossCurves?.length) {
    const charts = data.lossCurves.map((job, i) => {
      const series: LineSeries[] = [
        { label: "train loss", points: job.points.map((p) => ({ x: p.step, y: p.loss })), color: PALETTE[0] },
      ];
      const evalPts = job.points.filter((p) => p.evalLoss !== undefined);
      if (evalPts.length)
        series.push({
          label: "eval loss",
          points: evalPts.map((p) => ({ x: p.step, y: p.evalLoss! })),
          dashed: true,
          color: PALETTE[1],
          markers: true,
        });
      return lineChart({
        id: `chart-loss-${i}`,
        title: `Loss: ${job.job}${job.stage ? ` (${job.stage})` : ""}`,
        description: `Training loss${evalPts.length ? " and evaluation loss" : ""} against step for ${job.job}.`,
        series,
        xLabel: "step",
        yLabel: "loss",
        format: shortNumber,
        integerX: true,
        width: 360,
        height: 220,
      });
    });
    sections.push({
      id: "loss",
      title: "Training loss",
      html:
        `<div class="smallmultiples">${charts
          .map(
            (c, i) =>
              `<figure>${c}<figcaption>${esc(data.lossCurves![i].job)}${data.lossCurves![i].stage ? ` (${esc(data.lossCurves![i].stage!)})` : ""}</figcaption></figure>`,
          )
          .join("")}</div>` + `<p class="about">Solid: training loss; dashed: loss on held-out examples.</p>`,
    });
  }

  const over = cellMetricChart(
    data,
    "overRefusal",
    "chart-overrefusal",
    "Over-refusal by defence and attack",
  );
  const util = cellMetricChart(data, "utility", "chart-utility", "Utility by defence and attack");
  const help = cellMetricChart(data, "sHelp", "chart-help", "Helpfulness (S_HELP) by defence and attack");
  if (over || util || help)
    sections.push({
      id: "utility",
      title: "Over-refusal and utility",
      html:
        (over
          ? figure(
              over,
              "Share of safe-but-scary prompts (XSTest-style) that the model refused: lower is better. A defence that buys safety with refusals shows here.",
            )
          : "") +
        (util ? figure(util, "Judge-free utility score: higher is better.") : "") +
        (help
          ? figure(help, "Mean helpfulness on benign prompts (0–5, rubric judge): higher is better.")
          : ""),
    });
  return sections;
}

function verdictItem(v: ExampleAnswer["verdicts"][number]): string {
  const status = !v.parsed
    ? `<span class="v-unparsed">unparsed</span>`
    : v.safe === true
      ? `<span class="v-safe">safe</span>`
      : v.safe === false
        ? `<span class="v-unsafe">unsafe</span>`
        : "";
  const bits = [
    status,
    v.refused !== undefined ? (v.refused ? "refused" : "complied") : "",
    v.score !== undefined
      ? `score ${esc(String(Math.round(v.score * 100) / 100))}${v.scale ? ` of ${esc(`${v.scale[0]}–${v.scale[1]}`)}` : ""}`
      : "",
  ].filter(Boolean);
  return `<li><strong>${esc(v.judge)}</strong>: ${bits.join(", ")}${v.rationale ? ` — <q>${esc(v.rationale)}</q>` : ""}</li>`;
}

function examplesSection(data: ReportData): Section | undefined {
  if (!data.examples?.length) return undefined;
  const { defences, attacks } = cellGrid(data);
  const groups = new Map<string, ExampleAnswer[]>();
  for (const e of data.examples) {
    const key = `${e.defence}\u0000${e.attack}`;
    groups.set(key, [...(groups.get(key) ?? []), e]);
  }
  const order = (k: string) => {
    const [d, a] = k.split("\u0000");
    const di = defences.indexOf(d);
    return (di < 0 ? 1e6 : di) * 1000 + Math.max(0, attacks.indexOf(a));
  };
  let html = `<p><button type="button" data-toggle="open" data-target="#examples" hidden>Expand all</button><button type="button" data-toggle="close" data-target="#examples" hidden>Collapse all</button></p>`;
  [...groups.keys()]
    .sort((a, b) => order(a) - order(b))
    .forEach((key, gi) => {
      const items = groups.get(key)!;
      const [d, a] = key.split("\u0000");
      const unsafe = items.filter((e) => e.verdicts.some((v) => v.safe === false)).length;
      html += `<details${gi < 2 ? " open" : ""}><summary>${esc(d)} / ${esc(a)} <span class="sub">${items.length} answer${items.length === 1 ? "" : "s"}${unsafe ? `, ${unsafe} judged unsafe` : ""}</span></summary>`;
      for (const e of items) {
        html += `<div class="example"><span class="kind ${e.promptKind}">${esc(e.promptKind)} prompt</span>${e.seed !== undefined ? `<span class="kind">seed ${e.seed}</span>` : ""}`;
        html += `<div class="label">Prompt</div><div class="text">${esc(e.prompt)}</div>`;
        html += `<div class="label">Answer</div><div class="text answer">${esc(e.answer)}</div>`;
        if (e.verdicts.length) html += `<ul class="verdicts">${e.verdicts.map(verdictItem).join("")}</ul>`;
        html += `</div>`;
      }
      html += `</details>`;
    });
  return { id: "examples", title: "Example answers", html };
}

function curatedSection(data: ReportData): Section | undefined {
  if (!data.curated?.length) return undefined;
  let html = `<p>Each commonsense answer before and after curation, as a word-level diff: <del>removed</del> and <ins>added</ins> words. Perplexity is the scorer model's on the answer tokens; helpfulness is the judge's 0–5 mean.</p>`;
  html += `<p><button type="button" data-toggle="open" data-target="#curated" hidden>Expand all</button><button type="button" data-toggle="close" data-target="#curated" hidden>Collapse all</button></p>`;
  data.curated.forEach((c, i) => {
    const sc = c.scores;
    const arrow = (a: number, b: number, digits: number) => `${a.toFixed(digits)} → ${b.toFixed(digits)}`;
    const diff = wordDiff(c.original, c.curated)
      .map((p) =>
        p.op === "same"
          ? esc(p.text)
          : p.op === "del"
            ? `<del>${esc(p.text)}</del>`
            : `<ins>${esc(p.text)}</ins>`,
      )
      .join("");
    html += `<details${i < 2 ? " open" : ""}><summary>${esc(c.id)}: ${esc(c.query)} <span class="sub">perplexity ${esc(arrow(sc.perplexityBefore, sc.perplexityAfter, 1))}, helpfulness ${esc(arrow(sc.helpfulnessBefore, sc.helpfulnessAfter, 2))}</span></summary>`;
    html += `<table class="scores"><thead><tr><th scope="col">Score</th><th scope="col" class="num">Before</th><th scope="col" class="num">After</th></tr></thead><tbody>`;
    html += `<tr><th scope="row">Perplexity</th><td class="num">${sc.perplexityBefore.toFixed(2)}</td><td class="num">${sc.perplexityAfter.toFixed(2)}</td></tr>`;
    html += `<tr><th scope="row">Helpfulness (0–5)</th><td class="num">${sc.helpfulnessBefore.toFixed(2)}</td><td class="num">${sc.helpfulnessAfter.toFixed(2)}</td></tr>`;
    if (sc.readabilityBefore !== undefined && sc.readabilityAfter !== undefined)
      html += `<tr><th scope="row">Readability</th><td class="num">${sc.readabilityBefore.toFixed(1)}</td><td class="num">${sc.readabilityAfter.toFixed(1)}</td></tr>`;
    html += `</tbody></table>`;
    const prov = [
      c.round !== undefined ? `round ${c.round}` : "",
      c.sampling ? `temperature ${c.sampling.temperature}, top-p ${c.sampling.topP}` : "",
    ].filter(Boolean);
    if (prov.length) html += `<p class="prov">From ${esc(prov.join("; "))}.</p>`;
    if (c.phrasesUsed.length)
      html += `<div class="chips"><span class="label">Seed phrases used</span> ${c.phrasesUsed.map((p) => `<span>${esc(p)}</span>`).join("")}</div>`;
    html += `<div class="label">Diff</div><div class="text diff">${diff}</div></details>`;
  });
  return { id: "curated", title: "Curated samples", html };
}

function timingsSection(data: ReportData): Section | undefined {
  if (!data.timings?.length) return undefined;
  const total = data.timings.reduce((s, t) => s + t.seconds, 0);
  let html = `<table><thead><tr><th scope="col">Phase</th><th scope="col" class="num">Time</th><th scope="col" class="num">Items</th><th scope="col" class="num">Per item</th></tr></thead><tbody>`;
  for (const t of data.timings)
    html += `<tr><th scope="row">${esc(t.phase)}</th><td class="num">${esc(formatDuration(t.seconds))}</td><td class="num">${t.items ?? "–"}</td><td class="num">${t.items ? esc(formatDuration(t.seconds / t.items)) : "–"}</td></tr>`;
  html += `<tr><th scope="row">Total</th><td class="num"><strong>${esc(formatDuration(total))}</strong></td><td></td><td></td></tr></tbody></table>`;
  return { id: "timings", title: "Timings", html };
}

function reproSection(data: ReportData): Section {
  const r = data.run;
  let html = `<table><tbody>`;
  html += `<tr><th scope="row">Run</th><td>${esc(r.name)}</td></tr>`;
  html += `<tr><th scope="row">Started</th><td>${esc(r.created)}</td></tr>`;
  html += `<tr><th scope="row">Config hash</th><td><code>${esc(r.configHash)}</code></td></tr>`;
  html += `<tr><th scope="row">Seeds</th><td>${esc(r.seeds.join(", "))}</td></tr>`;
  if (r.command) html += `<tr><th scope="row">Command</th><td><code>${esc(r.command)}</code></td></tr>`;
  html += `<tr><th scope="row">Data</th><td>${esc(dataKind(r))}</td></tr>`;
  html += `</tbody></table>`;
  const versions = Object.entries(r.versions);
  if (versions.length)
    html += `<h3>Versions</h3><table><tbody>${versions.map(([k, v]) => `<tr><th scope="row">${esc(k)}</th><td><code>${esc(v)}</code></td></tr>`).join("")}</tbody></table>`;
  if (r.models.length)
    html += `<h3>Models</h3><table><thead><tr><th scope="col">Role</th><th scope="col">Reference</th><th scope="col">Identity</th></tr></thead><tbody>${r.models
      .map(
        (m) =>
          `<tr><th scope="row">${esc(m.role)}</th><td><code>${esc(m.ref)}</code></td><td><code>${esc(m.id ?? "")}</code></td></tr>`,
      )
      .join("")}</tbody></table>`;
  if (r.datasets?.length)
    html += `<h3>Datasets</h3><table><thead><tr><th scope="col">Role</th><th scope="col">Name</th><th scope="col" class="num">Rows</th><th scope="col">Hash</th></tr></thead><tbody>${r.datasets
      .map(
        (d) =>
          `<tr><th scope="row">${esc(d.role)}</th><td>${esc(d.name)}</td><td class="num">${d.rows}</td><td><code>${esc(d.hash ?? "")}</code></td></tr>`,
      )
      .join("")}</tbody></table>`;
  if (r.config !== undefined) html += `<h3>Config</h3><pre class="code">${esc(compactJson(r.config))}</pre>`;
  if (r.promptTemplates?.length) {
    html += `<h3>Prompt templates</h3>`;
    html += r.promptTemplates
      .map(
        (t) => `<details><summary>${esc(t.name)}</summary><pre class="code">${esc(t.text)}</pre></details>`,
      )
      .join("");
  }
  return { id: "repro", title: "Reproducibility", html };
}

/** The whole report as one self-contained HTML document. */
export function renderHtml(data: ReportData): string {
  const r = data.run;
  const sections: Section[] = [];
  sections.push({
    id: "table",
    title: "Safety and helpfulness by defence and attack",
    html: headlineList(data) + mainTable(data) + secondaryTable(data),
  });
  sections.push(...chartsSections(data));
  for (const s of [examplesSection(data), curatedSection(data), timingsSection(data)])
    if (s) sections.push(s);
  sections.push(reproSection(data));

  const badges =
    (r.smokeData
      ? `<div class="badge smoke" role="note">Built-in smoke data: these numbers check that the pipeline runs; they are not a result.</div>`
      : "") +
    (r.illustrative
      ? `<div class="badge illustrative" role="note">Illustrative sample data: made up for tests and documentation, not a measurement.</div>`
      : "");
  const notes = (data.notes ?? [])
    .map(
      (n) =>
        `<div class="note ${n.level}" role="note"><strong>${n.level === "warning" ? "Warning" : "Note"}:</strong> ${esc(n.text)}</div>`,
    )
    .join("");
  const models = r.models.map((m) => `${m.role} <code>${esc(m.ref)}</code>`).join(", ");
  const csp = `default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-${SCRIPT_HASH}'; img-src data:`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${esc(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="buckle ${esc(packageVersion())}">
<title>buckle report: ${esc(r.name)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<header>
<h1>buckle report: ${esc(r.name)}</h1>
<p class="meta">Started ${esc(r.created)} · config <code>${esc(r.configHash)}</code> · seeds ${esc(r.seeds.join(", "))}${models ? ` · ${models}` : ""}</p>
${badges}${notes}
</header>
<nav class="toc" aria-label="Contents"><ol>${sections.map((s) => `<li><a href="#${s.id}">${esc(s.title)}</a></li>`).join("")}</ol></nav>
${sections.map((s) => `<section id="${s.id}" aria-labelledby="${s.id}-h"><h2 id="${s.id}-h">${esc(s.title)}</h2>${s.html}</section>`).join("\n")}
<footer>Generated by buckle ${esc(packageVersion())} from report-data.json (schema version ${data.schemaVersion}). This file is self-contained: no network access, no scripts needed.</footer>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
