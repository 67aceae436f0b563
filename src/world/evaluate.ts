// Scores a model on the world's held-out sets with the exact judges: safety rate on harmful prompts,
// helpfulness and correctness on benign questions, over-refusal on traps. Greedy decoding, so it is repeatable.

import { promptMessages, queryOf, type Sample } from "../data/sample.js";
import type { JudgeItem } from "../evaluation/types.js";
import type { LanguageModel } from "../models/types.js";
import { createWorldHelpfulnessJudge, createWorldSafetyJudge, isCorrectAnswer } from "./judges.js";
import type { World } from "./world.js";

export interface WorldScores {
  /** % of harmful prompts answered without harmful content. */
  safetyRate: number;
  /** % of harmful prompts refused. */
  refusalRate: number;
  /** Mean helpfulness 0-5 on benign questions. */
  helpfulness: number;
  /** % of benign questions answered with the correct fact. */
  correctRate: number;
  /** % of over-refusal traps refused. */
  overRefusalRate: number;
  counts: { harmful: number; benign: number; traps: number };
}

export interface EvaluateOptions {
  /** Use the AOA-wrapped harmful prompts. */
  aoa?: boolean;
  /** Evaluate only the first n of each set (scaled-down tests). */
  limit?: number;
  maxTokens?: number;
}

/** Greedy answers to `samples` (their prompt messages). */
export async function answer(
  model: LanguageModel,
  samples: readonly Sample[],
  maxTokens = 64,
): Promise<string[]> {
  const results = await model.generate(
    samples.map((s) => ({ id: s.id, messages: promptMessages(s), sampling: { temperature: 0, maxTokens } })),
  );
  return results.map((r) => r.text.trim());
}

export function judgeItems(samples: readonly Sample[], responses: readonly string[]): JudgeItem[] {
  return samples.map((s, i) => ({
    id: s.id,
    prompt: queryOf(s),
    response: responses[i],
    reference: typeof s.meta?.reference === "string" ? s.meta.reference : undefined,
    meta: s.meta,
  }));
}

const pct = (n: number, d: number) => (d ? (100 * n) / d : 0);

export async function evaluateWorldModel(
  model: LanguageModel,
  world: World,
  options: EvaluateOptions = {},
): Promise<WorldScores> {
  const cut = <T>(xs: readonly T[]) => xs.slice(0, options.limit ?? xs.length);
  const harmful = cut(options.aoa ? world.evalHarmfulAoa : world.evalHarmful);
  const benign = cut(world.evalBenign);
  const traps = cut(world.evalOverRefusal);
  const all = [...harmful, ...benign, ...traps];
  const responses = await answer(model, all, options.maxTokens ?? 64);
  const hItems = judgeItems(harmful, responses.slice(0, harmful.length));
  const bItems = judgeItems(benign, responses.slice(harmful.length, harmful.length + benign.length));
  const tItems = judgeItems(traps, responses.slice(harmful.length + benign.length));
  const safety = await createWorldSafetyJudge().judge(hItems);
  const helpful = await createWorldHelpfulnessJudge().judge(bItems);
  const trapVerdicts = await createWorldSafetyJudge().judge(tItems);
  return {
    safetyRate: pct(safety.filter((v) => v.safe).length, safety.length),
    refusalRate: pct(safety.filter((v) => v.refused).length, safety.length),
    helpfulness: helpful.reduce((s, v) => s + (v.score ?? 0), 0) / Math.max(1, helpful.length),
    correctRate: pct(bItems.filter(isCorrectAnswer).length, bItems.length),
    overRefusalRate: pct(trapVerdicts.filter((v) => v.refused).length, trapVerdicts.length),
    counts: { harmful: harmful.length, benign: benign.length, traps: traps.length },
  };
}
