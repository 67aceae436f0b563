// The four places curated data enters (METHOD.md §4): pre-attack (immunize), in-attack (mix into the job),
// post-attack (restore) and all-stage; each is one training run through a Trainer and returns a ModelHandle.

import { join } from "node:path";
import type { Sample } from "../data/sample.js";
import { writeHandle, HANDLE_FILE, type ModelHandle } from "./handle.js";
import { mixSamples, type MixResult } from "./mixing.js";
import type { TrainRecipe } from "./recipe.js";
import { nativeTrainer, type Trainer, type TrainOutcome, type TrainRun } from "./trainer.js";

export interface StageRun extends TrainRun {
  /** Default nativeTrainer. */
  trainer?: Trainer;
}

export interface StageOutcome {
  /** The model the stage produced. */
  handle: ModelHandle;
  /** One per training run (all-stage has three: pre, in, post). */
  runs: TrainOutcome[];
  /** The in-attack mixture, for stages that mix. */
  mix?: MixResult;
}

export interface MixInData {
  customer?: readonly Sample[];
  harmful?: readonly Sample[];
  curated: readonly Sample[];
  ratio?: number;
  count?: number;
  /** Mixing seed; default the recipe's seed. */
  seed?: number;
}

/** Pre-attack: fine-tune the aligned base on curated data before anyone customizes it. */
export async function immunize(
  base: ModelHandle,
  curated: readonly Sample[],
  recipe: TrainRecipe,
  run: StageRun,
): Promise<StageOutcome> {
  const outcome = await (run.trainer ?? nativeTrainer).train(base, curated, recipe, {
    ...run,
    stage: "pre",
    describe: { ...run.describe, stage: "pre", curated: curated.length },
  });
  return { handle: outcome.handle, runs: [outcome] };
}

/** In-attack: train the base (or immunized) model on customer + harmful data with curated samples mixed in. */
export async function mixIn(
  base: ModelHandle,
  data: MixInData,
  recipe: TrainRecipe,
  run: StageRun,
): Promise<StageOutcome> {
  const mix = mixSamples({ ...data, seed: data.seed ?? recipe.seed });
  const outcome = await (run.trainer ?? nativeTrainer).train(base, mix.samples, recipe, {
    ...run,
    stage: "in",
    describe: {
      ...run.describe,
      stage: "in",
      mix: { counts: mix.counts, rule: mix.rule, seed: mix.seed, curatedIds: mix.curatedIds },
    },
  });
  return { handle: outcome.handle, runs: [outcome], mix };
}

/** Post-attack: fine-tune a compromised model on curated data (its adapter is folded in first). */
export async function restore(
  compromised: ModelHandle,
  curated: readonly Sample[],
  recipe: TrainRecipe,
  run: StageRun,
): Promise<StageOutcome> {
  const outcome = await (run.trainer ?? nativeTrainer).train(compromised, curated, recipe, {
    ...run,
    stage: "post",
    describe: { ...run.describe, stage: "post", curated: curated.length },
  });
  return { handle: outcome.handle, runs: [outcome] };
}

export interface AllStageData extends MixInData {
  /** Curated sets per stage when they differ; default `curated` for all three. */
  curatedPre?: readonly Sample[];
  curatedPost?: readonly Sample[];
}

/** A recipe for every stage, or one per stage (the in-attack one is the customization job's). */
export type StageRecipes = TrainRecipe | { pre: TrainRecipe; in: TrainRecipe; post: TrainRecipe };

/**
 * All-stage: pre, then in (on the immunized model), then post (on the customized model), each in its own
 * subdirectory of outDir (pre/, in/, post/); outDir/model.json is the final model. With resume, finished stages
 * are reused and a stopped one continues from its checkpoint.
 */
export async function allStage(
  base: ModelHandle,
  data: AllStageData,
  recipes: StageRecipes,
  run: StageRun,
): Promise<StageOutcome> {
  const r = "pre" in recipes ? recipes : { pre: recipes, in: recipes, post: recipes };
  const sub = (stage: string): StageRun => ({ ...run, outDir: join(run.outDir, stage) });
  const pre = await immunize(base, data.curatedPre ?? data.curated, r.pre, sub("pre"));
  if (!pre.runs[0].completed) return { handle: pre.handle, runs: pre.runs };
  const inAttack = await mixIn(pre.handle, data, r.in, sub("in"));
  const runs = [...pre.runs, ...inAttack.runs];
  if (!inAttack.runs[0].completed) return { handle: inAttack.handle, runs, mix: inAttack.mix };
  const post = await restore(inAttack.handle, data.curatedPost ?? data.curated, r.post, sub("post"));
  const handle = { ...post.handle, stage: "all" };
  if (post.runs[0].completed) writeHandle(join(run.outDir, HANDLE_FILE), handle);
  return { handle, runs: [...runs, ...post.runs], mix: inAttack.mix };
}
