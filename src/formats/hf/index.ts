// Public surface of the Hugging Face format support: config.json <-> ModelSpec, tensor names, checkpoint directories.
// Other modules import from here rather than from the individual files.

export {
  specFromHFConfig,
  hfConfigFromSpec,
  type HFConfig,
  type HFConfigOptions,
  type HFTorchDtype,
} from "./config.js";
export {
  hfToCanonical,
  canonicalToHF,
  isIgnorableHFTensor,
  needsQKPermute,
  permuteQK,
  unpermuteQK,
} from "./names.js";
export {
  openHFCheckpoint,
  writeHFCheckpoint,
  CONFIG_FILE_NAME,
  WEIGHTS_FILE_NAME,
  type HFCheckpoint,
  type WriteHFCheckpointOptions,
} from "./checkpoint.js";
