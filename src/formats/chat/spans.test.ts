// Tests of token spans: the byte/token offset arithmetic on hand-made token lists, then whole conversations
// through real llama.cpp templates and buckle's real tokenizers on llama.cpp's vocab-only GGUF files.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { builtinVocabPath, extractBundledSourceFile } from "../vocabs.js";
import { loadTokenizer } from "../tokenizer/index.js";
import type { Tokenizer } from "../tokenizer/types.js";
import { InputError } from "../../util/errors.js";
import { ChatTemplate, type ChatMessage } from "./template.js";
import {
  alignTokens,
  ceilIndex,
  charToByteTable,
  encodeChatPrompt,
  floorIndex,
  renderWithSpans,
  type ChatSpans,
} from "./spans.js";

// Only alignTokens' view of a tokenizer (bytes, text, special flag) over a fixed token list: enough to test
// the arithmetic on token sequences written out by hand. Everything else uses the real tokenizers.
function tokenList(tokens: string[], specials: string[] = []): Tokenizer {
  const enc = new TextEncoder();
  const unused = () => {
    throw new Error("not part of this test");
  };
  return {
    kind: "spm",
    vocab: { model: "test", tokens },
    vocabSize: tokens.length,
    bosId: undefined,
    eosId: undefined,
    encode: unused,
    decode: unused,
    tokenBytes: (id) => enc.encode(tokens[id]),
    tokenText: (id) => tokens[id],
    isSpecial: (id) => specials.includes(tokens[id]),
  };
}

function ranges(a: { starts: Int32Array; ends: Int32Array }): [number, number][] {
  return Array.from(a.starts, (s, k) => [s, a.ends[k]]);
}

test("charToByteTable gives UTF-8 offsets, not UTF-16 indices", () => {
  assert.deepEqual(Array.from(charToByteTable("aé🦙b")), [0, 1, 3, 7, 7, 8]);
  assert.deepEqual(Array.from(charToByteTable("")), [0]);
});

test("alignTokens allows inserted space prefixes and swallowed whitespace", () => {
  const text = "<s>[A] Hi\nthere]\n1";
  const toks = ["<s>", " [", "A", "]", " Hi", "there", "]", " ", "1"];
  const a = alignTokens(text, [0, 1, 2, 3, 4, 5, 6, 7, 8], tokenList(toks, ["<s>"]));
  assert.deepEqual(ranges(a), [
    [0, 3], // "<s>"
    [3, 4], // " [" whose space the tokenizer added
    [4, 5],
    [5, 6],
    [6, 9], // " Hi" with the text's own space
    [10, 15], // "there" after a dropped "\n"
    [15, 16],
    [17, 17], // a lone added "▁" sits with the token after it, past the dropped "\n"
    [17, 18],
  ]);
});

test("alignTokens places tokens the tokenizer put in front before everything, and splits bytes of one char", () => {
  const toks = ["<s>", "é", "\xf0", "\x9f", "\xa6", "\x99"];
  const tokenizer = tokenList(toks, ["<s>"]);
  const enc = new TextEncoder();
  // Byte tokens: bytes that are not a whole character on their own.
  const bytesOf = (id: number) => (id >= 2 ? new Uint8Array([toks[id].charCodeAt(0)]) : enc.encode(toks[id]));
  const a = alignTokens("é🦙", [0, 1, 2, 3, 4, 5], { ...tokenizer, tokenBytes: bytesOf }, 1);
  assert.deepEqual(ranges(a), [
    [-1, -1],
    [0, 2],
    [2, 3],
    [3, 4],
    [4, 5],
    [5, 6],
  ]);
  assert.throws(() => alignTokens("abc", [1], tokenizer), /does not match the rendered text at byte 0/);
});

test("floorIndex sends a straddling token after the boundary, ceilIndex before it", () => {
  const a = { starts: Int32Array.from([-1, 0, 3, 8, 8]), ends: Int32Array.from([-1, 3, 8, 8, 10]) };
  assert.equal(floorIndex(a, 0), 1);
  assert.equal(floorIndex(a, 3), 2);
  assert.equal(floorIndex(a, 5), 2);
  assert.equal(ceilIndex(a, 5), 3);
  assert.equal(floorIndex(a, 8), 3, "an empty token at 8 belongs to what starts at 8");
  assert.equal(ceilIndex(a, 8), 3);
  assert.equal(floorIndex(a, 10), 5);
});

// ---- real templates, real tokenizers ----

const tokenizers = new Map<string, Tokenizer>();
function tokenizer(vocab: string): Tokenizer {
  let t = tokenizers.get(vocab);
  if (!t) {
    t = loadTokenizer(builtinVocabPath(vocab));
    tokenizers.set(vocab, t);
  }
  return t;
}

function bundled(name: string, options: { bosToken?: string; eosToken?: string }): ChatTemplate {
  return ChatTemplate.fromString(
    readFileSync(extractBundledSourceFile(`models/templates/${name}.jinja`), "utf8"),
    {
      ...options,
      name,
    },
  );
}

const CHAT: ChatMessage[] = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Hi there! Größe?" },
  { role: "assistant", content: "Hello! Größe: 東京 🦙 (42)." },
  { role: "user", content: "Count to three" },
  { role: "assistant", content: "1 2 3" },
];

const decoder = new TextDecoder();
function textOf(tok: Tokenizer, ids: readonly number[]): string {
  const parts = ids.map((id) => tok.tokenBytes(id));
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return decoder.decode(all);
}

const noSpace = (s: string) => s.replace(/\s+/g, "");

/**
 * The invariants every span result must meet, and for each assistant answer: its tokens spell the answer
 * (one leading space allowed: the SentencePiece boundary rule) and its end-of-turn tokens spell `endMarker`.
 */
function checkSpans(
  s: ChatSpans,
  tok: Tokenizer,
  messages: readonly ChatMessage[],
  endMarker: (messageIndex: number) => string,
  generationPrompt?: string,
): void {
  assert.equal(s.messages.length, messages.length);
  let prevTok = 0;
  let prevChar = 0;
  s.messages.forEach((m, i) => {
    assert.equal(m.role, messages[i].role);
    assert.equal(m.tokenStart, prevTok, `message ${i} starts where ${i - 1} ended`);
    assert.equal(m.charStart, prevChar);
    assert.ok(m.tokenStart <= m.contentStart && m.contentStart <= m.contentEnd && m.contentEnd <= m.tokenEnd);
    assert.ok(m.charStart <= m.contentCharStart && m.contentCharEnd <= m.charEnd);
    const shown = s.text.slice(m.contentCharStart, m.contentCharEnd);
    assert.ok(
      shown === messages[i].content || shown === messages[i].content.trim(),
      `content ${i}: ${shown}`,
    );
    if (messages[i].content.trim() !== "")
      assert.ok(m.contentEnd > m.contentStart, `message ${i} has tokens`);
    prevTok = m.tokenEnd;
    prevChar = m.charEnd;
  });
  if (generationPrompt === undefined) {
    assert.equal(prevTok, s.ids.length);
    assert.equal(prevChar, s.text.length);
  } else {
    assert.equal(noSpace(textOf(tok, s.ids.slice(prevTok))), noSpace(generationPrompt));
    assert.equal(noSpace(s.text.slice(prevChar)), noSpace(generationPrompt));
  }
  const assistants = messages.flatMap((m, i) => (m.role === "assistant" ? [i] : []));
  assert.deepEqual(
    s.assistantSpans.map((a) => a.messageIndex),
    assistants,
  );
  for (const a of s.assistantSpans) {
    const m = s.messages[a.messageIndex];
    assert.deepEqual([a.contentStart, a.contentEnd, a.turnEnd], [m.contentStart, m.contentEnd, m.tokenEnd]);
    const content = messages[a.messageIndex].content.trim();
    const spelled = textOf(tok, s.ids.slice(a.contentStart, a.contentEnd));
    assert.ok(
      spelled === content || spelled === ` ${content}`,
      `answer ${a.messageIndex}: tokens spell ${JSON.stringify(spelled)}, expected ${JSON.stringify(content)}`,
    );
    assert.equal(noSpace(textOf(tok, s.ids.slice(a.contentEnd, a.turnEnd))), endMarker(a.messageIndex));
  }
  const bos = tok.bosId;
  if (bos !== undefined) assert.ok(!(s.ids[0] === bos && s.ids[1] === bos), "no doubled BOS");
}

interface Case {
  vocab: string;
  template: () => ChatTemplate;
  messages: ChatMessage[];
  endMarker: (messageIndex: number, last: boolean) => string;
  generationPrompt?: string;
}

const CASES: Record<string, Case> = {
  "Qwen2.5 on qwen2": {
    vocab: "qwen2",
    template: () => bundled("Qwen-Qwen2.5-7B-Instruct", {}),
    messages: CHAT,
    endMarker: () => "<|im_end|>",
    generationPrompt: "<|im_start|>assistant\n",
  },
  "Llama 3.1 on llama-bpe": {
    vocab: "llama-bpe",
    template: () =>
      bundled("meta-llama-Llama-3.1-8B-Instruct", { bosToken: "<|begin_of_text|>", eosToken: "<|eot_id|>" }),
    // Llama 3.1 trims message content: padded answers must still be found.
    messages: CHAT.map((m) => (m.role === "assistant" ? { ...m, content: `  ${m.content}\n` } : m)),
    endMarker: () => "<|eot_id|>",
    generationPrompt: "<|start_header_id|>assistant<|end_header_id|>\n\n",
  },
  "Phi-3.5 on phi-3": {
    vocab: "phi-3",
    template: () =>
      bundled("microsoft-Phi-3.5-mini-instruct", { bosToken: "<s>", eosToken: "<|endoftext|>" }),
    messages: CHAT,
    // Without a generation prompt the template closes the text with EOS, which ends the last turn.
    endMarker: (_i, last) => (last ? "<|end|><|endoftext|>" : "<|end|>"),
    generationPrompt: "<|assistant|>\n",
  },
  "Mistral Nemo on llama-spm": {
    vocab: "llama-spm",
    template: () => bundled("mistralai-Mistral-Nemo-Instruct-2407", { bosToken: "<s>", eosToken: "</s>" }),
    messages: CHAT.slice(1),
    endMarker: () => "</s>",
    generationPrompt: "",
  },
  "buckle llama2 on llama-spm": {
    vocab: "llama-spm",
    template: () => ChatTemplate.builtin("llama2", { bosToken: "<s>", eosToken: "</s>" }),
    messages: CHAT,
    endMarker: () => "</s>",
    generationPrompt: "",
  },
  "buckle mistral on llama-spm": {
    vocab: "llama-spm",
    template: () => ChatTemplate.builtin("mistral", { bosToken: "<s>", eosToken: "</s>" }),
    messages: CHAT,
    endMarker: () => "</s>",
    generationPrompt: "",
  },
  "buckle phi3 on phi-3": {
    vocab: "phi-3",
    template: () => ChatTemplate.builtin("phi3", { bosToken: "<s>", eosToken: "<|endoftext|>" }),
    messages: CHAT,
    endMarker: () => "<|end|>",
    generationPrompt: "<|assistant|>\n",
  },
  "buckle llama3 on llama-bpe": {
    vocab: "llama-bpe",
    template: () => ChatTemplate.builtin("llama3", { bosToken: "<|begin_of_text|>", eosToken: "<|eot_id|>" }),
    messages: CHAT,
    endMarker: () => "<|eot_id|>",
    generationPrompt: "<|start_header_id|>assistant<|end_header_id|>\n\n",
  },
  "fallback ChatML on llama-spm (markers spelled as text)": {
    vocab: "llama-spm",
    template: () => ChatTemplate.fallback({ bosToken: "<s>", eosToken: "</s>" }),
    messages: CHAT,
    endMarker: () => "<|im_end|>",
    generationPrompt: "<|im_start|>assistant\n",
  },
};

for (const [name, c] of Object.entries(CASES)) {
  test(`spans: ${name}`, () => {
    const tok = tokenizer(c.vocab);
    const template = c.template();
    const last = c.messages.length - 1;
    const full = renderWithSpans(template, c.messages, tok);
    checkSpans(full, tok, c.messages, (i) => c.endMarker(i, i === last));
    assert.equal(full.text, template.render(c.messages));

    const prompt = c.messages.slice(0, last);
    const open = renderWithSpans(template, prompt, tok, { addGenerationPrompt: true });
    checkSpans(open, tok, prompt, (i) => c.endMarker(i, false), c.generationPrompt);
    assert.deepEqual(encodeChatPrompt(template, prompt, tok), open.ids);
  });
}

test("spans: the SentencePiece space the template writes before an answer is counted as content", () => {
  const tok = tokenizer("llama-spm");
  const t = ChatTemplate.builtin("llama2", { bosToken: "<s>", eosToken: "</s>" });
  const s = renderWithSpans(t, CHAT.slice(1, 3), tok);
  const [a] = s.assistantSpans;
  assert.equal(tok.tokenText(s.ids[a.contentStart]), "▁Hello");
  assert.equal(s.text.slice(s.messages[1].charStart, s.messages[1].contentCharStart), " ");
  assert.equal(s.messages[1].tokenStart, a.contentStart, "the straddling token is not left in the header");
  assert.deepEqual(
    s.ids.slice(a.contentEnd, a.turnEnd).map((id) => tok.tokenText(id)),
    ["▁", "</s>"],
  );
});

test("spans: BOS is added once, whether or not the template writes it", () => {
  const tok = tokenizer("llama-spm");
  const bos = tok.bosId;
  assert.equal(bos, 1);
  const writes = renderWithSpans(ChatTemplate.builtin("llama2", { bosToken: "<s>" }), CHAT.slice(1, 2), tok);
  assert.ok(writes.text.startsWith("<s>"));
  assert.deepEqual(
    writes.ids.slice(0, 2).map((id) => id === bos),
    [true, false],
  );
  const omits = renderWithSpans(ChatTemplate.builtin("llama2", { bosToken: "" }), CHAT.slice(1, 2), tok);
  assert.ok(!omits.text.startsWith("<s>"));
  assert.deepEqual(
    omits.ids.slice(0, 2).map((id) => id === bos),
    [true, false],
  );
  assert.deepEqual(omits.ids, writes.ids);
  assert.equal(omits.messages[0].tokenStart, 0);
  assert.ok(omits.messages[0].contentStart >= 1, "the added BOS is never content");
});

test("spans: an empty answer has no content tokens but keeps its end of turn", () => {
  const tok = tokenizer("qwen2");
  const t = ChatTemplate.builtin("chatml");
  const s = renderWithSpans(t, [CHAT[1], { role: "assistant", content: "" }], tok);
  const [a] = s.assistantSpans;
  assert.equal(a.contentStart, a.contentEnd);
  assert.equal(noSpace(textOf(tok, s.ids.slice(a.contentEnd, a.turnEnd))), "<|im_end|>");
});

test("spans: an empty system prompt that the template leaves out gets an empty span", () => {
  const tok = tokenizer("phi-3");
  const t = bundled("microsoft-Phi-3.5-mini-instruct", { bosToken: "<s>", eosToken: "<|endoftext|>" });
  const messages: ChatMessage[] = [{ role: "system", content: "" }, ...CHAT.slice(1)];
  const s = renderWithSpans(t, messages, tok);
  assert.ok(s.text.startsWith("<|user|>"));
  checkSpans(s, tok, messages, (i) => (i === messages.length - 1 ? "<|end|><|endoftext|>" : "<|end|>"));
  const sys = s.messages[0];
  assert.deepEqual(
    [sys.charStart, sys.charEnd, sys.contentStart, sys.contentEnd],
    [0, 0, sys.tokenEnd, sys.tokenEnd],
  );
  assert.equal(tok.tokenText(s.ids[s.messages[1].tokenStart]), "<|user|>");
});

test("spans: templates that move, rewrite, repeat or drop content are refused with the template's name", () => {
  const tok = tokenizer("qwen2");
  const nemo = bundled("mistralai-Mistral-Nemo-Instruct-2407", { bosToken: "<s>", eosToken: "</s>" });
  const refused = (t: ChatTemplate, pattern: RegExp, messages = CHAT) =>
    assert.throws(
      () => renderWithSpans(t, messages, tok),
      (err: unknown) =>
        err instanceof InputError && err.message.includes(`"${t.name}"`) && pattern.test(err.message),
    );
  // Nemo writes the system prompt inside the last user turn, after earlier answers...
  refused(nemo, /message 1 \(user\).*before message 0's content/, CHAT.slice(0, 4));
  // ...and not at all when the conversation ends with an answer.
  refused(nemo, /message 0 \(system\).*does not write its content/);
  const loop = (body: string) => `{% for m in messages %}<{{ m.role }}>${body}</>{% endfor %}`;
  refused(ChatTemplate.fromString(loop("{{ m.content | upper }}"), { name: "upper" }), /changes the content/);
  refused(
    ChatTemplate.fromString(loop("{{ m.content }}{{ m.content }}"), { name: "twice" }),
    /more than once/,
  );
  refused(
    ChatTemplate.fromString(loop("{% if m.role != 'assistant' %}{{ m.content }}{% endif %}"), {
      name: "drop",
    }),
    /message 2 \(assistant\).*does not write its content/,
  );
  refused(
    ChatTemplate.fromString(loop("{% if m.content | length > 20 %}long{% endif %}{{ m.content }}"), {
      name: "peek",
    }),
    /changes the content, or writes something next to it/,
  );
  refused(
    ChatTemplate.fromString(
      `{% if messages | length > 2 %}{{ messages[2].content | length }}{% endif %}|${loop("{{ m.content }}")}`,
      {
        name: "count",
      },
    ),
    /message 2 \(assistant\).*text around it changes with the content/,
  );
});
