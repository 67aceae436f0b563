// Tests of chat template rendering: real templates shipped with llama.cpp, buckle's built-in formats and
// fallback, the GGUF / tokenizer_config.json entry points, and the errors users see.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { extractBundledSourceFile } from "../vocabs.js";
import { InputError } from "../../util/errors.js";
import { ChatTemplate, type ChatMessage } from "./template.js";
import { FALLBACK_TEMPLATE_NAME, builtinTemplates, templateForVocab } from "./builtin.js";

function bundled(name: string): string {
  return readFileSync(extractBundledSourceFile(`models/templates/${name}.jinja`), "utf8");
}

const SYS = "You are a concise assistant.";
const U1 = "What is the capital of France?";
const A1 = "Paris.";
const U2 = "And of Italy?";
const WITH_SYSTEM: ChatMessage[] = [
  { role: "system", content: SYS },
  { role: "user", content: U1 },
  { role: "assistant", content: A1 },
  { role: "user", content: U2 },
];
const NO_SYSTEM = WITH_SYSTEM.slice(1);

test("Qwen2.5 template renders ChatML turns and its default system prompt", () => {
  const t = ChatTemplate.fromString(bundled("Qwen-Qwen2.5-7B-Instruct"), { name: "qwen2.5" });
  assert.equal(
    t.render(WITH_SYSTEM, { addGenerationPrompt: true }),
    `<|im_start|>system\n${SYS}<|im_end|>\n<|im_start|>user\n${U1}<|im_end|>\n` +
      `<|im_start|>assistant\n${A1}<|im_end|>\n<|im_start|>user\n${U2}<|im_end|>\n<|im_start|>assistant\n`,
  );
  assert.equal(
    t.render(NO_SYSTEM),
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
      `<|im_start|>user\n${U1}<|im_end|>\n<|im_start|>assistant\n${A1}<|im_end|>\n<|im_start|>user\n${U2}<|im_end|>\n`,
  );
});

test("Llama 3.1 template renders headers, the date preamble and <|eot_id|>", () => {
  const t = ChatTemplate.fromString(bundled("meta-llama-Llama-3.1-8B-Instruct"), {
    bosToken: "<|begin_of_text|>",
    eosToken: "<|eot_id|>",
  });
  const header = (role: string) => `<|start_header_id|>${role}<|end_header_id|>\n\n`;
  assert.equal(
    t.render(WITH_SYSTEM, { addGenerationPrompt: true }),
    "<|begin_of_text|>" +
      header("system") +
      `Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n${SYS}<|eot_id|>` +
      `${header("user")}${U1}<|eot_id|>${header("assistant")}${A1}<|eot_id|>${header("user")}${U2}<|eot_id|>` +
      header("assistant"),
  );
});

test("Mistral Nemo template folds the system prompt into the last [INST] block", () => {
  // The bundle has no Mistral-7B-Instruct-v0.2 template; Nemo is the Mistral [INST] format it ships.
  const t = ChatTemplate.fromString(bundled("mistralai-Mistral-Nemo-Instruct-2407"), {
    bosToken: "<s>",
    eosToken: "</s>",
  });
  assert.equal(t.render(WITH_SYSTEM), `<s>[INST]${U1}[/INST]${A1}</s>[INST]${SYS}\n\n${U2}[/INST]`);
  assert.equal(
    t.render(NO_SYSTEM, { addGenerationPrompt: true }),
    `<s>[INST]${U1}[/INST]${A1}</s>[INST]${U2}[/INST]`,
  );
});

test("Phi-3.5 template renders <|role|> turns, and EOS only when not generating", () => {
  const t = ChatTemplate.fromString(bundled("microsoft-Phi-3.5-mini-instruct"), {
    bosToken: "<s>",
    eosToken: "<|endoftext|>",
  });
  const body = `<|system|>\n${SYS}<|end|>\n<|user|>\n${U1}<|end|>\n<|assistant|>\n${A1}<|end|>\n<|user|>\n${U2}<|end|>\n`;
  assert.equal(t.render(WITH_SYSTEM, { addGenerationPrompt: true }), `${body}<|assistant|>\n`);
  assert.equal(t.render(WITH_SYSTEM), `${body}<|endoftext|>`);
});

test("Gemma 2 template renders model turns, trims content and refuses a system role", () => {
  const t = ChatTemplate.fromString(bundled("google-gemma-2-2b-it"), {
    bosToken: "<bos>",
    eosToken: "<eos>",
    name: "gemma2",
  });
  const padded = NO_SYSTEM.map((m) => ({ ...m, content: `  ${m.content}\n` }));
  assert.equal(
    t.render(padded, { addGenerationPrompt: true }),
    `<bos><start_of_turn>user\n${U1}<end_of_turn>\n<start_of_turn>model\n${A1}<end_of_turn>\n` +
      `<start_of_turn>user\n${U2}<end_of_turn>\n<start_of_turn>model\n`,
  );
  assert.throws(
    () => t.render(WITH_SYSTEM),
    (err: unknown) =>
      err instanceof InputError &&
      err.message === 'chat template "gemma2" rejected the conversation: System role not supported',
  );
});

test("built-in formats render the documented layouts", () => {
  const toks = { bosToken: "<s>", eosToken: "</s>" };
  const gen = { addGenerationPrompt: true };
  assert.equal(
    ChatTemplate.builtin("chatml").render(WITH_SYSTEM, gen),
    `<|im_start|>system\n${SYS}<|im_end|>\n<|im_start|>user\n${U1}<|im_end|>\n` +
      `<|im_start|>assistant\n${A1}<|im_end|>\n<|im_start|>user\n${U2}<|im_end|>\n<|im_start|>assistant\n`,
  );
  assert.equal(
    ChatTemplate.builtin("llama2", toks).render(WITH_SYSTEM, gen),
    `<s>[INST] <<SYS>>\n${SYS}\n<</SYS>>\n\n${U1} [/INST] ${A1} </s><s>[INST] ${U2} [/INST]`,
  );
  assert.equal(
    ChatTemplate.builtin("llama2", toks).render(NO_SYSTEM),
    `<s>[INST] ${U1} [/INST] ${A1} </s><s>[INST] ${U2} [/INST]`,
  );
  assert.equal(
    ChatTemplate.builtin("llama3", { bosToken: "<|begin_of_text|>" }).render(WITH_SYSTEM, gen),
    `<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n${SYS}<|eot_id|>` +
      `<|start_header_id|>user<|end_header_id|>\n\n${U1}<|eot_id|>` +
      `<|start_header_id|>assistant<|end_header_id|>\n\n${A1}<|eot_id|>` +
      `<|start_header_id|>user<|end_header_id|>\n\n${U2}<|eot_id|>` +
      "<|start_header_id|>assistant<|end_header_id|>\n\n",
  );
  assert.equal(
    ChatTemplate.builtin("mistral", toks).render(WITH_SYSTEM, gen),
    `<s>[INST] ${SYS}\n\n${U1} [/INST]${A1}</s>[INST] ${U2} [/INST]`,
  );
  assert.equal(
    ChatTemplate.builtin("phi3", toks).render(WITH_SYSTEM, gen),
    `<|system|>\n${SYS}<|end|>\n<|user|>\n${U1}<|end|>\n<|assistant|>\n${A1}<|end|>\n<|user|>\n${U2}<|end|>\n<|assistant|>\n`,
  );
  assert.equal(
    ChatTemplate.builtin("zephyr", toks).render(WITH_SYSTEM, gen),
    `<|system|>\n${SYS}</s>\n<|user|>\n${U1}</s>\n<|assistant|>\n${A1}</s>\n<|user|>\n${U2}</s>\n<|assistant|>\n`,
  );
  assert.throws(
    () => ChatTemplate.builtin("llama2", toks).render([...NO_SYSTEM, { role: "system", content: "late" }]),
    /buckle-llama2.*system message only as the first/,
  );
  assert.deepEqual(Object.keys(builtinTemplates).sort(), [
    "chatml",
    "llama2",
    "llama3",
    "mistral",
    "phi3",
    "zephyr",
  ]);
});

test("templateForVocab picks the format whose markers the vocabulary has", () => {
  assert.equal(templateForVocab("llama-spm"), "llama2");
  assert.equal(templateForVocab("phi-3"), "phi3");
  assert.equal(templateForVocab("llama-bpe"), "llama3");
  assert.equal(templateForVocab("qwen2"), "chatml");
  assert.equal(templateForVocab("gpt-2"), "chatml");
});

test("the fallback is ChatML and says it is the fallback", () => {
  const t = ChatTemplate.fallback();
  assert.equal(t.isFallback, true);
  assert.equal(t.name, FALLBACK_TEMPLATE_NAME);
  assert.equal(t.name, "buckle-fallback-chatml");
  assert.equal(
    t.render([{ role: "user", content: "hi" }], { addGenerationPrompt: true }),
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
  );
  assert.equal(ChatTemplate.fromString("{{ 'x' }}").isFallback, false);
  assert.equal(ChatTemplate.fromGGUF({}).isFallback, true);
  assert.equal(ChatTemplate.fromGGUF({ chatTemplate: "  " }).isFallback, true);
  assert.equal(ChatTemplate.fromGGUF({ chatTemplate: "{{ bos_token }}", bosToken: "<s>" }).render([]), "<s>");
});

test("fromGGUFMetadata reads the template and the BOS/EOS texts by id", () => {
  const tokens = ["<unk>", "<s>", "</s>", "hi"];
  const meta: Record<string, unknown> = {
    "tokenizer.chat_template":
      "{{ bos_token }}{% for m in messages %}{{ m.content + eos_token }}{% endfor %}",
    "tokenizer.chat_template.tool_use": "tools:{{ messages | length }}",
    "tokenizer.ggml.bos_token_id": 1,
    "tokenizer.ggml.eos_token_id": 2n,
    "general.name": "Tiny",
  };
  const get = (key: string) => meta[key];
  const t = ChatTemplate.fromGGUFMetadata(get, tokens);
  assert.equal(t.isFallback, false);
  assert.equal(t.name, "Tiny (tokenizer.chat_template)");
  assert.equal(t.render([{ role: "user", content: "a" }]), "<s>a</s>");
  assert.equal(
    ChatTemplate.fromGGUFMetadata(get, tokens, { templateName: "tool_use" }).render([]),
    "tools:0",
  );
  assert.throws(() => ChatTemplate.fromGGUFMetadata(get, tokens, { templateName: "rag" }), InputError);
  const none = ChatTemplate.fromGGUFMetadata(
    (k) => (k === "tokenizer.chat_template" ? undefined : meta[k]),
    tokens,
  );
  assert.equal(none.isFallback, true);
  assert.equal(none.bosToken, "<s>");
  assert.throws(
    () => ChatTemplate.fromGGUFMetadata((k) => (k === "tokenizer.ggml.bos_token_id" ? 9 : meta[k]), tokens),
    /bos_token_id = 9 is not a token id/,
  );
});

test("fromTokenizerConfig accepts string or named templates and {content} token objects", () => {
  const single = ChatTemplate.fromTokenizerConfig({
    chat_template: "{{ bos_token }}|{{ eos_token }}",
    bos_token: { content: "<s>", lstrip: false },
    eos_token: "</s>",
  });
  assert.equal(single.render([]), "<s>|</s>");
  assert.equal(single.name, "tokenizer_config.json");
  const listed = {
    chat_template: [
      { name: "default", template: "D{{ messages | length }}" },
      { name: "tool_use", template: "T" },
    ],
    bos_token: null,
    eos_token: "<eos>",
  };
  assert.equal(ChatTemplate.fromTokenizerConfig(listed).render([{ role: "user", content: "x" }]), "D1");
  assert.equal(ChatTemplate.fromTokenizerConfig(listed, { templateName: "tool_use" }).render([]), "T");
  assert.throws(
    () => ChatTemplate.fromTokenizerConfig(listed, { templateName: "rag" }),
    (err: unknown) =>
      err instanceof InputError &&
      /no chat template named "rag"/.test(err.message) &&
      /tool_use/.test(err.hint ?? ""),
  );
  const fallback = ChatTemplate.fromTokenizerConfig({ eos_token: "</s>" });
  assert.equal(fallback.isFallback, true);
  assert.equal(fallback.eosToken, "</s>");
  assert.throws(() => ChatTemplate.fromTokenizerConfig([]), /not a JSON object/);
  assert.throws(() => ChatTemplate.fromTokenizerConfig({ chat_template: 3 }), /neither a string nor a list/);
  assert.throws(
    () => ChatTemplate.fromTokenizerConfig({ chat_template: [{ name: "x" }] }),
    /chat_template\[0\]/,
  );
  assert.throws(() => ChatTemplate.fromTokenizerConfig({ chat_template: "x", bos_token: 5 }), /bos_token/);
});

test("template errors name the template and carry the engine's message", () => {
  assert.throws(
    () => ChatTemplate.fromString("{% for m in messages %}{{ m.content }", { name: "broken" }),
    (err: unknown) =>
      err instanceof InputError && err.message.startsWith('chat template "broken" cannot be parsed: '),
  );
  const t = ChatTemplate.fromString("{{ messages[0].content | no_such_filter }}", { name: "odd" });
  assert.throws(
    () => t.render([{ role: "user", content: "x" }]),
    (err: unknown) =>
      err instanceof InputError &&
      err.message.startsWith('chat template "odd" failed to render: ') &&
      /no_such_filter/.test(err.message),
  );
  const bad = [{ role: "tool", content: "x" }] as unknown as ChatMessage[];
  assert.throws(() => ChatTemplate.fallback().render(bad), /role "tool"; expected system, user or assistant/);
});

test("strftime_now honours a pinned date, in English", () => {
  const t = ChatTemplate.fromString("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%B %j %%') }}", {
    now: new Date(2024, 6, 26, 12),
  });
  assert.equal(t.render([]), "26 Jul 2024|July 208 %");
});
