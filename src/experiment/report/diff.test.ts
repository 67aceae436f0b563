import { test } from "node:test";
import assert from "node:assert/strict";
import { wordDiff, wordTokens } from "./diff.js";
import { Rng } from "../../util/random.js";

const join = (parts: { op: string; text: string }[], keep: string) =>
  parts
    .filter((p) => p.op === "same" || p.op === keep)
    .map((p) => p.text)
    .join("");
const words = (s: string) => s.split(/\s+/).filter(Boolean).join(" ");

test("tokens concatenate back to the text; punctuation is its own token", () => {
  const text = "  Keep it dark, quiet and cool.\nDon't worry—it's fine!";
  assert.equal(wordTokens(text).join(""), text);
  assert.deepEqual(wordTokens("dark, quiet"), ["dark", ", ", "quiet"]);
});

test("a rewrite diffs into kept, removed and added words", () => {
  const parts = wordDiff(
    "Keep your room dark and cool.",
    "Keep your room dark, quiet and cool; reliable sources agree.",
  );
  assert.deepEqual(parts, [
    { op: "same", text: "Keep your room dark" },
    { op: "ins", text: ", quiet " },
    { op: "same", text: "and cool" },
    { op: "ins", text: "; reliable sources agree" },
    { op: "same", text: "." },
  ]);
  assert.deepEqual(wordDiff("same text", "same text"), [{ op: "same", text: "same text" }]);
  assert.deepEqual(wordDiff("", "new"), [{ op: "ins", text: "new" }]);
  assert.deepEqual(wordDiff("old", ""), [{ op: "del", text: "old" }]);
});

test("random edits: kept+added rebuild the new text exactly, kept+removed the old one up to spacing", () => {
  const rng = new Rng(11);
  const vocab = [
    "safe",
    "reliable",
    "sources",
    "the",
    "a",
    "evidence-based",
    "plan",
    ",",
    ".",
    "water",
    "sleep",
  ];
  for (let t = 0; t < 200; t++) {
    const before = Array.from({ length: rng.int(0, 30) }, () => rng.pick(vocab)).join(" ");
    const tokens = before.split(" ").filter(Boolean);
    for (let e = rng.int(0, 6); e > 0; e--) {
      const at = rng.int(0, tokens.length);
      if (rng.next() < 0.5 && tokens.length) tokens.splice(Math.min(at, tokens.length - 1), 1);
      else tokens.splice(at, 0, rng.pick(vocab));
    }
    const after = tokens.join(rng.next() < 0.5 ? " " : "  ");
    const parts = wordDiff(before, after);
    assert.equal(join(parts, "ins"), after);
    assert.equal(words(join(parts, "del")).replace(/ /g, ""), words(before).replace(/ /g, ""));
    for (let i = 1; i < parts.length; i++)
      assert.notEqual(parts[i].op, parts[i - 1].op, "adjacent parts merge");
  }
});
