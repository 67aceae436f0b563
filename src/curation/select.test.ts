import { test } from "node:test";
import assert from "node:assert/strict";
import {
  filterFailures,
  filterThresholds,
  rankCandidates,
  selectBeam,
  selectionRule,
  type Candidate,
} from "./index.js";

function candidate(id: string, over: Partial<Candidate>): Candidate {
  return {
    id,
    round: 1,
    parent: "original",
    beamSlot: 0,
    setting: { index: 0, temperature: 1, topP: 1 },
    sampleIndex: 0,
    seed: 1,
    phrases: [],
    raw: id,
    finishReason: "eos",
    text: `text of ${id}`,
    perplexity: 10,
    helpfulness: 4,
    readability: 60,
    phrasesUsed: [],
    failed: [],
    ...over,
  };
}

test("ranking follows the objective, then helpfulness, then generation order", () => {
  const cs = [
    candidate("a", { perplexity: 5 }),
    candidate("b", { perplexity: 9, helpfulness: 3 }),
    candidate("c", { perplexity: 9, helpfulness: 4 }),
    candidate("d", { perplexity: 2 }),
    candidate("e", { perplexity: 9, helpfulness: 4 }),
  ];
  assert.deepEqual(
    rankCandidates(cs, "ppl-max").map((c) => c.id),
    ["c", "e", "b", "a", "d"],
  );
  assert.deepEqual(
    rankCandidates(cs, "ppl-min").map((c) => c.id),
    ["d", "a", "c", "e", "b"],
  );
  assert.match(selectionRule("ppl-max", 3), /keep the 3 with the highest response perplexity/);
  assert.match(selectionRule("ppl-min", 2), /lowest/);
});

test("the beam takes the top survivors only, without duplicate texts, and is empty when none survive", () => {
  const cs = [
    candidate("a", { perplexity: 50, failed: ["readability"] }),
    candidate("b", { perplexity: 40 }),
    candidate("c", { perplexity: 40, text: "text of b" }), // same text as b: not a second beam member
    candidate("d", { perplexity: 30 }),
    candidate("e", { perplexity: 99, text: null, failed: ["empty"] }),
    candidate("f", { perplexity: 20 }),
  ];
  assert.deepEqual(
    selectBeam(cs, "ppl-max", 2).map((c) => c.id),
    ["b", "d"],
  );
  assert.deepEqual(
    selectBeam(cs, "ppl-min", 2).map((c) => c.id),
    ["f", "d"],
  );
  assert.deepEqual(selectBeam([cs[0], cs[4]], "ppl-max", 3), []);
});

test("the filter is relative to the original and keeps unparseable verdicts out", () => {
  const ratios = { helpfulnessRatio: 0.9, readabilityRatio: 0.5 };
  const t = filterThresholds(
    { perplexity: 8, helpfulness: 4, helpfulnessParsed: true, readability: 80 },
    ratios,
    true,
  );
  assert.deepEqual(t, { requireVerdict: true, helpfulness: 3.6, readability: 40 });
  const verdict = (parsed: boolean, score?: number) => ({ judge: "j", parsed, score, rationale: "" });
  const check = (over: Partial<Candidate>) =>
    filterFailures(
      { perplexity: 10, verdict: verdict(true, 4), helpfulness: 4, readability: 60, ...over },
      t,
    );
  assert.deepEqual(check({}), []);
  assert.deepEqual(check({ helpfulness: 3.5, verdict: verdict(true, 3.5) }), ["helpfulness"]);
  assert.deepEqual(check({ helpfulness: 3.6, verdict: verdict(true, 3.6) }), []);
  assert.deepEqual(check({ helpfulness: null, verdict: verdict(false) }), ["helpfulness-unparsed"]);
  assert.deepEqual(check({ readability: 39.9 }), ["readability"]);
  assert.deepEqual(check({ perplexity: null, readability: 0 }), ["unscorable", "readability"]);

  // An unparseable verdict on the original turns the numeric floor off, but candidates still need a parsed verdict.
  const noRef = filterThresholds(
    { perplexity: 8, helpfulness: null, helpfulnessParsed: false, readability: 80 },
    ratios,
    true,
  );
  assert.deepEqual(noRef, { requireVerdict: true, helpfulness: null, readability: 40 });
  // No judge: readability only; ratio 0 turns a floor off.
  assert.deepEqual(
    filterThresholds(
      { perplexity: 8, helpfulness: null, helpfulnessParsed: null, readability: 80 },
      { helpfulnessRatio: 0.9, readabilityRatio: 0 },
      false,
    ),
    { requireVerdict: false, helpfulness: null, readability: null },
  );
});
