// Model references: one string names a model anywhere (file, Hugging Face, OpenAI-compatible server, backend
// prefix, random factory model); parseModelRef reads it, resolveHfRef downloads, openModel opens a LanguageModel.
//
// Grammar (docs/MODEL-REFS.md has the long form):
//   <path>                                a local file or directory; .gguf files open with llamacpp, directories
//                                         (Hugging Face checkpoints) with the native backend
//   llamacpp:<path>                       a GGUF file through node-llama-cpp
//   native:<path>                         a GGUF file or HF checkpoint directory through buckle's own engine
//   hf:<org>/<repo>[@<revision>]/<file>   a file of a Hugging Face repository, downloaded into the cache once
//   openai:<model>@<url>[,<url>...]       an OpenAI-compatible server (vLLM, llama-server, Ollama, OpenAI)
//   random:<vocab>[?key=value&...]        a random-weight factory model (tests, demos), built once into the cache

import { createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { cacheDir } from "../util/fs.js";
import { InputError, UnavailableError } from "../util/errors.js";
import type { LanguageModel } from "./types.js";
import type { FactoryDType, RandomModelOptions } from "./factory.js";
import type { NativeModelOptions } from "./native/index.js";
import type { LlamaCppOptions } from "./llamacpp/index.js";
import type { OpenAIModelOptions } from "./openai/index.js";

export type ModelRef =
  | { kind: "file"; path: string }
  | { kind: "llamacpp"; path: string }
  | { kind: "native"; path: string }
  | { kind: "hf"; repo: string; revision: string; file: string }
  | { kind: "openai"; model: string; baseUrls: string[] }
  | { kind: "random"; options: RandomModelOptions };

const SCHEMES = ["llamacpp", "native", "hf", "openai", "random"] as const;
const HINT = `use a path, or one of ${SCHEMES.map((s) => `${s}:`).join(" ")} (see docs/MODEL-REFS.md)`;

/** Parse a model reference; throws InputError saying what is wrong with it and what is expected. */
export function parseModelRef(ref: string): ModelRef {
  if (typeof ref !== "string" || ref.trim() === "")
    throw new InputError("empty model reference", { hint: HINT });
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):(.*)$/s.exec(ref);
  // One letter before ":" is a Windows drive (C:\models\x.gguf), not a scheme.
  if (!m || m[1].length === 1) return { kind: "file", path: ref };
  const scheme = m[1].toLowerCase();
  const rest = m[2];
  const need = (what: string): never => {
    throw new InputError(`model reference "${ref}": ${what}`, { hint: HINT });
  };
  switch (scheme) {
    case "llamacpp":
    case "native":
      if (rest === "") need(`${scheme}: needs a path after the colon`);
      return { kind: scheme, path: rest };
    case "hf": {
      const parts = rest.split("/");
      if (parts.length < 3 || parts.some((p) => p === ""))
        need(
          "hf: needs <org>/<repo>/<file>, e.g. hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q8_0.gguf",
        );
      const [org, repoPart, ...fileParts] = parts;
      const at = repoPart.indexOf("@");
      const repo = at < 0 ? repoPart : repoPart.slice(0, at);
      const revision = at < 0 ? "main" : repoPart.slice(at + 1);
      if (repo === "" || revision === "")
        need("hf: the repository and the revision after @ must not be empty");
      if (fileParts.some((p) => p === "." || p === ".."))
        need("hf: the file path must not contain . or .. segments");
      return { kind: "hf", repo: `${org}/${repo}`, revision, file: fileParts.join("/") };
    }
    case "openai": {
      // The model name ends at the "@" that starts the first URL (model names may contain "@", URLs too).
      const at = rest.search(/@https?:\/\//i);
      if (at <= 0) need("openai: needs <model>@<url>, e.g. openai:my-model@http://localhost:8000/v1");
      const model = rest.slice(0, at);
      const baseUrls = rest
        .slice(at + 1)
        .split(",")
        .map((u) => u.trim());
      for (const u of baseUrls) {
        let ok: boolean;
        try {
          const url = new URL(u);
          ok = url.protocol === "http:" || url.protocol === "https:";
        } catch {
          ok = false;
        }
        if (!ok) need(`openai: "${u}" is not an http(s) URL`);
      }
      return { kind: "openai", model, baseUrls };
    }
    case "random":
      return { kind: "random", options: parseRandomRef(rest, need) };
    default:
      return need(`unknown scheme "${m[1]}:"`);
  }
}

const RANDOM_KEYS: Record<string, keyof RandomModelOptions> = {
  arch: "arch",
  hidden: "hiddenSize",
  layers: "numLayers",
  heads: "numHeads",
  kvHeads: "numKvHeads",
  ffn: "intermediateSize",
  seed: "seed",
  dtype: "dtype",
  initStd: "initStd",
  context: "contextLength",
  template: "chatTemplate",
};

function parseRandomRef(rest: string, need: (what: string) => never): RandomModelOptions {
  const q = rest.indexOf("?");
  const vocab = q < 0 ? rest : rest.slice(0, q);
  if (vocab === "") need("random: needs a vocabulary, e.g. random:llama-spm?hidden=64&layers=2");
  const opts: RandomModelOptions = {
    arch: "llama",
    vocab: vocab.includes("/") || vocab.endsWith(".gguf") ? vocab : `builtin:${vocab}`,
    hiddenSize: 64,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 128,
    seed: 1,
  };
  const record = opts as unknown as Record<string, unknown>;
  for (const [key, value] of new URLSearchParams(q < 0 ? "" : rest.slice(q + 1))) {
    const field = RANDOM_KEYS[key];
    if (!field) need(`random: unknown key "${key}" (known: ${Object.keys(RANDOM_KEYS).join(", ")})`);
    if (field === "arch") {
      if (!["llama", "qwen2", "mistral"].includes(value))
        need(`random: arch must be llama, qwen2 or mistral`);
      record[field] = value;
    } else if (field === "dtype") {
      if (!["f32", "f16", "q8_0"].includes(value)) need(`random: dtype must be f32, f16 or q8_0`);
      record[field] = value as FactoryDType;
    } else if (field === "chatTemplate") {
      record[field] = value;
    } else {
      const n = Number(value);
      if (value === "" || !Number.isFinite(n)) need(`random: ${key} must be a number, got "${value}"`);
      record[field] = n;
    }
  }
  return opts;
}

/** The reference in its canonical text form (parseModelRef(formatModelRef(r)) deep-equals r). */
export function formatModelRef(ref: ModelRef): string {
  switch (ref.kind) {
    case "file":
      return ref.path;
    case "llamacpp":
    case "native":
      return `${ref.kind}:${ref.path}`;
    case "hf": {
      const [org, repo] = ref.repo.split("/");
      return `hf:${org}/${repo}${ref.revision === "main" ? "" : `@${ref.revision}`}/${ref.file}`;
    }
    case "openai":
      return `openai:${ref.model}@${ref.baseUrls.join(",")}`;
    case "random": {
      const o = ref.options as unknown as Record<string, unknown>;
      const params = new URLSearchParams();
      for (const [key, field] of Object.entries(RANDOM_KEYS))
        if (o[field] !== undefined) params.set(key, String(o[field]));
      const vocab = ref.options.vocab.startsWith("builtin:") ? ref.options.vocab.slice(8) : ref.options.vocab;
      return `random:${vocab}?${params.toString()}`;
    }
  }
}

export interface DownloadProgress {
  file: string;
  /** Bytes on disk so far (a resumed download starts above 0). */
  received: number;
  /** Full size when the server says it, else undefined. */
  total?: number;
}

export interface ResolveHfOptions {
  /** Where downloads go; default <cache>/hf (cacheDir("hf")). */
  cacheRoot?: string;
  /** Called as bytes arrive (throttled by the caller if needed). */
  onProgress?: (p: DownloadProgress) => void;
  /** Give up when the server has not answered (headers) within this many ms; default 30000. */
  connectTimeoutMs?: number;
  /** Hugging Face token; default $HF_TOKEN, else $HUGGING_FACE_HUB_TOKEN. */
  token?: string;
  /** Server; default $HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  signal?: AbortSignal;
}

/** Where resolveHfRef keeps a file: <cacheRoot>/<org>/<repo>/<revision>/<file>. */
export function hfCachePath(
  ref: { repo: string; revision: string; file: string },
  cacheRoot = cacheDir("hf"),
): string {
  return join(cacheRoot, ...ref.repo.split("/"), ref.revision, ...ref.file.split("/"));
}

/**
 * The local path of an hf: reference, downloading it first when it is not cached. Downloads go to
 * "<path>.partial" and are renamed into place when complete; an interrupted download resumes with an HTTP Range
 * request. Offline, this fails at once (or after connectTimeoutMs) with an UnavailableError saying where to put
 * the file by hand.
 */
export async function resolveHfRef(
  ref: string | Extract<ModelRef, { kind: "hf" }>,
  options: ResolveHfOptions = {},
): Promise<string> {
  const parsed = typeof ref === "string" ? parseModelRef(ref) : ref;
  if (parsed.kind !== "hf")
    throw new InputError(`"${String(ref)}" is not an hf: model reference`, { hint: HINT });
  const dest = hfCachePath(parsed, options.cacheRoot);
  if (existsSync(dest)) return dest;
  const endpoint = (options.endpoint ?? process.env.HF_ENDPOINT ?? "https://huggingface.co").replace(
    /\/+$/,
    "",
  );
  const url = `${endpoint}/${parsed.repo}/resolve/${encodeURIComponent(parsed.revision)}/${parsed.file
    .split("/")
    .map(encodeURIComponent)
    .join("/")}`;
  const token = options.token ?? process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN;
  const partial = `${dest}.partial`;
  mkdirSync(dirname(dest), { recursive: true });
  const have = existsSync(partial) ? statSync(partial).size : 0;
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (have > 0) headers.range = `bytes=${have}-`;
  const where = `hf:${parsed.repo}/${parsed.file}`;
  const manual = `download ${url} on a connected machine and put it at ${dest}, or pass the local path instead`;

  const connect = new AbortController();
  const timer = setTimeout(() => connect.abort(), options.connectTimeoutMs ?? 30000);
  const signal = options.signal ? AbortSignal.any([options.signal, connect.signal]) : connect.signal;
  let response: Response;
  try {
    response = await fetch(url, { headers, signal, redirect: "follow" });
  } catch (err) {
    if (options.signal?.aborted) throw err;
    const why = connect.signal.aborted
      ? `no answer within ${options.connectTimeoutMs ?? 30000} ms`
      : describeFetchError(err);
    throw new UnavailableError(`cannot download ${where} from ${endpoint} (offline?): ${why}`, {
      hint: manual,
      cause: err,
    });
  } finally {
    clearTimeout(timer);
  }
  if (response.status === 401 || response.status === 403) {
    throw new UnavailableError(`${where}: ${endpoint} refused the download (HTTP ${response.status})`, {
      hint: token
        ? "your HF_TOKEN has no access to this repository: accept its license on huggingface.co"
        : "the repository is gated or private: set HF_TOKEN to a Hugging Face access token",
    });
  }
  if (response.status === 404) {
    throw new InputError(`${where}: no such file at revision ${parsed.revision} (HTTP 404 from ${url})`, {
      hint: "check the organisation, repository and file names (they are case-sensitive)",
    });
  }
  if (response.status !== 200 && response.status !== 206) {
    throw new UnavailableError(`${where}: download failed with HTTP ${response.status} from ${url}`, {
      hint: manual,
    });
  }
  // 206: the server continues where the partial file ends; 200: it sends everything, so start over.
  const resume = response.status === 206 && have > 0;
  let received = resume ? have : 0;
  const length = Number(response.headers.get("content-length") ?? NaN);
  const total = Number.isFinite(length) ? received + length : undefined;
  const out = createWriteStream(partial, { flags: resume ? "a" : "w" });
  try {
    if (!response.body) throw new UnavailableError(`${where}: the server sent no body`, { hint: manual });
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once("drain", resolve));
      received += chunk.length;
      options.onProgress?.({ file: where, received, total });
    }
  } catch (err) {
    await new Promise<void>((resolve) => out.end(resolve));
    if (err instanceof UnavailableError || options.signal?.aborted) throw err;
    throw new UnavailableError(
      `${where}: the download broke off after ${received} bytes (${describeFetchError(err)})`,
      { hint: "run the same command again: the download resumes where it stopped", cause: err },
    );
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  if (total !== undefined && received !== total) {
    throw new UnavailableError(`${where}: got ${received} of ${total} bytes`, {
      hint: "run the same command again: the download resumes where it stopped",
    });
  }
  renameSync(partial, dest);
  return dest;
}

function describeFetchError(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  const code = e?.cause?.code;
  return [e?.message, code ?? e?.cause?.message].filter(Boolean).join(": ") || String(err);
}

export interface OpenModelOptions {
  /** Options for GGUF files opened with node-llama-cpp (file, llamacpp:, hf:, random: references). */
  llamacpp?: Omit<LlamaCppOptions, "modelPath">;
  /** Options for openai: references (model and baseUrls come from the reference). */
  openai?: Omit<OpenAIModelOptions, "model" | "baseUrls">;
  /** Options for the native engine (the path comes from the reference). */
  native?: Omit<NativeModelOptions, "modelPath">;
  /** Backend for plain paths, hf: and random: references; default llamacpp for files, native for directories. */
  backend?: "llamacpp" | "native";
  /** Download settings for hf: references. */
  hf?: ResolveHfOptions;
}

/** Open any model reference as a LanguageModel. */
export async function openModel(
  ref: string | ModelRef,
  options: OpenModelOptions = {},
): Promise<LanguageModel> {
  const parsed = typeof ref === "string" ? parseModelRef(ref) : ref;
  switch (parsed.kind) {
    case "llamacpp":
      return openLlamaCpp(parsed.path, options);
    case "native":
      return openNative(parsed.path, options);
    case "file": {
      if (!existsSync(parsed.path)) {
        throw new InputError(`model ${parsed.path} does not exist`, {
          hint: `pass an existing .gguf file or checkpoint directory; ${HINT}`,
        });
      }
      const backend = options.backend ?? (statSync(parsed.path).isDirectory() ? "native" : "llamacpp");
      return backend === "native" ? openNative(parsed.path, options) : openLlamaCpp(parsed.path, options);
    }
    case "hf": {
      const path = await resolveHfRef(parsed, options.hf);
      return options.backend === "native" ? openNative(path, options) : openLlamaCpp(path, options);
    }
    case "random": {
      const path = await randomModelPath(parsed.options);
      return options.backend === "native" ? openNative(path, options) : openLlamaCpp(path, options);
    }
    case "openai": {
      const mod = await import("./openai/index.js").catch((err: unknown) => {
        throw new UnavailableError(`the openai backend cannot be loaded: ${(err as Error).message}`, {
          cause: err,
        });
      });
      return mod.createOpenAIModel({ ...options.openai, model: parsed.model, baseUrls: parsed.baseUrls });
    }
  }
}

async function openLlamaCpp(path: string, options: OpenModelOptions): Promise<LanguageModel> {
  const { createLlamaCppModel } = await import("./llamacpp/index.js");
  return createLlamaCppModel({ ...options.llamacpp, modelPath: path });
}

async function openNative(path: string, options: OpenModelOptions): Promise<LanguageModel> {
  const { createNativeModel } = await import("./native/index.js");
  return createNativeModel({ ...options.native, modelPath: path });
}

/** Build (once) the factory model a random: reference describes, in <cache>/models/random, and return its path. */
export async function randomModelPath(
  options: RandomModelOptions,
  root = cacheDir("models", "random"),
): Promise<string> {
  const { createRandomModel } = await import("./factory.js");
  const key = createHash("sha256")
    .update(JSON.stringify(sortKeys(options)))
    .digest("hex")
    .slice(0, 16);
  const path = join(root, `${key}.gguf`);
  if (!existsSync(path)) {
    mkdirSync(root, { recursive: true });
    try {
      createRandomModel(options, path);
    } catch (err) {
      rmSync(path, { force: true });
      throw err;
    }
  }
  return path;
}

function sortKeys(o: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}
