// The OpenAI backend against a real peer: llama.cpp's llama-server (built once from node-llama-cpp's bundled
// source) serving a factory-made tiny GGUF on 127.0.0.1. Generation, stops, seeds, cancellation, logprobs refusal.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createOpenAIModel, type OpenAIModel } from "./model.js";
import {
  createTinyServedModel,
  llamaServerSkipReason,
  startLlamaServer,
  type RunningLlamaServer,
} from "./llama-server.js";
import type { GenerateRequest } from "../types.js";
import { UnavailableError } from "../../util/errors.js";

const skip = llamaServerSkipReason();
let dir: string;
let server: RunningLlamaServer;
let model: OpenAIModel;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), "buckle-openai-"));
  const { path } = createTinyServedModel(join(dir, "tiny.gguf"));
  server = await startLlamaServer({ modelPath: path });
  model = await createOpenAIModel({ model: "tiny", baseUrls: [server.url], apiKey: "", timeoutMs: 30_000 });
});

after(async () => {
  await model?.dispose();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const chatReq = (content: string, maxTokens = 16): GenerateRequest => ({
  messages: [{ role: "user", content }],
  sampling: { temperature: 0, maxTokens },
});

test("info: id, backend, server kind and context from the server", { skip }, () => {
  const info = model.info();
  assert.equal(info.id, `openai:tiny@${server.url}/v1`);
  assert.equal(info.backend, "openai");
  assert.equal(info.chatTemplate, "server");
  assert.equal(model.serverKind, "llama.cpp");
  assert.ok(info.contextSize >= 128 && info.contextSize <= 512, `context ${info.contextSize}`);
  assert.deepEqual(info.capabilities, { logprobs: false, seeds: true, training: false });
});

test(
  "chat generation, greedy: returns text, is deterministic, keeps request order and ids",
  { skip },
  async () => {
    const requests = [
      { ...chatReq("Say hello."), id: "a" },
      { ...chatReq("Count to three."), id: "b" },
      { ...chatReq("Say hello."), id: "c" },
    ];
    const first = await model.generate(requests);
    const second = await model.generate(requests);
    assert.deepEqual(
      first.map((r) => r.id),
      ["a", "b", "c"],
    );
    for (const r of first) {
      assert.ok(r.text.length > 0, "text returned");
      assert.ok(["length", "eos"].includes(r.finishReason), r.finishReason);
      assert.ok((r.promptTokens ?? 0) > 3, `prompt tokens ${r.promptTokens}`);
    }
    assert.deepEqual(
      second.map((r) => r.text),
      first.map((r) => r.text),
    );
    assert.equal(first[0].text, first[2].text, "same request, same greedy text");
    assert.equal(first[0].finishReason, "length");
  },
);

test(
  "raw completions: the prompt is used as is (fewer prompt tokens than the chat form)",
  { skip },
  async () => {
    const [raw, chat] = await model.generate([
      { prompt: "Say hello.", sampling: { temperature: 0, maxTokens: 12 } },
      chatReq("Say hello.", 12),
    ]);
    assert.ok(raw.text.length > 0);
    assert.ok((raw.promptTokens ?? 0) > 0 && (raw.promptTokens ?? 0) < (chat.promptTokens ?? 0));
    const [again] = await model.generate([
      { prompt: "Say hello.", sampling: { temperature: 0, maxTokens: 12 } },
    ]);
    assert.equal(again.text, raw.text);
  },
);

test("stop strings: text ends before the first occurrence, finishReason stop", { skip }, async () => {
  const base = { prompt: "Once upon a time", sampling: { temperature: 0, maxTokens: 24 } };
  const [full] = await model.generate([base]);
  assert.ok(full.text.length >= 8, `need some text, got ${JSON.stringify(full.text)}`);
  const k = Math.floor(full.text.length / 2);
  const stop = full.text.slice(k, k + 3);
  const [cut] = await model.generate([{ ...base, sampling: { ...base.sampling, stop: [stop] } }]);
  assert.equal(cut.text, full.text.slice(0, full.text.indexOf(stop)));
  assert.equal(cut.finishReason, "stop");
});

test("seeds: same seed same sample, other seeds differ (temperature 1)", { skip }, async () => {
  const serial = await createOpenAIModel({
    model: "tiny",
    baseUrls: [server.url],
    apiKey: "",
    concurrency: 1,
  });
  try {
    const req = (seed: number): GenerateRequest => ({
      prompt: "The weather today",
      sampling: { temperature: 1, topK: 0, topP: 1, maxTokens: 12, seed },
    });
    const [a, b, c, d] = await serial.generate([req(7), req(7), req(8), req(9)]);
    assert.equal(a.text, b.text);
    assert.ok(c.text !== a.text || d.text !== a.text, "different seeds give different samples");
  } finally {
    await serial.dispose();
  }
});

test("cancellation: finished results kept, the rest end 'cancelled'", { skip }, async () => {
  const serial = await createOpenAIModel({
    model: "tiny",
    baseUrls: [server.url],
    apiKey: "",
    concurrency: 1,
  });
  try {
    const ac = new AbortController();
    const requests = Array.from({ length: 6 }, (_, i) => ({ ...chatReq(`Item ${i}`, 32), id: String(i) }));
    const results = await serial.generate(requests, {
      signal: ac.signal,
      onResult: (i) => {
        if (i === 0) ac.abort();
      },
    });
    assert.equal(results.length, 6);
    assert.notEqual(results[0].finishReason, "cancelled");
    assert.ok(results[0].text.length > 0);
    assert.ok(results.slice(1).every((r) => r.finishReason === "cancelled" && r.text === ""));
    assert.deepEqual(
      results.map((r) => r.id),
      ["0", "1", "2", "3", "4", "5"],
    );
  } finally {
    await serial.dispose();
  }
});

test("logprobs: llama-server gives a clear capability error, detected or probed", { skip }, async () => {
  const check = (err: unknown): boolean => {
    assert.ok(err instanceof UnavailableError, String(err));
    assert.match(err.message, /does not return prompt log-probs/);
    assert.match(err.message, /llamacpp or native backend/);
    return true;
  };
  await assert.rejects(model.logprobs([{ prompt: "Hello", response: " world" }]), check);
  // Without the /v1/models probe the kind is unknown: logprobs() asks the server itself (once) and refuses.
  const blind = await createOpenAIModel({ model: "tiny", baseUrls: [server.url], apiKey: "", probe: false });
  try {
    assert.equal(blind.serverKind, "unknown");
    await assert.rejects(
      blind.logprobs([{ messages: [{ role: "user", content: "Hi" }], response: "Hello" }]),
      check,
    );
    await assert.rejects(blind.logprobs([{ prompt: "Hello", response: " world" }]), check);
    assert.equal(blind.info().capabilities.logprobs, false);
  } finally {
    await blind.dispose();
  }
});

test("bad requests fail fast with InputErrors naming the request", { skip }, async () => {
  await assert.rejects(
    model.generate([{ sampling: { temperature: 0, maxTokens: 4 } }]),
    /request 0: give exactly one/,
  );
  await assert.rejects(
    model.generate([chatReq("x"), { prompt: "x", sampling: { temperature: 0, maxTokens: 0 } }]),
    /request 1: sampling.maxTokens/,
  );
});
