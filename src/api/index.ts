// buckle's library surface: everything a Node program needs to curate, defend, attack, evaluate and run
// experiments, re-exported from the rooms that implement it. `import { curate, immunize } from "buckle"`.

// data
export {
  readDataset,
  writeDataset,
  parseDataset,
  selectSamples,
  splitSamples,
  findOverlaps,
  type Dataset,
  type DatasetFormat,
  type Overlap,
} from "../data/index.js";
export { queryOf, responseOf, promptMessages, withResponse, type Sample } from "../data/sample.js";

// models
export {
  openModel,
  parseModelRef,
  createRandomModel,
  createNativeModel,
  createLlamaCppModel,
  chat,
  type LanguageModel,
  type ModelInfo,
  type Sampling,
  type GenerateRequest,
  type GenerateResult,
  type LogprobsRequest,
  type LogprobsResult,
} from "../models/index.js";
export { createOpenAIModel } from "../models/openai/index.js";

// the run store and its caching model wrapper
export { Store, cachedModel, contentKey, type CachedModel } from "../store/index.js";

// curation (CTRL / Buckle Up)
export {
  curate,
  planCuration,
  writeCurationOutputs,
  resolveCurationConfig,
  DEFAULT_SEED_PHRASES,
  BUCKLE_UP_TEMPLATE,
  CTRL_2024_TEMPLATE,
  type CurateOptions,
  type CurateResult,
  type CurationConfig,
  type CurationConfigInput,
} from "../curation/index.js";

// stages, attacks, baselines
export {
  immunize,
  mixIn,
  restore,
  allStage,
  attack,
  attackSweep,
  worstCase,
  randDrop,
  pplDrop,
  uncurated,
  safetyData,
  mixSamples,
  checkHygiene,
  baseHandle,
  openHandle,
  nativeTrainer,
  resolveRecipe,
  PRESETS,
  type ModelHandle,
  type Trainer,
  type TrainRecipe,
  type AttackSpec,
  type StageOutcome,
} from "../stages/index.js";

// evaluation
export {
  evaluate,
  aggregate,
  loadBenchmark,
  createKeywordJudge,
  createHelpfulnessJudge,
  createSafetyJudge,
  createStrongRejectJudge,
  createLlamaGuardJudge,
  meanWithCi,
  cohensKappa,
  type Judge,
  type JudgeItem,
  type Verdict,
  type BenchmarkSet,
  type EvalReport,
} from "../evaluation/index.js";

// the model organism
export {
  buildOrganism,
  createWorld,
  createWorldSafetyJudge,
  createWorldHelpfulnessJudge,
  createWorldRefusalJudge,
  type Organism,
  type World,
} from "../world/index.js";

// experiments and reports
export {
  runExperiment,
  runAndReport,
  readExperimentConfig,
  parseExperimentConfig,
  ExperimentConfigSchema,
  writeReport,
  renderHtml,
  renderMarkdown,
  type ExperimentConfig,
  type ReportData,
} from "../experiment/index.js";
export { demoConfig } from "../experiment/demo.js";

// errors a caller may want to tell apart
export { BuckleError, InputError, FileFormatError, UnavailableError } from "../util/errors.js";
