import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  checkCache,
  checkCpuFeatures,
  checkNode,
  cpuFlags,
  directorySize,
  versionAtLeast,
} from "./doctor.js";

const cli = fileURLToPath(new URL("../main.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "buckle-doctor-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test("version and CPU checks decide ok, warn and fail", () => {
  assert.equal(versionAtLeast("20.11.0", "20.11.0"), true);
  assert.equal(versionAtLeast("v20.10.9", "20.11.0"), false);
  assert.equal(versionAtLeast("22.0.0", "20.11.0"), true);
  assert.equal(checkNode("18.19.0").status, "fail");
  assert.equal(checkNode("20.11.1").status, "ok");
  const flags = cpuFlags("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma f16c avx512f\n");
  assert.deepEqual(
    [...flags!].filter((f) => f.startsWith("avx")),
    ["avx", "avx2", "avx512f"],
  );
  assert.equal(checkCpuFeatures(flags, "x64").status, "ok");
  assert.equal(checkCpuFeatures(cpuFlags("flags : sse2 avx\n"), "x64").status, "warn");
  assert.equal(checkCpuFeatures(cpuFlags("processor : 0\n"), "x64").status, "warn");
  assert.equal(checkCpuFeatures(null, "arm64").status, "ok");
});

test("the cache check measures the directory and fails where it cannot be created", () => {
  const cache = join(dir, "cache");
  mkdirSync(join(cache, "sub"), { recursive: true });
  writeFileSync(join(cache, "a.bin"), Buffer.alloc(3000));
  writeFileSync(join(cache, "sub", "b.bin"), Buffer.alloc(2000));
  assert.deepEqual(directorySize(cache), { bytes: 5000, files: 2, complete: true });
  const ok = checkCache(cache);
  assert.equal(ok.status, "ok");
  assert.match(ok.detail, /writable, 5 KiB in 2 files/);
  assert.match(checkCache(join(dir, "new")).detail, /not created yet/);
  const blocker = join(dir, "a-file");
  writeFileSync(blocker, "x");
  const bad = checkCache(join(blocker, "cache"));
  assert.equal(bad.status, "fail");
  assert.ok(bad.hint);
});

test("buckle doctor --json reports every check, and exits 2 when one fails", () => {
  const run = (env: Record<string, string>) =>
    spawnSync(process.execPath, [cli, "doctor", "--json"], {
      encoding: "utf8",
      env: { ...process.env, ...env },
    });
  const good = run({ BUCKLE_CACHE_DIR: join(dir, "cache") });
  const report = JSON.parse(good.stdout) as { ok: boolean; checks: { name: string; status: string }[] };
  assert.deepEqual(
    report.checks.map((c) => c.name),
    [
      "buckle",
      "node",
      "platform",
      "cpu features",
      "wasm simd",
      "blas",
      "node-llama-cpp",
      "llama-server",
      "better-sqlite3",
      "git",
      "cache directory",
      "free disk",
      "chromium",
    ],
  );
  // This test runs on Node >= 20.11 with its dependencies installed: those checks pass here.
  for (const name of ["node", "wasm simd", "blas", "node-llama-cpp", "better-sqlite3", "cache directory"])
    assert.equal(report.checks.find((c) => c.name === name)!.status, "ok", name);
  assert.equal(good.status, report.ok ? 0 : 2, good.stderr);

  const blocked = run({ BUCKLE_CACHE_DIR: join(dir, "a-file", "cache") });
  assert.equal(blocked.status, 2);
  assert.equal(
    JSON.parse(blocked.stdout).checks.find((c: { name: string }) => c.name === "cache directory").status,
    "fail",
  );
  assert.match(blocked.stderr, /check\(s\) failed: .*cache directory/);
});
