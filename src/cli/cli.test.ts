import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const cli = fileURLToPath(new URL("./main.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "buckle-cli-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function buckle(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("model create, info, tokenize and chat spans through the CLI", () => {
  const model = join(dir, "tiny.gguf");
  const created = buckle(
    "model",
    "create",
    "--vocab",
    "builtin:llama-spm",
    "--seed",
    "3",
    "-o",
    model,
    "--json",
  );
  assert.equal(created.code, 0, created.stderr);
  assert.equal(JSON.parse(created.stdout).spec.vocabSize, 32000);

  const info = buckle("model", "info", model, "--json");
  assert.equal(info.code, 0, info.stderr);
  const parsed = JSON.parse(info.stdout);
  assert.equal(parsed.metadata["general.architecture"].value, "llama");
  assert.equal(parsed.tensors.length, 2 * 9 + 3);
  assert.match(buckle("model", "info", model).stdout, /blk\.1\.ffn_down\.weight\s+F32\s+\[64, 128\]/);

  const tok = buckle("tokenize", "--model", model, "Hello world");
  assert.equal(tok.stdout.trim(), "1 15043 3186");
  const noBos = buckle("tokenize", "--model", model, "--no-add-special", "--json", "Hello world");
  assert.deepEqual(JSON.parse(noBos.stdout).ids, [15043, 3186]);

  const chat = join(dir, "chat.json");
  writeFileSync(
    chat,
    JSON.stringify([
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello there" },
    ]),
  );
  const spans = buckle("tokenize", "--model", model, "--chat", chat, "--json");
  assert.equal(spans.code, 0, spans.stderr);
  const r = JSON.parse(spans.stdout);
  assert.equal(r.assistantSpans.length, 1);
  const s = r.assistantSpans[0];
  assert.ok(s.contentStart < s.contentEnd && s.contentEnd < s.turnEnd && s.turnEnd <= r.ids.length);
  assert.equal(r.ids[s.turnEnd - 1], 2); // the llama2 template ends the assistant turn with </s>
});

test("user errors say what was wrong and exit 2", () => {
  const cases: [string[], RegExp][] = [
    [["model", "info", join(dir, "missing.gguf")], /no such file or directory/],
    [
      ["model", "create", "-o", join(dir, "x.gguf"), "--heads", "3"],
      /head dimension .* must be an even integer/,
    ],
    [
      ["model", "create", "-o", join(dir, "x.gguf"), "--arch", "gpt9"],
      /--arch must be llama, qwen2 or mistral/,
    ],
    [["model", "create", "-o", join(dir, "x.gguf"), "--hidden", "abc"], /expected an integer/],
    [["tokenize", "--model", "builtin:nope", "hi"], /no file models\/ggml-vocab-nope.gguf/],
  ];
  for (const [args, pattern] of cases) {
    const r = buckle(...args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  }
  const notGguf = join(dir, "not.gguf");
  writeFileSync(notGguf, "definitely not a gguf file");
  const r = buckle("model", "info", notGguf);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /not\.gguf @ byte 0/);
  const badChat = join(dir, "bad.json");
  writeFileSync(badChat, JSON.stringify([{ role: "robot", content: "x" }]));
  const c = buckle("tokenize", "--model", "builtin:llama-spm", "--chat", badChat);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /messages\[0\]\.role must be/);
});

test("buckle demo refuses bad seeds before any work", () => {
  // the demo itself runs in src/experiment/demo.test.ts (scaled down) and in npm run demo
  const r = spawnSync(process.execPath, [cli, "demo", "--seeds", "1,x", "--run-dir", join(dir, "demo")], {
    encoding: "utf8",
  });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /seeds\.1: /);
});
