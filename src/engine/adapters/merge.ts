// Bakes a LoRA adapter into a copy of its base GGUF model: W' = W + (alpha / r) B A for every adapted projection,
// so the result runs anywhere a plain GGUF runs, with no adapter support needed.

import {
  GGMLType,
  ggmlTypeName,
  gv,
  openGGUF,
  quantize,
  writeGGUF,
  type GGUFTensorInput,
  type GGUFValue,
  type QuantizeType,
} from "../../formats/gguf/index.js";
import { specFromGGUF } from "../../formats/model-gguf.js";
import { InputError } from "../../util/errors.js";
import type { LoraPair, LoraWeights } from "../types.js";
import { addLoraDelta, checkLoraMatchesSpec, GGUF_TARGET_TENSOR, loraEntries, loraScale } from "./lora.js";

/**
 * Storage of the output's weight matrices. "keep" (default): untouched tensors are copied byte for byte and
 * merged ones re-encoded in their original type. Any other value re-encodes every 2-D weight (merged or not) in
 * that type; 1-D tensors (norms, biases) stay as they are, as llama.cpp expects them in f32.
 */
export type MergeDType = "keep" | "f32" | "f16" | "bf16" | "q8_0";

export interface MergeOptions {
  dtype?: MergeDType;
}

const TYPES: Record<Exclude<MergeDType, "keep">, QuantizeType> = {
  f32: GGMLType.F32,
  f16: GGMLType.F16,
  bf16: GGMLType.BF16,
  q8_0: GGMLType.Q8_0,
};
/** llama.cpp's llama_ftype for a file whose matrices are all of one type. */
const FILE_TYPES: Record<Exclude<MergeDType, "keep">, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };
const ENCODABLE = new Set<number>(Object.values(TYPES));

export interface MergeResult {
  path: string;
  /** Names of the tensors that received a LoRA delta. */
  merged: string[];
}

/** Write `outPath` (atomically): the GGUF at `basePath` with `lora` merged into its weights. */
export function mergeLoraIntoGGUF(
  basePath: string,
  lora: LoraWeights,
  outPath: string,
  options: MergeOptions = {},
): MergeResult {
  const dtype = options.dtype ?? "keep";
  if (dtype !== "keep" && !Object.prototype.hasOwnProperty.call(TYPES, dtype))
    throw new InputError(`merge dtype must be keep, f32, f16, bf16 or q8_0, got ${JSON.stringify(dtype)}`);
  const file = openGGUF(basePath);
  try {
    const spec = specFromGGUF(file);
    checkLoraMatchesSpec(lora, spec);
    const scale = loraScale(lora.config);
    const rank = lora.config.rank;
    const pairs = new Map<string, LoraPair>();
    for (const [i, t, pair] of loraEntries(lora)) pairs.set(`blk.${i}.${GGUF_TARGET_TENSOR[t]}`, pair);

    const tensors: GGUFTensorInput[] = file.tensors.map((info) => {
      const pair = pairs.get(info.name);
      const convert = dtype !== "keep" && info.shape.length === 2 && TYPES[dtype] !== info.type;
      if (!pair && !convert)
        return { name: info.name, shape: info.shape, type: info.type, data: () => file.readTensorRaw(info) };
      const type = dtype === "keep" || info.shape.length !== 2 ? info.type : TYPES[dtype];
      if (!ENCODABLE.has(type))
        throw new InputError(
          `${info.name} is ${ggmlTypeName(type)}, which buckle cannot write back after merging`,
          {
            hint: "merge with dtype f32, f16, bf16 or q8_0",
          },
        );
      if (type === GGMLType.Q8_0 && info.shape[info.shape.length - 1] % 32 !== 0)
        throw new InputError(`${info.name} rows have ${info.shape[1]} values; q8_0 needs a multiple of 32`, {
          hint: "merge with dtype f32, f16 or bf16",
        });
      return {
        name: info.name,
        shape: info.shape,
        type,
        data: () => {
          const w = file.readTensorF32(info);
          if (pair) addLoraDelta(w, pair, rank, scale);
          return quantize(type as QuantizeType, w);
        },
      };
    });

    const metadata = new Map<string, GGUFValue>(file.metadata);
    if (dtype !== "keep") metadata.set("general.file_type", gv.u32(FILE_TYPES[dtype]));
    writeGGUF(outPath, { metadata, tensors, alignment: file.alignment });
    return { path: outPath, merged: [...pairs.keys()] };
  } finally {
    file.close();
  }
}
