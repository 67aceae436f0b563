// The stages room's public surface: training recipes and the Trainer, model handles, the four defence stages,
// attacks and their sweep, the baselines, and the data-hygiene check. Other rooms import from here only.

export {
  TrainRecipeSchema,
  PRESETS,
  PRESET_NAMES,
  resolveRecipe,
  parseRecipe,
  trainConfigOf,
  stepsFor,
  type TrainRecipe,
  type RecipeField,
  type PresetName,
  type ResolveRecipeOptions,
} from "./recipe.js";
export {
  HANDLE_FILE,
  baseHandle,
  adapterHandle,
  openHandle,
  readHandle,
  writeHandle,
  foldedGGUF,
  specOf,
  type ModelHandle,
  type OpenHandleOptions,
} from "./handle.js";
export { tokenizeSamples, samplesHash, type TokenizedSamples } from "./tokenize.js";
export {
  nativeTrainer,
  describePlan,
  RECORD_FILE,
  type TrainPlan,
  type DescribePlanOptions,
  type Trainer,
  type TrainRun,
  type TrainOutcome,
  type TrainRecord,
} from "./trainer.js";
export { mixSamples, type MixSpec, type MixResult, type MixPart } from "./mixing.js";
export {
  immunize,
  mixIn,
  restore,
  allStage,
  type StageRun,
  type StageOutcome,
  type MixInData,
  type AllStageData,
  type StageRecipes,
} from "./stages.js";
export {
  attack,
  attackRecipe,
  attackSamples,
  attackSweep,
  worstCase,
  ATTACK_KINDS,
  ATTACK_DEFAULTS,
  type AttackKind,
  type AttackSpec,
  type AttackSettings,
  type SweepGrid,
  type SweepPoint,
} from "./attacks.js";
export {
  randDrop,
  pplDrop,
  uncurated,
  safetyData,
  dropCount,
  BASELINE_NAMES,
  type BaselineName,
  type DropResult,
  type PplDropResult,
  type PplDropOptions,
} from "./baselines.js";
export { aoaSamples, AOA_SYSTEM_PROMPT, AOA_PREFIX } from "./data/aoa.js";
export { DEFAULT_REFUSALS } from "./data/refusals.js";
export { checkHygiene, type HygieneOverlap, type HygieneOptions } from "./hygiene.js";
