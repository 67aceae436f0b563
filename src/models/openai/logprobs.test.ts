// Tests of response log-probs over HTTP without a vLLM server (none can run here): parsing of vLLM-shaped
// prompt_logprobs and echo answers, and the whole logprobs() path against a loopback fake speaking vLLM's shapes.

import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import {
  commonPrefixLength,
  echoResponseTokens,
  parseEchoLogprobs,
  parseVllmPromptLogprobs,
  perplexityOf,
} from "./logprobs.js";
import { createOpenAIModel } from "./model.js";
import { BatchError } from "./errors.js";
import { UnavailableError } from "../../util/errors.js";

/**
 * A /v1/completions answer in the shape vLLM's OpenAI server gives for `prompt_logprobs: 1` (written after
 * answers published in vLLM's issue tracker: per prompt position null or {token id: {logprob, rank,
 * decoded_token}}, the prompt's own token plus the top-1 when they differ).
 */
const VLLM_PROMPT_LOGPROBS_ANSWER = {
  id: "cmpl-2f5d1c0e9b8a4d7e",
  object: "text_completion",
  created: 1717000000,
  model: "Qwen/Qwen2.5-0.5B-Instruct",
  choices: [
    {
      index: 0,
      text: " I",
      logprobs: null,
      finish_reason: "length",
      stop_reason: null,
      prompt_logprobs: [
        null,
        {
          "1879": { logprob: -7.584228515625, rank: 212, decoded_token: " world" },
          "11": { logprob: -2.512939214706421, rank: 1, decoded_token: "," },
        },
        { "13": { logprob: -1.4937736988067627, rank: 1, decoded_token: "." } },
        {
          "358": { logprob: -1.8308428525924683, rank: 2, decoded_token: " I" },
          "576": { logprob: -1.3464678525924683, rank: 1, decoded_token: " The" },
        },
      ],
    },
  ],
  usage: { prompt_tokens: 4, total_tokens: 5, completion_tokens: 1 },
};
const VLLM_PROMPT_IDS = [9707, 1879, 13, 358];

test("vLLM prompt_logprobs: the prompt token's own entry is read, not the top-1", () => {
  const lps = parseVllmPromptLogprobs(VLLM_PROMPT_LOGPROBS_ANSWER, VLLM_PROMPT_IDS, 1);
  assert.deepEqual(lps, [-7.584228515625, -1.4937736988067627, -1.8308428525924683]);
  assert.deepEqual(
    parseVllmPromptLogprobs(VLLM_PROMPT_LOGPROBS_ANSWER, VLLM_PROMPT_IDS, 3),
    [-1.8308428525924683],
  );
  // The older shape (id -> float) reads the same.
  const old = { choices: [{ prompt_logprobs: [null, { "5": -0.5, "6": -0.1 }] }] };
  assert.deepEqual(parseVllmPromptLogprobs(old, [1, 5], 1), [-0.5]);
});

test("vLLM prompt_logprobs: wrong shapes throw instead of giving numbers", () => {
  // Token id not among the keys (e.g. the prompt was tokenized differently).
  assert.throws(
    () => parseVllmPromptLogprobs(VLLM_PROMPT_LOGPROBS_ANSWER, [9707, 1879, 13, 999], 1),
    UnavailableError,
  );
  // Length mismatch.
  assert.throws(() => parseVllmPromptLogprobs(VLLM_PROMPT_LOGPROBS_ANSWER, [9707, 1879, 13], 1), /3 tokens/);
  // A server that ignores prompt_logprobs (llama-server): no field at all.
  assert.throws(
    () => parseVllmPromptLogprobs({ choices: [{ text: "x", logprobs: null }] }, VLLM_PROMPT_IDS, 1),
    /does not return prompt log-probs/,
  );
  // Scoring from position 0 has no context.
  assert.throws(
    () => parseVllmPromptLogprobs(VLLM_PROMPT_LOGPROBS_ANSWER, VLLM_PROMPT_IDS, 0),
    UnavailableError,
  );
});

test("echo+logprobs: response tokens by character offset; servers that do not echo are refused", () => {
  // Shape of a vLLM echo answer (tokens, token_logprobs with null first, text_offset), max_tokens 1.
  const answer = {
    choices: [
      {
        text: "The step of boiling water is: 1",
        logprobs: {
          tokens: ["The", " step", " of", " boiling", " water", " is", ":", " ", "1"],
          token_logprobs: [null, -8.8, -1.5, -13.5, -2.0, -2.2, -8.5, -1.3, -0.4],
          text_offset: [0, 3, 8, 11, 19, 25, 28, 29, 30],
        },
      },
    ],
  };
  const full = "The step of boiling water is: ";
  const tokens = parseEchoLogprobs(answer, full);
  const response = echoResponseTokens(tokens, "The step of".length, full.length);
  assert.deepEqual(
    response.map((t) => t.text),
    [" boiling", " water", " is", ":", " "],
  );
  assert.deepEqual(
    response.map((t) => t.logprob),
    [-13.5, -2.0, -2.2, -8.5, -1.3],
  );
  // llama-server-like: only generated tokens come back.
  const generatedOnly = {
    choices: [{ text: "1", logprobs: { tokens: ["1"], token_logprobs: [-0.4], text_offset: [0] } }],
  };
  assert.throws(() => parseEchoLogprobs(generatedOnly, full), /did not echo/);
});

test("helpers: common prefix and perplexity", () => {
  assert.equal(commonPrefixLength([1, 2, 3], [1, 2, 4, 5]), 2);
  assert.equal(commonPrefixLength([], [1]), 0);
  assert.equal(perplexityOf([]), Infinity);
  assert.ok(Math.abs(perplexityOf([-1, -3]) - Math.exp(2)) < 1e-12);
});

// ---------------------------------------------------------------- a loopback fake vLLM

/** Character-level "tokenizer" of the fake: id = code point + 1000. */
const enc = (s: string): number[] => [...s].map((c) => (c.codePointAt(0) as number) + 1000);
/** The fake's log-prob of the token at position i (anything distinctive). */
const fakeLogprob = (i: number, id: number): number => -((i * 7 + id) % 13) / 4 - 0.01;

function renderChat(
  messages: { role: string; content: string }[],
  addGen: boolean,
  continueFinal: boolean,
): string {
  let out = "";
  messages.forEach((m, i) => {
    out += `<|${m.role}|>${m.content}`;
    if (!(continueFinal && i === messages.length - 1)) out += "<|end|>";
  });
  if (addGen) out += "<|assistant|>";
  return out;
}

interface FakeOptions {
  /** Omit prompt_logprobs from answers (like a server that ignores the field). */
  ignorePromptLogprobs?: boolean;
}

async function startFakeVllm(
  opts: FakeOptions = {},
): Promise<{ url: string; calls: string[]; close(): Promise<void> }> {
  const calls: string[] = [];
  const server = http.createServer((req, res) => {
    let raw = "";
    req.on("data", (d: Buffer) => (raw += d.toString()));
    req.on("end", () => {
      calls.push(`${req.method} ${req.url}`);
      const send = (status: number, body: unknown): void => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      const body = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
      if (req.method === "GET" && req.url === "/v1/models")
        return send(200, {
          object: "list",
          data: [{ id: "fake/model", object: "model", owned_by: "vllm", max_model_len: 4096 }],
        });
      if (req.url === "/tokenize") {
        const text =
          typeof body.prompt === "string"
            ? body.prompt
            : renderChat(
                body.messages as { role: string; content: string }[],
                body.add_generation_prompt === true,
                body.continue_final_message === true,
              );
        const tokens = enc(text);
        return send(200, { count: tokens.length, max_model_len: 4096, tokens, token_strs: null });
      }
      if (req.url === "/v1/completions" && Array.isArray(body.prompt)) {
        const ids = body.prompt as number[];
        const choice: Record<string, unknown> = {
          index: 0,
          text: "x",
          logprobs: null,
          finish_reason: "length",
          stop_reason: null,
        };
        if (!opts.ignorePromptLogprobs && body.prompt_logprobs === 1)
          choice.prompt_logprobs = ids.map((id, i) =>
            i === 0
              ? null
              : {
                  [String(id)]: { logprob: fakeLogprob(i, id), rank: 3, decoded_token: "?" },
                  "7": { logprob: -0.001, rank: 1, decoded_token: "!" },
                },
          );
        return send(200, { object: "text_completion", model: "fake/model", choices: [choice] });
      }
      if (req.url === "/v1/completions" && body.echo === true)
        return send(400, { object: "error", message: "echo is not supported by this fake", code: 400 });
      send(404, { error: { message: `no route ${req.url}` } });
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

test("logprobs() over a fake vLLM: prompt and chat spans, detection once, request order", async () => {
  const fake = await startFakeVllm();
  const model = await createOpenAIModel({ model: "fake/model", baseUrls: [fake.url], apiKey: "" });
  try {
    assert.equal(model.serverKind, "vllm");
    assert.equal(model.info().contextSize, 4096);
    const results = await model.logprobs([
      { prompt: "Q: hi\nA:", response: " yes", id: "p" },
      { messages: [{ role: "user", content: "hi" }], response: "hello", id: "c" },
      { prompt: "abc", response: "" },
    ]);
    assert.equal(model.info().capabilities.logprobs, true);
    // Raw prompt: the response tokens are the characters after the prompt, scored at their positions.
    const full = enc("Q: hi\nA: yes");
    const from = "Q: hi\nA:".length;
    assert.equal(results[0].id, "p");
    assert.deepEqual(results[0].tokens, enc(" yes"));
    assert.deepEqual(
      results[0].logprobs,
      full.slice(from).map((id, k) => fakeLogprob(from + k, id)),
    );
    const mean = results[0].logprobs.reduce((a, b) => a + b, 0) / 4;
    assert.ok(Math.abs(results[0].perplexity - Math.exp(-mean)) < 1e-12);
    // Chat: the assistant content span under the template, without an end-of-turn marker.
    const chatPrefix = "<|user|>hi<|end|><|assistant|>";
    assert.equal(results[1].id, "c");
    assert.deepEqual(results[1].tokens, enc("hello"));
    assert.deepEqual(
      results[1].logprobs,
      enc("hello").map((id, k) => fakeLogprob(chatPrefix.length + k, id)),
    );
    assert.deepEqual(results[2], { id: undefined, tokens: [], logprobs: [], perplexity: Infinity });
    // Detection asked once; a second batch goes straight to scoring.
    const probes = fake.calls.filter((c) => c === "POST /v1/completions").length;
    await model.logprobs([{ prompt: "a", response: "b" }]);
    assert.equal(fake.calls.filter((c) => c === "POST /v1/completions").length, probes + 1);
  } finally {
    await model.dispose();
    await fake.close();
  }
});

test("logprobs() refuses clearly where prompt_logprobs is ignored, and never returns numbers", async () => {
  const fake = await startFakeVllm({ ignorePromptLogprobs: true });
  const auto = await createOpenAIModel({ model: "fake/model", baseUrls: [fake.url], apiKey: "" });
  const forced = await createOpenAIModel({
    model: "fake/model",
    baseUrls: [fake.url],
    apiKey: "",
    logprobsMode: "vllm-prompt-logprobs",
  });
  try {
    await assert.rejects(auto.logprobs([{ prompt: "a", response: "b" }]), (err: unknown) => {
      assert.ok(err instanceof UnavailableError);
      assert.match(err.message, /does not return prompt log-probs/);
      assert.match(err.message, /vLLM server/);
      return true;
    });
    assert.equal(auto.info().capabilities.logprobs, false);
    // Forced mode: each request fails with the shape error inside a BatchError; no numbers come back.
    await assert.rejects(forced.logprobs([{ prompt: "a", response: "b" }]), (err: unknown) => {
      assert.ok(err instanceof BatchError);
      assert.equal(err.results[0], undefined);
      assert.match(String(err.errors[0]?.message), /prompt_logprobs is missing/);
      return true;
    });
  } finally {
    await auto.dispose();
    await forced.dispose();
    await fake.close();
  }
});
