// How commands open a model: a reference plus --backend, --adapter and --threads flags, turned into a
// LanguageModel through the one reference parser, with the local tokenizer where the backend has one.

import { existsSync } from "node:fs";
import { loadModelWeights, type LoraWeights } from "../engine/index.js";
import { readLoraAdapter } from "../engine/adapters/index.js";
import { openModel, parseModelRef, type LanguageModel } from "../models/index.js";
import { loadTokenizerAndTemplate } from "../formats/load.js";
import type { Tokenizer } from "../formats/tokenizer/index.js";
import { InputError } from "../util/errors.js";

export const BACKENDS = ["native", "llamacpp", "openai"] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface OpenFlags {
  model: string;
  backend?: string;
  adapter?: string;
  threads?: number;
}

export interface OpenedModel {
  model: LanguageModel;
  /** Our tokenizer for the model, when it is a local file (native and llamacpp backends). */
  tokenizer?: Tokenizer;
}

/** Open `flags.model` with the backend the flags (or the reference's scheme) choose. */
export async function openModelFromFlags(flags: OpenFlags): Promise<OpenedModel> {
  const backend = flags.backend;
  if (backend !== undefined && !(BACKENDS as readonly string[]).includes(backend)) {
    throw new InputError(`--backend must be one of ${BACKENDS.join(", ")}, got "${backend}"`);
  }
  if (flags.model.startsWith("builtin:")) {
    throw new InputError(`${flags.model} is a vocabulary, not a model with weights`, {
      hint: "make a test model with `buckle model create -o tiny.gguf` (or use random:<vocab>) and pass that",
    });
  }
  const ref = parseModelRef(flags.model);
  if (ref.kind === "openai") {
    if (backend !== undefined && backend !== "openai") {
      throw new InputError(`${flags.model} is served over HTTP; --backend ${backend} cannot open it`);
    }
    if (flags.adapter !== undefined) {
      throw new InputError("--adapter cannot be sent to an OpenAI-compatible server", {
        hint: "load the adapter on the server (vLLM --lora-modules) and name it as the model",
      });
    }
    return { model: await openModel(ref) };
  }
  if (backend === "openai") {
    throw new InputError(`--backend openai needs an openai:<model>@<url> reference, got ${flags.model}`);
  }
  if ((ref.kind === "file" || ref.kind === "native" || ref.kind === "llamacpp") && !existsSync(ref.path)) {
    throw new InputError(`--model: no such file or directory ${ref.path}`);
  }
  const adapters = flags.adapter === undefined ? [] : [{ path: flags.adapter }];
  if (flags.adapter !== undefined && !existsSync(flags.adapter)) {
    throw new InputError(`--adapter: no such file or directory ${flags.adapter}`, {
      hint: "pass a GGUF LoRA file (adapter.gguf) or a PEFT adapter directory",
    });
  }
  const model = await openModel(ref, {
    backend: backend === "native" || backend === "llamacpp" ? backend : undefined,
    native: { adapters, threads: flags.threads },
    llamacpp: { adapters, threads: flags.threads },
  });
  const path = "path" in ref ? ref.path : undefined;
  return {
    model,
    tokenizer: path && existsSync(path) ? loadTokenizerAndTemplate(path).tokenizer : undefined,
  };
}

/** Weights for the native engine (training), with our tokenizer and the model's chat template. */
export function loadModelAndAdapter(
  modelPath: string,
  adapterPath: string | undefined,
): ReturnType<typeof loadTokenizerAndTemplate> & {
  model: ReturnType<typeof loadModelWeights>;
  lora?: LoraWeights;
} {
  if (modelPath.startsWith("builtin:")) {
    throw new InputError(`${modelPath} is a vocabulary, not a model with weights`, {
      hint: "make a test model with `buckle model create -o tiny.gguf` and pass that",
    });
  }
  if (!existsSync(modelPath)) throw new InputError(`--model: no such file or directory ${modelPath}`);
  const model = loadModelWeights(modelPath);
  const tt = loadTokenizerAndTemplate(modelPath);
  const lora = adapterPath === undefined ? undefined : readLoraAdapter(adapterPath, model.spec);
  return { ...tt, model, lora };
}
