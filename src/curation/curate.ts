// The CTRL beam search (METHOD.md §3): per round, every beam text of every sample is revised over the sampling
// grid in one batch, cleaned, scored (perplexity, helpfulness, readability), filtered and selected.
// Each finished round is one transaction in the Store, and every model call is cached, so a killed run resumes.

import type { Judge, JudgeItem, Verdict } from "../evaluation/types.js";
import type { GenerateRequest, LanguageModel, LogprobsRequest } from "../models/index.js";
import { cachedModel, contentKey, type CacheStats, type Store } from "../store/index.js";
import { promptMessages, queryOf, responseOf, withResponse, type Sample } from "../data/sample.js";
import { BuckleError, InputError } from "../util/errors.js";
import { Rng } from "../util/random.js";
import { cleanCandidate as defaultCleaner, type CandidateCleaner } from "./clean.js";
import {
  configHash,
  resolveCurationConfig,
  samplingGrid,
  type CurationConfig,
  type CurationConfigInput,
  type SamplingSetting,
} from "./config.js";
import { renderRevisionPrompt } from "./prompts.js";
import { phrasesUsed, readability } from "./readability.js";
import {
  filterFailures,
  filterThresholds,
  selectBeam,
  selectionRule,
  type Candidate,
  type FilterThresholds,
  type ReferenceScores,
} from "./select.js";
import { summarizeCuration, type CurationSummary } from "./summary.js";

export type CurationPhase = "originals" | "generate" | "score" | "judge";

export interface CurationProgress {
  /** 0 for the originals' scoring, then 1..rounds. */
  round: number;
  rounds: number;
  phase: CurationPhase;
  done: number;
  total: number;
}

export interface CurateOptions {
  /** The commonsense samples to curate (each ends with an assistant response). Ids must be unique. */
  pool: readonly Sample[];
  reviser: LanguageModel;
  /** The model whose perplexity counts (the model being defended). */
  scorer: LanguageModel;
  /** The helpfulness judge (Verdict.score 0-5); null: helpfulness is not scored and the filter uses readability. */
  judge: Judge | null;
  /** The run's store: model-call cache, verdict cache and beam state. */
  store: Store;
  config?: CurationConfigInput;
  /** Replaces the default cleaner; name it in `cleanerName` so the config hash tells runs apart. */
  cleanCandidate?: CandidateCleaner;
  cleanerName?: string;
  onProgress?: (progress: CurationProgress) => void;
  signal?: AbortSignal;
}

/** The original response's scores and verdict. */
export interface OriginalScores extends ReferenceScores {
  verdict?: Verdict;
}

/** One round of one sample, as stored. */
export interface RoundRecord {
  round: number;
  thresholds: FilterThresholds;
  candidates: Candidate[];
  /** Ids of the beam after this round, best first. */
  beam: string[];
  /** True when no candidate survived and the previous beam was kept. */
  carried: boolean;
}

export interface CuratedSample {
  /** The pool sample as given. */
  original: Sample;
  /** The sample with its final response (tagged "curated" when it changed). */
  curated: Sample;
  changed: boolean;
  originalScores: OriginalScores;
  /** The chosen rewrite; null when the original was kept. */
  final: Candidate | null;
  /** The final text's ancestry, round 1 first (empty when the original was kept). */
  lineage: Candidate[];
  rounds: RoundRecord[];
}

export interface CurationCounts {
  generations: number;
  scorings: number;
  judgeCalls: number;
}

export interface CurateResult {
  samples: CuratedSample[];
  config: CurationConfig;
  configHash: string;
  selectionRule: string;
  models: { reviser: string; scorer: string; judge: string | null; cleaner: string };
  /** Requests curation made in this call (cache hits included). */
  requested: CurationCounts;
  /** Requests that reached the models in this call (cache misses); judge calls not answered from the store. */
  computed: CurationCounts;
  cache: { reviser: CacheStats; scorer: CacheStats; verdictHits: number };
  summary: CurationSummary;
}

/**
 * The work a fresh run does: generations exactly; scorings and judge calls exactly when cleaning rejects
 * nothing (each rejected candidate is one scoring and one judge call fewer). Cache hits make a rerun cheaper.
 */
export function planCuration(
  poolSize: number,
  configInput: CurationConfigInput = {},
  options: { judge?: boolean } = {},
): CurationCounts {
  const c = resolveCurationConfig(configInput);
  const perRound = c.beamWidth * c.temperatures.length * c.topPs.length * c.samplesPerSetting;
  const generations = poolSize * c.rounds * perRound;
  const scorings = poolSize + generations;
  return { generations, scorings, judgeCalls: options.judge === false ? 0 : scorings };
}

class CurationAborted extends BuckleError {}

/** A 31-bit seed from any parts (stable across processes and platforms). */
function derivedSeed(...parts: unknown[]): number {
  return parseInt(contentKey(...parts).slice(0, 8), 16) & 0x7fffffff;
}

function pickPhrases(phrases: readonly string[], count: number, seed: number): string[] {
  if (count === 0) return [];
  return new Rng(seed).shuffle([...phrases]).slice(0, count);
}

interface SampleState {
  sample: Sample;
  key: string;
  query: string;
  response: string;
  original?: OriginalScores;
  rounds: RoundRecord[];
}

function checkPool(pool: readonly Sample[]): void {
  const seen = new Set<string>();
  for (const s of pool) {
    if (seen.has(s.id))
      throw new InputError(`curation pool: sample id "${s.id}" occurs twice`, {
        hint: "ids must be unique; the beam state in the store is keyed by them",
      });
    seen.add(s.id);
    if (responseOf(s) === undefined || responseOf(s)?.trim() === "")
      throw new InputError(`curation pool: sample "${s.id}" has no assistant response to revise`, {
        hint: "the pool must hold (query, response) pairs; prompt-only rows cannot be curated",
      });
    if (queryOf(s).trim() === "")
      throw new InputError(`curation pool: sample "${s.id}" has no user query`, {
        hint: "each sample needs a user message before its response",
      });
  }
}

/** Curate `pool`: see docs/CURATION.md for the algorithm, the rules and the resume guarantee. */
export async function curate(options: CurateOptions): Promise<CurateResult> {
  const config = resolveCurationConfig(options.config);
  checkPool(options.pool);
  const { store, judge, signal } = options;
  if (!options.scorer.info().capabilities.logprobs)
    throw new InputError(`the scorer ${options.scorer.info().id} cannot return log-probs`, {
      hint: "use a local GGUF model or a server that returns prompt log-probs (vLLM) as the scorer",
    });
  const reviser = cachedModel(options.reviser, store);
  const scorer = cachedModel(options.scorer, store);
  const clean = options.cleanCandidate ?? defaultCleaner;
  const models = {
    reviser: reviser.info().id,
    scorer: scorer.info().id,
    judge: judge ? (judge.identity ?? judge.name) : null,
    cleaner: options.cleanerName ?? (options.cleanCandidate ? "custom" : "default-v1"),
  };
  const hash = configHash(config, models);
  const ns = `curation/${hash.slice(0, 16)}`;
  store.put(ns, "meta", { configHash: hash, config, models });
  const grid = samplingGrid(config);
  const requested: CurationCounts = { generations: 0, scorings: 0, judgeCalls: 0 };
  const computed: CurationCounts = { generations: 0, scorings: 0, judgeCalls: 0 };
  let verdictHits = 0;
  const progress = (round: number, phase: CurationPhase, done: number, total: number): void =>
    options.onProgress?.({ round, rounds: config.rounds, phase, done, total });
  const checkAbort = (): void => {
    if (signal?.aborted) throw new CurationAborted("curation interrupted; rerun the same command to resume");
  };
  /** A model or judge call that failed because of the abort reports the interruption, not its own error. */
  const abortedOr = (e: unknown): never => {
    checkAbort();
    throw e;
  };

  const states: SampleState[] = options.pool.map((sample) => ({
    sample,
    key: contentKey(sample.id, sample.messages).slice(0, 24),
    query: queryOf(sample),
    response: responseOf(sample) as string,
    rounds: [],
  }));

  /** Perplexities of (sample, response) pairs under the scorer, one batch. */
  async function scoreAll(round: number, items: { state: SampleState; text: string }[]): Promise<number[]> {
    const requests: LogprobsRequest[] = items.map(({ state, text }) => ({
      messages: promptMessages(state.sample),
      response: text,
    }));
    requested.scorings += requests.length;
    const before = scorer.stats().misses;
    let done = 0;
    progress(round, "score", 0, requests.length);
    const results = await scorer
      .logprobs(requests, { signal, onResult: () => progress(round, "score", ++done, requests.length) })
      .catch(abortedOr);
    computed.scorings += scorer.stats().misses - before;
    checkAbort();
    return results.map((r) => (Number.isFinite(r.perplexity) ? r.perplexity : NaN));
  }

  /** Verdicts for (sample, text) pairs; each verdict is cached in the store the moment it arrives. */
  async function judgeAll(round: number, items: { state: SampleState; text: string }[]): Promise<Verdict[]> {
    if (judge === null) return [];
    requested.judgeCalls += items.length;
    const judgeItems: JudgeItem[] = items.map(({ state, text }) => ({
      id: state.sample.id,
      prompt: state.query,
      response: text,
      // the original answer is the reference a revision must stay true to; structured judges (the model
      // organism's) also read the sample's meta
      reference: state.response,
      meta: state.sample.meta,
    }));
    const keys = judgeItems.map((item) =>
      contentKey("verdict", models.judge, item.prompt, item.response, item.reference, item.meta ?? null),
    );
    const verdicts: (Verdict | undefined)[] = keys.map((k) => store.cacheGet<Verdict>(k));
    const missing = verdicts.flatMap((v, i) => (v === undefined ? [i] : []));
    verdictHits += items.length - missing.length;
    computed.judgeCalls += missing.length;
    let done = items.length - missing.length;
    progress(round, "judge", done, items.length);
    if (missing.length > 0) {
      const stored = new Set<number>();
      const fresh = await judge
        .judge(
          missing.map((i) => judgeItems[i]),
          {
            signal,
            onResult: (j, verdict) => {
              if (signal?.aborted) return;
              store.cachePut(keys[missing[j]], "verdict", verdict);
              stored.add(j);
              progress(round, "judge", ++done, items.length);
            },
          },
        )
        .catch(abortedOr);
      checkAbort();
      fresh.forEach((verdict, j) => {
        verdicts[missing[j]] = verdict;
        if (!stored.has(j)) store.cachePut(keys[missing[j]], "verdict", verdict);
      });
    }
    return verdicts as Verdict[];
  }

  const helpfulnessOf = (v: Verdict | undefined): number | null =>
    v !== undefined && v.parsed && typeof v.score === "number" && Number.isFinite(v.score) ? v.score : null;

  // Round 0: the originals' scores (the filter's reference and the summary's "before").
  for (const s of states) s.original = store.get<OriginalScores>(ns, `${s.key}/r0`);
  const unscored = states.filter((s) => s.original === undefined);
  if (unscored.length > 0) {
    const items = unscored.map((state) => ({ state, text: state.response }));
    const ppl = await scoreAll(0, items);
    const verdicts = await judgeAll(0, items);
    store.transaction(() =>
      unscored.forEach((s, i) => {
        const verdict = judge === null ? undefined : verdicts[i];
        s.original = {
          perplexity: Number.isNaN(ppl[i]) ? null : ppl[i],
          helpfulness: helpfulnessOf(verdict),
          helpfulnessParsed: judge === null ? null : (verdict?.parsed ?? false),
          readability: readability(s.response),
          ...(verdict ? { verdict } : {}),
        };
        store.put(ns, `${s.key}/r0`, s.original);
      }),
    );
  }

  for (let round = 1; round <= config.rounds; round++) {
    for (const s of states) {
      if (s.rounds.length === round - 1) {
        const rec = store.get<RoundRecord>(ns, `${s.key}/r${round}`);
        if (rec) s.rounds.push(rec);
      }
    }
    const todo = states.filter((s) => s.rounds.length < round);
    if (todo.length === 0) continue;

    // 1. Revise: each beam slot of each sample over the whole grid, one batch.
    interface Pending {
      state: SampleState;
      candidate: Candidate;
      parentText: string;
    }
    const pending: Pending[] = [];
    const requests: GenerateRequest[] = [];
    for (const state of todo) {
      const beam = currentBeam(state);
      for (let slot = 0; slot < config.beamWidth; slot++) {
        const parent = beam[slot % beam.length];
        for (const setting of grid) {
          for (let n = 0; n < config.samplesPerSetting; n++) {
            const seed = derivedSeed(config.seed, state.key, round, slot, parent.id, setting.index, n);
            const phrases = pickPhrases(
              config.seedPhrases,
              config.phrasesPerCall,
              derivedSeed("phrases", seed, config.seed, state.key, round, slot, setting.index, n),
            );
            const candidate = newCandidate(round, slot, parent.id, setting, n, seed, phrases);
            pending.push({ state, candidate, parentText: parent.text });
            requests.push({
              messages: [
                {
                  role: "user",
                  content: renderRevisionPrompt(
                    config.revisionTemplate,
                    { query: state.query, response: parent.text, phrases },
                    config.phraseStyle,
                  ),
                },
              ],
              sampling: {
                temperature: setting.temperature,
                topP: setting.topP,
                maxTokens: config.maxTokens,
                seed,
              },
            });
          }
        }
      }
    }
    requested.generations += requests.length;
    const genBefore = reviser.stats().misses;
    let generated = 0;
    progress(round, "generate", 0, requests.length);
    const outputs = await reviser
      .generate(requests, {
        signal,
        onResult: () => progress(round, "generate", ++generated, requests.length),
      })
      .catch(abortedOr);
    computed.generations += reviser.stats().misses - genBefore;
    checkAbort();

    // 2. Clean.
    const kept: Pending[] = [];
    pending.forEach((p, i) => {
      const out = outputs[i];
      p.candidate.raw = out.text;
      p.candidate.finishReason = out.finishReason;
      if (out.finishReason === "length" && config.truncated === "reject") {
        p.candidate.failed.push("truncated");
        return;
      }
      const cleaned = clean(out.text, {
        query: p.state.query,
        parent: p.parentText,
        original: p.state.response,
      });
      if (!cleaned.ok) {
        p.candidate.failed.push(cleaned.reason);
        return;
      }
      p.candidate.text = cleaned.text;
      kept.push(p);
    });

    // 3. Score: perplexity, helpfulness, readability, seed-phrase coverage.
    const items = kept.map((p) => ({ state: p.state, text: p.candidate.text as string }));
    const ppl = await scoreAll(round, items);
    const verdicts = await judgeAll(round, items);
    kept.forEach((p, i) => {
      const c = p.candidate;
      c.perplexity = Number.isNaN(ppl[i]) ? null : ppl[i];
      if (judge !== null) {
        c.verdict = verdicts[i];
        c.helpfulness = helpfulnessOf(verdicts[i]);
      }
      c.readability = readability(c.text as string);
      c.phrasesUsed = phrasesUsed(c.text as string, config.seedPhrases);
    });

    // 4-5. Filter against the original, select the next beam, and commit the round for every sample at once.
    const bySample = new Map<SampleState, Candidate[]>();
    for (const p of pending) {
      const list = bySample.get(p.state) ?? [];
      list.push(p.candidate);
      bySample.set(p.state, list);
    }
    store.transaction(() => {
      for (const state of todo) {
        const candidates = bySample.get(state) ?? [];
        const thresholds = filterThresholds(state.original as OriginalScores, config.filter, judge !== null);
        for (const c of candidates) if (c.text !== null) c.failed.push(...filterFailures(c, thresholds));
        const selected = selectBeam(candidates, config.objective, config.beamWidth);
        const previous = state.rounds[state.rounds.length - 1];
        const record: RoundRecord = {
          round,
          thresholds,
          candidates,
          beam: selected.length > 0 ? selected.map((c) => c.id) : (previous?.beam ?? ["original"]),
          carried: selected.length === 0,
        };
        store.put(ns, `${state.key}/r${round}`, record);
        state.rounds.push(record);
      }
    });
  }

  const samples = states.map((s) => finishSample(s));
  const result: Omit<CurateResult, "summary"> = {
    samples,
    config,
    configHash: hash,
    selectionRule: selectionRule(config.objective, config.beamWidth),
    models,
    requested,
    computed,
    cache: { reviser: reviser.stats(), scorer: scorer.stats(), verdictHits },
  };
  return { ...result, summary: summarizeCuration(result) };
}

function newCandidate(
  round: number,
  slot: number,
  parent: string,
  setting: SamplingSetting,
  n: number,
  seed: number,
  phrases: string[],
): Candidate {
  return {
    id: `r${round}.b${slot}.s${setting.index}.n${n}`,
    round,
    parent,
    beamSlot: slot,
    setting: { index: setting.index, temperature: setting.temperature, topP: setting.topP },
    sampleIndex: n,
    seed,
    phrases,
    raw: "",
    finishReason: "",
    text: null,
    perplexity: null,
    helpfulness: null,
    readability: null,
    phrasesUsed: [],
    failed: [],
  };
}

/** Candidates of a sample by id, over all its recorded rounds. */
function candidateIndex(state: SampleState): Map<string, Candidate> {
  const byId = new Map<string, Candidate>();
  for (const r of state.rounds) for (const c of r.candidates) byId.set(c.id, c);
  return byId;
}

/** The texts the next round revises: the last beam, or the original before round 1. */
function currentBeam(state: SampleState): { id: string; text: string }[] {
  const last = state.rounds[state.rounds.length - 1];
  if (last === undefined || (last.beam.length === 1 && last.beam[0] === "original"))
    return [{ id: "original", text: state.response }];
  const byId = candidateIndex(state);
  return last.beam.map((id) => ({ id, text: (byId.get(id) as Candidate).text as string }));
}

function finishSample(state: SampleState): CuratedSample {
  const last = state.rounds[state.rounds.length - 1];
  const byId = candidateIndex(state);
  const bestId = last?.beam[0] ?? "original";
  const final = bestId === "original" ? null : (byId.get(bestId) ?? null);
  const lineage: Candidate[] = [];
  for (let c = final; c !== null; c = c.parent === "original" ? null : (byId.get(c.parent) ?? null))
    lineage.unshift(c);
  const changed = final !== null;
  const curated = changed ? withResponse(state.sample, final.text as string) : state.sample;
  return {
    original: state.sample,
    curated: changed ? { ...curated, tags: [...new Set([...(curated.tags ?? []), "curated"])] } : curated,
    changed,
    originalScores: state.original as OriginalScores,
    final,
    lineage,
    rounds: state.rounds,
  };
}
