// The experiment room: config schema, the step runner, the matrix runner, report collection and rendering.
// Other rooms and the CLI import only from here.

export {
  ExperimentConfigSchema,
  DEFENCES,
  defenceOf,
  parseExperimentConfig,
  readExperimentConfig,
  type DefenceKind,
  type DefenceSpec,
  type ExperimentConfig,
  type ExperimentConfigInput,
} from "./config.js";
export {
  orderSteps,
  runSteps,
  stepRecord,
  type Step,
  type StepContext,
  type StepEvent,
  type StepRecord,
} from "./steps.js";
export {
  CONFIG_FILE,
  STORE_FILE,
  experimentHash,
  readSource,
  runExperiment,
  type CurateStepResult,
  type EvalStepResult,
  type ExperimentResult,
  type RunExperimentOptions,
  type TrainStepResult,
} from "./run.js";
export { cellMetrics, collectReport } from "./collect.js";
export { formatTable, listRuns, runAndReport, type ExperimentOutcome } from "./experiment.js";
export * from "./report/index.js";
