// Hugging Face PEFT LoRA adapters: adapter_config.json + adapter_model.safetensors, written from and read into
// LoraWeights, with the q/k row reordering between llama.cpp's rotary layout and Hugging Face's.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { needsQKPermute, permuteQK, unpermuteQK } from "../../formats/hf/index.js";
import type { ModelSpec } from "../../formats/model-spec.js";
import {
  openSafetensors,
  writeSafetensors,
  type SafetensorsWriteDtype,
} from "../../formats/safetensors/index.js";
import { FileFormatError, InputError } from "../../util/errors.js";
import { writeFileAtomic } from "../../util/fs.js";
import { LORA_TARGETS, type LoraPair, type LoraTarget, type LoraWeights } from "../types.js";
import {
  checkLoraMatchesSpec,
  HF_TARGET_MODULE,
  isLoraTarget,
  loraEntries,
  permuteHeads,
  targetShape,
} from "./lora.js";

/*
 * Row order. LoraWeights hold tensors in llama.cpp/GGUF row order because the engine runs on GGUF weights.
 * For llama/mistral, llama.cpp's q and k rows are a per-head reordering of Hugging Face's (see
 * formats/hf/names.ts). B's rows are the adapted weight's output rows, so B of q_proj/k_proj is reordered
 * exactly like the weight; A's rows index the rank and its columns the (unpermuted) hidden input, so A never
 * moves. The reordering is a permutation, so export then import gives back the identical floats.
 */

export const PEFT_CONFIG_FILE = "adapter_config.json";
export const PEFT_WEIGHTS_FILE = "adapter_model.safetensors";

/** The adapter_config.json fields buckle writes and reads (PEFT writes more; unknown ones are ignored on read). */
export interface PeftAdapterConfig {
  peft_type: "LORA";
  task_type: "CAUSAL_LM";
  base_model_name_or_path: string | null;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** Module names, or (as PEFT also allows) one regular expression over full module paths. */
  target_modules: string[] | string;
  bias: "none";
  fan_in_fan_out: boolean;
  inference_mode: boolean;
  init_lora_weights: boolean;
  layers_to_transform: number[] | null;
  modules_to_save: string[] | null;
  use_rslora: boolean;
  use_dora: boolean;
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  revision: string | null;
}

export interface WritePeftOptions {
  /** base_model_name_or_path: the Hugging Face id or local path PEFT should load the adapter onto. */
  baseModel: string;
  spec: ModelSpec;
  /** Storage type of the tensors (default F32, which keeps every value exact). */
  dtype?: SafetensorsWriteDtype;
}

/** The safetensors name PEFT gives a LoRA matrix. */
export function peftTensorName(layer: number, target: LoraTarget, which: "A" | "B"): string {
  return `base_model.model.model.layers.${layer}.${HF_TARGET_MODULE[target]}.lora_${which}.weight`;
}

/** B in Hugging Face row order (a new array for q/k of llama/mistral, else `b` itself). */
function bToHF(spec: ModelSpec, target: LoraTarget, pair: LoraPair, rank: number): Float32Array {
  const heads = permuteHeads(spec, target);
  if (heads === undefined || !needsQKPermute(spec.arch)) return pair.b;
  return unpermuteQK(pair.b, pair.out, rank, heads);
}

function bFromHF(
  spec: ModelSpec,
  target: LoraTarget,
  b: Float32Array,
  out: number,
  rank: number,
): Float32Array {
  const heads = permuteHeads(spec, target);
  if (heads === undefined || !needsQKPermute(spec.arch)) return b;
  return permuteQK(b, out, rank, heads);
}

/**
 * Write `lora` as a PEFT adapter directory that `PeftModel.from_pretrained(base, dir)` loads. Each file is
 * replaced atomically and the weights go first, so a config never describes weights that are not there yet.
 */
export function writePeftAdapter(
  dir: string,
  lora: LoraWeights,
  options: WritePeftOptions,
): { configPath: string; weightsPath: string } {
  const { spec, baseModel } = options;
  checkLoraMatchesSpec(lora, spec);
  const { rank, alpha, dropout } = lora.config;
  const tensors: { name: string; dtype: SafetensorsWriteDtype; shape: number[]; data: () => Float32Array }[] =
    [];
  const layersUsed = new Set<number>();
  for (const [i, t, pair] of loraEntries(lora)) {
    layersUsed.add(i);
    const dtype = options.dtype ?? "F32";
    tensors.push({ name: peftTensorName(i, t, "A"), dtype, shape: [rank, pair.in], data: () => pair.a });
    tensors.push({
      name: peftTensorName(i, t, "B"),
      dtype,
      shape: [pair.out, rank],
      data: () => bToHF(spec, t, pair, rank),
    });
  }
  if (tensors.length === 0) throw new InputError("the LoRA adapter has no adapted projections to write");
  const allLayers = layersUsed.size === spec.numLayers;
  const config: PeftAdapterConfig = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: baseModel,
    r: rank,
    lora_alpha: alpha,
    lora_dropout: dropout,
    target_modules: LORA_TARGETS.filter((t) => lora.config.targets.includes(t)),
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_to_transform: allLayers ? null : [...layersUsed].sort((a, b) => a - b),
    modules_to_save: null,
    use_rslora: false,
    use_dora: false,
    rank_pattern: {},
    alpha_pattern: {},
    revision: null,
  };
  const weightsPath = join(dir, PEFT_WEIGHTS_FILE);
  const configPath = join(dir, PEFT_CONFIG_FILE);
  writeSafetensors(weightsPath, tensors, { format: "pt" });
  writeFileAtomic(configPath, JSON.stringify(config, null, 2) + "\n");
  return { configPath, weightsPath };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Read and check adapter_config.json; the fields buckle cannot honour are refused with the reason. */
export function readPeftConfig(dir: string): PeftAdapterConfig {
  const path = join(dir, PEFT_CONFIG_FILE);
  if (!existsSync(path))
    throw new InputError(`${dir} has no ${PEFT_CONFIG_FILE}`, {
      hint: "pass the directory a PEFT adapter was saved to",
    });
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new FileFormatError(path, undefined, `not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!isRecord(raw)) throw new FileFormatError(path, undefined, "expected a JSON object");
  const bad = (msg: string, hint?: string): never => {
    throw new FileFormatError(path, undefined, msg, hint === undefined ? undefined : { hint });
  };
  if (raw.peft_type !== "LORA")
    bad(`peft_type is ${JSON.stringify(raw.peft_type)}; only LORA adapters are supported`);
  const r = raw.r;
  if (typeof r !== "number" || !Number.isInteger(r) || r < 1)
    bad(`r must be a positive integer, got ${JSON.stringify(r)}`);
  const alpha = raw.lora_alpha;
  if (typeof alpha !== "number" || !Number.isFinite(alpha))
    bad(`lora_alpha must be a number, got ${JSON.stringify(alpha)}`);
  if (raw.use_dora === true)
    bad("use_dora is true: DoRA adapters are not supported", "export a plain LoRA adapter");
  if (raw.fan_in_fan_out === true)
    bad("fan_in_fan_out is true (GPT-2 style Conv1D weights); llama-family adapters never use it");
  if (raw.bias !== undefined && raw.bias !== "none")
    bad(`bias is ${JSON.stringify(raw.bias)}; only bias "none" is supported`, 'train with bias="none"');
  for (const key of ["rank_pattern", "alpha_pattern"] as const) {
    const v = raw[key];
    if (isRecord(v) && Object.keys(v).length > 0)
      bad(
        `${key} is set; per-module ranks or alphas are not supported`,
        "use one r and lora_alpha for every module",
      );
  }
  const saved = raw.modules_to_save;
  if (Array.isArray(saved) && saved.length > 0)
    bad(
      `modules_to_save (${saved.join(", ")}) holds fully trained modules, which a LoRA adapter here cannot carry`,
    );
  const tm = raw.target_modules;
  const targetModules =
    typeof tm === "string"
      ? tm
      : Array.isArray(tm)
        ? tm.filter((x): x is string => typeof x === "string")
        : [];
  const dropout = typeof raw.lora_dropout === "number" ? raw.lora_dropout : 0;
  const ltt = raw.layers_to_transform;
  return {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path:
      typeof raw.base_model_name_or_path === "string" ? raw.base_model_name_or_path : null,
    r: r as number,
    lora_alpha: alpha as number,
    lora_dropout: dropout,
    target_modules: targetModules,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: raw.inference_mode !== false,
    init_lora_weights: raw.init_lora_weights !== false,
    layers_to_transform: Array.isArray(ltt) ? ltt.filter((x): x is number => typeof x === "number") : null,
    modules_to_save: null,
    use_rslora: raw.use_rslora === true,
    use_dora: false,
    rank_pattern: {},
    alpha_pattern: {},
    revision: typeof raw.revision === "string" ? raw.revision : null,
  };
}

const PEFT_NAME_RE =
  /^base_model\.model\.model\.layers\.(0|[1-9][0-9]*)\.(self_attn|mlp)\.([a-z_]+)\.lora_(A|B)(?:\.default)?\.weight$/;

/**
 * Read a PEFT LoRA adapter directory into LoraWeights (GGUF row order) for a base model of shape `spec`.
 * Targets come from the tensors present; use_rslora adapters (scale alpha / sqrt r) are converted to the
 * equivalent plain alpha (alpha * sqrt r), since LoraConfig always means alpha / r.
 */
export function readPeftAdapter(dir: string, spec: ModelSpec): LoraWeights {
  const config = readPeftConfig(dir);
  const weightsPath = join(dir, PEFT_WEIGHTS_FILE);
  if (!existsSync(weightsPath)) {
    const hasBin = existsSync(join(dir, "adapter_model.bin"));
    throw new InputError(`${dir} has no ${PEFT_WEIGHTS_FILE}`, {
      hint: hasBin
        ? "only the pickle adapter_model.bin is there; save the adapter with safe_serialization=True"
        : "the adapter weights are missing",
    });
  }
  const rank = config.r;
  const file = openSafetensors(weightsPath);
  try {
    const found = new Map<string, { a?: string; b?: string; layer: number; target: LoraTarget }>();
    const unknown: string[] = [];
    for (const t of file.tensors) {
      const m = PEFT_NAME_RE.exec(t.name);
      const target = m?.[3];
      if (!m || !target || !isLoraTarget(target) || HF_TARGET_MODULE[target] !== `${m[2]}.${target}`) {
        unknown.push(t.name);
        continue;
      }
      const layer = Number(m[1]);
      if (layer >= spec.numLayers)
        throw new FileFormatError(
          weightsPath,
          undefined,
          `${t.name}: layer ${layer} but the model has ${spec.numLayers}`,
          {
            hint: "was the adapter trained for this base model?",
          },
        );
      const key = `${layer}.${target}`;
      const entry = found.get(key) ?? { layer, target };
      if (m[4] === "A") entry.a = t.name;
      else entry.b = t.name;
      found.set(key, entry);
    }
    if (unknown.length > 0)
      throw new FileFormatError(
        weightsPath,
        undefined,
        `${unknown.length} tensor(s) are not LoRA A/B matrices of a llama-family projection, e.g. ${unknown
          .slice(0, 3)
          .map((n) => JSON.stringify(n))
          .join(", ")}`,
        { hint: "adapters on embeddings, lm_head or norms are not supported" },
      );
    if (found.size === 0)
      throw new FileFormatError(weightsPath, undefined, "the adapter holds no LoRA tensors");
    const layers: LoraWeights["layers"] = Array.from({ length: spec.numLayers }, () => ({}));
    const targets = new Set<LoraTarget>();
    for (const { a, b, layer, target } of found.values()) {
      if (!a || !b)
        throw new FileFormatError(
          weightsPath,
          undefined,
          `layer ${layer} ${target} has lora_${a ? "A" : "B"} but no lora_${a ? "B" : "A"}`,
        );
      const { in: n, out } = targetShape(spec, target);
      const shapeA = file.tensor(a)?.shape ?? [];
      const shapeB = file.tensor(b)?.shape ?? [];
      if (shapeA.join(",") !== `${rank},${n}` || shapeB.join(",") !== `${out},${rank}`)
        throw new FileFormatError(
          weightsPath,
          undefined,
          `layer ${layer} ${target}: lora_A is [${shapeA.join(", ")}] and lora_B [${shapeB.join(", ")}], ` +
            `expected [${rank}, ${n}] and [${out}, ${rank}] for r=${rank}`,
          { hint: "was the adapter trained for this base model?" },
        );
      const listed = config.target_modules;
      if (Array.isArray(listed) && !listed.some((m) => m === target || m.endsWith(`.${target}`)))
        throw new FileFormatError(
          weightsPath,
          undefined,
          `holds ${target} tensors but target_modules does not list it`,
          {
            hint: `target_modules is ${JSON.stringify(listed)}`,
          },
        );
      targets.add(target);
      layers[layer][target] = {
        a: file.readF32(a),
        b: bFromHF(spec, target, file.readF32(b), out, rank),
        in: n,
        out,
      };
    }
    const alpha = config.use_rslora ? config.lora_alpha * Math.sqrt(rank) : config.lora_alpha;
    const lora: LoraWeights = {
      config: {
        rank,
        alpha,
        dropout: config.lora_dropout,
        targets: LORA_TARGETS.filter((t) => targets.has(t)),
      },
      layers,
    };
    checkLoraMatchesSpec(lora, spec);
    return lora;
  } finally {
    file.close();
  }
}
