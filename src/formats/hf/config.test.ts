import { test } from "node:test";
import assert from "node:assert/strict";
import { InputError } from "../../util/errors.js";
import type { ModelSpec } from "../model-spec.js";
import { hfConfigFromSpec, specFromHFConfig } from "./config.js";

// Shaped like the published config.json files of these models (values trimmed to what is read).
const llama32_1b = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 128256,
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 16,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: 64,
  max_position_embeddings: 131072,
  rms_norm_eps: 1e-5,
  rope_theta: 500000.0,
  rope_scaling: {
    factor: 32.0,
    high_freq_factor: 4.0,
    low_freq_factor: 1.0,
    original_max_position_embeddings: 8192,
    rope_type: "llama3",
  },
  tie_word_embeddings: true,
  attention_bias: false,
  mlp_bias: false,
  hidden_act: "silu",
  torch_dtype: "bfloat16",
};

const qwen25_05b = {
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  vocab_size: 151936,
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  rope_scaling: null,
  sliding_window: 32768,
  use_sliding_window: false,
  tie_word_embeddings: true,
  hidden_act: "silu",
};

const mistral7b = {
  architectures: ["MistralForCausalLM"],
  model_type: "mistral",
  vocab_size: 32768,
  hidden_size: 4096,
  intermediate_size: 14336,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: null,
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-5,
  rope_theta: 1000000.0,
  sliding_window: null,
  tie_word_embeddings: false,
};

test("reads llama 3.2, qwen2.5 and mistral configs", () => {
  assert.deepEqual(specFromHFConfig(llama32_1b, "l/config.json"), {
    arch: "llama",
    vocabSize: 128256,
    hiddenSize: 2048,
    intermediateSize: 8192,
    numLayers: 16,
    numHeads: 32,
    numKvHeads: 8,
    headDim: 64,
    contextLength: 131072,
    rmsNormEps: 1e-5,
    ropeTheta: 500000,
    ropeScaling: {
      type: "llama3",
      factor: 32,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalContextLength: 8192,
    },
    tiedEmbeddings: true,
    attentionBias: false,
  } satisfies ModelSpec);
  const q = specFromHFConfig(qwen25_05b, "q/config.json");
  assert.equal(q.arch, "qwen2");
  assert.equal(q.headDim, 64);
  assert.equal(q.attentionBias, true, "qwen2 always has q/k/v biases");
  assert.equal(q.tiedEmbeddings, true);
  assert.equal(q.ropeScaling, undefined);
  const m = specFromHFConfig(mistral7b, "m/config.json");
  assert.equal(m.arch, "mistral");
  assert.equal(m.headDim, 128, "null head_dim falls back to hidden / heads");
  assert.equal(m.attentionBias, false);
  assert.equal(m.tiedEmbeddings, false);
});

test("applies the documented defaults", () => {
  const minimal = {
    model_type: "llama",
    vocab_size: 100,
    hidden_size: 64,
    intermediate_size: 128,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    max_position_embeddings: 256,
    rms_norm_eps: 1e-6,
  };
  const s = specFromHFConfig(minimal, "x");
  assert.equal(s.numKvHeads, 4);
  assert.equal(s.headDim, 16);
  assert.equal(s.ropeTheta, 10000);
  assert.equal(s.tiedEmbeddings, false);
  assert.equal(s.attentionBias, false);
  assert.equal(specFromHFConfig({ ...minimal, attention_bias: true }, "x").attentionBias, true);
  assert.equal(specFromHFConfig({ ...minimal, model_type: "qwen2" }, "x").tiedEmbeddings, false);
  // Only architectures, no model_type: inferred.
  const fromArch = { ...minimal, model_type: undefined, architectures: ["MistralForCausalLM"] };
  assert.equal(specFromHFConfig(fromArch, "x").arch, "mistral");
  // transformers 5 keeps rope settings in rope_parameters.
  const v5 = { ...minimal, rope_parameters: { rope_type: "linear", factor: 2, rope_theta: 50000 } };
  const s5 = specFromHFConfig(v5, "x");
  assert.equal(s5.ropeTheta, 50000);
  assert.deepEqual(s5.ropeScaling, { type: "linear", factor: 2 });
  assert.equal(
    specFromHFConfig({ ...minimal, rope_parameters: { rope_type: "default", rope_theta: 7 } }, "x")
      .ropeScaling,
    undefined,
  );
  // The legacy "type" key.
  const yarn = specFromHFConfig(
    { ...minimal, rope_scaling: { type: "yarn", factor: 4, original_max_position_embeddings: 64 } },
    "x",
  );
  assert.deepEqual(yarn.ropeScaling, { type: "yarn", factor: 4, originalContextLength: 64 });
});

test("errors name the bad field and the file", () => {
  const base = llama32_1b as Record<string, unknown>;
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...base, hidden_size: undefined }, /hidden_size is missing/],
    [{ ...base, vocab_size: "128256" }, /vocab_size must be a positive integer, got "128256"/],
    [{ ...base, num_hidden_layers: 1.5 }, /num_hidden_layers must be a positive integer/],
    [{ ...base, rms_norm_eps: -1 }, /rms_norm_eps must be a positive number/],
    [{ ...base, num_key_value_heads: 5 }, /num_key_value_heads \(5\) must divide num_attention_heads \(32\)/],
    [{ ...base, head_dim: 63 }, /head_dim \(63\) must be even/],
    [{ ...base, tie_word_embeddings: "yes" }, /tie_word_embeddings must be true or false/],
    [{ ...base, model_type: "gpt2", architectures: undefined }, /model_type is "gpt2"; buckle supports/],
    [{ ...base, architectures: ["GPT2LMHeadModel"] }, /architectures is \["GPT2LMHeadModel"\]/],
    [{ ...base, architectures: ["Qwen2ForCausalLM"] }, /does not match model_type "llama"/],
    [{ ...base, model_type: undefined, architectures: undefined }, /model_type is missing/],
    [{ ...base, rope_scaling: { rope_type: "dynamic", factor: 2 } }, /rope_scaling\.rope_type is "dynamic"/],
    [
      { ...base, rope_scaling: { rope_type: "llama3", factor: 8 } },
      /rope_scaling\.low_freq_factor is missing/,
    ],
    [{ ...base, rope_scaling: { type: "linear" } }, /rope_scaling\.factor is missing/],
    [{ ...base, rope_scaling: [1] }, /rope_scaling must be an object/],
    [{ ...base, hidden_act: "gelu" }, /hidden_act is "gelu"/],
    [{ ...base, mlp_bias: true }, /mlp_bias is true/],
    [{ ...qwen25_05b, use_sliding_window: true }, /use_sliding_window is true/],
  ];
  for (const [cfg, re] of cases) {
    assert.throws(
      () => specFromHFConfig(cfg, "/models/x/config.json"),
      (e: unknown) =>
        e instanceof InputError && re.test(e.message) && e.message.startsWith("/models/x/config.json: "),
      String(re),
    );
  }
  assert.throws(() => specFromHFConfig([], "f"), /config is not a JSON object/);
});

test("config round trip for llama, qwen2 (biases, tied) and mistral", () => {
  const specs: ModelSpec[] = [
    specFromHFConfig(llama32_1b, "x"),
    specFromHFConfig(qwen25_05b, "x"),
    specFromHFConfig(mistral7b, "x"),
    {
      ...specFromHFConfig(mistral7b, "x"),
      headDim: 96,
      ropeScaling: { type: "yarn", factor: 4, originalContextLength: 4096 },
    },
    { ...specFromHFConfig(llama32_1b, "x"), attentionBias: true, ropeScaling: { type: "linear", factor: 2 } },
  ];
  for (const spec of specs) {
    const cfg = hfConfigFromSpec(spec, { torchDtype: "bfloat16", bosTokenId: 1, eosTokenId: [2, 3] });
    const back = specFromHFConfig(JSON.parse(JSON.stringify(cfg)), "roundtrip");
    assert.deepEqual(back, spec);
    assert.equal(cfg.torch_dtype, "bfloat16");
    assert.deepEqual(cfg.eos_token_id, [2, 3]);
    assert.equal(cfg.hidden_act, "silu");
  }
  assert.deepEqual(hfConfigFromSpec(specs[1]).architectures, ["Qwen2ForCausalLM"]);
  assert.equal(hfConfigFromSpec(specs[0]).rope_scaling?.rope_type, "llama3");
  assert.equal(hfConfigFromSpec(specs[2]).rope_scaling, null);
  assert.throws(
    () => hfConfigFromSpec({ ...specs[1], attentionBias: false }),
    /qwen2 models always have attention biases/,
  );
  assert.throws(
    () => hfConfigFromSpec({ ...specs[2], attentionBias: true }),
    /Mistral has no attention biases/,
  );
});
