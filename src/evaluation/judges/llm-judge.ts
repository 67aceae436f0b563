// The shared machinery of LLM judges: render one fenced prompt per item, send all of them as one greedy,
// seeded batch (so cachedModel makes a judge run resumable), and parse each output into a verdict.

import type { GenerateRequest, LanguageModel } from "../../models/index.js";
import type { Judge, JudgeItem, JudgeKind, JudgeOptions, Verdict } from "../types.js";

/** What distinguishes one LLM judge from another: how it asks, and how it reads the answer. */
export interface LlmJudgeSpec<Context> {
  /** Judge name prefix ("rubric-safety"); the model id is appended. */
  name: string;
  kind: JudgeKind;
  /** The chat messages (or raw prompt) for one item, plus whatever the parser needs (e.g. the fence). */
  render(item: JudgeItem): { request: Pick<GenerateRequest, "messages" | "prompt">; context: Context };
  /** The verdict fields read from the judge's output, or null when the output has no well-formed verdict. */
  parse(output: string, context: Context, item: JudgeItem): Omit<Verdict, "judge" | "parsed"> | null;
}

export interface LlmJudgeOptions {
  /** Judge output budget. Default 512. */
  maxTokens?: number;
  /** Seed sent with every request (greedy decoding ignores it, but it is part of the cache key). Default 0. */
  seed?: number;
}

/** A Judge over `model` following `spec`. Unparseable outputs give parsed:false with the raw output as rationale. */
export function createLlmJudge<Context>(
  model: LanguageModel,
  spec: LlmJudgeSpec<Context>,
  options: LlmJudgeOptions = {},
): Judge {
  const name = `${spec.name}:${model.info().id}`;
  const sampling = { temperature: 0, maxTokens: options.maxTokens ?? 512, seed: options.seed ?? 0 };
  const toVerdict = (output: string, context: Context, item: JudgeItem): Verdict => {
    const read = spec.parse(output, context, item);
    if (read === null) return { judge: name, parsed: false, rationale: output };
    return { judge: name, parsed: true, ...read };
  };
  return {
    name,
    identity: `${name} maxTokens=${sampling.maxTokens} seed=${sampling.seed}`,
    kind: spec.kind,
    async judge(items: readonly JudgeItem[], judgeOptions: JudgeOptions = {}): Promise<Verdict[]> {
      const rendered = items.map((item) => spec.render(item));
      const requests: GenerateRequest[] = rendered.map((r, i) => ({
        ...r.request,
        sampling,
        id: items[i].id,
      }));
      const results = await model.generate(requests, {
        signal: judgeOptions.signal,
        onResult: (i, result) => {
          if (result.finishReason === "cancelled") return;
          judgeOptions.onResult?.(i, toVerdict(result.text, rendered[i].context, items[i]));
        },
      });
      judgeOptions.signal?.throwIfAborted();
      return results.map((r, i) => toVerdict(r.text, rendered[i].context, items[i]));
    },
  };
}
