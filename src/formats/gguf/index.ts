// Public surface of the GGUF module: reader, writer, value/type model, quantization, info summary and fuzzer.
// Other modules import from here only, so the files behind it can be reorganised freely.

export {
  GGUFValueType,
  GGMLType,
  gv,
  ggmlTypeName,
  ggmlTypeInfo,
  ggmlTypeFromName,
  ggmlByteSize,
  knownGGMLTypes,
  ggufValueTypeName,
  type GGMLTypeInfo,
  type GGUFValue,
  type GGUFScalarValue,
  type GGUFArrayValue,
  type GGUFArrayItems,
} from "./types.js";
export {
  openGGUF,
  parseGGUF,
  GGUFFile,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAX_DIMS,
  GGUF_MAX_ARRAY_DEPTH,
  type GGUFTensorInfo,
} from "./reader.js";
export {
  writeGGUF,
  encodeGGUF,
  type GGUFTensorInput,
  type GGUFWriteOptions,
  type GGUFWriteResult,
} from "./writer.js";
export {
  f32ToF16Bits,
  f16BitsToF32,
  f32ToBF16Bits,
  bf16BitsToF32,
  f32ToF16,
  f16ToF32,
  f32ToBF16,
  bf16ToF32,
  quantizeQ8_0,
  quantize,
  dequantize,
  canDequantize,
  QUANTIZE_TYPES,
  type QuantizeType,
} from "./quant.js";
export {
  ggufInfo,
  type GGUFInfo,
  type GGUFInfoMetadataEntry,
  type GGUFInfoTensor,
  type JsonValue,
} from "./info.js";
export { fuzzGGUF, type FuzzOptions, type FuzzReport } from "./fuzz.js";
