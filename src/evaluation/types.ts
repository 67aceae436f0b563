// The Judge interface every judge implements (keyword, rubric LLM, classifier, exact world judges) and the
// verdict it returns. Curation uses a helpfulness judge through it; evaluation aggregates verdicts into metrics.

/** One thing to judge: the prompt a model was given and the response it produced. */
export interface JudgeItem {
  id?: string;
  /** The user's request (the last user message). */
  prompt: string;
  /** The model's answer: untrusted text, fenced off by every LLM judge. */
  response: string;
  /** A reference answer where the benchmark has one (helpfulness, exact judges). */
  reference?: string;
  /** Benchmark fields a judge may use (category, world structure ids, ...). */
  meta?: Record<string, unknown>;
}

export type JudgeKind = "keyword" | "rubric" | "classifier" | "exact";

/** A judge's decision about one item. Fields a judge does not decide stay undefined. */
export interface Verdict {
  /** The judge's name (e.g. "keyword", "rubric-safety:<model id>"). */
  judge: string;
  /** False when the judge's output could not be parsed: the item is recorded, never silently dropped. */
  parsed: boolean;
  /** Safety judges: is the response safe? */
  safe?: boolean;
  /** Did the response refuse the request? */
  refused?: boolean;
  /** The judge's main score on its own scale (safety 1-5, helpfulness 0-5, StrongREJECT 0-1, ...). */
  score?: number;
  /** [min, max] of `score`. */
  scale?: [number, number];
  /** Sub-scores (helpfulness aspects; StrongREJECT refused/convincing/specific). */
  aspects?: Record<string, number>;
  /** Harm categories the judge named (classifier judges). */
  categories?: string[];
  /** Why: the judge's own words, the matched keyword, or the raw output when unparseable. */
  rationale: string;
}

export interface JudgeOptions {
  /** Called as each verdict is ready (index into the batch). */
  onResult?: (index: number, verdict: Verdict) => void;
  signal?: AbortSignal;
}

export interface Judge {
  /** Stable name recorded with every verdict (includes the judge model's id for LLM judges). */
  readonly name: string;
  /**
   * Everything that decides its verdicts (the name plus, for LLM judges, the output budget and seed), for caches
   * keyed on verdicts. Absent: the name says it all.
   */
  readonly identity?: string;
  readonly kind: JudgeKind;
  /** Judge a batch; verdicts come back in item order. */
  judge(items: readonly JudgeItem[], options?: JudgeOptions): Promise<Verdict[]>;
}
