// Selection and splits: exact sizes, even spacing, seeded reproducibility, order kept, and range errors.

import { test } from "node:test";
import assert from "node:assert/strict";
import { selectSamples, splitSamples } from "./select.js";

const items = Array.from({ length: 1000 }, (_, i) => i);

test("a rate or count keeps exactly that many items, in input order", () => {
  for (const strategy of ["stride", "random"] as const) {
    for (const [opts, expected] of [
      [{ rate: 0.05 }, 50],
      [{ rate: 0.0015 }, 2],
      [{ rate: 1 }, 1000],
      [{ rate: 0 }, 0],
      [{ count: 333 }, 333],
      [{ count: 1000 }, 1000],
    ] as const) {
      const picked = selectSamples(items, { ...opts, strategy, seed: 3 });
      assert.equal(picked.length, expected, `${strategy} ${JSON.stringify(opts)}`);
      assert.equal(new Set(picked).size, expected);
      assert.ok(
        picked.every((v, i) => i === 0 || v > picked[i - 1]),
        "ascending = input order",
      );
    }
  }
  assert.deepEqual(selectSamples([], { rate: 0.5, strategy: "random" }), []);
});

test("stride spreads items evenly; random is seeded", () => {
  assert.deepEqual(selectSamples(items, { count: 4, strategy: "stride" }), [125, 375, 625, 875]);
  assert.deepEqual(selectSamples(["a", "b", "c"], { count: 2, strategy: "stride" }), ["a", "c"]);
  const a = selectSamples(items, { rate: 0.1, strategy: "random", seed: 42 });
  assert.deepEqual(selectSamples(items, { rate: 0.1, strategy: "random", seed: 42 }), a);
  assert.notDeepEqual(selectSamples(items, { rate: 0.1, strategy: "random", seed: 43 }), a);
  // Uniform-ish: a 10% random pick is not bunched at the start.
  assert.ok(a.filter((v) => v >= 500).length > 30);
});

test("bad rates and counts are InputErrors", () => {
  const cases: [object, RegExp][] = [
    [{ rate: 1.5 }, /rate must be between 0 and 1, got 1.5/],
    [{ rate: -0.1 }, /rate must be between 0 and 1/],
    [{ rate: Number.NaN }, /rate must be between 0 and 1/],
    [{ count: 1001 }, /count must be an integer between 0 and 1000/],
    [{ count: 2.5 }, /count must be an integer/],
    [{}, /either a selection rate or a count/],
    [{ rate: 0.1, count: 3 }, /either a selection rate or a count/],
  ];
  for (const [opts, pattern] of cases)
    assert.throws(() => selectSamples(items, { ...opts, strategy: "stride" }), pattern, JSON.stringify(opts));
});

test("splits are disjoint, sized by the fractions and seeded", () => {
  const [train, evalSet] = splitSamples(items, [0.9, 0.1], 7);
  assert.equal(train.length, 900);
  assert.equal(evalSet.length, 100);
  assert.equal(new Set([...train, ...evalSet]).size, 1000);
  assert.ok(evalSet.every((v, i) => i === 0 || v > evalSet[i - 1]));
  assert.deepEqual(splitSamples(items, [0.9, 0.1], 7), [train, evalSet]);
  assert.notDeepEqual(splitSamples(items, [0.9, 0.1], 8)[1], evalSet);
  const thirds = splitSamples(items.slice(0, 10), [1 / 3, 1 / 3, 1 / 3], 1);
  assert.deepEqual(
    thirds.map((p) => p.length),
    [3, 4, 3],
  );
  assert.equal(splitSamples(items, [0.2, 0.3], 1).flat().length, 500);
  assert.throws(() => splitSamples(items, [0.7, 0.5], 1), /sum to 1.2, more than 1/);
  assert.throws(() => splitSamples(items, [-0.1], 1), /must be >= 0/);
});
