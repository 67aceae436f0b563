// The curation room (CTRL / Buckle Up): curate a commonsense pool with a reviser, a scorer and a judge,
// plan its cost, and write its outputs. Other rooms import only from here.

export {
  curate,
  planCuration,
  type CurateOptions,
  type CurateResult,
  type CuratedSample,
  type CurationCounts,
  type CurationPhase,
  type CurationProgress,
  type OriginalScores,
  type RoundRecord,
} from "./curate.js";
export {
  CurationConfigSchema,
  resolveCurationConfig,
  samplingGrid,
  configHash,
  type CurationConfig,
  type CurationConfigInput,
  type SamplingSetting,
} from "./config.js";
export { cleanCandidate, type CandidateCleaner, type CleanContext, type CleanResult } from "./clean.js";
export {
  BUCKLE_UP_TEMPLATE,
  CTRL_2024_TEMPLATE,
  checkRevisionTemplate,
  formatPhrases,
  renderRevisionPrompt,
} from "./prompts.js";
export { DEFAULT_SEED_PHRASES } from "./seed-phrases.js";
export { readability, phrasesUsed, syllables } from "./readability.js";
export {
  filterFailures,
  filterThresholds,
  rankCandidates,
  selectBeam,
  selectionRule,
  type Candidate,
  type FilterThresholds,
  type Objective,
  type ReferenceScores,
} from "./select.js";
export { summarizeCuration, type CurationSummary, type Stat } from "./summary.js";
export { writeCurationOutputs, provenanceRecord, type CurationOutputFiles } from "./outputs.js";
