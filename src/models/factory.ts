// The test-model factory: random-initialised llama-family GGUF models on real tokenizer vocabularies.
// No weights can be downloaded here, so tests, benchmarks and parity checks build their models with this.

import { existsSync } from "node:fs";
import { basename } from "node:path";
import { openGGUF, writeGGUF, GGMLType, gv, type GGUFValue } from "../formats/gguf/index.js";
import { ggufMetadataForSpec } from "../formats/model-gguf.js";
import {
  canonicalTensorShapes,
  parameterCount,
  type ModelArch,
  type ModelSpec,
} from "../formats/model-spec.js";
import { builtinVocabPath } from "../formats/vocabs.js";
import { builtinTemplates, templateForVocab } from "../formats/chat/index.js";
import { InputError } from "../util/errors.js";
import { Rng } from "../util/random.js";

export type FactoryDType = "f32" | "f16" | "q8_0";

export interface RandomModelOptions {
  arch: ModelArch;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
  /** "builtin:<name>" (see `buckle vocab list`) or a path to any GGUF carrying tokenizer.* metadata. */
  vocab: string;
  seed: number;
  dtype?: FactoryDType;
  headDim?: number;
  contextLength?: number;
  ropeTheta?: number;
  rmsNormEps?: number;
  tiedEmbeddings?: boolean;
  /** q/k/v biases; default true for qwen2, false otherwise. */
  attentionBias?: boolean;
  /** Standard deviation of the normal init of weight matrices (norm weights start at 1). */
  initStd?: number;
  /** A built-in template name (chatml, llama2, llama3, mistral, phi3, zephyr) or jinja source. */
  chatTemplate?: string;
  name?: string;
}

export interface CreatedModel {
  path: string;
  spec: ModelSpec;
  parameters: number;
  vocab: string;
  chatTemplateName: string;
}

const DTYPES: Record<FactoryDType, GGMLType> = { f32: GGMLType.F32, f16: GGMLType.F16, q8_0: GGMLType.Q8_0 };
/** llama.cpp's llama_ftype ids (ALL_F32, MOSTLY_F16, MOSTLY_Q8_0). */
const LLAMA_FILE_TYPES: Record<FactoryDType, number> = { f32: 0, f16: 1, q8_0: 7 };

function positiveInt(value: number, flag: string): number {
  if (!Number.isInteger(value) || value <= 0)
    throw new InputError(`${flag} must be a positive integer, got ${value}`);
  return value;
}

/** The spec a factory call describes, validated (divisibility, quantization block sizes). */
export function factorySpec(opts: RandomModelOptions, vocabSize: number): ModelSpec {
  const hiddenSize = positiveInt(opts.hiddenSize, "--hidden");
  const numHeads = positiveInt(opts.numHeads, "--heads");
  const numKvHeads = positiveInt(opts.numKvHeads, "--kv-heads");
  if (numHeads % numKvHeads !== 0) {
    throw new InputError(`--heads (${numHeads}) must be a multiple of --kv-heads (${numKvHeads})`);
  }
  const headDim = opts.headDim ?? hiddenSize / numHeads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
    throw new InputError(`head dimension ${headDim} (hidden / heads) must be an even integer`, {
      hint: "choose --hidden divisible by 2 x --heads, or pass --head-dim",
    });
  }
  const spec: ModelSpec = {
    arch: opts.arch,
    vocabSize,
    hiddenSize,
    intermediateSize: positiveInt(opts.intermediateSize, "--ffn"),
    numLayers: positiveInt(opts.numLayers, "--layers"),
    numHeads,
    numKvHeads,
    headDim,
    contextLength: positiveInt(opts.contextLength ?? 2048, "--context"),
    rmsNormEps: opts.rmsNormEps ?? 1e-5,
    ropeTheta: opts.ropeTheta ?? 10000,
    tiedEmbeddings: opts.tiedEmbeddings ?? false,
    attentionBias: opts.attentionBias ?? opts.arch === "qwen2",
  };
  if ((opts.dtype ?? "f32") === "q8_0") {
    for (const [name, shape] of canonicalTensorShapes(spec)) {
      if (shape.length === 2 && shape[1] % 32 !== 0) {
        throw new InputError(
          `q8_0 needs rows that are a multiple of 32 values; ${name} rows have ${shape[1]}`,
          {
            hint: "use multiples of 32 for --hidden, --ffn and heads x head-dim, or --dtype f32/f16",
          },
        );
      }
    }
  }
  return spec;
}

function resolveVocab(vocab: string): string {
  if (vocab.startsWith("builtin:")) return builtinVocabPath(vocab.slice("builtin:".length));
  if (!existsSync(vocab)) {
    throw new InputError(`vocabulary file ${vocab} does not exist`, {
      hint: "pass builtin:<name> (see `buckle vocab list`) or a GGUF file with tokenizer.* metadata",
    });
  }
  return vocab;
}

/** FNV-1a of a tensor name, so each tensor's random stream depends only on (seed, name). */
function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function randomTensor(seed: number, name: string, size: number, std: number): Float32Array {
  const rng = new Rng((seed * 0x9e3779b1) ^ nameHash(name));
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = rng.normal() * std;
  return out;
}

/** Write a random-initialised model to `outPath` (atomically) and describe it. */
export function createRandomModel(opts: RandomModelOptions, outPath: string): CreatedModel {
  const vocabPath = resolveVocab(opts.vocab);
  const vocabFile = openGGUF(vocabPath);
  let tokenizerEntries: [string, GGUFValue][];
  let vocabSize: number;
  try {
    tokenizerEntries = [...vocabFile.metadata].filter(([k]) => k.startsWith("tokenizer."));
    const tokens = vocabFile.getStringArray("tokenizer.ggml.tokens");
    if (!tokens) {
      throw new InputError(`${vocabPath} has no tokenizer.ggml.tokens`, {
        hint: "the vocabulary must come from a GGUF file with tokenizer metadata",
      });
    }
    vocabSize = tokens.length;
  } finally {
    vocabFile.close();
  }
  const spec = factorySpec(opts, vocabSize);
  const vocabName = opts.vocab.startsWith("builtin:") ? opts.vocab.slice(8) : basename(vocabPath, ".gguf");

  // Keep a template the vocabulary file already carries; otherwise embed one that suits the vocabulary.
  let chatTemplateName: string;
  const hasTemplate = tokenizerEntries.some(([k]) => k === "tokenizer.chat_template");
  if (opts.chatTemplate !== undefined) {
    const builtin = builtinTemplates[opts.chatTemplate as keyof typeof builtinTemplates];
    const source = builtin ?? opts.chatTemplate;
    chatTemplateName = builtin ? opts.chatTemplate : "custom";
    tokenizerEntries = tokenizerEntries.filter(([k]) => k !== "tokenizer.chat_template");
    tokenizerEntries.push(["tokenizer.chat_template", gv.str(source)]);
  } else if (hasTemplate) {
    chatTemplateName = "from-vocab";
  } else {
    chatTemplateName = templateForVocab(vocabName);
    tokenizerEntries.push([
      "tokenizer.chat_template",
      gv.str(builtinTemplates[chatTemplateName as keyof typeof builtinTemplates]),
    ]);
  }

  const name = opts.name ?? `buckle-random-${spec.arch}-h${spec.hiddenSize}-l${spec.numLayers}-${vocabName}`;
  const metadata: [string, GGUFValue][] = [
    ...ggufMetadataForSpec(spec, name),
    ["general.file_type", gv.u32(LLAMA_FILE_TYPES[opts.dtype ?? "f32"])],
    ["buckle.factory.seed", gv.u32(opts.seed >>> 0)],
    ["buckle.factory.init_std", gv.f32(opts.initStd ?? 0.02)],
    ["buckle.factory.vocab", gv.str(opts.vocab)],
    ...tokenizerEntries,
  ];
  const matrixType = DTYPES[opts.dtype ?? "f32"];
  const std = opts.initStd ?? 0.02;
  const tensors = [...canonicalTensorShapes(spec)].map(([tensorName, shape]) => {
    const size = shape.reduce((x, y) => x * y, 1);
    const isNorm = tensorName.endsWith("norm.weight");
    const isBias = tensorName.endsWith(".bias");
    // llama.cpp keeps 1-D tensors (norms, biases) in f32 whatever the file type.
    const type = shape.length === 1 ? GGMLType.F32 : matrixType;
    const data = (): Float32Array =>
      isNorm
        ? new Float32Array(size).fill(1)
        : randomTensor(opts.seed, tensorName, size, isBias ? std * 0.5 : std);
    return { name: tensorName, shape, type, data };
  });
  writeGGUF(outPath, { metadata, tensors });
  return { path: outPath, spec, parameters: parameterCount(spec), vocab: opts.vocab, chatTemplateName };
}
