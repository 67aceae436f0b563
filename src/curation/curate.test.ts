import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRandomModel } from "../models/factory.js";
import { createNativeModel } from "../models/native/index.js";
import type { LanguageModel } from "../models/index.js";
import { tinyModelOptions } from "../testing/models.js";
import { Store } from "../store/index.js";
import { readDataset, type DatasetFormat, type Sample } from "../data/index.js";
import { createHelpfulnessJudge } from "../evaluation/index.js";
import {
  curate,
  planCuration,
  rankCandidates,
  writeCurationOutputs,
  type CurateResult,
  type CurationConfigInput,
} from "./index.js";

const dir = mkdtempSync(join(tmpdir(), "buckle-curation-"));
const modelPath = join(dir, "tiny.gguf");
createRandomModel(tinyModelOptions(5, { hiddenSize: 32, intermediateSize: 64 }), modelPath);
let model: LanguageModel;
test.before(async () => {
  model = await createNativeModel({ modelPath, threads: 1 });
});
test.after(async () => {
  await model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const pool: Sample[] = [
  ["How do I boil an egg?", "Put it in boiling water for eight minutes. Then cool it in cold water."],
  ["Name a fruit.", "An apple is a common fruit."],
].map(([q, a], i) => ({
  id: `s${i}`,
  messages: [
    { role: "user", content: q },
    { role: "assistant", content: a },
  ],
}));

// A reduced grid; random models babble, so no readability floor and truncated output is kept.
const small: CurationConfigInput = {
  rounds: 2,
  beamWidth: 2,
  temperatures: [0.4, 1.0],
  topPs: [0.6, 1.0],
  maxTokens: 6,
  truncated: "keep",
  filter: { readabilityRatio: 0 },
  seed: 3,
};

function checkObjective(result: CurateResult, objective: "ppl-max" | "ppl-min"): void {
  for (const s of result.samples) {
    for (const r of s.rounds) {
      const survivors = r.candidates.filter((c) => c.failed.length === 0 && c.text !== null);
      const distinct = survivors.filter((c, i) => survivors.findIndex((d) => d.text === c.text) === i);
      const expected = rankCandidates(distinct, objective)
        .slice(0, 2)
        .map((c) => c.id);
      assert.deepEqual(r.beam, expected, `${s.original.id} round ${r.round}`);
      const beamPpl = r.beam.map((id) => r.candidates.find((c) => c.id === id)?.perplexity as number);
      for (const c of survivors.filter((c) => !r.beam.includes(c.id)))
        for (const p of beamPpl)
          assert.ok(objective === "ppl-max" ? p >= (c.perplexity as number) : p <= (c.perplexity as number));
    }
    assert.equal(s.final?.id, s.rounds[1].beam[0]);
    assert.equal(s.lineage.length, 2);
    assert.equal(s.lineage[1].parent, s.lineage[0].id);
    assert.ok(s.changed);
  }
}

test("a fresh run makes exactly the planned calls and selection follows the objective", async () => {
  const store = Store.open(join(dir, "a.sqlite"));
  try {
    const plan = planCuration(pool.length, small, { judge: false });
    assert.deepEqual(plan, { generations: 32, scorings: 34, judgeCalls: 0 });
    const max = await curate({ pool, reviser: model, scorer: model, judge: null, store, config: small });
    assert.deepEqual(max.requested, plan);
    assert.deepEqual(max.computed, plan);
    assert.equal(max.config.objective, "ppl-max");
    checkObjective(max, "ppl-max");
    assert.match(max.selectionRule, /highest/);
    const max2 = max.samples.map((s) => s.final?.perplexity as number);
    max.samples.forEach((s, i) =>
      assert.ok(max2[i] >= Math.max(...s.rounds[1].candidates.map((c) => c.perplexity as number)) - 1e-9),
    );

    // CTRL-2024's objective over the same store: round 1 asks the same requests (cache), round 2 new ones.
    const min = await curate({
      pool,
      reviser: model,
      scorer: model,
      judge: null,
      store,
      config: { ...small, objective: "ppl-min" },
    });
    checkObjective(min, "ppl-min");
    assert.notEqual(min.configHash, max.configHash);
    assert.equal(min.computed.generations, 16, "round 1 came from the cache");
    assert.ok(min.summary.perplexity.after.mean! < max.summary.perplexity.after.mean!);
  } finally {
    store.close();
  }
});

test("a rerun recomputes nothing, and a longer run computes only its new round", async () => {
  const store = Store.open(join(dir, "b.sqlite"));
  try {
    const first = await curate({ pool, reviser: model, scorer: model, judge: null, store, config: small });
    const again = await curate({ pool, reviser: model, scorer: model, judge: null, store, config: small });
    assert.deepEqual(again.computed, { generations: 0, scorings: 0, judgeCalls: 0 });
    assert.deepEqual(
      again.samples.map((s) => s.curated),
      first.samples.map((s) => s.curated),
    );
    const longer = await curate({
      pool,
      reviser: model,
      scorer: model,
      judge: null,
      store,
      config: { ...small, rounds: 3 },
    });
    const diff = planCuration(pool.length, { ...small, rounds: 3 }).generations - first.requested.generations;
    assert.equal(longer.computed.generations, diff);
    assert.equal(longer.computed.scorings, diff);
    assert.equal(longer.cache.reviser.hits, first.requested.generations);
    // the first two rounds of the longer run are those of the shorter one
    longer.samples.forEach((s, i) =>
      assert.deepEqual(
        s.rounds.slice(0, 2).map((r) => r.beam),
        first.samples[i].rounds.map((r) => r.beam),
      ),
    );
  } finally {
    store.close();
  }
});

test("an aborted run resumes to the same result as an uninterrupted one", async () => {
  const reference = await curate({
    pool,
    reviser: model,
    scorer: model,
    judge: null,
    store: Store.open(":memory:"),
    config: small,
  });
  const store = Store.open(join(dir, "c.sqlite"));
  try {
    const controller = new AbortController();
    await assert.rejects(
      curate({
        pool,
        reviser: model,
        scorer: model,
        judge: null,
        store,
        config: small,
        signal: controller.signal,
        onProgress: (p) => {
          if (p.round === 2 && p.phase === "generate" && p.done >= 3) controller.abort();
        },
      }),
      /interrupted/,
    );
    const resumed = await curate({ pool, reviser: model, scorer: model, judge: null, store, config: small });
    assert.ok(resumed.computed.generations < 16, `recomputed ${resumed.computed.generations} generations`);
    assert.equal(resumed.computed.scorings <= 16, true);
    assert.deepEqual(
      resumed.samples.map((s) => s.curated),
      reference.samples.map((s) => s.curated),
    );
  } finally {
    store.close();
  }
});

test("unparseable verdicts are recorded and keep candidates out; custom template, phrases and cleaner apply", async () => {
  const store = Store.open(join(dir, "d.sqlite"));
  try {
    const judge = createHelpfulnessJudge(model, { maxTokens: 4 });
    const config: CurationConfigInput = {
      ...small,
      rounds: 1,
      revisionTemplate: "Q: {{query}}\nA: {{response}}\nUse: {{phrases}}",
      seedPhrases: ["alpha beta", "gamma", "delta"],
      phrasesPerCall: 2,
    };
    const result = await curate({ pool, reviser: model, scorer: model, judge, store, config });
    assert.deepEqual(result.requested, planCuration(pool.length, config));
    assert.equal(result.summary.helpfulness?.unparsedOriginals, pool.length);
    const all = result.samples.flatMap((s) => s.rounds[0].candidates);
    for (const c of all) {
      assert.equal(c.verdict?.parsed, false);
      assert.ok(c.failed.includes("helpfulness-unparsed"));
      assert.equal(c.phrases.length, 2);
      for (const p of c.phrases) assert.ok(config.seedPhrases!.includes(p));
    }
    assert.equal(result.summary.candidates.failed["helpfulness-unparsed"].count, all.length);
    for (const s of result.samples) {
      assert.equal(s.changed, false);
      assert.equal(s.rounds[0].carried, true);
      assert.deepEqual(s.curated, s.original);
    }
    const rejected = await curate({
      pool,
      reviser: model,
      scorer: model,
      judge: null,
      store,
      config,
      cleanCandidate: () => ({ ok: false, reason: "custom-reject" }),
      cleanerName: "reject-all",
    });
    assert.equal(rejected.requested.scorings, pool.length, "rejected candidates are not scored");
    assert.equal(rejected.summary.candidates.failed["custom-reject"].rate, 1);
    assert.equal(rejected.computed.generations, 0, "same generation requests as the judged run");
  } finally {
    store.close();
  }
});

test("the curated set is written in the input's format family and reads back", async () => {
  const result = await curate({
    pool,
    reviser: model,
    scorer: model,
    judge: null,
    store: Store.open(join(dir, "e.sqlite")),
    config: { ...small, rounds: 1 },
  });
  const cases: [DatasetFormat, "jsonl" | "json" | "csv", string][] = [
    ["alpaca", "json", "curated.json"],
    ["alpaca", "jsonl", "curated.jsonl"],
    ["openai", "jsonl", "curated.jsonl"],
    ["sharegpt", "json", "curated.json"],
    ["prompt-response", "jsonl", "curated.jsonl"],
    ["csv", "csv", "curated.csv"],
  ];
  for (const [format, container, name] of cases) {
    const out = join(dir, `out-${format}-${container}`);
    const files = writeCurationOutputs(out, result, { format, container });
    assert.equal(files.curated, join(out, name));
    const back = readDataset(files.curated);
    assert.equal(back.format, format);
    assert.deepEqual(
      back.samples.map((s) => s.messages),
      result.samples.map((s) => s.curated.messages),
      `${format}/${container}`,
    );
  }
});
