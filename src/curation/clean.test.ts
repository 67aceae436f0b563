import { test } from "node:test";
import assert from "node:assert/strict";
import {
  checkRevisionTemplate,
  cleanCandidate,
  phrasesUsed,
  planCuration,
  readability,
  renderRevisionPrompt,
  resolveCurationConfig,
  BUCKLE_UP_TEMPLATE,
  CTRL_2024_TEMPLATE,
  DEFAULT_SEED_PHRASES,
} from "./index.js";
import { InputError } from "../util/errors.js";

const ctx = {
  query: "How do I boil an egg?",
  parent: "Boil it for eight minutes.",
  original: "Boil it for eight minutes.",
};
const ok = (raw: string) => {
  const r = cleanCandidate(raw, ctx);
  assert.ok(r.ok, `rejected: ${JSON.stringify(r)}`);
  return r.text;
};

test("cleaning strips meta-commentary, wrapping quotes and fences", () => {
  assert.equal(ok("Here is the revised answer:\n\nPlace the egg in water."), "Place the egg in water.");
  assert.equal(
    ok("Sure! Here's a rewritten version from a new perspective: Place the egg in water."),
    "Place the egg in water.",
  );
  assert.equal(ok('"Place the egg in water."'), "Place the egg in water.");
  assert.equal(ok("\u201cPlace the egg in water.\u201d"), "Place the egg in water.");
  assert.equal(ok("```\nPlace the egg in water.\n```"), "Place the egg in water.");
  assert.equal(
    ok("Revised response: Place the egg in water.\n\nI hope this helps!"),
    "Place the egg in water.",
  );
  assert.equal(ok('He said "stop" and "go".'), 'He said "stop" and "go".');
  assert.equal(ok("Place the egg in water.\nNote: I kept all the facts."), "Place the egg in water.");
  assert.deepEqual(cleanCandidate("  Here is the revised answer:  ", ctx), { ok: false, reason: "empty" });
  assert.deepEqual(cleanCandidate('"Boil it  for eight minutes."', ctx), { ok: false, reason: "copy" });
});

test("readability ranks plain text above dense text and gives garble nothing", () => {
  const plain = readability("The cat sat on the mat. It was warm. The sun was out.");
  const dense = readability(
    "Notwithstanding considerable methodological heterogeneity, epidemiological investigations consistently demonstrate associations.",
  );
  assert.ok(plain > dense, `${plain} vs ${dense}`);
  assert.ok(plain <= 100 && dense >= 0);
  assert.equal(readability("123 456 ### !!!"), 0);
});

test("seed-phrase coverage matches whole phrases, case-insensitively", () => {
  assert.deepEqual(
    phrasesUsed("Use Reliable Sources; be a responsible agent.", [
      "reliable sources",
      "responsible agent",
      "agent",
      "gent",
    ]),
    ["reliable sources", "responsible agent", "agent"],
  );
});

test("templates render their placeholders once and are checked", () => {
  const text = renderRevisionPrompt("Q={{query}} R={{ response }} P={{phrases}}", {
    query: "q {{response}}",
    response: "r",
    phrases: ["a", "b c"],
  });
  assert.equal(text, 'Q=q {{response}} R=r P="a", "b c"');
  checkRevisionTemplate(BUCKLE_UP_TEMPLATE);
  checkRevisionTemplate(CTRL_2024_TEMPLATE);
  assert.ok(!CTRL_2024_TEMPLATE.includes("{{phrases}}"));
  assert.throws(() => checkRevisionTemplate("{{query}} {{answer}}"), InputError);
  assert.throws(() => checkRevisionTemplate("{{query}} only"), /response/);
});

test("config defaults follow the variant, bad fields are named, and the plan counts the grid", () => {
  const buckle = resolveCurationConfig();
  assert.equal(buckle.objective, "ppl-max");
  assert.equal(buckle.rounds, 5);
  assert.equal(buckle.beamWidth, 3);
  assert.equal(buckle.phrasesPerCall, 5);
  assert.ok(
    DEFAULT_SEED_PHRASES.length >= 45 && new Set(DEFAULT_SEED_PHRASES).size === DEFAULT_SEED_PHRASES.length,
  );
  assert.deepEqual(buckle.filter, { helpfulnessRatio: 0.9, readabilityRatio: 0.9 });
  const ctrl = resolveCurationConfig({ variant: "ctrl-2024" });
  assert.equal(ctrl.objective, "ppl-min");
  assert.equal(ctrl.phrasesPerCall, 0);
  assert.deepEqual(ctrl.seedPhrases, []);
  assert.equal(resolveCurationConfig({ variant: "ctrl-2024", objective: "ppl-max" }).objective, "ppl-max");
  assert.throws(() => resolveCurationConfig({ topPs: [0] }), /topPs\.0/);
  assert.throws(() => resolveCurationConfig({ beamWidth: 0 } as never), /beamWidth/);
  assert.deepEqual(planCuration(10), {
    generations: 10 * 5 * 3 * 25,
    scorings: 10 + 3750,
    judgeCalls: 10 + 3750,
  });
  assert.deepEqual(
    planCuration(2, { rounds: 2, beamWidth: 2, temperatures: [1], topPs: [0.5, 1] }, { judge: false }),
    {
      generations: 16,
      scorings: 18,
      judgeCalls: 0,
    },
  );
});
