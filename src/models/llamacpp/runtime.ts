// The node-llama-cpp runtime shared by every llamacpp model in the process (one Llama per GPU setting, freed
// with its last model), and the content identity of model and adapter files used in ModelInfo.id.

import type { Llama } from "node-llama-cpp";
import { UnavailableError } from "../../util/errors.js";

export type GpuSetting = "auto" | false;

interface Shared {
  llama: Promise<Llama>;
  users: number;
}

const shared = new Map<string, Shared>();

/**
 * The process's Llama for `gpu`: prebuilt binaries only (never downloads or compiles). Every call must be
 * paired with releaseLlama.
 */
export async function acquireLlama(gpu: GpuSetting): Promise<Llama> {
  const key = String(gpu);
  let entry = shared.get(key);
  if (!entry) {
    const llama = (async () => {
      const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
      try {
        return await getLlama({ build: "never", gpu, logLevel: LlamaLogLevel.error });
      } catch (err) {
        throw new UnavailableError(
          `node-llama-cpp has no usable prebuilt binary here (gpu: ${String(gpu)}): ${(err as Error).message}`,
          {
            hint: "buckle never compiles llama.cpp; reinstall node-llama-cpp so its prebuilt binaries are present, or pass gpu: false",
            cause: err,
          },
        );
      }
    })();
    entry = { llama, users: 0 };
    shared.set(key, entry);
    llama.catch(() => shared.delete(key));
  }
  entry.users++;
  try {
    return await entry.llama;
  } catch (err) {
    entry.users--;
    throw err;
  }
}

export async function releaseLlama(gpu: GpuSetting): Promise<void> {
  const key = String(gpu);
  const entry = shared.get(key);
  if (!entry) return;
  entry.users--;
  if (entry.users > 0) return;
  shared.delete(key);
  await (await entry.llama).dispose();
}

export { fileIdentity } from "../identity.js";
