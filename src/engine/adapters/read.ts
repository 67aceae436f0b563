// Read a LoRA adapter from whichever format it is in: a GGUF LoRA file or a PEFT directory.
// Every backend and command that takes `--adapter` goes through here (llama.cpp gets a GGUF LoRA either way).

import { existsSync, statSync } from "node:fs";
import type { ModelSpec } from "../../formats/model-spec.js";
import { InputError } from "../../util/errors.js";
import type { LoraWeights } from "../types.js";
import { createHash } from "node:crypto";
import { join, resolve } from "node:path";
import { openGGUF } from "../../formats/gguf/index.js";
import { readGGUFLora, writeGGUFLora } from "./gguf-lora.js";
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, readPeftAdapter } from "./peft.js";

/** A LoRA adapter from a GGUF LoRA file or a PEFT directory (adapter_config.json + safetensors). */
export function readLoraAdapter(path: string, spec: ModelSpec): LoraWeights {
  if (!existsSync(path)) {
    throw new InputError(`adapter ${path}: no such file or directory`, {
      hint: "pass a GGUF LoRA file (adapter.gguf) or a PEFT adapter directory",
    });
  }
  return statSync(path).isDirectory() ? readPeftAdapter(path, spec) : readGGUFLora(path, spec);
}

/**
 * A GGUF LoRA file llama.cpp can load for `path`: the file itself once checked to be a LoRA adapter, or, for a
 * PEFT directory, a GGUF conversion written once into `cacheDir` (keyed by the adapter files' size and mtime).
 */
export function ggufLoraFileFor(path: string, spec: ModelSpec, cacheDir: string): string {
  if (!existsSync(path)) {
    throw new InputError(`adapter ${path}: no such file or directory`, {
      hint: "pass a GGUF LoRA file (adapter.gguf) or a PEFT adapter directory",
    });
  }
  if (!statSync(path).isDirectory()) {
    const file = openGGUF(path);
    try {
      if (file.getString("general.type") !== "adapter" || file.getString("adapter.type") !== "lora") {
        throw new InputError(
          `adapter ${path}: not a LoRA adapter (general.type must be "adapter" and adapter.type "lora")`,
          { hint: "pass the adapter.gguf that `buckle train` wrote, or a PEFT adapter directory" },
        );
      }
    } finally {
      file.close();
    }
    return path;
  }
  const key = createHash("sha256");
  for (const f of [PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE]) {
    const p = join(path, f);
    const st = existsSync(p) ? statSync(p) : undefined;
    key.update(`${resolve(p)}:${st?.size}:${st?.mtimeMs};`);
  }
  const out = join(cacheDir, `${key.digest("hex").slice(0, 16)}.gguf`);
  if (!existsSync(out)) writeGGUFLora(out, readPeftAdapter(path, spec), spec);
  return out;
}
