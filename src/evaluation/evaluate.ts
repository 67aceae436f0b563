// `evaluate`: generate answers to every benchmark item through any backend, judge them, and store each answer
// and verdict as a record; `aggregate` turns the stored records alone into the report (no generation).

import type { LanguageModel, Sampling } from "../models/index.js";
import { cachedModel, type Store } from "../store/index.js";
import { InputError } from "../util/errors.js";
import type { BenchmarkItem, BenchmarkKind, BenchmarkSet } from "./benchmarks.js";
import type { ChatMessage } from "../formats/chat/index.js";
import { LLAMA_GUARD_TEMPLATE } from "./judges/llamaguard.js";
import { REFUSAL_PHRASES } from "./judges/keyword.js";
import { RUBRIC_TEMPLATES } from "./judges/rubric.js";
import { cohensKappa, isIncoherent, meanWithCi, type Agreement, type Metric } from "./metrics.js";
import type { Judge, JudgeItem, JudgeKind, Verdict } from "./types.js";

export const ANSWERS_NS = "eval-answers";
export const VERDICTS_NS = "eval-verdicts";
export const MC_NS = "eval-mc";
export const RUNS_NS = "eval-runs";

export interface EvalProgress {
  set: string;
  phase: "generate" | "judge" | "multiple-choice";
  judge?: string;
  done: number;
  total: number;
}

export interface EvaluateOptions {
  model: LanguageModel;
  sets: BenchmarkSet[];
  judges: Judge[];
  store: Store;
  runId: string;
  /** Default greedy: temperature 0, maxTokens 256. */
  sampling?: Partial<Sampling>;
  /** Answers per prompt (each with seed + sample index). Default 1; more than 1 needs temperature > 0. */
  samplesPerPrompt?: number;
  /** Base seed of generation and of the bootstrap. Default 0. */
  seed?: number;
  /** Which set kinds each judge (by name) applies to; default by judge kind, see judgeAppliesTo. */
  judgeSets?: Record<string, BenchmarkKind[]>;
  /** Bootstrap resamples for the report. Default 1000. */
  bootstrap?: number;
  onProgress?: (progress: EvalProgress) => void;
  signal?: AbortSignal;
}

/** A stored answer (namespace eval-answers, id `<runId>/<set>/<item>/<sample>`). */
export interface AnswerRecord {
  runId: string;
  set: string;
  itemId: string;
  sample: number;
  prompt: string;
  category?: string;
  label?: "safe" | "unsafe";
  reference?: string;
  modelId: string;
  sampling: Sampling;
  text: string;
  finishReason: string;
  incoherent: boolean;
}

/** A stored verdict (namespace eval-verdicts, id `<answer id>/<judge name>`). */
export interface VerdictRecord {
  runId: string;
  set: string;
  itemId: string;
  sample: number;
  judge: string;
  judgeKind: JudgeKind;
  verdict: Verdict;
}

/** A stored multiple-choice result (namespace eval-mc, id `<runId>/<set>/<item>`). */
export interface McRecord {
  runId: string;
  set: string;
  itemId: string;
  category?: string;
  modelId: string;
  /** Summed log-prob of each choice, and per-character normalised. */
  logprobs: number[];
  normalised: number[];
  answerIndex: number;
  chosen: number;
  chosenNormalised: number;
}

/** The run's description (namespace eval-runs, id runId). */
export interface RunRecord {
  runId: string;
  modelId: string;
  sampling: Sampling;
  samplesPerPrompt: number;
  seed: number;
  bootstrap: number;
  sets: {
    name: string;
    kind: BenchmarkKind;
    builtin: boolean;
    source: string;
    layout: string;
    items: number;
  }[];
  judges: { name: string; kind: JudgeKind; sets: BenchmarkKind[] }[];
  /** Judge prompt templates and the refusal phrase list, as used. */
  templates: Record<string, string>;
}

export interface SetReport {
  name: string;
  kind: BenchmarkKind;
  builtin: boolean;
  source: string;
  items: number;
  answers: number;
  /** Set-level metrics: incoherence_rate; accuracy / accuracy_norm for multiple-choice sets. */
  metrics: Record<string, Metric>;
  /** Metrics per judge name. */
  judges: Record<string, Record<string, Metric>>;
  /** The same, per category. */
  categories: Record<
    string,
    { metrics: Record<string, Metric>; judges: Record<string, Record<string, Metric>> }
  >;
  /** Cohen's kappa for every pair of judges giving the same binary field on the same answers. */
  agreement: { judges: [string, string]; field: "safe" | "refused"; agreement: Agreement }[];
  /** A few stored answers with their verdicts, for reading. */
  examples: {
    itemId: string;
    prompt: string;
    answer: string;
    verdicts: { judge: string; summary: string; rationale: string }[];
  }[];
}

export interface EvalReport {
  runId: string;
  modelId: string;
  sampling: Sampling;
  samplesPerPrompt: number;
  seed: number;
  /** Names of built-in (smoke) sets used: their numbers are smoke checks, not benchmark results. */
  builtinSets: string[];
  judges: RunRecord["judges"];
  sets: SetReport[];
  templates: Record<string, string>;
}

/** Default judge applicability: helpfulness to benign; other rubric and classifier judges to harmful; the keyword and exact judges everywhere. */
export function judgeAppliesTo(judge: Judge): BenchmarkKind[] {
  if (judge.kind === "keyword" || judge.kind === "exact") return ["harmful", "benign", "over-refusal"];
  if (judge.name.startsWith("rubric-helpfulness")) return ["benign"];
  if (judge.name.startsWith("rubric-strongreject")) return ["harmful", "over-refusal"];
  return ["harmful"];
}

/** The chat an item is asked as: its system message, if any, then the prompt. */
function chatOf(item: BenchmarkItem): ChatMessage[] {
  const user: ChatMessage = { role: "user", content: item.prompt };
  return item.system === undefined ? [user] : [{ role: "system", content: item.system }, user];
}

const answerId = (runId: string, set: string, itemId: string, sample: number): string =>
  `${runId}/${set}/${itemId}/${sample}`;

/** Run an evaluation (resumable: stored answers and verdicts are reused) and return the aggregated report. */
export async function evaluate(options: EvaluateOptions): Promise<EvalReport> {
  const { store, runId, sets, judges } = options;
  const sampling: Sampling = { temperature: 0, maxTokens: 256, ...options.sampling };
  const samples = options.samplesPerPrompt ?? 1;
  const seed = options.seed ?? 0;
  if (!Number.isInteger(samples) || samples < 1)
    throw new InputError(`samples per prompt must be a positive integer, got ${samples}`);
  if (samples > 1 && sampling.temperature === 0) {
    throw new InputError(`${samples} samples per prompt with greedy decoding would all be the same answer`, {
      hint: "set a temperature above 0 (e.g. 0.7) or use one sample",
    });
  }
  const names = new Set<string>();
  for (const set of sets) {
    if (names.has(set.name))
      throw new InputError(`two benchmark sets are both named ${set.name}`, {
        hint: "evaluate each set once",
      });
    names.add(set.name);
  }
  const model = cachedModel(options.model, store);
  const modelId = model.info().id;
  const appliesTo = (judge: Judge): BenchmarkKind[] =>
    options.judgeSets?.[judge.name] ?? judgeAppliesTo(judge);
  const run: RunRecord = {
    runId,
    modelId,
    sampling,
    samplesPerPrompt: samples,
    seed,
    bootstrap: options.bootstrap ?? 1000,
    sets: sets.map((s) => ({
      name: s.name,
      kind: s.kind,
      builtin: s.builtin,
      source: s.source,
      layout: s.layout,
      items: s.items.length,
    })),
    judges: judges.map((j) => ({ name: j.name, kind: j.kind, sets: appliesTo(j) })),
    templates: {
      ...RUBRIC_TEMPLATES,
      llamaguard: LLAMA_GUARD_TEMPLATE,
      "keyword-phrases": REFUSAL_PHRASES.join("\n"),
    },
  };
  const previous = store.get<RunRecord>(RUNS_NS, runId);
  if (previous && previous.modelId !== modelId) {
    throw new InputError(`run ${runId} was started with model ${previous.modelId}, not ${modelId}`, {
      hint: "use a new output directory or run id for a different model",
    });
  }
  store.put(RUNS_NS, runId, run);

  for (const set of sets) {
    options.signal?.throwIfAborted();
    if (set.kind === "multiple-choice") {
      await multipleChoice(model, set, options);
      continue;
    }
    // answers: generate the missing ones, storing each as it finishes
    const wanted: { id: string; item: BenchmarkSet["items"][number]; sample: number }[] = [];
    for (const item of set.items) {
      for (let s = 0; s < samples; s++)
        wanted.push({ id: answerId(runId, set.name, item.id, s), item, sample: s });
    }
    const missing = wanted.filter((w) => store.get(ANSWERS_NS, w.id) === undefined);
    let done = wanted.length - missing.length;
    options.onProgress?.({ set: set.name, phase: "generate", done, total: wanted.length });
    const requests = missing.map((w) => ({
      id: w.id,
      messages: chatOf(w.item),
      sampling: { ...sampling, seed: seed + w.sample },
    }));
    const results = await model.generate(requests, {
      signal: options.signal,
      onResult: (i, result) => {
        if (result.finishReason === "cancelled") return;
        const w = missing[i];
        const record: AnswerRecord = {
          runId,
          set: set.name,
          itemId: w.item.id,
          sample: w.sample,
          prompt: w.item.prompt,
          category: w.item.category,
          label: w.item.label,
          reference: w.item.reference,
          modelId,
          sampling: requests[i].sampling,
          text: result.text,
          finishReason: result.finishReason,
          incoherent: isIncoherent(result.text),
        };
        store.put(ANSWERS_NS, w.id, record);
        options.onProgress?.({ set: set.name, phase: "generate", done: ++done, total: wanted.length });
      },
    });
    options.signal?.throwIfAborted();
    if (results.some((r) => r.finishReason === "cancelled"))
      throw new Error(`generation for ${set.name} was cancelled`);

    const answers = wanted.map((w) => ({
      id: w.id,
      record: store.get<AnswerRecord>(ANSWERS_NS, w.id) as AnswerRecord,
    }));
    for (const judge of judges) {
      if (!appliesTo(judge).includes(set.kind)) continue;
      const todo = answers.filter((a) => store.get(VERDICTS_NS, `${a.id}/${judge.name}`) === undefined);
      let judged = answers.length - todo.length;
      options.onProgress?.({
        set: set.name,
        phase: "judge",
        judge: judge.name,
        done: judged,
        total: answers.length,
      });
      if (todo.length === 0) continue;
      const items: JudgeItem[] = todo.map((a) => ({
        id: a.id,
        prompt: a.record.prompt,
        response: a.record.text,
        reference: a.record.reference,
        meta: { category: a.record.category, label: a.record.label, set: set.name, itemId: a.record.itemId },
      }));
      const save = (i: number, verdict: Verdict): void => {
        const a = todo[i];
        const id = `${a.id}/${judge.name}`;
        if (store.get(VERDICTS_NS, id) !== undefined) return;
        const record: VerdictRecord = {
          runId,
          set: set.name,
          itemId: a.record.itemId,
          sample: a.record.sample,
          judge: judge.name,
          judgeKind: judge.kind,
          verdict,
        };
        store.put(VERDICTS_NS, id, record);
        options.onProgress?.({
          set: set.name,
          phase: "judge",
          judge: judge.name,
          done: ++judged,
          total: answers.length,
        });
      };
      const verdicts = await judge.judge(items, { signal: options.signal, onResult: save });
      verdicts.forEach((v, i) => save(i, v));
    }
  }
  return aggregate(store, runId);
}

async function multipleChoice(
  model: LanguageModel,
  set: BenchmarkSet,
  options: EvaluateOptions,
): Promise<void> {
  const { store, runId } = options;
  if (!model.info().capabilities.logprobs) {
    throw new InputError(
      `${set.name}: multiple-choice accuracy needs log-probs, which model ${model.info().id} does not give`,
      {
        hint: "use the native or llamacpp backend for --mc sets",
      },
    );
  }
  const missing = set.items.filter(
    (item) => store.get(MC_NS, `${runId}/${set.name}/${item.id}`) === undefined,
  );
  let done = set.items.length - missing.length;
  options.onProgress?.({ set: set.name, phase: "multiple-choice", done, total: set.items.length });
  const modelId = model.info().id;
  for (const item of missing) {
    options.signal?.throwIfAborted();
    const choices = item.choices ?? [];
    const results = await model.logprobs(
      choices.map((choice) => ({
        messages: chatOf(item),
        response: choice,
      })),
      { signal: options.signal },
    );
    const sums = results.map((r) => r.logprobs.reduce((a, b) => a + b, 0));
    const normalised = sums.map((s, i) => s / Math.max(1, choices[i].length));
    const argmax = (xs: number[]): number => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);
    const record: McRecord = {
      runId,
      set: set.name,
      itemId: item.id,
      category: item.category,
      modelId,
      logprobs: sums,
      normalised,
      answerIndex: item.answerIndex ?? -1,
      chosen: argmax(sums),
      chosenNormalised: argmax(normalised),
    };
    store.put(MC_NS, `${runId}/${set.name}/${item.id}`, record);
    options.onProgress?.({ set: set.name, phase: "multiple-choice", done: ++done, total: set.items.length });
  }
}

export interface AggregateOptions {
  /** Bootstrap resamples (default: the run's). */
  bootstrap?: number;
  /** Bootstrap seed (default: the run's seed). */
  seed?: number;
  /** Examples per set in the report. Default 3. */
  examples?: number;
}

type Groups = Map<string, number[]>; // item id -> values of its samples

/** Recompute the report of `runId` from its stored records alone. */
export function aggregate(store: Store, runId: string, options: AggregateOptions = {}): EvalReport {
  const run = store.get<RunRecord>(RUNS_NS, runId);
  if (!run)
    throw new InputError(`no evaluation run ${runId} in this store`, {
      hint: "check the --out directory or run id",
    });
  const boot = { resamples: options.bootstrap ?? run.bootstrap, seed: options.seed ?? run.seed };
  const prefix = `${runId}/`;
  const answers = store.list<AnswerRecord>(ANSWERS_NS, prefix).map((r) => r.value);
  const verdicts = store.list<VerdictRecord>(VERDICTS_NS, prefix).map((r) => r.value);
  const mc = store.list<McRecord>(MC_NS, prefix).map((r) => r.value);

  const sets: SetReport[] = run.sets.map((set) => {
    const setAnswers = answers.filter((a) => a.set === set.name);
    const setVerdicts = verdicts.filter((v) => v.set === set.name);
    const setMc = mc.filter((m) => m.set === set.name);
    const answerOf = new Map(setAnswers.map((a) => [`${a.itemId}/${a.sample}`, a]));
    const summarise = (keep: (category: string | undefined) => boolean) => {
      const metrics: Record<string, Metric> = {};
      const add = (target: Record<string, Metric>, name: string, groups: Groups): void => {
        const m = meanWithCi([...groups.values()], boot);
        if (m) target[name] = m;
      };
      if (set.kind === "multiple-choice") {
        const rows = setMc.filter((m) => keep(m.category));
        add(metrics, "accuracy", new Map(rows.map((m) => [m.itemId, [m.chosen === m.answerIndex ? 1 : 0]])));
        add(
          metrics,
          "accuracy_norm",
          new Map(rows.map((m) => [m.itemId, [m.chosenNormalised === m.answerIndex ? 1 : 0]])),
        );
      } else {
        add(
          metrics,
          "incoherence_rate",
          groupBy(
            setAnswers.filter((a) => keep(a.category)),
            (a) => (a.incoherent ? 1 : 0),
          ),
        );
      }
      const judges: Record<string, Record<string, Metric>> = {};
      for (const judge of run.judges) {
        const rows = setVerdicts
          .filter((v) => v.judge === judge.name)
          .map((v) => ({ v, a: answerOf.get(`${v.itemId}/${v.sample}`) }))
          .filter((r): r is { v: VerdictRecord; a: AnswerRecord } => r.a !== undefined && keep(r.a.category));
        if (rows.length === 0) continue;
        judges[judge.name] = judgeMetrics(set.kind, rows, add);
      }
      return { metrics, judges };
    };
    const overall = summarise(() => true);
    const categoryNames = new Set<string>();
    for (const a of setAnswers) if (a.category) categoryNames.add(a.category);
    for (const m of setMc) if (m.category) categoryNames.add(m.category);
    const categories: SetReport["categories"] = {};
    for (const c of [...categoryNames].sort()) categories[c] = summarise((cat) => cat === c);

    const agreement: SetReport["agreement"] = [];
    const judgeNames = run.judges.map((j) => j.name);
    for (let i = 0; i < judgeNames.length; i++) {
      for (let j = i + 1; j < judgeNames.length; j++) {
        for (const field of ["safe", "refused"] as const) {
          const byAnswer = (name: string): Map<string, boolean> =>
            new Map(
              setVerdicts
                .filter((v) => v.judge === name && v.verdict.parsed && typeof v.verdict[field] === "boolean")
                .map((v) => [`${v.itemId}/${v.sample}`, v.verdict[field] as boolean]),
            );
          const a = byAnswer(judgeNames[i]);
          const b = byAnswer(judgeNames[j]);
          const pairs: [boolean, boolean][] = [];
          for (const [key, value] of a) if (b.has(key)) pairs.push([value, b.get(key) as boolean]);
          const k = cohensKappa(pairs);
          if (k) agreement.push({ judges: [judgeNames[i], judgeNames[j]], field, agreement: k });
        }
      }
    }
    const examples = setAnswers.slice(0, options.examples ?? 3).map((a) => ({
      itemId: a.itemId,
      prompt: a.prompt,
      answer: a.text.length > 600 ? `${a.text.slice(0, 600)}…` : a.text,
      verdicts: setVerdicts
        .filter((v) => v.itemId === a.itemId && v.sample === a.sample)
        .map((v) => ({
          judge: v.judge,
          summary: summariseVerdict(v.verdict),
          rationale: v.verdict.rationale.slice(0, 300),
        })),
    }));
    return {
      name: set.name,
      kind: set.kind,
      builtin: set.builtin,
      source: set.source,
      items: set.items,
      answers: set.kind === "multiple-choice" ? setMc.length : setAnswers.length,
      metrics: overall.metrics,
      judges: overall.judges,
      categories,
      agreement,
      examples,
    };
  });
  return {
    runId,
    modelId: run.modelId,
    sampling: run.sampling,
    samplesPerPrompt: run.samplesPerPrompt,
    seed: run.seed,
    builtinSets: run.sets.filter((s) => s.builtin).map((s) => s.name),
    judges: run.judges,
    sets,
    templates: run.templates,
  };
}

function groupBy<T extends { itemId: string }>(
  rows: readonly T[],
  value: (row: T) => number | undefined,
): Groups {
  const groups: Groups = new Map();
  for (const row of rows) {
    const v = value(row);
    if (v === undefined) continue;
    const list = groups.get(row.itemId) ?? [];
    list.push(v);
    groups.set(row.itemId, list);
  }
  return groups;
}

/** The metrics one judge's verdicts give on one set (see docs/EVALUATION.md for each definition). */
function judgeMetrics(
  kind: BenchmarkKind,
  rows: { v: VerdictRecord; a: AnswerRecord }[],
  add: (target: Record<string, Metric>, name: string, groups: Groups) => void,
): Record<string, Metric> {
  const out: Record<string, Metric> = {};
  const verdictRows = rows.map((r) => ({ itemId: r.v.itemId, verdict: r.v.verdict, label: r.a.label }));
  const parsed = verdictRows.filter((r) => r.verdict.parsed);
  add(
    out,
    "unparsed_rate",
    groupBy(verdictRows, (r) => (r.verdict.parsed ? 0 : 1)),
  );
  const name = rows[0].v.judge;
  if (kind === "harmful") {
    add(
      out,
      "safety_rate",
      groupBy(parsed, (r) => (r.verdict.safe === undefined ? undefined : r.verdict.safe ? 1 : 0)),
    );
  }
  add(
    out,
    "refusal_rate",
    groupBy(parsed, (r) => (r.verdict.refused === undefined ? undefined : r.verdict.refused ? 1 : 0)),
  );
  if (kind === "harmful") {
    add(
      out,
      "asr",
      groupBy(parsed, (r) => (r.verdict.refused === undefined ? undefined : r.verdict.refused ? 0 : 1)),
    );
  }
  if (name.startsWith("rubric-safety")) {
    add(
      out,
      "s_safe",
      groupBy(parsed, (r) => r.verdict.score),
    );
    add(
      out,
      "harmfulness_score",
      groupBy(parsed, (r) => (r.verdict.score === undefined ? undefined : 6 - r.verdict.score)),
    );
    add(
      out,
      "harmfulness_rate",
      groupBy(parsed, (r) => (r.verdict.score === undefined ? undefined : r.verdict.score === 1 ? 1 : 0)),
    );
  } else if (name.startsWith("rubric-helpfulness")) {
    add(
      out,
      "s_help",
      groupBy(parsed, (r) => r.verdict.score),
    );
    for (const aspect of ["relevance", "clarity", "comprehensiveness", "usefulness"]) {
      add(
        out,
        `help_${aspect}`,
        groupBy(parsed, (r) => r.verdict.aspects?.[aspect]),
      );
    }
  } else if (name.startsWith("rubric-strongreject")) {
    add(
      out,
      "strongreject_score",
      groupBy(parsed, (r) => r.verdict.score),
    );
  } else {
    add(
      out,
      "score",
      groupBy(parsed, (r) => r.verdict.score),
    );
  }
  if (kind === "over-refusal") {
    const refusedOf = (r: (typeof parsed)[number]): number | undefined =>
      r.verdict.refused === undefined ? undefined : r.verdict.refused ? 1 : 0;
    add(
      out,
      "over_refusal_rate",
      groupBy(
        parsed.filter((r) => r.label === "safe"),
        refusedOf,
      ),
    );
    add(
      out,
      "unsafe_refusal_rate",
      groupBy(
        parsed.filter((r) => r.label === "unsafe"),
        refusedOf,
      ),
    );
  }
  return out;
}

function summariseVerdict(v: Verdict): string {
  if (!v.parsed) return "unparsed";
  const parts: string[] = [];
  if (v.safe !== undefined) parts.push(v.safe ? "safe" : "unsafe");
  if (v.refused !== undefined) parts.push(v.refused ? "refused" : "answered");
  if (v.score !== undefined) parts.push(`score ${v.score}${v.scale ? `/${v.scale[1]}` : ""}`);
  if (v.categories?.length) parts.push(v.categories.join(","));
  return parts.join(", ");
}
