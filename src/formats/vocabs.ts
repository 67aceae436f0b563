// Real tokenizer vocabularies, taken from the llama.cpp source that node-llama-cpp ships as a git bundle.
// `builtin:<name>` resolves to models/ggml-vocab-<name>.gguf, extracted once into the cache.

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { cacheDir, writeFileAtomic } from "../util/fs.js";
import { InputError, UnavailableError } from "../util/errors.js";

const require = createRequire(import.meta.url);

/** Path of node-llama-cpp's llama.cpp source bundle. */
export function llamaCppBundlePath(): string {
  let pkgDir: string;
  try {
    // The package's exports hide package.json: resolve its entry and walk up to the package root.
    pkgDir = dirname(require.resolve("node-llama-cpp"));
    while (!existsSync(join(pkgDir, "package.json")) && dirname(pkgDir) !== pkgDir) pkgDir = dirname(pkgDir);
  } catch (err) {
    throw new UnavailableError(
      "node-llama-cpp is not installed, so the built-in vocabularies are unavailable",
      {
        hint: "run `npm install` in the buckle directory",
        cause: err,
      },
    );
  }
  const bundle = join(pkgDir, "llama", "gitRelease.bundle");
  if (!existsSync(bundle)) {
    throw new UnavailableError(`llama.cpp source bundle not found at ${bundle}`, {
      hint: "reinstall node-llama-cpp (npm ci)",
    });
  }
  return bundle;
}

function git(args: string[], cwd?: string): Buffer {
  try {
    return execFileSync("git", args, { cwd, maxBuffer: 1 << 30, stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    throw new UnavailableError(`git ${args.slice(0, 2).join(" ")} failed: ${(err as Error).message}`, {
      hint: "buckle needs `git` on PATH to extract vocabularies from node-llama-cpp's llama.cpp bundle",
      cause: err,
    });
  }
}

let fetched: { repo: string; commit: string } | undefined;

/** A bare repository in the cache holding the bundle's objects; returns its path and commit. */
function bundleRepo(): { repo: string; commit: string } {
  if (fetched) return fetched;
  const bundle = llamaCppBundlePath();
  const heads = git(["bundle", "list-heads", bundle]).toString().trim().split("\n");
  const commit = heads[0]?.split(/\s+/)[0];
  if (!commit || !/^[0-9a-f]{40}$/.test(commit)) {
    throw new UnavailableError(`cannot read the head commit of ${bundle}`);
  }
  const repo = cacheDir("llama.cpp-src", `${commit}.git`);
  if (!existsSync(join(repo, "HEAD")) || !hasCommit(repo, commit)) {
    mkdirSync(repo, { recursive: true });
    git(["init", "-q", "--bare", repo]);
    git(["--git-dir", repo, "fetch", "-q", bundle, `+HEAD:refs/heads/bundle`]);
  }
  fetched = { repo, commit };
  return fetched;
}

function hasCommit(repo: string, commit: string): boolean {
  try {
    execFileSync("git", ["--git-dir", repo, "cat-file", "-e", `${commit}^{commit}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Names accepted after `builtin:` (e.g. llama-spm, llama-bpe, qwen2, gpt-2, phi-3, starcoder). */
export function builtinVocabNames(): string[] {
  const { repo, commit } = bundleRepo();
  return git(["--git-dir", repo, "ls-tree", "--name-only", commit, "models/"])
    .toString()
    .split("\n")
    .map((p) => /^models\/ggml-vocab-(.+)\.gguf$/.exec(p)?.[1])
    .filter((n): n is string => n !== undefined);
}

/** The llama.cpp commit the built-in vocabularies come from. */
export function builtinVocabCommit(): string {
  return bundleRepo().commit;
}

/**
 * Extract one file of the llama.cpp source (e.g. "models/ggml-vocab-llama-spm.gguf",
 * "models/templates/Qwen-Qwen2.5-7B-Instruct.jinja") into the cache, once, and return its path.
 */
export function extractBundledSourceFile(relPath: string): string {
  if (relPath.split("/").some((p) => p === ".." || p === ""))
    throw new InputError(`invalid bundle path "${relPath}"`);
  const { repo, commit } = bundleRepo();
  const out = cacheDir("llama.cpp-files", commit.slice(0, 12), relPath);
  if (existsSync(out)) return out;
  let data: Buffer;
  try {
    data = execFileSync("git", ["--git-dir", repo, "show", `${commit}:${relPath}`], {
      maxBuffer: 1 << 30,
      stdio: ["ignore", "pipe", "ignore"],
    });
  } catch {
    throw new InputError(`no file ${relPath} in the llama.cpp bundle (commit ${commit.slice(0, 12)})`, {
      hint: relPath.startsWith("models/ggml-vocab-")
        ? `available vocabularies: ${builtinVocabNames().join(", ")}`
        : undefined,
    });
  }
  writeFileAtomic(out, data);
  return out;
}

/** Extract one file of the bundle's models/ folder (e.g. "ggml-vocab-llama-spm.gguf.inp"). */
export function extractBundledModelFile(file: string): string {
  return extractBundledSourceFile(`models/${file}`);
}

/** Path of the vocab-only GGUF for `builtin:<name>`. */
export function builtinVocabPath(name: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new InputError(`invalid built-in vocabulary name "${name}"`);
  return extractBundledModelFile(`ggml-vocab-${name}.gguf`);
}

/** llama.cpp's tokenizer test vectors for a built-in vocabulary: input texts and expected ids. */
export function builtinVocabTestVectors(name: string): { text: string; ids: number[] }[] | undefined {
  let inp: string, out: string;
  try {
    inp = extractBundledModelFile(`ggml-vocab-${name}.gguf.inp`);
    out = extractBundledModelFile(`ggml-vocab-${name}.gguf.out`);
  } catch {
    return undefined;
  }
  // Format (llama.cpp tests/test-tokenizer-0): texts separated by "\n__ggml_vocab_test__\n";
  // one line of space-separated ids per text.
  const texts = readText(inp).split("\n__ggml_vocab_test__\n");
  const last = texts.length - 1;
  if (texts[last].endsWith("\n__ggml_vocab_test__"))
    texts[last] = texts[last].slice(0, -"\n__ggml_vocab_test__".length);
  else if (texts[last] === "") texts.pop();
  const lines = readText(out).split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  if (lines.length !== texts.length) {
    throw new UnavailableError(
      `test vectors for ${name}: ${texts.length} inputs but ${lines.length} outputs; the bundle format changed`,
    );
  }
  return texts.map((text, i) => ({
    text,
    ids: lines[i]
      .trim()
      .split(/\s+/)
      .filter((s) => s !== "")
      .map(Number),
  }));
}

function readText(path: string): string {
  return readFileSync(path, "utf8");
}
