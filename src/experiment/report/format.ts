// What both renderers agree on: the paper's row order of defences, column order of attacks, and how each
// metric's value and confidence interval are written.

import { METRIC_INFO, type Cell, type Metric, type MetricKey, type ReportData } from "./data.js";

/** The paper's table rows, top to bottom; variants ("RandDrop-50%") sort under their base name. */
export const DEFENCE_ORDER = [
  "NoDef",
  "RandDrop",
  "PPLDrop",
  "Uncurated",
  "SafetyData",
  "Pre",
  "In",
  "Post",
  "All",
];

/** One line per known defence, shown under the main table. */
export const DEFENCE_ABOUT: Record<string, string> = {
  NoDef: "no defence: the attack's data as given",
  RandDrop: "drop a random share of the fine-tuning data",
  PPLDrop: "drop the share with the highest perplexity under the model",
  Uncurated: "mix in the same amount of raw (uncurated) commonsense data",
  SafetyData: "mix in harmful queries paired with refusals",
  Pre: "CTRL pre-attack: fine-tune on curated data before customization (immunize)",
  In: "CTRL in-attack: mix curated data into the customization data (neutralize)",
  Post: "CTRL post-attack: fine-tune the customized model on curated data (restore)",
  All: "CTRL at all three stages",
};

/** The known base name of a defence ("RandDrop-50%" -> "RandDrop", "Post-attack" -> "Post"), if any. */
export function defenceBase(name: string): string | undefined {
  const head = name.split(/[-_ ]/)[0].toLowerCase();
  return DEFENCE_ORDER.find((d) => d.toLowerCase() === head);
}

/** Defences in table order: known ones in the paper's order (variants by name), then the rest as they appear. */
export function orderedDefences(names: readonly string[]): string[] {
  const unique = [...new Set(names)];
  const rank = (n: string) => {
    const base = defenceBase(n);
    return base === undefined ? DEFENCE_ORDER.length : DEFENCE_ORDER.indexOf(base);
  };
  return unique
    .map((n, i) => ({ n, i }))
    .sort(
      (a, b) =>
        rank(a.n) - rank(b.n) || (rank(a.n) < DEFENCE_ORDER.length ? a.n.localeCompare(b.n) : a.i - b.i),
    )
    .map((x) => x.n);
}

/** Attacks (columns) in order of first appearance. */
export function orderedAttacks(names: readonly string[]): string[] {
  return [...new Set(names)];
}

/** The table's rows, columns and a lookup of its cells. */
export function cellGrid(data: ReportData): {
  defences: string[];
  attacks: string[];
  cell: (defence: string, attack: string) => Cell | undefined;
} {
  const byKey = new Map(data.cells.map((c) => [`${c.defence}\u0000${c.attack}`, c]));
  return {
    defences: orderedDefences(data.cells.map((c) => c.defence)),
    attacks: orderedAttacks(data.cells.map((c) => c.attack)),
    cell: (d, a) => byKey.get(`${d}\u0000${a}`),
  };
}

/** "83.6%" for rates, "4.52" for scores. */
export function formatValue(key: MetricKey, v: number): string {
  return METRIC_INFO[key].kind === "rate" ? `${(v * 100).toFixed(1)}%` : v.toFixed(2);
}

/** "[80.1, 86.9]" (percent points for rates). */
export function formatCi(key: MetricKey, m: Metric): string {
  const f = (v: number) => (METRIC_INFO[key].kind === "rate" ? (v * 100).toFixed(1) : v.toFixed(2));
  return `[${f(m.ci95[0])}, ${f(m.ci95[1])}]`;
}

/** "83.6 ± 3.4" (percent points for rates): the value and half the CI's width. */
export function formatPlusMinus(key: MetricKey, m: Metric): string {
  const rate = METRIC_INFO[key].kind === "rate";
  const half = (m.ci95[1] - m.ci95[0]) / 2;
  return rate
    ? `${(m.value * 100).toFixed(1)} ± ${(half * 100).toFixed(1)}`
    : `${m.value.toFixed(2)} ± ${half.toFixed(2)}`;
}

/** The metrics that at least one cell carries, in METRIC_INFO order. */
export function presentMetrics(cells: readonly Cell[]): MetricKey[] {
  return (Object.keys(METRIC_INFO) as MetricKey[]).filter((k) =>
    cells.some((c) => c.metrics[k] !== undefined),
  );
}

/** Numbers for the perplexity summary: median and quartiles of sorted values. */
export function fiveNumbers(values: readonly number[]): {
  n: number;
  q1: number;
  median: number;
  q3: number;
} {
  const s = [...values].sort((a, b) => a - b);
  const q = (p: number) => {
    const pos = (s.length - 1) * p;
    const lo = Math.floor(pos);
    return s[lo] + (s[Math.ceil(pos)] - s[lo]) * (pos - lo);
  };
  return { n: s.length, q1: q(0.25), median: q(0.5), q3: q(0.75) };
}

/** "1 h 02 min", "3 min 05 s", "12.3 s". */
export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m} min ${String(Math.round(seconds - m * 60)).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

/** For each attack: NoDef's SR and the defence with the best SR (ties: the higher S_HELP), for the summary; rows named
 * "Aligned ..." (the model before any attack) are references, not candidates. */
export function headline(
  data: ReportData,
): { attack: string; baseline?: { defence: string; sr: Metric }; best?: { defence: string; cell: Cell } }[] {
  const { defences, attacks, cell } = cellGrid(data);
  return attacks.map((attack) => {
    const rows = defences.map((d) => cell(d, attack)).filter((c): c is Cell => c?.metrics.sr !== undefined);
    const base = rows.find((c) => defenceBase(c.defence) === "NoDef");
    const best = rows
      // reference rows (the model before any attack) are not defences
      .filter((c) => c !== base && !/^aligned\b/i.test(c.defence))
      .sort(
        (a, b) =>
          b.metrics.sr!.value - a.metrics.sr!.value ||
          (b.metrics.sHelp?.value ?? 0) - (a.metrics.sHelp?.value ?? 0),
      )[0];
    return {
      attack,
      baseline: base ? { defence: base.defence, sr: base.metrics.sr! } : undefined,
      best: best ? { defence: best.defence, cell: best } : undefined,
    };
  });
}

/** What data the run used, for the reproducibility section. */
export function dataKind(run: ReportData["run"]): string {
  if (run.illustrative) return "illustrative sample data (not a measurement)";
  return run.smokeData ? "built-in smoke data" : "user-supplied data";
}

/** JSON with two-space indentation, but arrays and short objects of plain values kept on one line. */
export function compactJson(value: unknown, indent = ""): string {
  if (Array.isArray(value)) {
    if (value.every((v) => v === null || typeof v !== "object"))
      return `[${value.map((v) => JSON.stringify(v)).join(", ")}]`;
    const inner = indent + "  ";
    return `[\n${value.map((v) => inner + compactJson(v, inner)).join(",\n")}\n${indent}]`;
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    if (!entries.length) return "{}";
    const flat = `{ ${entries.map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(", ")} }`;
    if (entries.every(([, v]) => v === null || typeof v !== "object") && flat.length <= 72) return flat;
    const inner = indent + "  ";
    return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${compactJson(v, inner)}`).join(",\n")}\n${indent}}`;
  }
  return JSON.stringify(value) ?? "null";
}
