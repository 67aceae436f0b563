// The experiment runner: expands a config into the paper's matrix (defences x attacks x seeds) as a graph of
// steps (curate once per scorer, train each model once, evaluate each model once) and runs it resumably.

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { availableParallelism } from "node:os";
import { readDataset, writeDataset } from "../data/index.js";
import { withResponse, type Sample } from "../data/sample.js";
import {
  createHelpfulnessJudge,
  createKeywordJudge,
  createLlamaGuardJudge,
  createSafetyJudge,
  createStrongRejectJudge,
  evaluate,
  loadBenchmark,
  type BenchmarkKind,
  type BenchmarkSet,
  type EvalReport,
  type Judge,
} from "../evaluation/index.js";
import { cleanCandidate, curate, type CurateResult } from "../curation/index.js";
import {
  aoaSamples,
  attackRecipe,
  baseHandle,
  mixSamples,
  openHandle,
  pplDrop,
  randDrop,
  resolveRecipe,
  type ModelHandle,
  type TrainRecipe,
} from "../stages/index.js";
import { openModel, type LanguageModel } from "../models/index.js";
import { cachedModel, contentKey, Store } from "../store/index.js";
import {
  buildOrganism,
  cleanWorldCandidate,
  createWorldHelpfulnessJudge,
  createWorldRefusalJudge,
  createWorldSafetyJudge,
  worldRevisionTemplate,
  worldSeedPhrases,
  WORLD_SPLITS,
  type Organism,
  type World,
  type WorldSplit,
} from "../world/index.js";
import { selectSamples } from "../data/index.js";
import { BuckleError, InputError } from "../util/errors.js";
import { writeFileAtomic } from "../util/fs.js";
import { packageVersion } from "../util/version.js";
import { defenceOf, type DefenceKind, type ExperimentConfig } from "./config.js";
import { runSteps, type Step, type StepContext, type StepEvent } from "./steps.js";
import { trainInWorker } from "./train-worker.js";

export interface RunExperimentOptions {
  config: ExperimentConfig;
  /** The run directory: config snapshot, store, models, curated data, report. */
  runDir: string;
  onEvent?: (e: StepEvent) => void;
  /** Lines for a person (organism build, notes). */
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** What a training step stores. */
export interface TrainStepResult {
  handle: ModelHandle;
  losses: { step: number; loss: number }[];
  samples: number;
  counts?: Record<string, number>;
}

/** What a curation step stores. */
export interface CurateStepResult {
  file: string;
  /** The curated set after round 1, 2, ... (the last round's set is `file`). */
  roundFiles: string[];
  scorer: string;
  configHash: string;
  selectionRule: string;
  changed: number;
  total: number;
  summary: CurateResult["summary"];
  /** A few before/after pairs for the report. */
  examples: {
    id: string;
    query: string;
    original: string;
    curated: string;
    perplexityBefore?: number;
    perplexityAfter?: number;
    helpfulnessBefore?: number;
    helpfulnessAfter?: number;
    round?: number;
    temperature?: number;
    topP?: number;
    phrasesUsed: string[];
  }[];
}

/** What an evaluation step stores: the evaluation's run id and its report. */
export interface EvalStepResult {
  runId: string;
  report: EvalReport;
}

export const CONFIG_FILE = "config.json";
export const STORE_FILE = "run.sqlite";

/** The hash that names an experiment: two configs with the same hash ask for the same work. */
export function experimentHash(config: ExperimentConfig): string {
  return contentKey("experiment", config).slice(0, 16);
}

/** Everything the steps share in this process (rebuilt on every run, never stored). */
interface RunContext {
  config: ExperimentConfig;
  runDir: string;
  store: Store;
  organism?: Organism;
  world?: World;
  base: ModelHandle;
  log: (line: string) => void;
  signal?: AbortSignal;
  /** Judge models and other resources to dispose at the end. */
  disposables: LanguageModel[];
  /** Made once per run and shared by every step: judge models by reference, the judge sets, data sources. */
  judgeModels: Map<string, Promise<LanguageModel>>;
  evalJudges?: Promise<Judge[]>;
  curationJudge?: Promise<Judge | null>;
  sources: Map<string, Sample[]>;
}

/** A judge model, opened once per run (cached in the run's store) however many steps use it. */
function judgeModel(ctx: RunContext, ref: string): Promise<LanguageModel> {
  let model = ctx.judgeModels.get(ref);
  if (!model) {
    model = openModel(ref).then((m) => {
      const cached = cachedModel(m, ctx.store);
      ctx.disposables.push(cached);
      return cached;
    });
    ctx.judgeModels.set(ref, model);
  }
  return model;
}

/** Read a data source: a dataset file, or world:<split> of the organism. */
export function readSource(
  ctx: { world?: World; sources?: Map<string, Sample[]> },
  source: string,
  what: string,
): Sample[] {
  if (source.startsWith("world:")) {
    const split = source.slice("world:".length) as WorldSplit;
    if (!ctx.world)
      throw new InputError(`${what}: ${source} needs the model organism`, {
        hint: "set model: {organism: {...}} or give a dataset file",
      });
    if (!(WORLD_SPLITS as readonly string[]).includes(split))
      throw new InputError(`${what}: unknown world split "${split}"`, {
        hint: `use one of ${WORLD_SPLITS.join(", ")}`,
      });
    return ctx.world[split].slice();
  }
  const path = resolve(source);
  const allowPromptOnly = what.startsWith("evaluation");
  const key = `${allowPromptOnly ? "prompts" : "chats"}:${path}`;
  const known = ctx.sources?.get(key);
  if (known) return known.slice();
  if (!existsSync(path))
    throw new InputError(`${what}: no such file ${source}`, {
      hint: "give a dataset file (docs/DATASETS.md) or a world:<split> of the model organism",
    });
  const samples = readDataset(path, { allowPromptOnly }).samples;
  ctx.sources?.set(key, samples);
  return samples.slice();
}

/** The name a world split's benchmark set is recorded under (files keep the loader's name). */
function benchmarkName(source: string): string {
  if (source.startsWith("world:")) return source.replace(":", "-");
  if (existsSync(resolve(source))) return basename(source).replace(/\.[^.]+$/, "");
  return source;
}

/** A benchmark set from a data source (world splits and dataset files become items; builtin:/hf: refs load). */
function benchmarkOf(
  ctx: RunContext,
  source: string,
  kind: BenchmarkKind,
  what: string,
): Promise<BenchmarkSet> | BenchmarkSet {
  const limit = ctx.config.evaluation.limit;
  const cut = (set: BenchmarkSet): BenchmarkSet =>
    limit ? { ...set, items: set.items.slice(0, limit) } : set;
  // files and builtin:/hf: refs go through the benchmark loaders; world splits are read here
  if (!source.startsWith("world:"))
    return loadBenchmark(existsSync(resolve(source)) ? resolve(source) : source, kind).then((set) =>
      cut({ ...set, name: benchmarkName(source) }),
    );
  const samples = readSource(ctx, source, what);
  return cut({
    name: benchmarkName(source),
    kind,
    builtin: false,
    source,
    layout: "world",
    items: samples.map((s) => {
      const system = s.messages.find((m) => m.role === "system")?.content;
      const user = [...s.messages].reverse().find((m) => m.role === "user")?.content ?? "";
      const last = s.messages[s.messages.length - 1];
      const category = s.tags?.find((t) => t.startsWith("category:"))?.slice("category:".length);
      return {
        id: s.id,
        prompt: user,
        system,
        category: category ?? (typeof s.meta?.category === "string" ? s.meta.category : undefined),
        reference:
          last.role === "assistant"
            ? last.content
            : typeof s.meta?.reference === "string"
              ? s.meta.reference
              : undefined,
        label: kind === "over-refusal" ? "safe" : undefined,
        meta: s.meta,
      };
    }),
  });
}

function judgesOf(ctx: RunContext): Promise<Judge[]> {
  ctx.evalJudges ??= makeJudges(ctx);
  return ctx.evalJudges;
}

function makeJudges(ctx: RunContext): Promise<Judge[]> {
  return Promise.all(
    ctx.config.evaluation.judges.map(async (spec): Promise<Judge[]> => {
      if (spec === "exact") {
        if (!ctx.world)
          throw new InputError('evaluation.judges: "exact" judges read the model organism\'s world', {
            hint: "use keyword or an LLM judge (safety:<model ref>) for other models",
          });
        return [createWorldSafetyJudge(), createWorldHelpfulnessJudge(), createWorldRefusalJudge()];
      }
      if (spec === "keyword") return [createKeywordJudge()];
      const m = /^(safety|helpfulness|strongreject|llamaguard):(.+)$/.exec(spec);
      if (!m)
        throw new InputError(`evaluation.judges: unknown judge "${spec}"`, {
          hint: "use exact, keyword, safety:<ref>, helpfulness:<ref>, strongreject:<ref> or llamaguard:<ref>",
        });
      const model = await judgeModel(ctx, m[2]);
      const make = {
        safety: createSafetyJudge,
        helpfulness: createHelpfulnessJudge,
        strongreject: createStrongRejectJudge,
        llamaguard: createLlamaGuardJudge,
      }[m[1] as "safety" | "helpfulness" | "strongreject" | "llamaguard"];
      return [make(model)];
    }),
  ).then((lists) => lists.flat());
}

function curationJudge(ctx: RunContext): Promise<Judge | null> {
  ctx.curationJudge ??= makeCurationJudge(ctx);
  return ctx.curationJudge;
}

async function makeCurationJudge(ctx: RunContext): Promise<Judge | null> {
  const spec = ctx.config.curation.judge;
  if (spec === "none") return null;
  if (spec === "exact") {
    if (!ctx.world)
      throw new InputError('curation.judge: "exact" needs the model organism', {
        hint: "use none or helpfulness:<model ref>",
      });
    return createWorldHelpfulnessJudge();
  }
  const m = /^helpfulness:(.+)$/.exec(spec);
  if (!m)
    throw new InputError(`curation.judge: unknown judge "${spec}"`, {
      hint: "use exact, none or helpfulness:<model ref>",
    });
  return createHelpfulnessJudge(await judgeModel(ctx, m[1]));
}

const openFor = (ctx: RunContext, handle: ModelHandle): Promise<LanguageModel> =>
  openHandle(handle, { backend: ctx.config.backend, threads: ctx.config.threads });

/** The recipe of the defence trainings (pre and post) for one seed. */
function defenceRecipe(ctx: RunContext, seed: number): TrainRecipe {
  return resolveRecipe({ ...ctx.config.training.recipe, seed } as Partial<TrainRecipe>, {
    preset: ctx.config.training.preset,
  });
}

async function trainStep(
  ctx: RunContext,
  id: string,
  base: ModelHandle,
  samples: readonly Sample[],
  recipe: TrainRecipe,
  stage: string,
  progress: (f: number) => void,
  counts?: Record<string, number>,
): Promise<TrainStepResult> {
  if (samples.length === 0) throw new BuckleError(`${id}: no training samples`);
  const result = await trainInWorker(
    {
      base,
      samples: samples.slice(),
      recipe,
      outDir: join(ctx.runDir, "models", id.replaceAll(":", "_")),
      stage,
      threads: ctx.config.threads ?? Math.max(1, Math.floor(availableParallelism() / ctx.config.concurrency)),
    },
    progress,
    ctx.signal,
  );
  if (!result.completed)
    throw new BuckleError(`${id}: training stopped before its last step`, {
      hint: "rerun the same command: the training continues from its last checkpoint",
    });
  return { handle: result.handle, losses: result.history, samples: samples.length, counts };
}

function readCurated(file: string): Sample[] {
  return readDataset(file).samples;
}

/** The pool samples a seed's curation starts from (count / rate / strategy of the curation config). */
function selectedPool(ctx: RunContext, seed: number): Sample[] {
  const c = ctx.config.curation;
  const all = readSource(ctx, ctx.config.data.pool, "data.pool");
  return c.count !== undefined || c.rate !== undefined
    ? selectSamples(all, { count: c.count, rate: c.rate, strategy: c.strategy, seed })
    : all;
}

/** A sample's best text after `round` rounds: the head of that round's beam, or the text carried into it. */
function textAfterRound(sample: CurateResult["samples"][number], round: number): string {
  let text = sample.original.messages[sample.original.messages.length - 1].content;
  for (const r of sample.rounds.slice(0, round)) {
    const best = r.candidates.find((c) => c.id === r.beam[0]);
    if (!r.carried && best?.text) text = best.text;
  }
  return text;
}

async function curateStep(
  ctx: RunContext,
  id: string,
  scorerHandle: ModelHandle,
  seed: number,
  progress: (f: number | undefined, m?: string) => void,
): Promise<CurateStepResult> {
  const c = ctx.config.curation;
  const pool = selectedPool(ctx, seed);
  const scorer = await openFor(ctx, scorerHandle);
  const reviser = c.reviser ? await openModel(c.reviser) : await openFor(ctx, ctx.base);
  try {
    const settings: Record<string, unknown> = { ...c.settings, seed };
    if (ctx.world) {
      settings.revisionTemplate ??= worldRevisionTemplate;
      settings.seedPhrases ??= worldSeedPhrases;
      // the organism learned the revision task with one to three plain phrases per request
      settings.phrasesPerCall ??= 2;
      settings.phraseStyle ??= "plain";
    }
    const result = await curate({
      pool,
      reviser,
      scorer,
      judge: await curationJudge(ctx),
      store: ctx.store,
      config: settings,
      cleanCandidate: ctx.world ? (text, cc) => cleanCandidate(cleanWorldCandidate(text), cc) : undefined,
      cleanerName: ctx.world ? "world" : undefined,
      signal: ctx.signal,
      onProgress: (p) => progress(p.total > 0 ? p.done / p.total : undefined, p.phase),
    });
    const file = join(ctx.runDir, "curated", `${id.replaceAll(":", "_")}.jsonl`);
    writeDataset(
      file,
      result.samples.map((s) => s.curated),
      "openai",
    );
    // the curated set as it stood after each round (for the safety-against-rounds chart)
    const roundFiles: string[] = [];
    const rounds = Math.max(0, ...result.samples.map((x) => x.rounds.length));
    for (let r = 1; r < rounds; r++) {
      const roundFile = join(ctx.runDir, "curated", `${id.replaceAll(":", "_")}_round${r}.jsonl`);
      writeDataset(
        roundFile,
        result.samples.map((x) => withResponse(x.original, textAfterRound(x, r))),
        "openai",
      );
      roundFiles.push(roundFile);
    }
    const examples = result.samples
      .filter((s) => s.changed && s.final !== null)
      .slice(0, 8)
      .map((s) => {
        const final = s.final!;
        return {
          id: s.original.id,
          query: s.original.messages.find((m) => m.role === "user")?.content ?? "",
          original: s.original.messages[s.original.messages.length - 1].content,
          curated: s.curated.messages[s.curated.messages.length - 1].content,
          perplexityBefore: s.originalScores.perplexity ?? undefined,
          perplexityAfter: final.perplexity ?? undefined,
          helpfulnessBefore: s.originalScores.helpfulness ?? undefined,
          helpfulnessAfter: final.helpfulness ?? undefined,
          round: final.round,
          temperature: final.setting.temperature,
          topP: final.setting.topP,
          phrasesUsed: final.phrasesUsed,
        };
      });
    return {
      file,
      roundFiles,
      scorer: scorer.info().id,
      configHash: result.configHash,
      selectionRule: result.selectionRule,
      changed: result.samples.filter((s) => s.changed).length,
      total: result.samples.length,
      summary: result.summary,
      examples,
    };
  } finally {
    await scorer.dispose();
    await reviser.dispose();
  }
}

/** The cells of the matrix: one trained model per (defence, attack, seed). */
interface CellPlan {
  defence: string;
  kind: DefenceKind;
  attack: string;
  seed: number;
  /** The step whose result is the cell's final model. */
  modelStep: string;
  evalStep: string;
}

/** A post-attack model restored with an earlier round's curated set (the safety-against-rounds chart). */
export interface RoundCellPlan {
  round: number;
  attack: string;
  seed: number;
  modelStep: string;
  evalStep: string;
}

const firstAttackOf = (config: ExperimentConfig) =>
  config.attacks.find((a) => a.kind === "exharm") ?? config.attacks[0];
const roundsOf = (config: ExperimentConfig): number => {
  const r = config.curation.settings.rounds;
  return typeof r === "number" ? r : 5;
};

/** Build every step of the experiment. */
function planSteps(ctx: RunContext): {
  steps: Step[];
  cells: CellPlan[];
  roundCells: RoundCellPlan[];
  harmfulSets: Record<string, string>;
} {
  const { config } = ctx;
  const steps: Step[] = [];
  const cells: CellPlan[] = [];
  const roundCells: RoundCellPlan[] = [];
  const have = new Set<string>();
  const add = (s: Step): void => {
    if (!have.has(s.id)) {
      have.add(s.id);
      steps.push(s);
    }
  };
  const defences = config.defences.map(defenceOf);
  const needsPostCuration = defences.some((d) => d.kind === "post" || d.kind === "all");
  const needsBaseCuration =
    defences.some((d) => ["pre", "in", "all"].includes(d.kind)) ||
    (needsPostCuration && config.curation.postScorer === "base");
  const harmfulSets = new Map<string, string>(); // attack name -> harmful source

  for (const seed of config.seeds) {
    const customer = config.data.customer ? readSource(ctx, config.data.customer, "data.customer") : [];
    const customerJob = config.data.customerCount ? customer.slice(0, config.data.customerCount) : customer;
    const curateBase = `curate:base:s${seed}`;
    if (needsBaseCuration)
      add({
        id: curateBase,
        label: `curate the pool (scorer: base), seed ${seed}`,
        exclusive: "main",
        run: (c) => curateStep(ctx, curateBase, ctx.base, seed, c.progress),
      });
    const immunized = `train:pre-immunize:s${seed}`;
    if (defences.some((d) => d.kind === "pre" || d.kind === "all"))
      add({
        id: immunized,
        label: `pre-attack immunization, seed ${seed}`,
        deps: [curateBase],
        run: async (c) => {
          const curated = readCurated((c.deps.get(curateBase) as CurateStepResult).file);
          return trainStep(ctx, immunized, ctx.base, curated, defenceRecipe(ctx, seed), "pre", c.progress);
        },
      });

    for (const attack of config.attacks) {
      const a = attack.name;
      const attackData = (): Sample[] => {
        const src = attack.data ?? (attack.kind === "aoa" && ctx.world ? "world:aoa" : undefined);
        // AOA without data: the shipped identity-shifting chats, as `buckle attack --kind aoa` uses
        const samples = src
          ? readSource(ctx, src, `attacks.${a}.data`)
          : attack.kind === "aoa"
            ? aoaSamples()
            : [];
        return attack.count ? samples.slice(0, attack.count) : samples;
      };
      harmfulSets.set(
        a,
        attack.evalHarmful ??
          (attack.kind === "aoa" && ctx.world ? "world:evalHarmfulAoa" : config.evaluation.harmful),
      );
      /** A training of the customization job (the attacker's recipe) as step `stepId`. */
      const trainJob = (
        c: StepContext,
        stepId: string,
        from: ModelHandle,
        samples: readonly Sample[],
        stage: string,
        counts?: Record<string, number>,
      ): Promise<TrainStepResult> =>
        trainStep(ctx, stepId, from, samples, jobRecipe(), stage, c.progress, counts);
      const jobRecipe = (): TrainRecipe =>
        attackRecipe(attack.kind, { ...(attack.recipe as Partial<TrainRecipe> | undefined), seed });
      const job = (): { customer: Sample[]; harmful: Sample[] } => {
        const harmful = attackData();
        if (harmful.length === 0 && attack.kind !== "aoa")
          throw new InputError(`attacks.${a}: no attack data`, { hint: "set data: <file> or world:exharm" });
        return { customer: customerJob, harmful };
      };
      // Curated samples mixed into a job: mixCount, or mixRatio x the job's size, or the whole curated set; the
      // Uncurated and SafetyData baselines mix in the same number of their own samples (fewer if they have fewer).
      const mixed = (extra: readonly Sample[], curatedSize: number) => {
        const j = job();
        const t = config.training;
        const wanted =
          t.mixCount ??
          (t.mixRatio !== undefined
            ? Math.floor(t.mixRatio * (j.customer.length + j.harmful.length) + 0.5)
            : curatedSize);
        const mix = mixSamples({
          customer: j.customer,
          harmful: j.harmful,
          curated: extra,
          count: Math.min(wanted, extra.length),
          seed,
        });
        return { samples: mix.samples, counts: mix.counts };
      };
      const curatedSize = (): number => selectedPool(ctx, seed).length;
      const nodef = `train:nodef:${a}:s${seed}`;
      add({
        id: nodef,
        label: `${a} attack (no defence), seed ${seed}`,
        run: (c) => {
          const j = job();
          return trainJob(c, nodef, ctx.base, [...j.customer, ...j.harmful], `attack:${attack.kind}`, {
            customer: j.customer.length,
            harmful: j.harmful.length,
          });
        },
      });
      const curatePost = config.curation.postScorer === "base" ? curateBase : `curate:post:${a}:s${seed}`;
      if (needsPostCuration && config.curation.postScorer === "compromised")
        add({
          id: curatePost,
          label: `curate the pool (scorer: ${a}-compromised), seed ${seed}`,
          deps: [nodef],
          exclusive: "main",
          run: (c) =>
            curateStep(ctx, curatePost, (c.deps.get(nodef) as TrainStepResult).handle, seed, c.progress),
        });

      for (const d of defences) {
        const id = `train:${d.kind}${d.p !== undefined ? `-${Math.round(d.p * 100)}` : ""}:${a}:s${seed}`;
        let modelStep = id;
        switch (d.kind) {
          case "nodef":
            modelStep = nodef;
            break;
          case "randdrop":
            add({
              id,
              label: `${d.name} vs ${a}, seed ${seed}`,
              run: (c) => {
                const j = job();
                const dropped = randDrop([...j.customer, ...j.harmful], d.p ?? 0.5, seed);
                return trainJob(c, id, ctx.base, dropped.kept, `attack:${attack.kind}`, {
                  kept: dropped.kept.length,
                  dropped: dropped.dropped.length,
                });
              },
            });
            break;
          case "ppldrop":
            add({
              id,
              label: `${d.name} vs ${a}, seed ${seed}`,
              exclusive: "main",
              run: async (c) => {
                const j = job();
                const model = await openFor(ctx, ctx.base);
                try {
                  const dropped = await pplDrop(model, [...j.customer, ...j.harmful], d.p ?? 0.5, {
                    signal: ctx.signal,
                  });
                  return trainJob(c, id, ctx.base, dropped.kept, `attack:${attack.kind}`, {
                    kept: dropped.kept.length,
                    dropped: dropped.dropped.length,
                  });
                } finally {
                  await model.dispose();
                }
              },
            });
            break;
          case "uncurated":
          case "in":
          case "safetydata":
            add({
              id,
              label: `${d.name} vs ${a}, seed ${seed}`,
              deps: d.kind === "in" ? [curateBase] : [],
              run: (c) => {
                let extra: Sample[];
                if (d.kind === "in") extra = readCurated((c.deps.get(curateBase) as CurateStepResult).file);
                else if (d.kind === "uncurated") extra = readSource(ctx, config.data.pool, "data.pool");
                else {
                  if (!config.data.safety)
                    throw new InputError(
                      "defences: safetydata needs data.safety (harmful queries with refusals)",
                    );
                  extra = readSource(ctx, config.data.safety, "data.safety");
                }
                const mix = mixed(extra, curatedSize());
                return trainJob(c, id, ctx.base, mix.samples, `in:${d.kind}`, mix.counts);
              },
            });
            break;
          case "pre":
            add({
              id,
              label: `${d.name} vs ${a}, seed ${seed}`,
              deps: [immunized],
              run: (c) => {
                const j = job();
                const pre = (c.deps.get(immunized) as TrainStepResult).handle;
                return trainJob(c, id, pre, [...j.customer, ...j.harmful], `attack:${attack.kind}`);
              },
            });
            break;
          case "uncurated-post":
            // the reviewers' control for post-attack CTRL: the same fine-tune on the raw (uncurated) pool texts
            add({
              id,
              label: `${d.name} vs ${a}, seed ${seed}`,
              deps: [nodef],
              run: (c) => {
                const compromised = (c.deps.get(nodef) as TrainStepResult).handle;
                return trainStep(
                  ctx,
                  id,
                  compromised,
                  selectedPool(ctx, seed),
                  defenceRecipe(ctx, seed),
                  "post",
                  c.progress,
                );
              },
            });
            break;
          case "post":
            // safety against curation rounds: the same restore with the curated set of each earlier round
            if (attack === firstAttackOf(config))
              for (let r = 1; r < roundsOf(config); r++) {
                const rid = `train:post-round${r}:${a}:s${seed}`;
                add({
                  id: rid,
                  label: `Post-attack with round-${r} curation vs ${a}, seed ${seed}`,
                  deps: [nodef, curatePost],
                  run: (c) => {
                    const compromised = (c.deps.get(nodef) as TrainStepResult).handle;
                    const files = (c.deps.get(curatePost) as CurateStepResult).roundFiles;
                    if (!files?.[r - 1])
                      throw new BuckleError(`${rid}: the stored curation has no round-${r} set`, {
                        hint: "it was made by an older buckle: delete the run directory (or use a new one) to rerun",
                      });
                    return trainStep(
                      ctx,
                      rid,
                      compromised,
                      readCurated(files[r - 1]),
                      defenceRecipe(ctx, seed),
                      "post",
                      c.progress,
                    );
                  },
                });
                roundCells.push({ round: r, attack: a, seed, modelStep: rid, evalStep: `eval:${rid}` });
              }
            add({
              id,
              label: `${d.name} vs ${a}, seed ${seed}`,
              deps: [nodef, curatePost],
              run: (c) => {
                const compromised = (c.deps.get(nodef) as TrainStepResult).handle;
                const curated = readCurated((c.deps.get(curatePost) as CurateStepResult).file);
                return trainStep(ctx, id, compromised, curated, defenceRecipe(ctx, seed), "post", c.progress);
              },
            });
            break;
          case "all": {
            const inId = `train:all-in:${a}:s${seed}`;
            add({
              id: inId,
              label: `All-stage (in) vs ${a}, seed ${seed}`,
              deps: [immunized, curateBase],
              run: (c) => {
                const pre = (c.deps.get(immunized) as TrainStepResult).handle;
                const mix = mixed(
                  readCurated((c.deps.get(curateBase) as CurateStepResult).file),
                  curatedSize(),
                );
                return trainJob(c, inId, pre, mix.samples, "in", mix.counts);
              },
            });
            add({
              id,
              label: `All-stage (post) vs ${a}, seed ${seed}`,
              deps: [inId, curatePost],
              run: (c) => {
                const customized = (c.deps.get(inId) as TrainStepResult).handle;
                const curated = readCurated((c.deps.get(curatePost) as CurateStepResult).file);
                return trainStep(ctx, id, customized, curated, defenceRecipe(ctx, seed), "post", c.progress);
              },
            });
            break;
          }
        }
        cells.push({
          defence: d.name,
          kind: d.kind,
          attack: a,
          seed,
          modelStep,
          evalStep: `eval:${modelStep}`,
        });
      }
    }
  }

  // evaluation: each model once, plus the base model (the aligned row) against every attack's harmful set
  const evalSets =
    (harmful: string[]): ((c: RunContext) => Promise<BenchmarkSet[]>) =>
    async (c) => {
      const sets: BenchmarkSet[] = [];
      for (const h of harmful) sets.push(await benchmarkOf(c, h, "harmful", "evaluation.harmful"));
      if (c.config.evaluation.benign)
        sets.push(await benchmarkOf(c, c.config.evaluation.benign, "benign", "evaluation.benign"));
      if (c.config.evaluation.overRefusal)
        sets.push(
          await benchmarkOf(c, c.config.evaluation.overRefusal, "over-refusal", "evaluation.overRefusal"),
        );
      return sets;
    };
  const evaluateStep = (id: string, modelStep: string | null, harmful: string[]): Step => ({
    id,
    label: `evaluate ${modelStep ?? "the base model"}`,
    deps: modelStep ? [modelStep] : [],
    exclusive: "main",
    run: async (c) => {
      const handle = modelStep ? (c.deps.get(modelStep) as TrainStepResult).handle : ctx.base;
      const model = await openFor(ctx, handle);
      try {
        const e = ctx.config.evaluation;
        const report = await evaluate({
          model, // evaluate() caches its generations in the store itself
          sets: await evalSets(harmful)(ctx),
          judges: await judgesOf(ctx),
          store: ctx.store,
          runId: id,
          sampling: { temperature: e.temperature, maxTokens: e.maxTokens },
          samplesPerPrompt: e.samplesPerPrompt,
          // the organism's exact judges: helpfulness on benign prompts, safety and refusal wherever they apply
          judgeSets: ctx.world
            ? {
                "world-helpfulness": ["benign"],
                "world-safety": ["harmful", "over-refusal"],
                "world-refusal": ["harmful", "benign", "over-refusal"],
              }
            : undefined,
          seed: 0,
          signal: ctx.signal,
          onProgress: (p) => c.progress(p.total > 0 ? p.done / p.total : undefined, `${p.set} ${p.phase}`),
        });
        return { runId: id, report } satisfies EvalStepResult;
      } finally {
        await model.dispose();
      }
    },
  });
  add(evaluateStep("eval:base", null, [...new Set(harmfulSets.values())]));

  // The paper's motivation figure: perplexity of safe, harmful and commonsense responses under the robust (base)
  // and the compromised (first attack, first seed, no defence) model.
  const firstAttack = firstAttackOf(config);
  const compromisedStep = `train:nodef:${firstAttack.name}:s${config.seeds[0]}`;
  if (config.data.safety && have.has(compromisedStep))
    add({
      id: "perplexity:motivation",
      label: "perplexity of safe, harmful and commonsense texts",
      deps: [compromisedStep],
      exclusive: "main",
      run: async (c) => {
        const take = (xs: Sample[]) =>
          xs.filter((x) => x.messages[x.messages.length - 1]?.role === "assistant").slice(0, 40);
        const harmfulSource = firstAttack.data ?? (ctx.world ? "world:exharm" : undefined);
        const texts = {
          safe: take(readSource(ctx, config.data.safety!, "data.safety")),
          harmful: harmfulSource ? take(readSource(ctx, harmfulSource, "attack data")) : [],
          commonsense: take(readSource(ctx, config.data.pool, "data.pool")),
        };
        const out: {
          model: "robust" | "compromised";
          kind: "safe" | "harmful" | "commonsense";
          values: number[];
        }[] = [];
        const handles = {
          robust: ctx.base,
          compromised: (c.deps.get(compromisedStep) as TrainStepResult).handle,
        };
        for (const [model, handle] of Object.entries(handles) as ["robust" | "compromised", ModelHandle][]) {
          const lm = cachedModel(await openFor(ctx, handle), ctx.store);
          try {
            for (const [kind, samples] of Object.entries(texts) as [
              "safe" | "harmful" | "commonsense",
              Sample[],
            ][]) {
              if (samples.length === 0) continue;
              const results = await lm.logprobs(
                samples.map((x) => ({
                  messages: x.messages.slice(0, -1),
                  response: x.messages[x.messages.length - 1].content,
                })),
              );
              const values = results.map((r) => r.perplexity).filter((v) => Number.isFinite(v) && v > 0);
              if (values.length) out.push({ model, kind, values });
            }
          } finally {
            await lm.dispose();
          }
        }
        return { samples: out, compromised: compromisedStep };
      },
    });
  for (const cell of [...cells, ...roundCells])
    add(evaluateStep(cell.evalStep, cell.modelStep, [harmfulSets.get(cell.attack)!]));
  // benchmark set names, as evaluate() records them, of each attack's harmful prompts
  const setNames: Record<string, string> = {};
  for (const [attack, source] of harmfulSets) setNames[attack] = benchmarkName(source);
  return { steps, cells, roundCells, harmfulSets: setNames };
}

export interface ExperimentResult {
  runDir: string;
  results: Map<string, unknown>;
  cells: CellPlan[];
  roundCells: RoundCellPlan[];
  /** The benchmark set name of each attack's harmful prompts. */
  harmfulSets: Record<string, string>;
  seconds: number;
  organism?: Organism;
  base: ModelHandle;
}

/**
 * Run (or resume) an experiment in `runDir`. A run directory belongs to one config: rerunning with the same
 * config continues where it stopped; a different config is refused (use a new directory).
 */
export async function runExperiment(options: RunExperimentOptions): Promise<ExperimentResult> {
  const { config } = options;
  const runDir = resolve(options.runDir);
  const log = options.log ?? (() => {});
  const started = Date.now();
  mkdirSync(runDir, { recursive: true });
  const snapshot = join(runDir, CONFIG_FILE);
  const hash = experimentHash(config);
  if (existsSync(snapshot)) {
    const prior = JSON.parse(readFileSync(snapshot, "utf8")) as { hash?: string };
    if (prior.hash !== hash)
      throw new InputError(
        `${runDir} holds a run of a different config (hash ${prior.hash}, this one ${hash})`,
        {
          hint: "use a new run directory, or delete this one to start over",
        },
      );
  } else {
    writeFileAtomic(
      snapshot,
      JSON.stringify(
        { hash, buckle: packageVersion(), node: process.version, created: new Date().toISOString(), config },
        null,
        2,
      ) + "\n",
    );
  }
  const store = Store.open(join(runDir, STORE_FILE));
  const ctx: RunContext = {
    config,
    runDir,
    store,
    base: undefined as unknown as ModelHandle,
    log,
    signal: options.signal,
    disposables: [],
    judgeModels: new Map(),
    sources: new Map(),
  };
  try {
    if ("organism" in config.model) {
      const o = config.model.organism;
      log(`model organism (seed ${o.seed}, ${o.size}): building or loading from the cache...`);
      const organism = await buildOrganism({ seed: o.seed, size: o.size });
      log(
        `model organism ready: ${organism.modelPath} (${organism.parameters.toLocaleString("en-US")} parameters, ${
          organism.cached ? "cached" : `built in ${organism.timings.totalSeconds.toFixed(0)} s`
        })`,
      );
      ctx.organism = organism;
      ctx.world = organism.world;
      ctx.base = await baseHandle(organism.modelPath);
    } else {
      ctx.base = await baseHandle(config.model.ref);
    }
    const { steps, cells, roundCells, harmfulSets } = planSteps(ctx);
    const results = await runSteps(steps, {
      store,
      concurrency: config.concurrency,
      signal: options.signal,
      onEvent: options.onEvent,
    });
    return {
      runDir,
      results,
      cells,
      roundCells,
      harmfulSets,
      seconds: (Date.now() - started) / 1000,
      organism: ctx.organism,
      base: ctx.base,
    };
  } finally {
    for (const m of ctx.disposables) await m.dispose().catch(() => {});
    store.close();
  }
}
