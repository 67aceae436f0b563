// The evaluation room: benchmarks, judges behind one interface, metrics with confidence intervals, and
// `evaluate` / `aggregate` over a Store. Other rooms import only from here.

export * from "./types.js";
export {
  createKeywordJudge,
  findRefusalPhrase,
  REFUSAL_PHRASES,
  type KeywordJudgeOptions,
} from "./judges/keyword.js";
export { createLlmJudge, type LlmJudgeOptions, type LlmJudgeSpec } from "./judges/llm-judge.js";
export {
  createHelpfulnessJudge,
  createSafetyJudge,
  createStrongRejectJudge,
  HELPFULNESS_ASPECTS,
  HELPFULNESS_JUDGE_TEMPLATE,
  parseHelpfulnessOutput,
  parseSafetyOutput,
  parseStrongRejectOutput,
  renderRubricPrompt,
  RUBRIC_TEMPLATES,
  SAFETY_JUDGE_TEMPLATE,
  STRONGREJECT_JUDGE_TEMPLATE,
  type SafetyJudgeOptions,
  type StrongRejectJudgeOptions,
} from "./judges/rubric.js";
export {
  createLlamaGuardJudge,
  LLAMA_GUARD_CATEGORIES,
  LLAMA_GUARD_TEMPLATE,
  parseLlamaGuardOutput,
  renderLlamaGuardPrompt,
  type LlamaGuardJudgeOptions,
} from "./judges/llamaguard.js";
export { fenceFor, stripFenced, escapeUntrusted, type Fence } from "./fence.js";
export {
  builtinSetNames,
  fromRows,
  loadBenchmark,
  parseHfRef,
  type BenchmarkItem,
  type BenchmarkKind,
  type BenchmarkSet,
  type LoadBenchmarkOptions,
} from "./benchmarks.js";
export { BUILTIN_SETS } from "./builtin-sets.js";
export {
  cohensKappa,
  isIncoherent,
  meanWithCi,
  quantile,
  type Agreement,
  type BootstrapOptions,
  type Metric,
} from "./metrics.js";
export {
  aggregate,
  ANSWERS_NS,
  evaluate,
  judgeAppliesTo,
  MC_NS,
  RUNS_NS,
  VERDICTS_NS,
  type AggregateOptions,
  type AnswerRecord,
  type EvalProgress,
  type EvalReport,
  type EvaluateOptions,
  type McRecord,
  type RunRecord,
  type SetReport,
  type VerdictRecord,
} from "./evaluate.js";
