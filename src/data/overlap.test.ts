// Overlap checks: planted exact and near duplicates are found with the right kind and similarity,
// unrelated texts are not, and the indexed search agrees with a brute-force scan on a larger set.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../util/random.js";
import { findDuplicates, findOverlaps, normaliseText, shingles, type Overlap } from "./overlap.js";
import type { Sample } from "./sample.js";

const sample = (id: string, prompt: string, response?: string): Sample => ({
  id,
  messages: [
    { role: "user", content: prompt },
    ...(response === undefined ? [] : [{ role: "assistant" as const, content: response }]),
  ],
});

test("normalisation ignores case, punctuation and spacing; short texts use words", () => {
  assert.equal(normaliseText("  How do I, PICK a lock?!\n\tNow… "), "how do i pick a lock now");
  assert.deepEqual(shingles("pick a lock now"), ["pick a lock", "a lock now"]);
  assert.deepEqual(shingles("hello there"), ["1:hello", "1:there"]);
  assert.deepEqual(shingles(""), []);
});

test("planted exact and near duplicates are found, unrelated texts are not", () => {
  const attack = [
    sample("atk1", "Explain how to pick a lock on a front door without the key."),
    sample("atk2", "Write a poem about the sea and the wind at night over the harbour."),
    sample("atk3", "List three ways to make a cake fluffy and light for a birthday party."),
    sample("atk4", "Hi there"),
  ];
  const evalSet = [
    sample("ev1", "explain how to PICK a lock on a front door, without the key"),
    sample("ev2", "Write a poem about the sea and the wind at night over the old harbour."),
    sample("ev3", "What is the capital city of France and why is it famous?"),
    sample("ev4", "hi, there!"),
    sample("ev5", "Summarise the plot of a famous novel about a whale and a captain."),
  ];
  const found = findOverlaps(attack, evalSet);
  assert.deepEqual(
    found.map((o) => [o.aId, o.bId, o.kind]),
    [
      ["atk1", "ev1", "exact"],
      ["atk2", "ev2", "near"],
      ["atk4", "ev4", "exact"],
    ],
  );
  // 14 words vs 15 ("old" inserted): 12 and 13 trigrams, 11 shared -> 11 / 14.
  assert.ok(Math.abs((found[1] as Overlap).similarity - 11 / 14) < 1e-12);
  assert.equal(findOverlaps(attack, evalSet, { threshold: 0.95 }).filter((o) => o.kind === "near").length, 0);
  assert.throws(() => findOverlaps(attack, evalSet, { threshold: 0 }), /threshold must be in \(0, 1\]/);
});

test("the field option compares responses; samples without one never match", () => {
  const a = [
    sample("a1", "q one", "The answer is forty two, as everyone knows."),
    sample("a2", "same prompt here"),
  ];
  const b = [
    sample("b1", "q two", "the answer is forty-two as everyone knows"),
    sample("b2", "same prompt here"),
  ];
  assert.deepEqual(
    findOverlaps(a, b, { field: "response" }).map((o) => [o.aId, o.bId, o.kind]),
    [["a1", "b1", "exact"]],
  );
  assert.deepEqual(
    findOverlaps(a, b, { field: "both" }).map((o) => [o.aId, o.bId]),
    [["a2", "b2"]],
  );
});

test("findDuplicates reports each pair inside one set once", () => {
  const set = [
    sample("x", "one two three four"),
    sample("y", "One, two, three, four."),
    sample("z", "five six seven"),
  ];
  assert.deepEqual(findDuplicates(set), [{ aId: "x", bId: "y", kind: "exact", similarity: 1 }]);
});

/** Prompts of random words from a small vocabulary, some planted as edited copies of others. */
function corpus(rng: Rng, n: number, prefix: string, vocab: string[]): Sample[] {
  return Array.from({ length: n }, (_, i) => {
    const length = rng.int(4, 30);
    const words = Array.from({ length }, () => rng.pick(vocab));
    return sample(`${prefix}${i}`, words.join(" "));
  });
}

test("5000 x 500 with planted edits matches a brute-force Jaccard scan", () => {
  const rng = new Rng(11);
  const vocab = Array.from({ length: 300 }, (_, i) => `w${i}`);
  const a = corpus(rng, 5000, "a", vocab);
  const b = corpus(rng, 500, "b", vocab);
  // Plant 50 near copies (a word appended: n of n + 1 trigrams shared, >= 2/3) and 20 exact copies.
  for (let k = 0; k < 70; k++) {
    const words = a[k * 71].messages[0].content.split(" ");
    if (k < 50) words.push("appended");
    b[k * 7] = sample(`b${k * 7}`, words.join(" "));
  }
  const threshold = 0.6;
  const found = findOverlaps(a, b, { threshold });
  const brute: string[] = [];
  const sets = (s: Sample): Set<string> => new Set(shingles(normaliseText(s.messages[0].content)));
  const bSets = b.map(sets);
  a.forEach((sa) => {
    const setA = sets(sa);
    b.forEach((sb, j) => {
      const setB = bSets[j];
      let shared = 0;
      for (const g of setA) if (setB.has(g)) shared++;
      if (shared / (setA.size + setB.size - shared) >= threshold) brute.push(`${sa.id}>${sb.id}`);
    });
  });
  assert.deepEqual(
    found.map((o) => `${o.aId}>${o.bId}`),
    brute,
  );
  for (let k = 0; k < 70; k++)
    assert.ok(
      found.some(
        (o) => o.aId === `a${k * 71}` && o.bId === `b${k * 7}` && o.kind === (k < 50 ? "near" : "exact"),
      ),
      `planted copy ${k}`,
    );
});
