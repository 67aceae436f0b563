// A LanguageModel wrapper that answers repeated requests from a Store: every request is keyed by the model's
// id, its prompt and its sampling settings (seed included), sent to the model at most once, and saved the
// moment it finishes, so a killed run resumes without recomputing anything it had finished.

import type {
  BatchOptions,
  GenerateRequest,
  GenerateResult,
  LanguageModel,
  LogprobsOptions,
  LogprobsRequest,
  LogprobsResult,
  ModelInfo,
} from "../models/index.js";
import { contentKey, type Store } from "./store.js";

export interface CacheStats {
  /** Requests answered from the store. */
  hits: number;
  /** Requests sent to the model. */
  misses: number;
  /** Requests that repeated another request of the same batch (answered once, counted once in misses). */
  duplicates: number;
  /** Sampled requests without a seed: never cached (two such calls are meant to differ). */
  uncached: number;
}

export interface CachedModel extends LanguageModel {
  /** Counters since the wrapper was made. */
  stats(): CacheStats;
  /** The wrapped model. */
  readonly inner: LanguageModel;
}

/** The cache key of a generation request (null when it must not be cached: sampled without a seed). */
export function generateKey(modelId: string, request: GenerateRequest): string | null {
  const s = request.sampling;
  if (s.temperature > 0 && s.seed === undefined) return null;
  return contentKey("generate", modelId, request.messages ?? null, request.prompt ?? null, s);
}

/** The cache key of a log-prob request. */
export function logprobsKey(modelId: string, request: LogprobsRequest): string {
  return contentKey("logprobs", modelId, request.messages ?? null, request.prompt ?? null, request.response);
}

/** Wrap `model` so its results are cached in `store`. The wrapper does not own the store or the model. */
export function cachedModel(model: LanguageModel, store: Store): CachedModel {
  const stats: CacheStats = { hits: 0, misses: 0, duplicates: 0, uncached: 0 };
  const info = (): ModelInfo => model.info();

  async function run<Req extends { id?: string }, Res extends { id?: string }>(
    requests: readonly Req[],
    keyOf: (r: Req) => string | null,
    kind: string,
    call: (reqs: Req[], onResult: (i: number, r: Res) => void) => Promise<Res[]>,
    onResult: ((index: number, result: Res) => void) | undefined,
    cacheable: (r: Res) => boolean,
  ): Promise<Res[]> {
    const results: (Res | undefined)[] = new Array(requests.length);
    const pending: Req[] = [];
    const pendingKeys: (string | null)[] = [];
    const waiting = new Map<string, number[]>(); // key -> indices of the caller's batch
    const pendingIndex: number[] = []; // pending position -> first caller index
    requests.forEach((req, i) => {
      const key = keyOf(req);
      if (key === null) {
        stats.uncached++;
        pending.push(req);
        pendingKeys.push(null);
        pendingIndex.push(i);
        return;
      }
      const hit = store.cacheGet<Res>(key);
      if (hit !== undefined) {
        stats.hits++;
        results[i] = { ...hit, id: req.id };
        onResult?.(i, results[i] as Res);
        return;
      }
      const same = waiting.get(key);
      if (same) {
        stats.duplicates++;
        same.push(i);
        return;
      }
      waiting.set(key, [i]);
      stats.misses++;
      pending.push(req);
      pendingKeys.push(key);
      pendingIndex.push(i);
    });
    if (pending.length > 0) {
      const delivered = new Set<number>();
      const deliver = (p: number, res: Res): void => {
        // a result arrives through onResult and again in the batch's return value: store it once
        if (delivered.has(p)) return;
        delivered.add(p);
        const key = pendingKeys[p];
        if (key !== null && cacheable(res)) {
          const { id: _id, ...content } = res;
          store.cachePut(key, kind, content);
        }
        const targets = key === null ? [pendingIndex[p]] : (waiting.get(key) ?? []);
        for (const i of targets) {
          results[i] = { ...res, id: requests[i].id };
          onResult?.(i, results[i] as Res);
        }
      };
      const out = await call(pending, deliver);
      out.forEach((res, p) => deliver(p, res));
    }
    return results as Res[];
  }

  return {
    inner: model,
    info,
    stats: () => ({ ...stats }),
    generate(requests: readonly GenerateRequest[], options: BatchOptions = {}): Promise<GenerateResult[]> {
      const id = info().id;
      return run<GenerateRequest, GenerateResult>(
        requests,
        (r) => generateKey(id, r),
        "generate",
        (reqs, onResult) => model.generate(reqs, { ...options, onResult }),
        options.onResult,
        (r) => r.finishReason !== "cancelled",
      );
    },
    logprobs(requests: readonly LogprobsRequest[], options: LogprobsOptions = {}): Promise<LogprobsResult[]> {
      const id = info().id;
      return run<LogprobsRequest, LogprobsResult>(
        requests,
        (r) => logprobsKey(id, r),
        "logprobs",
        (reqs, onResult) => model.logprobs(reqs, { ...options, onResult }),
        options.onResult,
        (r) => Number.isFinite(r.perplexity),
      );
    },
    dispose: () => model.dispose(),
  };
}
