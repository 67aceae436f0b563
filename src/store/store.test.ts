import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { Store, canonicalJson, contentKey, cachedModel } from "./index.js";
import { createRandomModel } from "../models/factory.js";
import { createNativeModel } from "../models/native/index.js";
import { tinyModelOptions } from "../testing/models.js";

const dir = mkdtempSync(join(tmpdir(), "buckle-store-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test("canonical JSON ignores key order and undefined members", () => {
  assert.equal(canonicalJson({ b: 1, a: [1, { d: 2, c: undefined }] }), '{"a":[1,{"d":2}],"b":1}');
  assert.equal(contentKey({ x: 1, y: 2 }), contentKey({ y: 2, x: 1 }));
  assert.notEqual(contentKey({ x: 1 }), contentKey({ x: 2 }));
});

test("records and cache survive reopening, and another process sees committed writes", () => {
  const path = join(dir, "a", "run.sqlite");
  const store = Store.open(path);
  store.put("samples", "s1", { text: "one" });
  store.put("samples", "s2", { text: "two" });
  store.put("samples", "s1", { text: "uno" });
  store.put("other", "s1", 5);
  store.cachePut("k", "generate", { text: "hi" });
  store.cachePut("k", "generate", { text: "second write ignored" });
  assert.deepEqual(
    store.list("samples").map((r) => r.value),
    [{ text: "uno" }, { text: "two" }],
  );
  assert.equal(store.count("samples"), 2);
  assert.deepEqual(store.list("samples", "s2"), [{ id: "s2", value: { text: "two" } }]);
  // a separate process reads the committed state while this one still holds the file open (WAL)
  const read = spawnSync(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { Store } from ${JSON.stringify(new URL("./index.js", import.meta.url).href)};
       const s = Store.open(${JSON.stringify(path)}); console.log(JSON.stringify([s.get("samples","s1"), s.cacheGet("k")]));`,
    ],
    { encoding: "utf8" },
  );
  assert.equal(read.status, 0, read.stderr);
  assert.deepEqual(JSON.parse(read.stdout), [{ text: "uno" }, { text: "hi" }]);
  store.close();
  const again = Store.open(path);
  assert.equal(again.get<number>("other", "s1"), 5);
  assert.equal(again.cacheCount("generate"), 1);
  again.close();
});

test("cachedModel sends each distinct request once and answers repeats from the store", async () => {
  const modelPath = join(dir, "tiny.gguf");
  createRandomModel(tinyModelOptions(3, { hiddenSize: 32, intermediateSize: 64 }), modelPath);
  const inner = await createNativeModel({ modelPath });
  const store = Store.open(join(dir, "cache.sqlite"));
  try {
    const model = cachedModel(inner, store);
    const sampling = { temperature: 0.8, topP: 0.9, maxTokens: 6, seed: 11 };
    const reqs = [
      { prompt: "a b c", sampling, id: "x" },
      { prompt: "a b c", sampling, id: "y" }, // identical: computed once
      { prompt: "d e", sampling: { ...sampling, seed: 12 } },
      { prompt: "d e", sampling: { temperature: 0.8, maxTokens: 6 } }, // unseeded: never cached
    ];
    const first = await model.generate(reqs);
    assert.deepEqual(model.stats(), { hits: 0, misses: 2, duplicates: 1, uncached: 1 });
    assert.equal(first[0].text, first[1].text);
    assert.equal(first[1].id, "y");
    const direct = await inner.generate([reqs[2]]);
    assert.equal(first[2].text, direct[0].text);
    const second = await cachedModel(inner, store).generate(reqs.slice(0, 3));
    assert.deepEqual(
      second.map((r) => r.text),
      first.slice(0, 3).map((r) => r.text),
    );
    const lp = cachedModel(inner, store);
    const a = await lp.logprobs([{ prompt: "q", response: " r s" }]);
    const b = await lp.logprobs([{ prompt: "q", response: " r s" }]);
    assert.deepEqual(a, b);
    assert.deepEqual(lp.stats(), { hits: 1, misses: 1, duplicates: 0, uncached: 0 });
  } finally {
    store.close();
    await inner.dispose();
  }
});
