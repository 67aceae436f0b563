// The node-llama-cpp runtime shared by every llamacpp model in the process (one Llama per GPU setting, freed
// with its last model), and the content identity of model and adapter files used in ModelInfo.id.

import { closeSync, openSync, readSync, statSync } from "node:fs";
import { createHash } from "node:crypto";
import { basename } from "node:path";
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

const SAMPLE = 64 * 1024;
const SAMPLES = 16;

/**
 * "<file name>:<size>:<12 hex digits>": a SHA-256 of the size, the first MiB (the GGUF header: metadata and
 * tensor table) and 16 evenly spaced 64 KiB windows of the rest (the weights), so copies share an id and
 * fine-tunes with the same header do not. Reads about 2 MiB whatever the file size.
 */
export function fileIdentity(path: string): string {
  const size = statSync(path).size;
  const hash = createHash("sha256");
  hash.update(String(size));
  const fd = openSync(path, "r");
  try {
    const read = (offset: number, length: number) => {
      const buf = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
      const n = readSync(fd, buf, 0, buf.length, offset);
      hash.update(buf.subarray(0, n));
    };
    read(0, 1024 * 1024);
    if (size > 1024 * 1024) {
      for (let i = 0; i < SAMPLES; i++) {
        const offset = Math.floor(1024 * 1024 + ((size - 1024 * 1024 - SAMPLE) * i) / (SAMPLES - 1));
        read(Math.max(0, offset), SAMPLE);
      }
    }
  } finally {
    closeSync(fd);
  }
  return `${basename(path)}:${size}:${hash.digest("hex").slice(0, 12)}`;
}
