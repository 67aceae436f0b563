// Checks model references: the parser's cases and errors, canonical formatting, hf: downloads against a local
// server (resume with Range, token, 404), the offline error, and openModel's dispatch.

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InputError, UnavailableError } from "../util/errors.js";
import {
  formatModelRef,
  hfCachePath,
  openModel,
  parseModelRef,
  resolveHfRef,
  type ModelRef,
} from "./refs.js";

const dir = mkdtempSync(join(tmpdir(), "buckle-refs-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("parseModelRef: every kind", () => {
  const cases: [string, ModelRef][] = [
    ["models/tiny.gguf", { kind: "file", path: "models/tiny.gguf" }],
    ["/abs/x.gguf", { kind: "file", path: "/abs/x.gguf" }],
    ["C:\\models\\x.gguf", { kind: "file", path: "C:\\models\\x.gguf" }],
    ["llamacpp:./m.gguf", { kind: "llamacpp", path: "./m.gguf" }],
    ["native:/ckpt/dir", { kind: "native", path: "/ckpt/dir" }],
    ["hf:org/repo/file.gguf", { kind: "hf", repo: "org/repo", revision: "main", file: "file.gguf" }],
    [
      "hf:org/repo@v1.0/sub/dir/f.gguf",
      { kind: "hf", repo: "org/repo", revision: "v1.0", file: "sub/dir/f.gguf" },
    ],
    [
      "openai:gpt-4o-mini@https://api.openai.com/v1",
      { kind: "openai", model: "gpt-4o-mini", baseUrls: ["https://api.openai.com/v1"] },
    ],
    [
      "openai:org/m@v2@http://a:8000/v1,http://b:8000",
      { kind: "openai", model: "org/m@v2", baseUrls: ["http://a:8000/v1", "http://b:8000"] },
    ],
  ];
  for (const [ref, want] of cases) {
    assert.deepEqual(parseModelRef(ref), want, ref);
    assert.deepEqual(parseModelRef(formatModelRef(want)), want, `round trip of ${ref}`);
  }
  const random = parseModelRef("random:llama-spm?hidden=128&layers=3&seed=9&dtype=q8_0&arch=qwen2");
  assert.equal(random.kind, "random");
  if (random.kind === "random") {
    assert.equal(random.options.vocab, "builtin:llama-spm");
    assert.equal(random.options.hiddenSize, 128);
    assert.equal(random.options.numLayers, 3);
    assert.equal(random.options.seed, 9);
    assert.equal(random.options.dtype, "q8_0");
    assert.equal(random.options.arch, "qwen2");
    assert.deepEqual(parseModelRef(formatModelRef(random)), random);
  }
});

test("parseModelRef: errors say what is wrong", () => {
  const bad: [string, RegExp][] = [
    ["", /empty model reference/],
    ["hf:org/repo", /hf: needs <org>\/<repo>\/<file>/],
    ["hf:org//f.gguf", /hf: needs/],
    ["hf:org/repo@/f.gguf", /revision/],
    ["hf:org/repo/../x.gguf", /\.\./],
    ["openai:model", /openai: needs <model>@<url>/],
    ["openai:@http://x", /openai: needs/],
    ["openai:m@http://ok,ftp://no", /"ftp:\/\/no" is not an http\(s\) URL/],
    ["llamacpp:", /needs a path/],
    ["random:", /needs a vocabulary/],
    ["random:llama-spm?colour=red", /unknown key "colour"/],
    ["random:llama-spm?hidden=big", /hidden must be a number/],
    ["s3:bucket/x.gguf", /unknown scheme "s3:"/],
  ];
  for (const [ref, message] of bad) {
    assert.throws(
      () => parseModelRef(ref),
      (e: unknown) => e instanceof InputError && message.test(e.message) && (e.hint ?? "").length > 0,
      ref,
    );
  }
});

test("resolveHfRef offline: fails fast with an UnavailableError that says what to do", async () => {
  // 192.0.2.1 is TEST-NET-1: never routed, so this takes the "no answer" path online too; offline it fails at once.
  for (const endpoint of ["http://192.0.2.1", undefined]) {
    if (endpoint === undefined && process.env.HF_ENDPOINT) continue;
    const t0 = Date.now();
    await assert.rejects(
      resolveHfRef("hf:buckle-test/none/model.gguf", {
        cacheRoot: join(dir, "offline"),
        connectTimeoutMs: 1500,
        ...(endpoint ? { endpoint } : {}),
      }),
      (e: unknown) =>
        // Online, huggingface.co answers (401/404) instead: then only the speed is checked.
        (endpoint === undefined && e instanceof Error) ||
        (e instanceof UnavailableError &&
          /cannot download hf:buckle-test\/none\/model\.gguf .*offline/.test(e.message) &&
          /put it at .*model\.gguf/.test(e.hint ?? "")),
    );
    assert.ok(Date.now() - t0 < 5000, `${endpoint ?? "huggingface.co"}: took ${Date.now() - t0} ms`);
  }
});

test("resolveHfRef: downloads, resumes a partial file with Range, sends HF_TOKEN, reports 404", async () => {
  const body = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251));
  const seen: IncomingMessage["headers"][] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    if (req.url !== "/org/repo/resolve/main/sub/model.gguf") {
      res.writeHead(404).end();
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const from = range ? Number(range[1]) : 0;
    res.writeHead(range ? 206 : 200, { "content-length": String(body.length - from) });
    res.end(body.subarray(from));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const cacheRoot = join(dir, "hf");
    const ref = parseModelRef("hf:org/repo/sub/model.gguf");
    assert.equal(ref.kind, "hf");
    const dest = hfCachePath(ref as Extract<ModelRef, { kind: "hf" }>, cacheRoot);
    // A partial download from an earlier run.
    mkdirSync(join(cacheRoot, "org", "repo", "main", "sub"), { recursive: true });
    writeFileSync(`${dest}.partial`, body.subarray(0, 40_000));
    let last = 0;
    const path = await resolveHfRef("hf:org/repo/sub/model.gguf", {
      cacheRoot,
      endpoint,
      token: "secret",
      onProgress: (p) => {
        assert.ok(p.received >= last);
        last = p.received;
        assert.equal(p.total, body.length);
      },
    });
    assert.equal(path, dest);
    assert.ok(readFileSync(path).equals(body));
    assert.equal(last, body.length);
    assert.equal(seen[0].range, "bytes=40000-");
    assert.equal(seen[0].authorization, "Bearer secret");
    assert.ok(!existsSync(`${dest}.partial`));
    // Cached: no second request.
    await resolveHfRef("hf:org/repo/sub/model.gguf", { cacheRoot, endpoint });
    assert.equal(seen.length, 1);
    await assert.rejects(
      resolveHfRef("hf:org/repo/missing.gguf", { cacheRoot, endpoint }),
      (e: unknown) => e instanceof InputError && /no such file/.test(e.message),
    );
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

test("openModel: dispatch and errors", async () => {
  await assert.rejects(
    openModel(join(dir, "nope.gguf")),
    (e: unknown) => e instanceof InputError && /nope\.gguf does not exist/.test(e.message),
  );
  await assert.rejects(
    openModel(`llamacpp:${join(dir, "nope.gguf")}`),
    (e: unknown) => e instanceof InputError && /does not exist/.test(e.message),
  );
  // The OpenAI backend is reached (its own errors, not "unknown backend"): nothing listens on this port.
  await assert.rejects(
    openModel("openai:m@http://127.0.0.1:9/v1", { openai: { maxRetries: 0, timeoutMs: 2000 } }),
    (e: unknown) => e instanceof UnavailableError && /\/v1\/models/.test(e.message),
  );
});
