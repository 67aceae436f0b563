// Public surface of the native engine: loading, forward/decode/scoring, backward, LoRA and training.
// Other modules import from here; the files behind it (and the kernels) can be reorganised freely.

export type {
  LayerWeights,
  LoraConfig,
  LoraPair,
  LoraTarget,
  LoraWeights,
  Matrix,
  MatrixType,
  ModelWeights,
} from "./types.js";
export { LORA_TARGETS } from "./types.js";
export { loadModelWeights, weightsFromGGUF, weightsFromHF, toF32Weights, type LoadOptions } from "./load.js";
export {
  forward,
  decode,
  KVCache,
  logitsOf,
  logprobs,
  scoreTokens,
  perplexity,
  placeWeights,
  packSequences,
  type Activations,
  type DecodeEntry,
  type EngineWeights,
  type ForwardOptions,
  type ScoreRequest,
} from "./forward.js";
export {
  lossAndGrad,
  lossOf,
  maskFromSpans,
  zeroBaseGrads,
  type BackwardOptions,
  type BaseGrads,
  type LayerGrads,
  type LossResult,
  type TrainSequence,
} from "./backward.js";
export {
  createLora,
  cloneLora,
  loraScale,
  loraTargetShape,
  validateLoraConfig,
  zeroLoraGrads,
  type LoraGrads,
  type LoraGradPair,
} from "./lora.js";
export {
  train,
  learningRateAt,
  latestCheckpoint,
  type LrSchedule,
  type TrainConfig,
  type TrainExample,
  type TrainProgress,
  type TrainResult,
  type TrainRunOptions,
} from "./train.js";
export { f32Numerics, f64Numerics, type FArray, type Numerics } from "./numerics.js";
export {
  getKernels,
  setKernels,
  initKernels,
  disposeKernels,
  ensureFastKernels,
  kernelChoice,
  referenceKernels,
  type KernelChoice,
  type Kernels,
} from "./kernels/index.js";
export { createBlasKernels, loadBlas, BlasKernels, type BlasInitOptions } from "./kernels/blas.js";
export { RopeTable, ropeModeFor, llama3RopeFactors, type RopeMode } from "./rope.js";
