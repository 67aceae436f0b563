// Public surface of the safetensors format: lazy reader, sharded-index reader, streaming writer, and the reader fuzzer.
// Other modules import from here rather than from the individual files.

export {
  openSafetensors,
  parseSafetensorsHeader,
  MAX_HEADER_BYTES,
  type TensorSet,
  type SafetensorsTensorInfo,
  type ParsedHeader,
} from "./reader.js";
export { openSafetensorsIndex, INDEX_FILE_NAME } from "./sharded.js";
export { writeSafetensors, type SafetensorsWriteDtype, type SafetensorsWriteTensor } from "./writer.js";
export { DTYPE_SIZES, SUPPORTED_DTYPES, decodeToF32, type SafetensorsDtype } from "./dtypes.js";
export {
  fuzzSafetensors,
  type FuzzOptions,
  type FuzzReport,
  type FuzzTally,
  type FuzzOutcome,
} from "./fuzz.js";
