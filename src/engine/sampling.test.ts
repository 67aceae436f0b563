// Tests for the sampler pieces on hand-made logits, seeded determinism, the empirical distribution of many
// draws against the filtered softmax, and stop strings that arrive split across tokens.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../util/random.js";
import {
  applyMinP,
  applyRepetitionPenalty,
  applyTemperature,
  applyTopK,
  applyTopP,
  argmax,
  filterLogits,
  sampleToken,
  samplingDistribution,
  softmax,
  StopController,
  StopStringMatcher,
  topIndices,
  type SamplingParams,
} from "./sampling.js";

const NEG = -Infinity;
const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);
const live = (l: Float32Array): number[] => [...l.keys()].filter((i) => l[i] !== NEG);

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++)
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `index ${i}: ${actual[i]} vs ${expected[i]}`);
}

test("repetition penalty divides positive and multiplies non-positive logits, once per distinct token", () => {
  const l = applyRepetitionPenalty(f32([2, -2, 0, 4, 1]), [0, 1, 0, 0, 2], 2, 64);
  assert.deepEqual([...l], [1, -4, 0, 4, 1]);
  // Only the last N tokens count: with N = 2 only tokens 0 and 2 are penalized.
  assert.deepEqual([...applyRepetitionPenalty(f32([2, -2, 0, 4]), [1, 0, 2], 2, 2)], [1, -2, 0, 4]);
  // -1 means the whole history; out-of-range ids are ignored.
  assert.deepEqual([...applyRepetitionPenalty(f32([2, 3]), [0, 1, 7, -1], 2, -1)], [1, 1.5]);
  assert.deepEqual([...applyRepetitionPenalty(f32([2, 3]), [0, 1], 1.5, 0)], [2, 3]);
});

test("top-k keeps the k highest logits, ties to the lower id", () => {
  assert.deepEqual(live(applyTopK(f32([1, 5, 3, 5, 2, 4]), 3)), [1, 3, 5]);
  assert.deepEqual(live(applyTopK(f32([1, 1, 1, 1]), 2)), [0, 1]);
  assert.deepEqual(live(applyTopK(f32([1, 2]), 0)), [0, 1]);
  const l = applyTopK(f32([0.5, 9, -1]), 1);
  assert.deepEqual([...l], [NEG, 9, NEG]);
  assert.deepEqual([...topIndices(f32([3, NEG, 7, 7, 1]), 10)], [2, 3, 0, 4]);
});

test("top-k agrees with a full sort on a large random vocabulary", () => {
  const rng = new Rng(11);
  const l = Float32Array.from({ length: 5000 }, () => Math.round(rng.normal() * 50) / 10);
  const order = [...l.keys()].sort((a, b) => l[b] - l[a] || a - b);
  assert.deepEqual([...topIndices(l, 40)], order.slice(0, 40));
  assert.deepEqual(
    live(applyTopK(Float32Array.from(l), 300)),
    order.slice(0, 300).sort((a, b) => a - b),
  );
});

test("top-p keeps the smallest most-likely set reaching p (including the crossing token)", () => {
  // Probabilities 0.5, 0.25, 0.125, 0.125 from logits ln of them.
  const base = [Math.log(0.125), Math.log(0.5), Math.log(0.125), Math.log(0.25)];
  assert.deepEqual(live(applyTopP(f32(base), 0.5)), [1]);
  assert.deepEqual(live(applyTopP(f32(base), 0.6)), [1, 3]);
  assert.deepEqual(live(applyTopP(f32(base), 0.75)), [1, 3]);
  assert.deepEqual(live(applyTopP(f32(base), 0.8)), [0, 1, 3]);
  assert.deepEqual(live(applyTopP(f32(base), 1)), [0, 1, 2, 3]);
  assert.deepEqual(live(applyTopP(f32(base), 0.1, 3)), [0, 1, 3]);
});

test("top-p beyond the 256-token fast path matches a full sort", () => {
  // A flat distribution over 2000 tokens: p = 0.5 needs 1000 of them.
  const rng = new Rng(5);
  const l = Float32Array.from({ length: 2000 }, () => rng.next() * 1e-3);
  const kept = live(applyTopP(Float32Array.from(l), 0.5));
  const probs = softmax(l);
  const order = [...l.keys()].sort((a, b) => l[b] - l[a] || a - b);
  let cum = 0;
  let n = 0;
  while (cum < 0.5) cum += probs[order[n++]];
  assert.ok(n > 256);
  assert.deepEqual(
    kept,
    order.slice(0, n).sort((a, b) => a - b),
  );
});

test("min-p keeps tokens with p >= minP * pmax", () => {
  const base = [Math.log(0.5), Math.log(0.3), Math.log(0.1), Math.log(0.06), Math.log(0.04)];
  assert.deepEqual(live(applyMinP(f32(base), 0.15)), [0, 1, 2]);
  assert.deepEqual(live(applyMinP(f32(base), 0.61)), [0]);
  assert.deepEqual(live(applyMinP(f32(base), 0.61, 2)), [0, 1]);
  assert.deepEqual(live(applyMinP(f32(base), 0)), [0, 1, 2, 3, 4]);
});

test("temperature scales logits; greedy picks the argmax without using the rng", () => {
  assert.deepEqual([...applyTemperature(f32([1, -2, 4]), 0.5)], [2, -4, 8]);
  assert.throws(() => applyTemperature(f32([1]), 0));
  assert.equal(argmax(f32([1, 7, 7, 3])), 1);
  const rng = new Rng(1);
  const before = new Rng(1).next();
  assert.equal(sampleToken(f32([0, 3, 2]), { temperature: 0 }, rng), 1);
  assert.equal(rng.next(), before, "greedy consumed a random number");
  // The penalty applies before greedy, as in llama.cpp's chain: token 1 (3 -> 1.5) loses to token 2.
  assert.equal(sampleToken(f32([0, 3, 2]), { temperature: 0, repeatPenalty: 2 }, rng, [1]), 2);
});

test("the distribution composes penalty, top-k, top-p, min-p, then temperature", () => {
  const logits = f32([3, 2, 1, 0, -1, 2.5]);
  const params: SamplingParams = { temperature: 0.5, topK: 4, topP: 0.85, minP: 0.4, repeatPenalty: 2 };
  // Penalty on token 0: 3 -> 1.5, so token 5 (2.5) now leads. top-4 of [1.5, 2, 1, 0, -1, 2.5] = {5, 1, 0, 2}.
  // Untempered softmax over those: 0.455, 0.276, 0.167, 0.102 -> cumulative 0.73 < 0.85 <= 0.90: top-p keeps 5, 1, 0.
  // min-p 0.4: p0 / p5 = e^-1 = 0.37 < 0.4 drops token 0, p1 / p5 = e^-0.5 = 0.61 stays.
  const t = [2.5, 2].map((x) => x / 0.5);
  const zt = t.reduce((s, x) => s + Math.exp(x), 0);
  const expected = [0, Math.exp(t[1]) / zt, 0, 0, 0, Math.exp(t[0]) / zt];
  assertClose(samplingDistribution(logits, params, [0, 0]), expected, 1e-6);
  // filterLogits works on a copy.
  filterLogits(logits, params, [0]);
  assert.deepEqual([...logits], [3, 2, 1, 0, -1, 2.5]);
});

test("a seed replays the same sequence of choices", () => {
  const rng = new Rng(123);
  const logits = Float32Array.from({ length: 1000 }, () => rng.normal() * 2);
  const params: SamplingParams = { temperature: 0.8, topK: 50, topP: 0.95, repeatPenalty: 1.1 };
  const run = (seed: number): number[] => {
    const r = new Rng(seed);
    const hist: number[] = [];
    for (let i = 0; i < 50; i++) hist.push(sampleToken(logits, params, r, hist));
    return hist;
  };
  assert.deepEqual(run(7), run(7));
  assert.notDeepEqual(run(7), run(8));
});

test("many draws follow the filtered softmax (chi-square)", () => {
  const rng = new Rng(99);
  const logits = Float32Array.from({ length: 200 }, () => rng.normal() * 1.5);
  const params: SamplingParams = { temperature: 0.7, topK: 30, topP: 0.9, minP: 0.02 };
  const p = samplingDistribution(logits, params);
  const support = [...p.keys()].filter((i) => p[i] > 0);
  assert.ok(support.length >= 5 && support.length <= 30, `support ${support.length}`);
  const n = 40000;
  const counts = new Float64Array(logits.length);
  for (let i = 0; i < n; i++) counts[sampleToken(logits, params, rng)]++;
  let chi2 = 0;
  for (let i = 0; i < logits.length; i++) {
    if (p[i] === 0) {
      assert.equal(counts[i], 0, `token ${i} was filtered out but drawn`);
      continue;
    }
    chi2 += (counts[i] - n * p[i]) ** 2 / (n * p[i]);
  }
  // chi-square with df = support - 1: mean df, sd sqrt(2 df); 5 sd is a generous but still sharp bound
  // (a sampler ignoring the temperature gives a chi2 in the thousands here).
  const df = support.length - 1;
  assert.ok(chi2 < df + 5 * Math.sqrt(2 * df), `chi2 ${chi2.toFixed(1)} with df ${df}`);
});

test("parameter validation and an all-filtered vocabulary give clear errors", () => {
  const rng = new Rng(1);
  assert.throws(() => sampleToken(f32([1, 2]), { temperature: -1 }, rng), /temperature/);
  assert.throws(() => sampleToken(f32([1, 2]), { temperature: 1, topP: 0 }, rng), /topP/);
  assert.throws(() => sampleToken(f32([1, NaN]), { temperature: 1 }, rng), /NaN/);
  assert.throws(() => sampleToken(f32([NEG, NEG]), { temperature: 1 }, rng), /filtered out/);
});

test("stop strings split across tokens are caught and the text before them is returned", () => {
  const m = new StopStringMatcher(["</s>", "\n\nUser:"]);
  const out: string[] = [];
  for (const piece of ["Hello", " wor", "ld<", "/", "s> more"]) {
    const r = m.push(piece);
    out.push(r.text);
    if (r.stopped) {
      assert.equal(r.stop, "</s>");
      break;
    }
  }
  assert.deepEqual(out, ["Hello", " wor", "ld", "", ""]);
  assert.equal(out.join(""), "Hello world");
  assert.ok(m.stopped);
  assert.deepEqual(m.push("x"), { text: "", stopped: true });
});

test("held-back text is released when it stops looking like a stop string", () => {
  const m = new StopStringMatcher(["\n\nUser:"]);
  assert.deepEqual(m.push("a\n"), { text: "a", stopped: false });
  assert.deepEqual(m.push("\nUs"), { text: "", stopped: false });
  assert.deepEqual(m.push("ually"), { text: "\n\nUsually", stopped: false });
  assert.deepEqual(m.push("\n"), { text: "", stopped: false });
  assert.equal(m.flush(), "\n");
  // Two stops complete in the same piece: the one starting earlier wins, and "x" (already shown) is all the text.
  const m2 = new StopStringMatcher(["ababc", "bc"]);
  assert.deepEqual(m2.push("xabab"), { text: "x", stopped: false });
  assert.deepEqual(m2.push("c!"), { text: "", stopped: true, stop: "ababc" });
  // A stop string inside a single piece, and one spanning three pieces.
  assert.deepEqual(new StopStringMatcher(["STOP"]).push("abcSTOPdef"), {
    text: "abc",
    stopped: true,
    stop: "STOP",
  });
  const m3 = new StopStringMatcher(["STOP"]);
  assert.deepEqual(
    ["S", "T", "O", "P"].map((p) => m3.push(p).text),
    ["", "", "", ""],
  );
  assert.ok(m3.stopped);
  assert.throws(() => new StopStringMatcher([""]));
});

test("the stop controller ends on stop strings, stop tokens and max tokens", () => {
  const s = new StopController({ maxTokens: 3 });
  assert.deepEqual(
    [s.push(1, "a"), s.push(2, "b"), s.push(3, "c")].map((x) => [x.text, x.done, x.reason]),
    [
      ["a", false, undefined],
      ["b", false, undefined],
      ["c", true, "length"],
    ],
  );
  assert.equal(s.push(4, "d").done, true);

  const e = new StopController({ maxTokens: 10, stopTokens: [2], stop: ["##"] });
  assert.deepEqual(e.push(5, "x#"), { text: "x", done: false });
  assert.deepEqual(e.push(2, "</s>"), { text: "#", done: true, reason: "eos" });
  assert.equal(e.tokens, 2);

  const t = new StopController({ maxTokens: 10, stop: ["##"] });
  assert.deepEqual(t.push(5, "x#"), { text: "x", done: false });
  assert.deepEqual(t.push(6, "#y"), { text: "", done: true, reason: "stop" });
  // At max tokens the held-back partial stop is released.
  const u = new StopController({ maxTokens: 1, stop: ["##"] });
  assert.deepEqual(u.push(5, "x#"), { text: "x#", done: true, reason: "length" });
});
