// report.md: the paper-shaped table (value ± CI half-width) and one short table per section, for reading in a
// terminal or on a code host; the charts and full examples live in report.html.

import { METRIC_INFO, PPL_MODELS, TEXT_KINDS, type ReportData } from "./data.js";
import { escapeMarkdownCell as cellText, escapeMarkdownInline as inline } from "./escape.js";
import {
  cellGrid,
  dataKind,
  defenceBase,
  DEFENCE_ABOUT,
  fiveNumbers,
  formatDuration,
  formatPlusMinus,
  formatValue,
  headline,
  orderedDefences,
  presentMetrics,
} from "./format.js";

function table(header: string[], rows: string[][], numeric: boolean[] = []): string {
  const sep = header.map((_, i) => (numeric[i] ? "---:" : "---"));
  return [header, sep, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

/** The report as Markdown. */
export function renderMarkdown(data: ReportData): string {
  const r = data.run;
  const out: string[] = [];
  out.push(`# buckle report: ${inline(r.name)}`);
  out.push(
    `Started ${inline(r.created)} · config \`${r.configHash.replace(/`/g, "")}\` · seeds ${r.seeds.join(", ")}. ` +
      `Charts, example answers and curated diffs: [report.html](report.html).`,
  );
  if (r.smokeData)
    out.push(`> **Built-in smoke data**: these numbers check that the pipeline runs; they are not a result.`);
  if (r.illustrative)
    out.push(`> **Illustrative sample data**: made up for tests and documentation, not a measurement.`);
  for (const n of data.notes ?? [])
    out.push(`> **${n.level === "warning" ? "Warning" : "Note"}**: ${inline(n.text)}`);

  const { defences, attacks, cell } = cellGrid(data);
  out.push(`## Safety and helpfulness by defence and attack`);
  const lines = headline(data)
    .filter((h) => h.baseline || h.best)
    .map((h) => {
      const parts: string[] = [];
      if (h.baseline)
        parts.push(`${inline(h.baseline.defence)} SR ${formatValue("sr", h.baseline.sr.value)}`);
      if (h.best) {
        const m = h.best.cell.metrics;
        parts.push(
          `best ${inline(h.best.defence)} SR ${formatValue("sr", m.sr!.value)}` +
            (m.sHelp ? `, S_HELP ${formatValue("sHelp", m.sHelp.value)}` : ""),
        );
      }
      return `- **${inline(h.attack)}**: ${parts.join(" → ")}`;
    });
  if (lines.length) out.push(lines.join("\n"));
  out.push(`Each cell: SR (%) / S_SAFE (1-5) / S_HELP (0-5), as value ± half the 95% confidence interval.`);
  out.push(
    table(
      ["Defence", ...attacks.map(cellText)],
      defences.map((d) => [
        cellText(d),
        ...attacks.map((a) => {
          const c = cell(d, a);
          if (!c) return "not run";
          return (["sr", "sSafe", "sHelp"] as const)
            .map((k) => (c.metrics[k] ? formatPlusMinus(k, c.metrics[k]) : "–"))
            .join(" / ");
        }),
      ]),
    ),
  );
  const known = defences.map(defenceBase).filter((b, i, all): b is string => !!b && all.indexOf(b) === i);
  if (known.length) out.push(known.map((b) => `- **${b}**: ${DEFENCE_ABOUT[b]}`).join("\n"));

  const more = presentMetrics(data.cells).filter((k) => !["sr", "sSafe", "sHelp"].includes(k));
  if (more.length) {
    out.push(`### More measures per cell (value ± CI half-width; rates in %)`);
    const rows: string[][] = [];
    for (const d of defences)
      for (const a of attacks) {
        const c = cell(d, a);
        if (c)
          rows.push([
            cellText(d),
            cellText(a),
            ...more.map((k) => (c.metrics[k] ? formatPlusMinus(k, c.metrics[k]) : "–")),
          ]);
      }
    out.push(
      table(["Defence", "Attack", ...more.map((k) => METRIC_INFO[k].label)], rows, [
        false,
        false,
        ...more.map(() => true),
      ]),
    );
    out.push(more.map((k) => `${METRIC_INFO[k].label}: ${METRIC_INFO[k].about}`).join("; ") + ".");
  }

  if (data.stageComparison) {
    const sc = data.stageComparison;
    const key = sc.metric;
    const stages = orderedDefences(sc.entries.map((e) => e.stage));
    const stageAttacks = [...new Set(sc.entries.map((e) => e.attack))];
    out.push(`## Stage comparison (${METRIC_INFO[key].label}, ${METRIC_INFO[key].about})`);
    out.push(
      table(
        ["Stage", ...stageAttacks.map(cellText)],
        stages.map((st) => [
          cellText(st),
          ...stageAttacks.map((a) => {
            const e = sc.entries.find((x) => x.stage === st && x.attack === a);
            return e ? formatPlusMinus(key, e.metric) : "–";
          }),
        ]),
        [false, ...stageAttacks.map(() => true)],
      ),
    );
  }

  if (data.curationRounds) {
    const cr = data.curationRounds;
    const rounds = [...new Set(cr.series.flatMap((s) => s.points.map((p) => p.round)))].sort((a, b) => a - b);
    out.push(`## ${METRIC_INFO[cr.metric].label} against curation rounds`);
    out.push(
      table(
        ["Series", ...rounds.map((x) => `round ${x}`)],
        cr.series.map((s) => [
          cellText(s.label),
          ...rounds.map((x) => {
            const p = s.points.find((q) => q.round === x);
            return p ? formatPlusMinus(cr.metric, p.metric) : "–";
          }),
        ]),
        [false, ...rounds.map(() => true)],
      ),
    );
  }

  if (data.perplexity) {
    const p = data.perplexity;
    out.push(`## Perplexity of safe, harmful and commonsense texts`);
    out.push(
      `Median [quartiles] of per-text perplexity; a robust model should find safe answers the least surprising.`,
    );
    const rows = PPL_MODELS.flatMap((m) =>
      TEXT_KINDS.flatMap((k) =>
        p.samples
          .filter((s) => s.model === m && s.kind === k)
          .map((s) => {
            const f = fiveNumbers(s.values);
            const label = p.modelLabels?.[m] ? `${m} (${cellText(p.modelLabels[m])})` : m;
            return [label, k, String(f.n), `${f.median.toFixed(2)} [${f.q1.toFixed(2)}, ${f.q3.toFixed(2)}]`];
          }),
      ),
    );
    out.push(table(["Model", "Texts", "n", "Perplexity"], rows, [false, false, true, true]));
  }

  if (data.lossCurves?.length) {
    out.push(`## Training loss`);
    out.push(
      table(
        ["Job", "Steps", "First loss", "Last loss", "Last eval loss"],
        data.lossCurves.map((j) => {
          const first = j.points[0];
          const last = j.points[j.points.length - 1];
          const evalLast = [...j.points].reverse().find((x) => x.evalLoss !== undefined)?.evalLoss;
          return [
            cellText(j.job + (j.stage ? ` (${j.stage})` : "")),
            String(last.step),
            first.loss.toFixed(3),
            last.loss.toFixed(3),
            evalLast === undefined ? "–" : evalLast.toFixed(3),
          ];
        }),
        [false, true, true, true, true],
      ),
    );
  }

  if (data.examples?.length) {
    out.push(`## Example answers`);
    out.push(
      `${data.examples.length} answers with their judges' verdicts and rationales are in report.html.`,
    );
    const counts = new Map<string, { n: number; unsafe: number }>();
    for (const e of data.examples) {
      const key = `${e.defence} / ${e.attack}`;
      const c = counts.get(key) ?? { n: 0, unsafe: 0 };
      c.n++;
      if (e.verdicts.some((v) => v.safe === false)) c.unsafe++;
      counts.set(key, c);
    }
    out.push(
      table(
        ["Cell", "Answers", "Judged unsafe"],
        [...counts].map(([k, c]) => [cellText(k), String(c.n), String(c.unsafe)]),
        [false, true, true],
      ),
    );
  }

  if (data.curated?.length) {
    out.push(`## Curated samples`);
    out.push(
      table(
        ["Sample", "Query", "Perplexity before → after", "Helpfulness before → after", "Seed phrases used"],
        data.curated.map((c) => [
          cellText(c.id),
          cellText(c.query.length > 80 ? c.query.slice(0, 77) + "..." : c.query),
          `${c.scores.perplexityBefore.toFixed(2)} → ${c.scores.perplexityAfter.toFixed(2)}`,
          `${c.scores.helpfulnessBefore.toFixed(2)} → ${c.scores.helpfulnessAfter.toFixed(2)}`,
          cellText(c.phrasesUsed.join(", ") || "–"),
        ]),
      ),
    );
  }

  if (data.timings?.length) {
    out.push(`## Timings`);
    out.push(
      table(
        ["Phase", "Time", "Items"],
        data.timings.map((t) => [
          cellText(t.phase),
          formatDuration(t.seconds),
          t.items === undefined ? "–" : String(t.items),
        ]),
        [false, true, true],
      ),
    );
  }

  out.push(`## Reproducibility`);
  const repro: string[][] = [
    ["Run", cellText(r.name)],
    ["Config hash", cellText(r.configHash)],
    ["Seeds", r.seeds.join(", ")],
    ["Data", dataKind(r)],
  ];
  if (r.command) repro.push(["Command", cellText(r.command)]);
  for (const [k, v] of Object.entries(r.versions)) repro.push([`Version: ${cellText(k)}`, cellText(v)]);
  for (const m of r.models)
    repro.push([`Model: ${cellText(m.role)}`, cellText(m.ref + (m.id ? ` (${m.id})` : ""))]);
  for (const d of r.datasets ?? [])
    repro.push([`Dataset: ${cellText(d.role)}`, cellText(`${d.name}, ${d.rows} rows`)]);
  out.push(table(["Field", "Value"], repro));
  if (r.promptTemplates?.length)
    out.push(
      `Prompt templates (${r.promptTemplates.map((t) => inline(t.name)).join(", ")}) and the full config are in report.html and report-data.json.`,
    );
  return out.join("\n\n") + "\n";
}
