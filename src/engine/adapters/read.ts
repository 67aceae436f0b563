// Read a LoRA adapter from whichever format it is in: a GGUF LoRA file or a PEFT directory.
// Every backend and command that takes `--adapter` goes through here.

import { existsSync, statSync } from "node:fs";
import type { ModelSpec } from "../../formats/model-spec.js";
import { InputError } from "../../util/errors.js";
import type { LoraWeights } from "../types.js";
import { readGGUFLora } from "./gguf-lora.js";
import { readPeftAdapter } from "./peft.js";

/** A LoRA adapter from a GGUF LoRA file or a PEFT directory (adapter_config.json + safetensors). */
export function readLoraAdapter(path: string, spec: ModelSpec): LoraWeights {
  if (!existsSync(path)) {
    throw new InputError(`adapter ${path}: no such file or directory`, {
      hint: "pass a GGUF LoRA file (adapter.gguf) or a PEFT adapter directory",
    });
  }
  return statSync(path).isDirectory() ? readPeftAdapter(path, spec) : readGGUFLora(path, spec);
}
