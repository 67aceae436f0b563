// Dataset reading and writing: each format's rows, auto-detection, read -> write -> read round trips on real
// files, the errors for malformed rows (file:line and field), and samples a format cannot hold.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseDataset, readDataset, writeDataset, type DatasetFormat } from "./datasets.js";
import type { Sample } from "./sample.js";

const dir = mkdtempSync(join(tmpdir(), "buckle-datasets-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";

test("each format reads into chats with ids, sources and meta", () => {
  const openai = parseDataset(
    jsonl([
      {
        id: 7,
        messages: [
          { role: "system", content: "S" },
          {
            role: "user",
            content: [
              { type: "text", text: "a" },
              { type: "text", text: "b" },
            ],
          },
          { role: "assistant", content: "c" },
        ],
        category: "x",
      },
    ]),
    "dir/o.jsonl",
  );
  assert.equal(openai.format, "openai");
  assert.equal(openai.container, "jsonl");
  assert.deepEqual(openai.samples, [
    {
      id: "7",
      messages: [
        { role: "system", content: "S" },
        { role: "user", content: "ab" },
        { role: "assistant", content: "c" },
      ],
      source: "dir/o.jsonl",
      meta: { category: "x" },
    },
  ]);

  const sharegpt = parseDataset(
    jsonl([
      {
        conversations: [
          { from: "system", value: "S" },
          { from: "human", value: "q" },
          { from: "gpt", value: "a" },
        ],
      },
      {
        conversations: [
          { from: "user", value: "q2" },
          { from: "assistant", value: "a2" },
        ],
      },
    ]),
    "s.jsonl",
  );
  assert.equal(sharegpt.format, "sharegpt");
  assert.deepEqual(
    sharegpt.samples.map((s) => [s.id, s.messages.map((m) => `${m.role}:${m.content}`).join("|")]),
    [
      ["s.jsonl:1", "system:S|user:q|assistant:a"],
      ["s.jsonl:2", "user:q2|assistant:a2"],
    ],
  );
  // ShareGPT turns under a "messages" key are told apart from OpenAI ones by their from/value keys.
  const sharegptMessages = parseDataset(
    jsonl([
      {
        messages: [
          { from: "human", value: "q" },
          { from: "gpt", value: "a" },
        ],
      },
    ]),
    "m.jsonl",
  );
  assert.equal(sharegptMessages.format, "sharegpt");

  const alpaca = parseDataset(
    JSON.stringify(
      [{ instruction: "Translate", input: "chat", output: "cat", system: "Sys", lang: "fr" }],
      null,
      2,
    ),
    "a.json",
  );
  assert.equal(alpaca.format, "alpaca");
  assert.equal(alpaca.container, "json");
  assert.deepEqual(alpaca.samples[0], {
    id: "a.json:2",
    messages: [
      { role: "system", content: "Sys" },
      { role: "user", content: "Translate\n\nchat" },
      { role: "assistant", content: "cat" },
    ],
    source: "a.json",
    meta: { lang: "fr" },
  });

  const aliases = parseDataset(
    jsonl([
      { question: "q1", answer: "a1" },
      { query: "q2", completion: "a2" },
      { prompt: "q3", output: "a3", tags: ["harmful"] },
    ]),
    "p.jsonl",
  );
  assert.equal(aliases.format, "prompt-response");
  assert.deepEqual(
    aliases.samples.map((s) => [s.messages[0].content, s.messages[1].content, s.tags]),
    [
      ["q1", "a1", undefined],
      ["q2", "a2", undefined],
      ["q3", "a3", ["harmful"]],
    ],
  );

  // AdvBench-style CSV: goal/target columns; the rest is meta.
  const csv = parseDataset('goal,target,Category\n"Do X, now","Sure, here is X",cyber\n', "adv.csv");
  assert.equal(csv.format, "csv");
  assert.deepEqual(csv.samples[0], {
    id: "adv.csv:2",
    messages: [
      { role: "user", content: "Do X, now" },
      { role: "assistant", content: "Sure, here is X" },
    ],
    source: "adv.csv",
    meta: { Category: "cyber" },
  });

  const txt = parseDataset("first prompt\r\n\n  \nsecond prompt\n", "list.txt", { allowPromptOnly: true });
  assert.equal(txt.format, "prompts");
  assert.deepEqual(
    txt.samples.map((s) => [s.id, s.messages]),
    [
      ["list.txt:1", [{ role: "user", content: "first prompt" }]],
      ["list.txt:4", [{ role: "user", content: "second prompt" }]],
    ],
  );
});

test("prompt sets: rows without answers pass only with allowPromptOnly", () => {
  const text = jsonl([{ prompt: "p1", id: "a" }, { prompt: "p2" }]);
  assert.throws(() => parseDataset(text, "q.jsonl"), /q\.jsonl:1: field "response" is missing/);
  const prompts = parseDataset(text, "q.jsonl", { allowPromptOnly: true });
  assert.equal(prompts.format, "prompts");
  assert.deepEqual(
    prompts.samples.map((s) => s.id),
    ["a", "q.jsonl:2"],
  );
  const csv = parseDataset("forbidden_prompt,category\nhow to x,weapons\n", "sr.csv", {
    allowPromptOnly: true,
  });
  assert.deepEqual(csv.samples[0].messages, [{ role: "user", content: "how to x" }]);
  assert.throws(() => parseDataset("forbidden_prompt\nx\n", "sr.csv"), /sr\.csv:1: no response column/);
  assert.throws(() => parseDataset("a\nb\n", "l.txt"), /l\.txt: a \.txt file is a prompt list/);
  assert.throws(
    () =>
      parseDataset(jsonl([{ prompt: "p", response: "r" }]), "q.jsonl", {
        format: "prompts",
        allowPromptOnly: true,
      }),
    /q\.jsonl:1: field "response": a prompts file holds prompts only/,
  );
  const chat = parseDataset(jsonl([{ messages: [{ role: "user", content: "hi" }] }]), "c.jsonl", {
    allowPromptOnly: true,
  });
  assert.equal(chat.samples[0].messages.length, 1);
});

test("an explicit format overrides detection", () => {
  const text = jsonl([{ prompt: "p", response: "r" }]);
  assert.throws(
    () => parseDataset(text, "x.jsonl", { format: "alpaca" }),
    /x\.jsonl:1: field "instruction" is missing/,
  );
  const asCsv = parseDataset("prompt,response\np,r\n", "data.jsonl", { format: "csv" });
  assert.equal(asCsv.container, "csv");
  const asPrompts = parseDataset("just text\n", "list", { format: "prompts", allowPromptOnly: true });
  assert.equal(asPrompts.container, "text");
});

test("malformed rows name file:line and the field", () => {
  const cases: [string, string, RegExp][] = [
    ["d.jsonl", "", /^InputError: d\.jsonl: the dataset has no rows/],
    ["d.json", "[]", /d\.json: the dataset has no rows/],
    [
      "d.jsonl",
      jsonl([
        { prompt: "a", response: "b" },
        { instruction: "c", output: "d" },
      ]),
      /d\.jsonl:2: this row is in alpaca format, but the file's first row \(line 1\) is prompt-response/,
    ],
    ["d.jsonl", jsonl([{ prompt: "", response: "b" }]), /d\.jsonl:1: field "prompt" is empty/],
    ["d.jsonl", jsonl([{ prompt: "a", response: ["b"] }]), /d\.jsonl:1: field "response" must be a string/],
    ["d.jsonl", jsonl([{ question: "a", answer: " " }]), /d\.jsonl:1: field "answer" is empty/],
    [
      "d.jsonl",
      '\n\n{"prompt": "a", "response": "b", "id": true}',
      /d\.jsonl:3: field "id" must be a non-empty string or a number/,
    ],
    [
      "d.jsonl",
      jsonl([
        { prompt: "a", response: "b", id: 1 },
        { prompt: "c", response: "d", id: "1" },
      ]),
      /d\.jsonl:2: id "1" is also used on line 1/,
    ],
    [
      "d.jsonl",
      jsonl([{ conversations: [{ from: "tool", value: "x" }] }]),
      /field "conversations\[0\]\.from" must be/,
    ],
    [
      "d.jsonl",
      jsonl([
        {
          messages: [
            { role: "user", content: "q" },
            { role: "assistant", content: "" },
          ],
        },
      ]),
      /d\.jsonl:1: field "messages\[1\]\.content" is empty/,
    ],
    [
      "d.jsonl",
      jsonl([{ prompt: "a", response: "b", tags: "x" }]),
      /field "tags" must be a list of non-empty strings/,
    ],
    ["d.jsonl", jsonl([{ text: "raw" }]), /d\.jsonl:1: unknown row format \(fields: text\)/],
    ["d.csv", "prompt,response\na,b\nc,\n", /d\.csv:3: field "response" is empty/],
    ["d.csv", "Prompt,Response\n,b\n", /d\.csv:2: field "Prompt" is empty/],
    ["d.csv", "text,label\na,b\n", /d\.csv:1: no prompt column among "text", "label"/],
    ["d.csv", "prompt,response\n", /d\.csv: the dataset has no rows/],
    ["d.csv", 'prompt,response\na,b\n"c,d\n', /d\.csv:3: a quoted field is never closed/],
    ["d.dat", "hello", /d\.dat: cannot tell the dataset format/],
  ];
  for (const [file, text, pattern] of cases) assert.throws(() => parseDataset(text, file), pattern, text);
  try {
    parseDataset(jsonl([{ prompt: "a" }]), "h.jsonl");
    assert.fail("expected an error");
  } catch (err) {
    assert.match((err as { hint?: string }).hint ?? "", /sharegpt/);
  }
  assert.throws(() => readDataset(join(dir, "missing.jsonl")), /no such dataset file/);
});

const exchange = (id: string, prompt: string, response?: string, extra: Partial<Sample> = {}): Sample => ({
  id,
  messages: [
    ...(extra.messages ?? []),
    { role: "user", content: prompt },
    ...(response === undefined ? [] : [{ role: "assistant" as const, content: response }]),
  ],
  ...(extra.tags ? { tags: extra.tags } : {}),
  ...(extra.meta ? { meta: extra.meta } : {}),
});

/** Write, read back, and compare everything but `source` (which becomes the new path). */
function roundTrip(
  samples: Sample[],
  format: DatasetFormat,
  name: string,
  options: { container?: "jsonl" | "json"; allowPromptOnly?: boolean } = {},
): void {
  const path = join(dir, name);
  writeDataset(path, samples, format, { container: options.container });
  const back = readDataset(path, { allowPromptOnly: options.allowPromptOnly });
  assert.equal(back.format, format, name);
  assert.deepEqual(
    back.samples,
    samples.map((s) => ({ ...s, source: path })),
    name,
  );
  // And once more from the written file: the second write is byte-identical.
  const path2 = join(dir, `again-${name}`);
  writeDataset(path2, back.samples, format, { container: options.container });
  assert.equal(readFileSync(path2, "utf8"), readFileSync(path, "utf8"), name);
}

test("read -> write -> read round trips are lossless in every format", () => {
  const system = [{ role: "system" as const, content: "Be safe." }];
  const exchanges: Sample[] = [
    exchange("e1", "What is 2+2?", "4", { meta: { category: "math", score: 3, nested: { a: [1] } } }),
    exchange("e2", 'Quote "this", please\nand a new line', "Sure,\r\n done", {
      messages: system,
      tags: ["benign", "curated"],
    }),
    exchange("e3", "  leading space", "trailing space  "),
  ];
  const multiTurn: Sample = {
    id: "m1",
    messages: [
      { role: "system", content: "S" },
      { role: "user", content: "u1" },
      { role: "assistant", content: "a1" },
      { role: "user", content: "u2" },
      { role: "assistant", content: "a2" },
    ],
    meta: { lang: "en" },
  };
  for (const container of ["jsonl", "json"] as const) {
    roundTrip([...exchanges, multiTurn], "openai", `o.${container}`, { container });
    roundTrip([...exchanges, multiTurn], "sharegpt", `s.${container}`, { container });
    roundTrip(exchanges, "alpaca", `a.${container}`, { container });
    roundTrip(exchanges, "prompt-response", `p.${container}`, { container });
  }
  // CSV holds text cells only, so meta values are strings here.
  roundTrip(
    [
      exchange("c1", "a, b", "c", { meta: { category: "x" }, tags: ["t1", "t2"] }),
      exchange("c2", 'multi\nline "q"', "r", { messages: system, meta: { category: "y", note: "n" } }),
    ],
    "csv",
    "c.csv",
  );
  roundTrip([exchange("c1", "p1"), exchange("c2", "p2", "r2")], "csv", "po.csv", { allowPromptOnly: true });
  roundTrip(
    [exchange("q1", "p1", undefined, { meta: { harm: "h" } }), exchange("q2", "p2")],
    "prompts",
    "q.jsonl",
    {
      allowPromptOnly: true,
    },
  );
  // A .txt prompt list keeps the text only; ids come from the lines.
  roundTrip([exchange("l.txt:1", " p1"), exchange("l.txt:2", "p2 ")], "prompts", "l.txt", {
    allowPromptOnly: true,
  });
});

test("samples a format cannot hold are refused with their id", () => {
  const multiTurn: Sample = {
    id: "mt",
    messages: [
      { role: "user", content: "u1" },
      { role: "assistant", content: "a1" },
      { role: "user", content: "u2" },
      { role: "assistant", content: "a2" },
    ],
  };
  const p = (name: string): string => join(dir, name);
  assert.throws(
    () => writeDataset(p("x.jsonl"), [multiTurn], "alpaca"),
    /sample "mt": alpaca holds one exchange/,
  );
  assert.throws(() => writeDataset(p("x.csv"), [multiTurn], "csv"), /sample "mt": csv holds one exchange/);
  assert.throws(
    () => writeDataset(p("x.jsonl"), [exchange("s", "p", "r")], "prompts"),
    /sample "s": a prompts file holds a single user prompt, but this sample has an answer/,
  );
  assert.throws(
    () =>
      writeDataset(
        p("x.jsonl"),
        [exchange("s", "p", "r", { meta: { instruction: "i" } })],
        "prompt-response",
      ),
    /sample "s": meta field "instruction" would be read back/,
  );
  assert.throws(
    () => writeDataset(p("x.csv"), [exchange("s", "p", undefined, { meta: { Target: "t" } })], "csv"),
    /sample "s": meta field "Target" would be read back/,
  );
  assert.throws(
    () => writeDataset(p("x.jsonl"), [exchange("e", "p", " ")], "openai"),
    /sample "e": an assistant message is empty/,
  );
  assert.throws(
    () => writeDataset(p("x.txt"), [exchange("n", "a\nb")], "prompts"),
    /sample "n": the prompt spans several lines/,
  );
  assert.throws(
    () => writeDataset(p("x.jsonl"), [exchange("d", "a", "b"), exchange("d", "c", "e")], "openai"),
    /sample "d": the id appears twice/,
  );
  assert.throws(
    () => writeDataset(p("x.csv"), [exchange("a", "b", "c")], "openai"),
    /a \.csv file would be read back as CSV/,
  );
});
