// Hugging Face checkpoint directories (config.json + model.safetensors or a sharded index) as canonical tensors and back.
// Reading checks the weights against the config before anything is used; q/k rows are permuted to GGUF order on the way in and back on the way out.

import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { FileFormatError, InputError } from "../../util/errors.js";
import { writeFileAtomic } from "../../util/fs.js";
import { canonicalTensorShapes, type ModelSpec } from "../model-spec.js";
import {
  INDEX_FILE_NAME,
  openSafetensors,
  openSafetensorsIndex,
  writeSafetensors,
  type SafetensorsWriteDtype,
  type TensorSet,
} from "../safetensors/index.js";
import { hfConfigFromSpec, specFromHFConfig, type HFConfigOptions, type HFTorchDtype } from "./config.js";
import {
  canonicalToHF,
  hfToCanonical,
  isIgnorableHFTensor,
  needsQKPermute,
  permuteQK,
  unpermuteQK,
} from "./names.js";

export const CONFIG_FILE_NAME = "config.json";
export const WEIGHTS_FILE_NAME = "model.safetensors";
/** Names listed per category in a mismatch error; the count says how many more there are. */
const LIST_LIMIT = 10;

export interface HFCheckpoint {
  readonly dir: string;
  readonly spec: ModelSpec;
  /** Canonical names in canonicalTensorShapes order (no output.weight when embeddings are tied). */
  readonly tensorNames: readonly string[];
  /** PyTorch-order shape of a canonical tensor. */
  shape(name: string): number[];
  /** The tensor as f32 in canonical (GGUF) row order: q/k rows already permuted for llama/mistral. */
  readCanonical(name: string): Float32Array;
  close(): void;
}

function readConfig(dir: string): ModelSpec {
  const path = join(dir, CONFIG_FILE_NAME);
  if (!existsSync(path))
    throw new InputError(`${dir} has no ${CONFIG_FILE_NAME}`, {
      hint: "point at a Hugging Face model directory",
    });
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new FileFormatError(
      path,
      undefined,
      `not valid JSON (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  return specFromHFConfig(json, path);
}

/** model.safetensors wins over a sharded index when both exist, as in transformers. */
function openWeights(dir: string): TensorSet {
  const single = join(dir, WEIGHTS_FILE_NAME);
  if (existsSync(single)) return openSafetensors(single);
  if (existsSync(join(dir, INDEX_FILE_NAME))) return openSafetensorsIndex(join(dir, INDEX_FILE_NAME));
  const legacy = ["pytorch_model.bin", "pytorch_model.bin.index.json"].find((f) => existsSync(join(dir, f)));
  throw new InputError(`${dir} has no ${WEIGHTS_FILE_NAME} or ${INDEX_FILE_NAME}`, {
    hint: legacy
      ? `${legacy} (pickle) is not read for safety; convert it to safetensors with transformers first`
      : "download the model's safetensors weights",
  });
}

function listSome(label: string, items: string[]): string {
  if (items.length === 0) return "";
  const shown = items.slice(0, LIST_LIMIT).join(", ");
  return `\n  ${label} (${items.length}): ${shown}${items.length > LIST_LIMIT ? ", ..." : ""}`;
}

/** Open a Hugging Face checkpoint directory and check its weights against its config. */
export function openHFCheckpoint(dir: string): HFCheckpoint {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(`${dir} is not a directory`);
  const spec = readConfig(dir);
  const weights = openWeights(dir);
  try {
    const expected = canonicalTensorShapes(spec);
    const hfFor = new Map<string, string>();
    const unexpected: string[] = [];
    const wrongShape: string[] = [];
    for (const info of weights.tensors) {
      if (isIgnorableHFTensor(info.name)) continue;
      const canon = hfToCanonical(info.name);
      // Tied checkpoints sometimes still store lm_head (a copy of the embedding); it is redundant, not wrong.
      if (canon === "output.weight" && spec.tiedEmbeddings) continue;
      const shape = canon === undefined ? undefined : expected.get(canon);
      if (canon === undefined || shape === undefined) {
        unexpected.push(info.name);
        continue;
      }
      if (shape.length !== info.shape.length || shape.some((d, i) => d !== info.shape[i]))
        wrongShape.push(`${info.name} is [${info.shape.join(", ")}], config implies [${shape.join(", ")}]`);
      hfFor.set(canon, info.name);
    }
    const missing = [...expected.keys()].filter((c) => !hfFor.has(c)).map((c) => canonicalToHF(c) ?? c);
    if (missing.length || unexpected.length || wrongShape.length)
      throw new FileFormatError(
        weights.path,
        undefined,
        `weights do not match ${CONFIG_FILE_NAME}` +
          listSome("missing", missing) +
          listSome("unexpected", unexpected) +
          listSome("wrong shape", wrongShape),
        { hint: "check that config.json belongs to these weights and that every shard is present" },
      );

    const tensorNames = [...expected.keys()];
    const permute = needsQKPermute(spec.arch);
    const known = (name: string): number[] => {
      const shape = expected.get(name);
      if (!shape)
        throw new InputError(`${dir}: no canonical tensor ${JSON.stringify(name)}`, {
          hint:
            spec.tiedEmbeddings && name === "output.weight"
              ? "embeddings are tied: use token_embd.weight"
              : undefined,
        });
      return shape;
    };
    return {
      dir,
      spec,
      tensorNames,
      shape: (name) => known(name).slice(),
      readCanonical: (name) => {
        const shape = known(name);
        const data = weights.readF32(hfFor.get(name) as string);
        const heads = qkHeads(spec, name);
        if (!permute || heads === undefined) return data;
        return permuteQK(data, shape[0], shape.length > 1 ? shape[1] : 1, heads);
      },
      close: () => weights.close(),
    };
  } catch (err) {
    weights.close();
    throw err;
  }
}

/** Head count to permute a q/k tensor by, or undefined for tensors that are not permuted. */
function qkHeads(spec: ModelSpec, canonicalName: string): number | undefined {
  if (/^blk\.\d+\.attn_q\.(weight|bias)$/.test(canonicalName)) return spec.numHeads;
  if (/^blk\.\d+\.attn_k\.(weight|bias)$/.test(canonicalName)) return spec.numKvHeads;
  return undefined;
}

export interface WriteHFCheckpointOptions extends Omit<HFConfigOptions, "torchDtype"> {
  /** Storage type of the weights (and config torch_dtype); F32 keeps values exact. */
  dtype?: SafetensorsWriteDtype;
}

const TORCH_DTYPES: Record<SafetensorsWriteDtype, HFTorchDtype> = {
  F32: "float32",
  F16: "float16",
  BF16: "bfloat16",
};

/**
 * Write `spec` and its weights as config.json + model.safetensors in `dir`. `getCanonical` is called
 * once per tensor, as it is written, with canonical names; values are in canonical (GGUF) row order.
 * Each file is replaced atomically; the weights are written first so a config never describes missing weights.
 */
export function writeHFCheckpoint(
  dir: string,
  spec: ModelSpec,
  getCanonical: (name: string) => Float32Array,
  options: WriteHFCheckpointOptions = {},
): { configPath: string; weightsPath: string } {
  const dtype = options.dtype ?? "F32";
  if (!Object.prototype.hasOwnProperty.call(TORCH_DTYPES, dtype))
    throw new InputError(`dtype must be F32, F16 or BF16, got ${JSON.stringify(dtype)}`);
  const config = hfConfigFromSpec(spec, { ...options, torchDtype: TORCH_DTYPES[dtype] });
  const permute = needsQKPermute(spec.arch);
  const tensors = [...canonicalTensorShapes(spec)].map(([name, shape]) => {
    const hfName = canonicalToHF(name);
    if (!hfName) throw new InputError(`canonical tensor ${name} has no Hugging Face name`);
    return {
      name: hfName,
      dtype,
      shape,
      data: () => {
        const data = getCanonical(name);
        const count = shape.reduce((a, b) => a * b, 1);
        if (!(data instanceof Float32Array) || data.length !== count)
          throw new InputError(`${name}: expected ${count} f32 values for shape [${shape.join(", ")}]`);
        const heads = qkHeads(spec, name);
        return permute && heads !== undefined
          ? unpermuteQK(data, shape[0], shape.length > 1 ? shape[1] : 1, heads)
          : data;
      },
    };
  });
  const weightsPath = join(dir, WEIGHTS_FILE_NAME);
  const configPath = join(dir, CONFIG_FILE_NAME);
  writeSafetensors(weightsPath, tensors, { format: "pt" });
  writeFileAtomic(configPath, JSON.stringify(config, null, 2) + "\n");
  return { configPath, weightsPath };
}
