// Converts between Hugging Face transformers config.json (llama, qwen2, mistral) and buckle's ModelSpec.
// Reading is strict: a missing or mistyped field is an InputError naming the field and file, because a silently defaulted size breaks a model quietly.

import { InputError } from "../../util/errors.js";
import type { ModelArch, ModelSpec, RopeScaling } from "../model-spec.js";

const ARCHITECTURES: Record<ModelArch, string> = {
  llama: "LlamaForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  mistral: "MistralForCausalLM",
};

export type HFTorchDtype = "float32" | "float16" | "bfloat16";

/** A config.json object as transformers writes it; only the keys buckle reads or writes are typed. */
export interface HFConfig {
  architectures: string[];
  model_type: ModelArch;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling: Record<string, number | string> | null;
  tie_word_embeddings: boolean;
  hidden_act: "silu";
  torch_dtype: HFTorchDtype;
  [key: string]: unknown;
}

export interface HFConfigOptions {
  torchDtype?: HFTorchDtype;
  bosTokenId?: number;
  eosTokenId?: number | number[];
  padTokenId?: number;
}

/**
 * Read a parsed config.json into a ModelSpec. `where` (usually the file path) is named in every error.
 * Accepts both the classic `rope_theta`/`rope_scaling` keys and transformers 5's `rope_parameters`.
 */
export function specFromHFConfig(json: unknown, where: string): ModelSpec {
  const bad = (field: string, problem: string, hint?: string): never => {
    throw new InputError(`${where}: ${field} ${problem}`, { hint });
  };
  if (typeof json !== "object" || json === null || Array.isArray(json))
    return bad("config", "is not a JSON object");
  const c = json as Record<string, unknown>;
  const supported = Object.values(ARCHITECTURES).join(", ");

  const arch = resolveArch(c, bad, supported);

  const posInt = (field: string): number => {
    const v = c[field];
    if (v === undefined || v === null) return bad(field, "is missing");
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0)
      return bad(field, `must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const optPosInt = (field: string): number | undefined =>
    c[field] === undefined || c[field] === null ? undefined : posInt(field);
  const posNumber = (obj: Record<string, unknown>, field: string, label = field): number => {
    const v = obj[field];
    if (v === undefined || v === null) return bad(label, "is missing");
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0)
      return bad(label, `must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const optBool = (field: string, dflt: boolean): boolean => {
    const v = c[field];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "boolean") return bad(field, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };

  const vocabSize = posInt("vocab_size");
  const hiddenSize = posInt("hidden_size");
  const intermediateSize = posInt("intermediate_size");
  const numLayers = posInt("num_hidden_layers");
  const numHeads = posInt("num_attention_heads");
  const numKvHeads = optPosInt("num_key_value_heads") ?? numHeads;
  if (numHeads % numKvHeads !== 0)
    bad("num_key_value_heads", `(${numKvHeads}) must divide num_attention_heads (${numHeads})`);
  let headDim = optPosInt("head_dim");
  if (headDim === undefined) {
    if (hiddenSize % numHeads !== 0)
      bad(
        "hidden_size",
        `(${hiddenSize}) is not a multiple of num_attention_heads (${numHeads})`,
        "set head_dim explicitly",
      );
    headDim = hiddenSize / numHeads;
  }
  // Rotary embedding rotates pairs of dimensions, so an odd head size cannot be a working model.
  if (headDim % 2 !== 0) bad("head_dim", `(${headDim}) must be even for rotary embeddings`);
  const contextLength = posInt("max_position_embeddings");
  const rmsNormEps = posNumber(c, "rms_norm_eps");

  const hiddenAct = c.hidden_act ?? c.hidden_activation;
  if (hiddenAct !== undefined && hiddenAct !== null && hiddenAct !== "silu")
    bad("hidden_act", `is ${JSON.stringify(hiddenAct)}; only "silu" (SwiGLU) is supported`);
  if (arch === "llama" && optBool("mlp_bias", false))
    bad("mlp_bias", "is true; MLP biases are not supported");
  if (arch === "qwen2" && optBool("use_sliding_window", false))
    bad("use_sliding_window", "is true; sliding-window attention is not supported");

  // transformers 5 moved rope_theta and the scaling into rope_parameters; older files have rope_theta + rope_scaling.
  const ropeParams = c.rope_parameters;
  if (
    ropeParams !== undefined &&
    ropeParams !== null &&
    (typeof ropeParams !== "object" || Array.isArray(ropeParams))
  )
    bad("rope_parameters", "must be an object");
  const rp = (ropeParams ?? undefined) as Record<string, unknown> | undefined;
  let ropeTheta = 10000;
  if (c.rope_theta !== undefined && c.rope_theta !== null) ropeTheta = posNumber(c, "rope_theta");
  else if (rp && rp.rope_theta !== undefined)
    ropeTheta = posNumber(rp, "rope_theta", "rope_parameters.rope_theta");

  let ropeScaling: RopeScaling | undefined;
  let scalingField = "rope_scaling";
  let scaling = c.rope_scaling;
  if ((scaling === undefined || scaling === null) && rp) {
    scaling = rp;
    scalingField = "rope_parameters";
  }
  if (scaling !== undefined && scaling !== null) {
    if (typeof scaling !== "object" || Array.isArray(scaling))
      return bad(scalingField, "must be an object or null");
    ropeScaling = readRopeScaling(scaling as Record<string, unknown>, scalingField, bad, posNumber);
  }

  const tiedEmbeddings = optBool("tie_word_embeddings", false);
  // Qwen2's attention always has q/k/v biases; llama makes them optional; Mistral's code never creates them.
  const attentionBias = arch === "qwen2" ? true : arch === "llama" ? optBool("attention_bias", false) : false;

  const spec: ModelSpec = {
    arch,
    vocabSize,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    contextLength,
    rmsNormEps,
    ropeTheta,
    tiedEmbeddings,
    attentionBias,
  };
  if (ropeScaling) spec.ropeScaling = ropeScaling;
  return spec;
}

type Bad = (field: string, problem: string, hint?: string) => never;

function resolveArch(c: Record<string, unknown>, bad: Bad, supported: string): ModelArch {
  const mt = c.model_type;
  const archs = c.architectures;
  let fromArchs: ModelArch | undefined;
  if (archs !== undefined && archs !== null) {
    if (!Array.isArray(archs) || archs.length === 0 || !archs.every((a) => typeof a === "string"))
      bad("architectures", `must be a non-empty list of strings, got ${JSON.stringify(archs)}`);
    const name = (archs as string[])[0];
    fromArchs = (Object.keys(ARCHITECTURES) as ModelArch[]).find((k) => ARCHITECTURES[k] === name);
    if (!fromArchs) bad("architectures", `is ${JSON.stringify(archs)}; buckle supports ${supported}`);
  }
  if (mt === undefined || mt === null) {
    if (fromArchs) return fromArchs;
    return bad("model_type", "is missing (and so is architectures)", `supported: ${supported}`);
  }
  if (typeof mt !== "string" || !Object.prototype.hasOwnProperty.call(ARCHITECTURES, mt))
    return bad("model_type", `is ${JSON.stringify(mt)}; buckle supports llama, qwen2 and mistral`);
  const arch = mt as ModelArch;
  if (fromArchs && fromArchs !== arch)
    bad("architectures", `(${ARCHITECTURES[fromArchs]}) does not match model_type ${JSON.stringify(mt)}`);
  return arch;
}

function readRopeScaling(
  s: Record<string, unknown>,
  field: string,
  bad: Bad,
  posNumber: (obj: Record<string, unknown>, f: string, label?: string) => number,
): RopeScaling | undefined {
  const typeKey = s.rope_type !== undefined ? "rope_type" : "type";
  const type = s[typeKey];
  if (type === undefined || type === null || type === "default") return undefined;
  if (type !== "linear" && type !== "yarn" && type !== "llama3")
    return bad(`${field}.${typeKey}`, `is ${JSON.stringify(type)}; supported: linear, yarn, llama3`);
  const num = (k: string) => posNumber(s, k, `${field}.${k}`);
  const opt = (k: string) => (s[k] === undefined || s[k] === null ? undefined : num(k));
  const out: RopeScaling = { type, factor: num("factor") };
  if (type === "llama3") {
    // The llama3 frequency ramp is undefined without all three; transformers also refuses such configs.
    out.lowFreqFactor = num("low_freq_factor");
    out.highFreqFactor = num("high_freq_factor");
    out.originalContextLength = num("original_max_position_embeddings");
    if (out.highFreqFactor <= out.lowFreqFactor)
      bad(
        `${field}.high_freq_factor`,
        `(${out.highFreqFactor}) must be greater than low_freq_factor (${out.lowFreqFactor})`,
      );
  } else {
    const orig = opt("original_max_position_embeddings");
    if (orig !== undefined) out.originalContextLength = orig;
  }
  return out;
}

/**
 * A config.json object for `spec` that transformers loads with the matching *ForCausalLM class.
 * `head_dim` is always written, so configs with a non-default head size survive; very old transformers ignore it.
 */
export function hfConfigFromSpec(spec: ModelSpec, options: HFConfigOptions = {}): HFConfig {
  const where = "model spec";
  if (!Object.prototype.hasOwnProperty.call(ARCHITECTURES, spec.arch))
    throw new InputError(`${where}: arch ${JSON.stringify(spec.arch)} has no Hugging Face equivalent`);
  if (spec.arch === "qwen2" && !spec.attentionBias)
    throw new InputError(`${where}: qwen2 models always have attention biases; attentionBias must be true`);
  if (spec.arch === "mistral" && spec.attentionBias)
    throw new InputError(
      `${where}: transformers' Mistral has no attention biases; use arch llama for a biased model`,
    );
  let ropeScaling: HFConfig["rope_scaling"] = null;
  if (spec.ropeScaling) {
    const r = spec.ropeScaling;
    ropeScaling = { rope_type: r.type, factor: r.factor };
    if (r.type === "llama3") {
      if (
        r.lowFreqFactor === undefined ||
        r.highFreqFactor === undefined ||
        r.originalContextLength === undefined
      )
        throw new InputError(
          `${where}: llama3 rope scaling needs lowFreqFactor, highFreqFactor and originalContextLength`,
        );
      ropeScaling.low_freq_factor = r.lowFreqFactor;
      ropeScaling.high_freq_factor = r.highFreqFactor;
    }
    if (r.originalContextLength !== undefined)
      ropeScaling.original_max_position_embeddings = r.originalContextLength;
  }
  const config: HFConfig = {
    architectures: [ARCHITECTURES[spec.arch]],
    model_type: spec.arch,
    vocab_size: spec.vocabSize,
    hidden_size: spec.hiddenSize,
    intermediate_size: spec.intermediateSize,
    num_hidden_layers: spec.numLayers,
    num_attention_heads: spec.numHeads,
    num_key_value_heads: spec.numKvHeads,
    head_dim: spec.headDim,
    max_position_embeddings: spec.contextLength,
    rms_norm_eps: spec.rmsNormEps,
    rope_theta: spec.ropeTheta,
    rope_scaling: ropeScaling,
    tie_word_embeddings: spec.tiedEmbeddings,
    hidden_act: "silu",
    initializer_range: 0.02,
    attention_dropout: 0,
    use_cache: true,
    torch_dtype: options.torchDtype ?? "float32",
  };
  if (spec.arch === "llama") {
    config.attention_bias = spec.attentionBias;
    config.mlp_bias = false;
  } else if (spec.arch === "qwen2") {
    config.use_sliding_window = false;
  } else {
    config.sliding_window = null;
  }
  if (options.bosTokenId !== undefined) config.bos_token_id = options.bosTokenId;
  if (options.eosTokenId !== undefined) config.eos_token_id = options.eosTokenId;
  if (options.padTokenId !== undefined) config.pad_token_id = options.padTokenId;
  return config;
}
