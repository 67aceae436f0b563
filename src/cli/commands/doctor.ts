// `buckle doctor`: checks this machine for what buckle needs (Node, llama.cpp's prebuilt binary, CPU features,
// WebAssembly SIMD, SQLite, cache directory, free disk) and says what to do about anything missing.

import { spawnSync } from "node:child_process";
import {
  accessSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  statSync,
  writeFileSync,
  type Dirent,
} from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { dirname, join } from "node:path";
import v8 from "node:v8";
import type { Command } from "commander";
import { findChromium } from "../../experiment/report/index.js";
import { BuckleError } from "../../util/errors.js";
import { cacheDir, tempPathFor } from "../../util/fs.js";
import { packageVersion } from "../../util/version.js";

export type CheckStatus = "ok" | "warn" | "fail";

export interface CheckResult {
  name: string;
  status: CheckStatus;
  /** What was found. */
  detail: string;
  /** What to do, for warn and fail. */
  hint?: string;
}

const GIB = 1024 ** 3;

/** [major, minor, patch] of a "20.11.1" / "v20.11.1" version string. */
export function parseVersion(v: string): [number, number, number] {
  const [a, b, c] = v
    .replace(/^v/, "")
    .split(".")
    .map((x) => parseInt(x, 10) || 0);
  return [a ?? 0, b ?? 0, c ?? 0];
}

export function versionAtLeast(v: string, min: string): boolean {
  const a = parseVersion(v);
  const b = parseVersion(min);
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] > b[i];
  return true;
}

export function checkNode(version = process.versions.node): CheckResult {
  const ok = versionAtLeast(version, "20.11.0");
  return {
    name: "node",
    status: ok ? "ok" : "fail",
    detail: `v${version}${ok ? " (>= 20.11)" : " (buckle needs >= 20.11)"}`,
    hint: ok ? undefined : "install Node 20.11 or newer (https://nodejs.org or your package manager)",
  };
}

function checkPlatform(): CheckResult {
  const cpus = os.cpus();
  const model = cpus[0]?.model?.trim() ?? "unknown CPU";
  return {
    name: "platform",
    status: "ok",
    detail: `${process.platform} ${process.arch}, ${model}, ${cpus.length} cores, ${(os.totalmem() / GIB).toFixed(1)} GiB memory`,
  };
}

/** CPU flags from /proc/cpuinfo's "flags" (x86) or "Features" (arm) line, or null where there is none. */
export function cpuFlags(cpuinfo?: string): Set<string> | null {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/cpuinfo", "utf8");
    } catch {
      return null;
    }
  }
  const line = text.split("\n").find((l) => /^(flags|Features)\s*:/.test(l));
  return line ? new Set(line.split(":")[1].trim().split(/\s+/)) : null;
}

export function checkCpuFeatures(flags = cpuFlags(), arch = process.arch): CheckResult {
  if (arch === "arm64") {
    return { name: "cpu features", status: "ok", detail: "arm64 (NEON is always present)" };
  }
  if (!flags) {
    return {
      name: "cpu features",
      status: "warn",
      detail: "unknown (no /proc/cpuinfo)",
      hint: "llama.cpp reports its CPU features in the node-llama-cpp check below",
    };
  }
  const wanted = ["avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_vnni"];
  const have = wanted.filter((f) => flags.has(f));
  const ok = flags.has("avx2") && flags.has("fma");
  return {
    name: "cpu features",
    status: ok ? "ok" : "warn",
    detail: have.length ? have.join(" ") : "none of AVX2/FMA/AVX-512",
    hint: ok
      ? undefined
      : "without AVX2 and FMA llama.cpp's CPU kernels run several times slower; prefer a newer CPU",
  };
}

/** (module (func (result v128) v128.const i32x4 0 0 0 0)): valid only where the engine has SIMD. */
const SIMD_PROBE = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  0x01,
  0x00,
  0x00,
  0x00,
  0x01,
  0x05,
  0x01,
  0x60,
  0x00,
  0x01,
  0x7b,
  0x03,
  0x02,
  0x01,
  0x00,
  0x0a,
  0x16,
  0x01,
  0x14,
  0x00,
  0xfd,
  0x0c,
  ...new Array(16).fill(0),
  0x0b,
]);

/** (module (func (param v128 v128 v128) (result v128) local.get 0 local.get 1 local.get 2 f32x4.relaxed_madd)). */
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b,
  0x03, 0x02, 0x01, 0x00, 0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfd, 0x85, 0x02,
  0x0b,
]);

export function checkWasmSimd(): CheckResult {
  const simd = WebAssembly.validate(SIMD_PROBE);
  if (!simd)
    return {
      name: "wasm simd",
      status: "fail",
      detail: "WebAssembly SIMD is not supported by this Node",
      hint: "buckle's engine kernels need WebAssembly SIMD (Node 20 has it): upgrade Node",
    };
  // The engine turns relaxed SIMD on the same way at run time (Node 20 ships it behind a flag).
  try {
    v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
  } catch {
    // validation below decides
  }
  const relaxed = WebAssembly.validate(RELAXED_PROBE);
  return {
    name: "wasm simd",
    status: "ok",
    detail: relaxed ? "SIMD and relaxed-SIMD FMA" : "SIMD (no relaxed-SIMD FMA: the engine uses mul + add)",
  };
}

/** The native engine's BLAS route (large float32 products through the machine's cblas_sgemm, via koffi). */
export async function checkBlas(): Promise<CheckResult> {
  const { loadBlas } = await import("../../engine/kernels/blas.js");
  try {
    const lib = loadBlas();
    return { name: "blas", status: "ok", detail: `large engine products use ${lib.describe}` };
  } catch (e) {
    const off = process.env.BUCKLE_BLAS?.trim() === "off";
    return {
      name: "blas",
      status: off ? "ok" : "warn",
      detail: `${(e as Error).message}; the engine uses its WebAssembly kernels only`,
      hint: off
        ? undefined
        : "optional: native training and scoring of real-sized models run 1.3-2x faster with an optimized BLAS (Debian/Ubuntu: apt-get install libopenblas0)",
    };
  }
}

async function checkLlamaCpp(): Promise<CheckResult[]> {
  let version: string;
  try {
    const require = createRequire(import.meta.url);
    let dir = dirname(require.resolve("node-llama-cpp"));
    while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
    version = (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return [
      {
        name: "node-llama-cpp",
        status: "fail",
        detail: "not installed",
        hint: "run npm install in the buckle checkout (node-llama-cpp is a dependency)",
      },
    ];
  }
  const { acquireLlama, releaseLlama } = await import("../../models/llamacpp/runtime.js");
  try {
    const t0 = performance.now();
    const llama = await acquireLlama(false);
    const ms = performance.now() - t0;
    const release = llama.llamaCppRelease.release;
    const features = String(llama.systemInfo)
      .split("|")
      .map((s) => s.replace(/^\s*CPU\s*:\s*/, "").trim())
      .filter((s) => / = 1$/.test(s))
      .map((s) => s.replace(/ = 1$/, ""))
      .filter((s) => /^(AVX|AVX2|AVX512|F16C|FMA|NEON|ARM_FMA|SVE)/.test(s));
    await releaseLlama(false);
    return [
      {
        name: "node-llama-cpp",
        status: "ok",
        detail:
          `${version}, ${llama.buildType} binary of llama.cpp ${release} loads (build: "never", ${ms.toFixed(0)} ms)` +
          (features.length ? `; llama.cpp uses ${features.join(" ")}` : ""),
      },
    ];
  } catch (err) {
    return [
      {
        name: "node-llama-cpp",
        status: "fail",
        detail: `${version}: no usable prebuilt binary (${(err as Error).message.split("\n")[0]})`,
        hint: "reinstall so node-llama-cpp's prebuilt binaries for this platform are present: rm -rf node_modules && npm install",
      },
    ];
  }
}

async function checkLlamaServer(): Promise<CheckResult> {
  try {
    const { cachedLlamaServerPath } = await import("../../models/openai/llama-server.js");
    const path = process.env.BUCKLE_LLAMA_SERVER ?? cachedLlamaServerPath();
    if (existsSync(path)) return { name: "llama-server", status: "ok", detail: path };
    return {
      name: "llama-server",
      status: "warn",
      detail: "not built (only the openai backend's tests need it)",
      hint: "bash scripts/build-llama-server.sh (cmake, g++ and git; about 10 minutes once)",
    };
  } catch (err) {
    return {
      name: "llama-server",
      status: "warn",
      detail: `cannot tell: ${(err as Error).message.split("\n")[0]}`,
      hint: "git is needed to find the llama.cpp commit node-llama-cpp bundles",
    };
  }
}

/** Bytes and files under dir, stopping after `maxEntries` entries (then `complete` is false). */
export function directorySize(
  dir: string,
  maxEntries = 200_000,
): { bytes: number; files: number; complete: boolean } {
  let bytes = 0;
  let files = 0;
  let seen = 0;
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    let entries: Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      if (++seen > maxEntries) return { bytes, files, complete: false };
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) {
        files++;
        try {
          bytes += lstatSync(p).size;
        } catch {
          // a file removed while we walk: skip it
        }
      }
    }
  }
  return { bytes, files, complete: true };
}

function formatBytes(n: number): string {
  if (n >= GIB) return `${(n / GIB).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(0)} KiB`;
}

/** The nearest existing ancestor of path (statfs needs a path that exists). */
function existingAncestor(path: string): string {
  let p = path;
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return p;
}

export function checkCache(dir = cacheDir()): CheckResult {
  const source = process.env.BUCKLE_CACHE_DIR ? " (BUCKLE_CACHE_DIR)" : "";
  if (!existsSync(dir)) {
    const parent = existingAncestor(dir);
    try {
      if (!statSync(parent).isDirectory()) throw new Error(`${parent} is a file`);
      accessSync(parent, constants.W_OK);
      return { name: "cache directory", status: "ok", detail: `${dir}${source}: not created yet (will be)` };
    } catch {
      return {
        name: "cache directory",
        status: "fail",
        detail: `${dir}${source}: cannot be created (${parent} is not a writable directory)`,
        hint: "set BUCKLE_CACHE_DIR to a writable directory",
      };
    }
  }
  try {
    mkdirSync(dir, { recursive: true });
    const probe = tempPathFor(join(dir, ".doctor-write-test"));
    writeFileSync(probe, "ok");
    rmSync(probe, { force: true });
  } catch (err) {
    return {
      name: "cache directory",
      status: "fail",
      detail: `${dir}${source}: not writable (${(err as Error).message.split("\n")[0]})`,
      hint: "fix its permissions or set BUCKLE_CACHE_DIR to a writable directory",
    };
  }
  const size = directorySize(dir);
  return {
    name: "cache directory",
    status: "ok",
    detail: `${dir}${source}: writable, ${size.complete ? "" : "over "}${formatBytes(size.bytes)} in ${size.files} files`,
  };
}

export function checkDisk(dir = cacheDir()): CheckResult {
  const at = existingAncestor(dir);
  const fs = statfsSync(at);
  const free = Number(fs.bavail) * Number(fs.bsize);
  const status: CheckStatus = free < GIB ? "fail" : free < 10 * GIB ? "warn" : "ok";
  return {
    name: "free disk",
    status,
    detail: `${formatBytes(free)} free at ${at}`,
    hint:
      status === "ok"
        ? undefined
        : "models, adapters and checkpoints need several GiB: free space or point BUCKLE_CACHE_DIR at a bigger disk",
  };
}

async function checkSqlite(): Promise<CheckResult> {
  try {
    const { default: Database } = await import("better-sqlite3");
    const db = new Database(":memory:");
    const row = db.prepare("select sqlite_version() as v").get() as { v: string };
    db.close();
    return { name: "better-sqlite3", status: "ok", detail: `loads, SQLite ${row.v}` };
  } catch (err) {
    return {
      name: "better-sqlite3",
      status: "fail",
      detail: `does not load: ${(err as Error).message.split("\n")[0]}`,
      hint: "its native module does not match this Node: run npm rebuild better-sqlite3 (or npm install)",
    };
  }
}

function checkGit(): CheckResult {
  const r = spawnSync("git", ["--version"], { encoding: "utf8" });
  if (r.status === 0) return { name: "git", status: "ok", detail: r.stdout.trim() };
  return {
    name: "git",
    status: "fail",
    detail: "not on PATH",
    hint: "install git: the built-in tokenizer vocabularies come from the llama.cpp git bundle inside node-llama-cpp",
  };
}

function checkChromium(): CheckResult {
  const path = findChromium();
  return path
    ? { name: "chromium", status: "ok", detail: `${path} (for the report's browser test)` }
    : {
        name: "chromium",
        status: "warn",
        detail: "not found (optional: only the HTML report's browser test needs it)",
        hint: "apt-get install chromium, or set BUCKLE_CHROMIUM to a Chromium binary",
      };
}

/** Runs every check; none throws. */
export async function runDoctorChecks(): Promise<CheckResult[]> {
  return [
    { name: "buckle", status: "ok", detail: packageVersion() },
    checkNode(),
    checkPlatform(),
    checkCpuFeatures(),
    checkWasmSimd(),
    await checkBlas(),
    ...(await checkLlamaCpp()),
    await checkLlamaServer(),
    await checkSqlite(),
    checkGit(),
    checkCache(),
    checkDisk(),
    checkChromium(),
  ];
}

export function registerDoctorCommand(program: Command): void {
  program
    .command("doctor")
    .description("Check this machine for what buckle needs and say what to do about anything missing")
    .option("--json", "print the checks as JSON")
    .addHelpText("after", "\nExit status 2 when a check fails.\n\nExample:\n  buckle doctor --json\n")
    .action(async (flags: { json?: boolean }) => {
      const checks = await runDoctorChecks();
      const failed = checks.filter((c) => c.status === "fail");
      if (flags.json) {
        process.stdout.write(JSON.stringify({ ok: failed.length === 0, checks }, null, 2) + "\n");
      } else {
        const width = Math.max(...checks.map((c) => c.name.length));
        for (const c of checks) {
          process.stdout.write(`${c.status.padEnd(4)}  ${c.name.padEnd(width)}  ${c.detail}\n`);
          if (c.hint) process.stdout.write(`${" ".repeat(width + 8)}hint: ${c.hint}\n`);
        }
      }
      if (failed.length)
        throw new BuckleError(`${failed.length} check(s) failed: ${failed.map((c) => c.name).join(", ")}`, {
          hint: "see the hints above",
        });
    });
}
