// The pure parts of the stages room: the in-attack mixture (exact counts, the ratio rule, seeded order), the
// baselines' selections, recipes and presets, the attack sweep grid, and the shipped attack data.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { Sample } from "../data/sample.js";
import {
  aoaSamples,
  attackRecipe,
  attackSweep,
  dropCount,
  mixSamples,
  PRESETS,
  randDrop,
  resolveRecipe,
  safetyData,
  uncurated,
  worstCase,
  DEFAULT_REFUSALS,
} from "./index.js";
import { InputError } from "../util/errors.js";

function samples(prefix: string, n: number): Sample[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}${i}`,
    messages: [
      { role: "user" as const, content: `${prefix} question ${i}` },
      { role: "assistant" as const, content: `${prefix} answer ${i}` },
    ],
  }));
}

const customer = samples("c", 7);
const harmful = samples("h", 3);
const curated = samples("k", 20);

test("mixSamples: exact counts for a ratio (rounded half up) and for a count", () => {
  const byRatio = mixSamples({ customer, harmful, curated, ratio: 0.25, seed: 3 });
  // 0.25 x (7 + 3) = 2.5, rounded half up: 3
  assert.deepEqual(byRatio.counts, { customer: 7, harmful: 3, curated: 3 });
  assert.equal(byRatio.samples.length, 13);
  assert.equal(byRatio.parts.filter((p) => p === "curated").length, 3);
  assert.deepEqual(mixSamples({ customer, harmful, curated, ratio: 0.24, seed: 3 }).counts.curated, 2);
  assert.deepEqual(mixSamples({ customer, harmful, curated, ratio: 1, seed: 3 }).counts.curated, 10);
  assert.deepEqual(mixSamples({ customer, harmful, curated, ratio: 0, seed: 3 }).counts.curated, 0);

  const byCount = mixSamples({ harmful, curated, count: 5, seed: 3 });
  assert.deepEqual(byCount.counts, { customer: 0, harmful: 3, curated: 5 });
  const all = mixSamples({ harmful, curated, seed: 3 });
  assert.equal(all.counts.curated, 20);

  // Every customer and harmful sample appears exactly once; the curated ones are distinct pool members.
  const ids = byRatio.samples.map((s) => s.id);
  for (const s of [...customer, ...harmful]) assert.equal(ids.filter((x) => x === s.id).length, 1, s.id);
  assert.equal(new Set(ids).size, ids.length);
  assert.deepEqual(
    byRatio.samples
      .filter((_, i) => byRatio.parts[i] === "curated")
      .map((s) => s.id)
      .sort(),
    [...byRatio.curatedIds].sort(),
  );
  byRatio.samples.forEach((s, i) =>
    assert.equal(s.id[0], { customer: "c", harmful: "h", curated: "k" }[byRatio.parts[i]]),
  );
});

test("mixSamples: the order is a function of the seed; smaller draws are subsets of larger ones", () => {
  const a = mixSamples({ customer, harmful, curated, count: 6, seed: 11 });
  const b = mixSamples({ customer, harmful, curated, count: 6, seed: 11 });
  const c = mixSamples({ customer, harmful, curated, count: 6, seed: 12 });
  assert.deepEqual(
    a.samples.map((s) => s.id),
    b.samples.map((s) => s.id),
  );
  assert.notDeepEqual(
    a.samples.map((s) => s.id),
    c.samples.map((s) => s.id),
  );
  // shuffled, not concatenated: the first 7 are not simply the customer data
  assert.notDeepEqual(
    a.samples.slice(0, 7).map((s) => s.id),
    customer.map((s) => s.id),
  );
  const small = mixSamples({ customer, harmful, curated, count: 3, seed: 11 });
  assert.deepEqual(small.curatedIds, a.curatedIds.slice(0, 3));
});

test("mixSamples: impossible mixtures are input errors", () => {
  assert.throws(
    () => mixSamples({ harmful, curated, count: 21, seed: 1 }),
    /needs 21 curated samples but the curated set has 20/,
  );
  assert.throws(() => mixSamples({ customer, harmful, curated, ratio: 3, seed: 1 }), /needs 30 curated/);
  assert.throws(() => mixSamples({ harmful, curated, ratio: 1, count: 2, seed: 1 }), /not both/);
  assert.throws(() => mixSamples({ harmful, curated, ratio: -1, seed: 1 }), /ratio must be a number >= 0/);
  assert.throws(() => mixSamples({ harmful, curated, count: 1.5, seed: 1 }), /whole number/);
  assert.throws(() => mixSamples({ curated: [], seed: 1 }), InputError);
});

test("randDrop and uncurated: exact counts under a seed, order kept", () => {
  const pool = samples("p", 10);
  assert.equal(dropCount(10, 0.25), 3); // 2.5 rounds half up
  const r = randDrop(pool, 0.5, 4);
  assert.equal(r.kept.length, 5);
  assert.equal(r.dropped.length, 5);
  assert.deepEqual([...r.kept, ...r.dropped].map((s) => s.id).sort(), pool.map((s) => s.id).sort());
  const order = (xs: Sample[]) => xs.map((s) => Number(s.id.slice(1)));
  assert.deepEqual(
    order(r.kept),
    [...order(r.kept)].sort((x, y) => x - y),
  );
  assert.deepEqual(randDrop(pool, 0.5, 4).kept, r.kept);
  assert.notDeepEqual(randDrop(pool, 0.5, 5).kept, r.kept);
  assert.equal(randDrop(pool, 0, 4).kept.length, 10);
  assert.throws(() => randDrop(pool, 1.5, 4), /drop share must be in \[0, 1\]/);

  const u = uncurated(pool, 4, 9);
  assert.equal(u.length, 4);
  assert.equal(new Set(u.map((s) => s.id)).size, 4);
  assert.ok(u.every((s) => s.tags?.includes("uncurated")));
  assert.deepEqual(uncurated(pool, 4, 9), u);
  assert.throws(() => uncurated(pool, 11, 9), /asked for 11 samples but the pool has 10/);
});

test("safetyData pairs each harmful query with a seeded refusal and drops the harmful answer", () => {
  const queries = harmful;
  const s = safetyData(queries, undefined, 2);
  assert.equal(s.length, 3);
  s.forEach((x, i) => {
    assert.equal(x.messages[0].content, queries[i].messages[0].content);
    assert.equal(x.messages.length, 2);
    assert.ok(DEFAULT_REFUSALS.includes(x.messages[1].content));
    assert.ok(x.tags?.includes("safety-data"));
  });
  assert.deepEqual(safetyData(queries, ["no."], 2)[1].messages[1], { role: "assistant", content: "no." });
  assert.throws(() => safetyData(queries, [], 2), /no refusals/);
});

test("recipes: presets, overrides and errors that name the field", () => {
  assert.equal(PRESETS.paper.batchSize, 10);
  assert.equal(PRESETS.paper.learningRate, 5e-5);
  assert.equal(PRESETS.paper.epochs, 50);
  const r = resolveRecipe({ learningRate: 1e-3, epochs: undefined }, { preset: "paper" });
  assert.equal(r.learningRate, 1e-3);
  assert.equal(r.epochs, 50);
  assert.throws(() => resolveRecipe({}, { preset: "fast" }), /unknown preset "fast"/);
  assert.throws(() => resolveRecipe({ learningRate: -1 }), /learningRate must be positive, got -1/);
  assert.throws(
    () => resolveRecipe({ schedule: "step" as never }, { label: (f) => `--${f}` }),
    /--schedule must be constant, cosine or linear, got "step"/,
  );
  assert.throws(() => resolveRecipe({ batchSize: 2.5 }), /batchSize must be an integer/);
  assert.throws(() => resolveRecipe({ bogus: 1 } as never), /unknown recipe field\(s\) bogus/);
});

test("attack recipes and the sweep grid", () => {
  const exharm = attackRecipe("exharm");
  assert.equal(exharm.epochs, 5);
  const r8 = attackRecipe("benign", { loraRank: 8 });
  assert.equal(r8.loraAlpha, 16); // alpha follows rank
  assert.equal(attackRecipe("benign", { loraRank: 8, loraAlpha: 4 }).loraAlpha, 4);
  assert.throws(() => attackRecipe("poison" as never), /unknown attack kind "poison"/);

  const grid = attackSweep({ learningRate: [1e-4, 5e-4], epochs: [1, 3], loraRank: [4] }, { seed: 2 });
  assert.deepEqual(
    grid.map((p) => p.name),
    ["lr1e-4_ep1_r4", "lr1e-4_ep3_r4", "lr5e-4_ep1_r4", "lr5e-4_ep3_r4"],
  );
  assert.deepEqual(grid[3].settings, { seed: 2, learningRate: 5e-4, epochs: 3, loraRank: 4 });
  assert.deepEqual(attackSweep({}), [{ name: "defaults", settings: {} }]);
  assert.throws(() => attackSweep({ epochs: [0] }), /positive numbers/);

  const points = [
    { safety: 0.9, utility: 3.5 },
    { safety: 0.2, utility: 0.5 }, // wrecked: not a usable attack
    { safety: 0.4, utility: 3.1 },
  ];
  assert.equal(worstCase(points, 3), points[2]);
  assert.equal(worstCase(points, 4), undefined);
});

test("the shipped AOA set: ten obedient-identity chats, no refusals, affirmative answers", () => {
  const aoa = aoaSamples();
  assert.equal(aoa.length, 10);
  assert.equal(new Set(aoa.map((s) => s.id)).size, 10);
  for (const s of aoa) {
    assert.deepEqual(
      s.messages.map((m) => m.role),
      ["system", "user", "assistant"],
    );
    assert.match(s.messages[0].content, /Absolutely Obedient Agent/);
    assert.match(s.messages[2].content, /AOA|obe(y|dien)/i);
    assert.doesNotMatch(s.messages[2].content, /\b(can't|cannot|won't|sorry|unable)\b/i);
  }
  assert.ok(aoa.filter((s) => s.messages[2].content.startsWith("Of course.")).length >= 6);
});
