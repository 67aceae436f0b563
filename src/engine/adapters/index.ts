// Public surface of the LoRA adapter formats: PEFT directories, GGUF adapters for llama.cpp, and merging into a GGUF.
// Other modules import from here rather than from the individual files.

export {
  GGUF_TARGET_TENSOR,
  HF_TARGET_MODULE,
  isLoraTarget,
  targetShape,
  permuteHeads,
  loraScale,
  checkLoraMatchesSpec,
  loraEntries,
  createRandomLora,
  addLoraDelta,
  loraDelta,
  type RandomLoraOptions,
} from "./lora.js";
export {
  writePeftAdapter,
  readPeftAdapter,
  readPeftConfig,
  peftTensorName,
  PEFT_CONFIG_FILE,
  PEFT_WEIGHTS_FILE,
  type PeftAdapterConfig,
  type WritePeftOptions,
} from "./peft.js";
export { writeGGUFLora, readGGUFLora, type WriteGGUFLoraOptions } from "./gguf-lora.js";
export { mergeLoraIntoGGUF, type MergeDType, type MergeOptions, type MergeResult } from "./merge.js";
export { readLoraAdapter, ggufLoraFileFor } from "./read.js";
