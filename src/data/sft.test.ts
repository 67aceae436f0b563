// The SFT dataset reader: every accepted row format, JSON arrays with line numbers, and the errors that name
// file:line and the field at fault.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseSft, readSftFile } from "./sft.js";

const dir = mkdtempSync(join(tmpdir(), "buckle-sft-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test("JSONL rows in OpenAI, prompt/response and Alpaca formats become chats", () => {
  const path = join(dir, "mixed.jsonl");
  const rows = [
    {
      messages: [
        { role: "system", content: "Be brief." },
        {
          role: "user",
          content: [
            { type: "text", text: "Hi " },
            { type: "text", text: "there" },
          ],
        },
        { role: "assistant", content: "Hello." },
      ],
    },
    { prompt: "2+2?", response: "4", system: "You are a calculator." },
    { instruction: "Translate", input: "chat", output: "cat" },
    { instruction: "Say yes", input: "  ", output: "yes" },
  ];
  writeFileSync(path, rows.map((r) => JSON.stringify(r)).join("\n\n") + "\n");
  const ex = readSftFile(path);
  assert.deepEqual(
    ex.map((e) => [e.line, e.format]),
    [
      [1, "messages"],
      [3, "prompt-response"],
      [5, "alpaca"],
      [7, "alpaca"],
    ],
  );
  assert.deepEqual(ex[0].messages[1], { role: "user", content: "Hi there" });
  assert.deepEqual(ex[1].messages, [
    { role: "system", content: "You are a calculator." },
    { role: "user", content: "2+2?" },
    { role: "assistant", content: "4" },
  ]);
  assert.equal(ex[2].messages[0].content, "Translate\n\nchat");
  assert.equal(ex[3].messages[0].content, "Say yes");
});

test("an Alpaca JSON array reports the line each item starts on", () => {
  const text = JSON.stringify(
    [
      { instruction: "a [tricky] {string}", output: "x" },
      { instruction: "b", input: 'with "quotes" \\ and ,', output: "y" },
      { instruction: "c" },
    ],
    null,
    2,
  );
  assert.throws(
    () => parseSft(text, "alpaca.json"),
    /^InputError: alpaca\.json:11: field "output" is missing/,
  );
  const ok = parseSft(text.replace('"c"', '"c", "output": "z"'), "alpaca.json");
  assert.deepEqual(
    ok.map((e) => e.line),
    [2, 6, 11],
  );
});

test("malformed rows name file:line and the field", () => {
  const cases: [string, RegExp][] = [
    ['{"messages": []}', /d\.jsonl:1: field "messages" must be a non-empty array/],
    ['\n{"messages": [{"role": "tool", "content": "x"}]}', /d\.jsonl:2: field "messages\[0\]\.role"/],
    ['{"messages": [{"role": "user", "content": 5}]}', /field "messages\[0\]\.content" must be a string/],
    ['{"messages": [{"role": "user", "content": "hi"}]}', /d\.jsonl:1: no assistant message/],
    ['{"prompt": "x"}', /d\.jsonl:1: field "response" is missing/],
    ['{"prompt": "x", "response": 3}', /field "response" must be a string, got 3/],
    ['{"text": "raw"}', /d\.jsonl:1: unknown row format \(fields: text\)/],
    ['{"prompt": "x", "response": "y"}\n{"prompt": ', /d\.jsonl:2: not valid JSON/],
    ["[1, 2", /d\.jsonl: not valid JSON/],
    ["[1]", /d\.jsonl:1: the row is not a JSON object/],
    ["\n\n", /d\.jsonl: the dataset has no rows/],
  ];
  for (const [text, pattern] of cases) assert.throws(() => parseSft(text, "d.jsonl"), pattern, text);
  assert.throws(() => readSftFile(join(dir, "missing.jsonl")), /no such dataset file/);
});
