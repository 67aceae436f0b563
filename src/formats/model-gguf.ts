// ModelSpec <-> GGUF metadata for llama-family models (llama.cpp's key names), and the checks that a
// GGUF file's tensors match the spec it declares.

import { FileFormatError, InputError } from "../util/errors.js";
import type { GGUFFile, GGUFValue } from "./gguf/index.js";
import { gv } from "./gguf/index.js";
import { canonicalTensorShapes, type ModelArch, type ModelSpec } from "./model-spec.js";

/** GGUF `general.architecture` per arch: llama.cpp runs Mistral through its "llama" graph. */
export function ggufArchName(arch: ModelArch): "llama" | "qwen2" {
  return arch === "qwen2" ? "qwen2" : "llama";
}

/** The `general.*` and `<arch>.*` keys llama.cpp reads for this spec, in a stable order. */
export function ggufMetadataForSpec(spec: ModelSpec, name: string): [string, GGUFValue][] {
  const a = ggufArchName(spec.arch);
  const entries: [string, GGUFValue][] = [
    ["general.architecture", gv.str(a)],
    ["general.name", gv.str(name)],
    [`${a}.vocab_size`, gv.u32(spec.vocabSize)],
    [`${a}.context_length`, gv.u32(spec.contextLength)],
    [`${a}.embedding_length`, gv.u32(spec.hiddenSize)],
    [`${a}.block_count`, gv.u32(spec.numLayers)],
    [`${a}.feed_forward_length`, gv.u32(spec.intermediateSize)],
    [`${a}.attention.head_count`, gv.u32(spec.numHeads)],
    [`${a}.attention.head_count_kv`, gv.u32(spec.numKvHeads)],
    [`${a}.attention.layer_norm_rms_epsilon`, gv.f32(spec.rmsNormEps)],
    [`${a}.rope.freq_base`, gv.f32(spec.ropeTheta)],
    [`${a}.rope.dimension_count`, gv.u32(spec.headDim)],
  ];
  if (spec.headDim * spec.numHeads !== spec.hiddenSize) {
    entries.push([`${a}.attention.key_length`, gv.u32(spec.headDim)]);
    entries.push([`${a}.attention.value_length`, gv.u32(spec.headDim)]);
  }
  const rs = spec.ropeScaling;
  if (rs) {
    if (rs.type === "llama3") {
      // llama.cpp applies Llama-3 scaling through a rope_freqs.weight tensor, not metadata keys.
      throw new InputError("writing Llama-3 rope scaling to GGUF is not supported yet", {
        hint: "use linear or yarn scaling, or no scaling, for models buckle writes",
      });
    }
    entries.push([`${a}.rope.scaling.type`, gv.str(rs.type)]);
    entries.push([`${a}.rope.scaling.factor`, gv.f32(rs.factor)]);
    if (rs.originalContextLength !== undefined) {
      entries.push([`${a}.rope.scaling.original_context_length`, gv.u32(rs.originalContextLength)]);
    }
  }
  return entries;
}

function required(file: GGUFFile, key: string): number {
  const v = file.getNumber(key);
  if (v === undefined) {
    throw new FileFormatError(file.path, undefined, `metadata key ${key} is missing`, {
      hint: "the file is not a complete llama-family model (a vocab-only file has no model hyperparameters)",
    });
  }
  return v;
}

/** Read the ModelSpec of a llama-family GGUF model; tensor presence decides tied embeddings and biases. */
export function specFromGGUF(file: GGUFFile): ModelSpec {
  const archName = file.getString("general.architecture");
  if (archName !== "llama" && archName !== "qwen2") {
    throw new FileFormatError(
      file.path,
      undefined,
      `general.architecture is ${JSON.stringify(archName)}; buckle's engine supports "llama" and "qwen2"`,
      {
        hint: "Llama 2/3, Mistral, SmolLM and Qwen2/2.5 checkpoints are llama-family; other families are not",
      },
    );
  }
  const a = archName;
  const hiddenSize = required(file, `${a}.embedding_length`);
  const numHeads = required(file, `${a}.attention.head_count`);
  const embd = file.tensor("token_embd.weight");
  if (!embd) throw new FileFormatError(file.path, undefined, "tensor token_embd.weight is missing");
  const vocabSize = file.getNumber(`${a}.vocab_size`) ?? embd.shape[0];
  const headDim =
    file.getNumber(`${a}.attention.key_length`) ??
    file.getNumber(`${a}.rope.dimension_count`) ??
    Math.floor(hiddenSize / numHeads);
  const scalingType = file.getString(`${a}.rope.scaling.type`);
  let ropeScaling: ModelSpec["ropeScaling"];
  if (scalingType === "linear" || scalingType === "yarn") {
    ropeScaling = {
      type: scalingType,
      factor: file.getNumber(`${a}.rope.scaling.factor`) ?? 1,
      originalContextLength: file.getNumber(`${a}.rope.scaling.original_context_length`),
    };
  } else if (scalingType !== undefined && scalingType !== "none") {
    throw new FileFormatError(file.path, undefined, `unsupported rope scaling type "${scalingType}"`);
  }
  const spec: ModelSpec = {
    arch: a,
    vocabSize,
    hiddenSize,
    intermediateSize: required(file, `${a}.feed_forward_length`),
    numLayers: required(file, `${a}.block_count`),
    numHeads,
    numKvHeads: file.getNumber(`${a}.attention.head_count_kv`) ?? numHeads,
    headDim,
    contextLength: required(file, `${a}.context_length`),
    rmsNormEps: file.getNumber(`${a}.attention.layer_norm_rms_epsilon`) ?? 1e-5,
    ropeTheta: file.getNumber(`${a}.rope.freq_base`) ?? 10000,
    ...(ropeScaling ? { ropeScaling } : {}),
    tiedEmbeddings: file.tensor("output.weight") === undefined,
    attentionBias: file.tensor("blk.0.attn_q.bias") !== undefined,
  };
  checkTensorsMatchSpec(file, spec);
  return spec;
}

/** Every tensor the spec needs is present with its shape; extra tensors are tolerated only if known. */
export function checkTensorsMatchSpec(file: GGUFFile, spec: ModelSpec): void {
  const expected = canonicalTensorShapes(spec);
  const problems: string[] = [];
  for (const [name, shape] of expected) {
    const t = file.tensor(name);
    if (!t) problems.push(`missing ${name}`);
    else if (t.shape.join(",") !== shape.join(",")) {
      problems.push(`${name} has shape [${t.shape.join(", ")}], expected [${shape.join(", ")}]`);
    }
  }
  const known = new Set(["rope_freqs.weight"]);
  for (const t of file.tensors) {
    if (!expected.has(t.name) && !known.has(t.name)) problems.push(`unexpected tensor ${t.name}`);
  }
  if (problems.length > 0) {
    const shown =
      problems.slice(0, 8).join("; ") + (problems.length > 8 ? `; and ${problems.length - 8} more` : "");
    throw new FileFormatError(file.path, undefined, `tensors do not match the declared model: ${shown}`);
  }
}
