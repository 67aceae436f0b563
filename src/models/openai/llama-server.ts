// A real OpenAI-compatible peer for tests: finds (or builds, once, through scripts/build-llama-server.sh) the
// llama-server binary cached by llama.cpp commit, and starts/stops it on 127.0.0.1 serving a given GGUF.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRandomModel, type CreatedModel } from "../factory.js";
import { builtinVocabCommit } from "../../formats/vocabs.js";
import { cacheDir } from "../../util/fs.js";
import { UnavailableError } from "../../util/errors.js";
import { tinyModelOptions } from "../../testing/models.js";

/** Path the build script caches the binary at, for the llama.cpp commit node-llama-cpp bundles. */
export function cachedLlamaServerPath(): string {
  return cacheDir("llama-server", builtinVocabCommit(), "llama-server");
}

/** Build tools the script needs that are not on PATH ([] when all are there). */
export function missingBuildTools(): string[] {
  const has = (tool: string): boolean =>
    spawnSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" }).status === 0;
  const missing = ["git", "cmake"].filter((t) => !has(t));
  if (!has("c++") && !has("g++") && !has("clang++")) missing.push("a C++ compiler (g++)");
  return missing;
}

/**
 * Why tests that need llama-server must skip here, or undefined when it is built or can be built. Only missing
 * build tools skip; a failed build is an error, not a skip.
 */
export function llamaServerSkipReason(): string | undefined {
  if (process.env.BUCKLE_LLAMA_SERVER || existsSync(cachedLlamaServerPath())) return undefined;
  const missing = missingBuildTools();
  return missing.length > 0
    ? `llama-server is not built and cannot be: ${missing.join(", ")} not on PATH (apt-get install -y cmake g++ git)`
    : undefined;
}

/** scripts/build-llama-server.sh of this checkout (found from this module's location in src/ or dist/). */
function buildScriptPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const candidate = join(dir, "scripts", "build-llama-server.sh");
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new UnavailableError(
    "scripts/build-llama-server.sh not found above " + fileURLToPath(import.meta.url),
    {
      hint: "run from a buckle checkout, or set BUCKLE_LLAMA_SERVER to a llama-server binary",
    },
  );
}

/**
 * The llama-server binary: $BUCKLE_LLAMA_SERVER if set, else the cached build, else build it now (minutes,
 * once per llama.cpp commit; concurrent callers wait on the script's lock). Throws UnavailableError when
 * build tools are missing or the build fails.
 */
export async function ensureLlamaServer(): Promise<string> {
  const override = process.env.BUCKLE_LLAMA_SERVER;
  if (override) {
    if (!existsSync(override))
      throw new UnavailableError(`BUCKLE_LLAMA_SERVER points at ${override}, which does not exist`, {
        hint: "unset it to use the cached build, or fix the path",
      });
    return override;
  }
  const cached = cachedLlamaServerPath();
  if (existsSync(cached)) return cached;
  const missing = missingBuildTools();
  if (missing.length > 0)
    throw new UnavailableError(`cannot build llama-server: ${missing.join(", ")} not on PATH`, {
      hint: "install them (Debian: apt-get install -y cmake g++ git) or set BUCKLE_LLAMA_SERVER",
    });
  const script = buildScriptPath();
  const output = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn("bash", [script], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
  const built = output.stdout.trim().split("\n").pop() ?? "";
  if (output.code !== 0 || !existsSync(built))
    throw new UnavailableError(
      `${script} failed (exit ${output.code}): ${output.stderr.trim().slice(-2000)}`,
      {
        hint: "see the build log it names; BUCKLE_KEEP_BUILD=1 keeps the tree for inspection",
      },
    );
  return built;
}

/** A free TCP port on 127.0.0.1 (the OS picks; closed again before returning). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The tiny served model the tests use: llama arch, hidden 64, 2 layers, llama-spm vocabulary, random weights. */
export function createTinyServedModel(path: string, seed = 1): CreatedModel {
  return createRandomModel(tinyModelOptions(seed, { contextLength: 512 }), path);
}

export interface LlamaServerOptions {
  modelPath: string;
  /** Port on 127.0.0.1 (default: a free one). */
  port?: number;
  threads?: number;
  contextSize?: number;
  parallel?: number;
  /** Longest wait for /health to say ok, in ms (default 60000). */
  startTimeoutMs?: number;
  extraArgs?: string[];
}

export interface RunningLlamaServer {
  readonly port: number;
  /** "http://127.0.0.1:<port>" */
  readonly url: string;
  /** The last lines the server logged (for error messages). */
  logTail(): string;
  /** SIGKILL, no grace: a crash. Resolves when the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM, then SIGKILL after 3 s. Resolves when the process is gone. */
  stop(): Promise<void>;
  /** Start again on the same port, with the same options (after kill/stop). */
  restart(): Promise<void>;
}

function getStatus(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(0));
  });
}

/** Start llama-server on 127.0.0.1 and wait until /health answers 200. */
export async function startLlamaServer(options: LlamaServerOptions): Promise<RunningLlamaServer> {
  const binary = await ensureLlamaServer();
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const args = [
    "-m",
    options.modelPath,
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--threads",
    String(options.threads ?? 1),
    "-c",
    String(options.contextSize ?? 512),
    "--parallel",
    String(options.parallel ?? 4),
    "--no-webui",
    "--no-warmup",
    ...(options.extraArgs ?? []),
  ];
  let child: ChildProcess | undefined;
  let log: string[] = [];
  let exited: Promise<void> = Promise.resolve();

  const launch = async (): Promise<void> => {
    log = [];
    const proc = spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    const keep = (d: Buffer): void => {
      log.push(
        ...d
          .toString()
          .split("\n")
          .filter((l) => l !== ""),
      );
      if (log.length > 200) log = log.slice(-100);
    };
    proc.stdout?.on("data", keep);
    proc.stderr?.on("data", keep);
    let gone = false;
    exited = new Promise<void>((resolve) =>
      proc.on("exit", () => {
        gone = true;
        resolve();
      }),
    );
    const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
    while (Date.now() < deadline) {
      if (gone)
        throw new UnavailableError(
          `llama-server exited while starting on ${url}: ${log.slice(-15).join("\n")}`,
          {
            hint: `binary ${binary}; check the model file and the port`,
          },
        );
      if ((await getStatus(`${url}/health`, 2000)) === 200) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    proc.kill("SIGKILL");
    throw new UnavailableError(
      `llama-server on ${url} was not healthy within ${options.startTimeoutMs ?? 60_000} ms`,
      {
        hint: log.slice(-15).join("\n"),
      },
    );
  };

  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    const timer = signal === "SIGTERM" ? setTimeout(() => proc.kill("SIGKILL"), 3000) : undefined;
    await exited;
    clearTimeout(timer);
  };

  await launch();
  return {
    port,
    url,
    logTail: () => log.slice(-30).join("\n"),
    kill: () => halt("SIGKILL"),
    stop: () => halt("SIGTERM"),
    restart: async () => {
      await halt("SIGKILL");
      await launch();
    },
  };
}
