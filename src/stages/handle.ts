// ModelHandle: the small JSON record of a base or trained model (base GGUF + LoRA adapter + lineage) that every
// stage takes and returns, how to open it on any local backend, and how an adapter is folded in before stacking.

import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { mergeLoraIntoGGUF, readLoraAdapter } from "../engine/adapters/index.js";
import { openGGUF } from "../formats/gguf/index.js";
import { specFromGGUF } from "../formats/model-gguf.js";
import type { ModelSpec } from "../formats/model-spec.js";
import {
  openModel,
  parseModelRef,
  randomModelPath,
  resolveHfRef,
  type GpuSetting,
  type LanguageModel,
} from "../models/index.js";
import { FileFormatError, InputError } from "../util/errors.js";
import { writeFileAtomic } from "../util/fs.js";

/** The file a trained model's handle is written to, in its output directory. */
export const HANDLE_FILE = "model.json";

export interface ModelHandle {
  /** The reference the base was named by (a path, random:..., hf:...); for trained models, their base GGUF. */
  ref: string;
  /** Absolute path of the GGUF the adapter applies to (for stacked models, a GGUF with earlier adapters merged). */
  gguf: string;
  /** GGUF LoRA adapter (llama.cpp and native both load it); absent for a base model. */
  adapter?: string;
  /** The same adapter in PEFT form (adapter_config.json + adapter_model.safetensors). */
  peftDir?: string;
  /** The base with the adapter merged in, when the run was asked to write it. */
  merged?: string;
  /** What made it: "base", "pre", "in", "post", "attack:exharm", "train", ... */
  stage?: string;
  /** The JSON record of the run (recipe, seeds, data hash, versions, losses). */
  record?: string;
  /** False when training stopped early (resumable). */
  completed?: boolean;
  /** The model this one was trained from. */
  parent?: ModelHandle;
}

/**
 * A handle on a base model named by any local reference: a GGUF path, native:/llamacpp: paths, random:<vocab>
 * (built into the cache) or hf: (downloaded into the cache). A model.json path reads that handle back.
 */
export async function baseHandle(ref: string): Promise<ModelHandle> {
  if (ref.endsWith(".json") && existsSync(ref)) {
    const handle = readHandle(ref);
    // a stopped run writes its handle too (it is resumable), but it is not a model to build on yet
    if (handle.completed === false)
      throw new InputError(`${ref}: the training that made this model stopped before its last step`, {
        hint: "finish it first: rerun the command that made it with --resume",
      });
    return handle;
  }
  const parsed = parseModelRef(ref);
  let gguf: string;
  switch (parsed.kind) {
    case "file":
    case "native":
    case "llamacpp":
      gguf = parsed.path;
      break;
    case "random":
      gguf = await randomModelPath(parsed.options);
      break;
    case "hf":
      gguf = await resolveHfRef(parsed);
      break;
    case "openai":
      throw new InputError(`${ref} is served over HTTP; buckle can only fine-tune local GGUF models`, {
        hint: "pass the model's GGUF file (or export a training job for the server's own fine-tuning)",
      });
  }
  if (!existsSync(gguf)) throw new InputError(`model ${gguf}: no such file`);
  if (statSync(gguf).isDirectory()) {
    throw new InputError(`model ${gguf} is a directory; the stages train GGUF models`, {
      hint: "convert the checkpoint to GGUF (llama.cpp's convert_hf_to_gguf.py) and pass the .gguf file",
    });
  }
  specOf(gguf);
  return { ref, gguf: resolve(gguf), stage: "base" };
}

/** A handle for a base GGUF with an adapter on top (e.g. a compromised model that arrived as base + LoRA). */
export async function adapterHandle(base: string | ModelHandle, adapter: string): Promise<ModelHandle> {
  const parent = typeof base === "string" ? await baseHandle(base) : base;
  if (!existsSync(adapter)) {
    throw new InputError(`adapter ${adapter}: no such file or directory`, {
      hint: "pass a GGUF LoRA file (adapter.gguf) or a PEFT adapter directory",
    });
  }
  if (parent.adapter || parent.peftDir) {
    throw new InputError(`the model already carries an adapter (${parent.adapter ?? parent.peftDir})`, {
      hint: "pass either the model.json of the earlier run, or its base GGUF with --adapter, not both",
    });
  }
  const isDir = statSync(adapter).isDirectory();
  // Read once now so a mismatched adapter fails here rather than in the middle of a run.
  readLoraAdapter(adapter, specOf(parent.gguf));
  return {
    ref: parent.ref,
    gguf: parent.gguf,
    ...(isDir ? { peftDir: resolve(adapter) } : { adapter: resolve(adapter) }),
    stage: "given",
  };
}

/** Write a handle as JSON (paths are kept absolute so the file can be read from anywhere). */
export function writeHandle(path: string, handle: ModelHandle): void {
  writeFileAtomic(path, JSON.stringify(handle, null, 2) + "\n");
}

/** Read a handle back from a model.json file or the directory holding one. */
export function readHandle(path: string): ModelHandle {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, HANDLE_FILE) : path;
  if (!existsSync(file)) {
    throw new InputError(`no model handle at ${file}`, {
      hint: "pass the model.json a `buckle defend`, `buckle attack` or `buckle train` run wrote",
    });
  }
  let handle: ModelHandle;
  try {
    handle = JSON.parse(readFileSync(file, "utf8")) as ModelHandle;
  } catch (err) {
    throw new FileFormatError(file, undefined, `not valid JSON (${(err as Error).message})`);
  }
  if (typeof handle?.gguf !== "string" || typeof handle.ref !== "string")
    throw new FileFormatError(file, undefined, 'a model handle needs string fields "ref" and "gguf"');
  for (const p of [handle.gguf, handle.adapter, handle.peftDir])
    if (p !== undefined && !existsSync(p))
      throw new InputError(`${file}: the handle names ${p}, which no longer exists`, {
        hint: "handles hold absolute paths: keep the run's files where they were written",
      });
  return handle;
}

export interface OpenHandleOptions {
  /** Default llamacpp (fast inference); native runs our engine. */
  backend?: "native" | "llamacpp";
  threads?: number;
  /** llama.cpp only: "auto" (default) offloads to a GPU when there is one; false stays on CPU. */
  gpu?: GpuSetting;
  /** Sequences decoded together. */
  parallel?: number;
  /** llama.cpp only: tokens per sequence. */
  contextSize?: number;
}

/** Open a handle as a LanguageModel: its GGUF with its adapter applied (unmerged). */
export async function openHandle(
  handle: ModelHandle,
  options: OpenHandleOptions = {},
): Promise<LanguageModel> {
  const adapterPath = handle.adapter ?? handle.peftDir;
  const adapters = adapterPath === undefined ? [] : [{ path: adapterPath }];
  const backend = options.backend ?? "llamacpp";
  return openModel(
    { kind: backend, path: handle.gguf },
    {
      native: { adapters, threads: options.threads, parallel: options.parallel },
      llamacpp: {
        adapters,
        threads: options.threads,
        gpu: options.gpu,
        parallel: options.parallel,
        contextSize: options.contextSize,
      },
    },
  );
}

/**
 * The GGUF a new adapter is trained on for this handle. A base model is used as is; a model with an adapter
 * has it merged into a new GGUF first (its handle's `merged` file when the run wrote one), because the engine
 * trains one LoRA over fixed weights. Stacking therefore composes W + BA (earlier) + B'A' (new).
 */
export function foldedGGUF(handle: ModelHandle, outPath: string): string {
  const adapterPath = handle.adapter ?? handle.peftDir;
  if (adapterPath === undefined) return handle.gguf;
  if (handle.merged && existsSync(handle.merged)) return handle.merged;
  const lora = readLoraAdapter(adapterPath, specOf(handle.gguf));
  return mergeLoraIntoGGUF(handle.gguf, lora, outPath).path;
}

/** The model's shape from its GGUF header (no weights read); says so when the file is not a model. */
export function specOf(path: string): ModelSpec {
  let file;
  try {
    file = openGGUF(path);
  } catch (err) {
    throw new InputError(`model ${path}: not a readable GGUF file (${(err as Error).message})`, {
      cause: err,
    });
  }
  try {
    if (file.getString("general.type") === "adapter")
      throw new InputError(`model ${path} is a LoRA adapter, not a model`, {
        hint: "pass the base model as --model and the adapter as --adapter",
      });
    return specFromGGUF(file);
  } finally {
    file.close();
  }
}
