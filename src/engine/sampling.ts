// Token sampling over a logits vector: repetition penalty, top-k, top-p, min-p, temperature, seeded draws,
// and the decode-side stops (stop strings split across tokens, end-of-sequence tokens, max tokens).

import { InputError } from "../util/errors.js";
import type { Rng } from "../util/random.js";

/*
 * The filters run in llama.cpp's default chain order: penalty -> top-k -> top-p -> min-p -> temperature -> draw.
 * top-p and min-p therefore see the untempered distribution, as in llama.cpp (Hugging Face divides by the
 * temperature first); keeping llama.cpp's order means a generation here and one from node-llama-cpp with the
 * same settings sample from the same distribution.
 *
 * Every filter works in place on a full-vocabulary Float32Array and removes a token by setting its logit to
 * -Infinity, so the pieces compose in any order and the token id is always the index.
 */

export interface SamplingParams {
  /** 0 picks the highest logit (greedy, no randomness); otherwise logits are divided by it before the draw. */
  temperature: number;
  /** Keep the k highest logits; 0 or undefined keeps all. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability sums to at least p; 1 or undefined keeps all. */
  topP?: number;
  /** Keep tokens whose probability is at least minP times the most likely one's; 0 or undefined keeps all. */
  minP?: number;
  /** Penalty > 1 discourages tokens seen in the last `repeatLastN` of the history; 1 or undefined is off. */
  repeatPenalty?: number;
  /** How much history the penalty looks at; default 64, 0 disables the penalty, -1 uses the whole history. */
  repeatLastN?: number;
  /** top-p and min-p never cut below this many tokens (default 1). */
  minKeep?: number;
}

const DEFAULT_REPEAT_LAST_N = 64;

function checkLogits(logits: Float32Array): void {
  for (let i = 0; i < logits.length; i++)
    if (Number.isNaN(logits[i])) throw new InputError(`logit ${i} is NaN; the model produced invalid output`);
}

/**
 * CTRL-style repetition penalty as llama.cpp applies it: each distinct token in the last `lastN` of `history`
 * has its logit divided by `penalty` when positive and multiplied when not, so a penalty > 1 always makes the
 * token less likely (plain division would make negative logits more likely). Counts do not matter.
 */
export function applyRepetitionPenalty(
  logits: Float32Array,
  history: ArrayLike<number>,
  penalty: number,
  lastN: number = DEFAULT_REPEAT_LAST_N,
): Float32Array {
  if (!(penalty > 0)) throw new InputError(`repetition penalty must be positive, got ${penalty}`);
  if (penalty === 1 || lastN === 0 || history.length === 0) return logits;
  const from = lastN < 0 ? 0 : Math.max(0, history.length - lastN);
  const seen = new Set<number>();
  for (let i = from; i < history.length; i++) {
    const t = history[i];
    if (seen.has(t) || t < 0 || t >= logits.length) continue;
    seen.add(t);
    logits[t] = logits[t] <= 0 ? logits[t] * penalty : logits[t] / penalty;
  }
  return logits;
}

/** Token ids of the `k` highest finite logits, best first; ties go to the lower id so results are reproducible. */
export function topIndices(logits: Float32Array, k: number): Int32Array {
  // A size-k min-heap keyed (logit, -id): one pass over the vocabulary, O(V log k), no full sort.
  const heap = new Int32Array(Math.max(0, Math.min(k, logits.length)));
  let size = 0;
  const worse = (a: number, b: number): boolean =>
    logits[a] < logits[b] || (logits[a] === logits[b] && a > b);
  const siftDown = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < size && worse(heap[l], heap[m])) m = l;
      if (r < size && worse(heap[r], heap[m])) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  };
  if (heap.length === 0) return heap;
  for (let id = 0; id < logits.length; id++) {
    if (logits[id] === -Infinity) continue;
    if (size < heap.length) {
      let i = size++;
      heap[i] = id;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!worse(heap[i], heap[p])) break;
        [heap[i], heap[p]] = [heap[p], heap[i]];
        i = p;
      }
    } else if (worse(heap[0], id)) {
      heap[0] = id;
      siftDown(0);
    }
  }
  const out = heap.slice(0, size);
  out.sort((a, b) => logits[b] - logits[a] || a - b);
  return out;
}

/** Keep the `k` highest logits (ties broken toward lower ids); k <= 0 keeps everything. */
export function applyTopK(logits: Float32Array, k: number): Float32Array {
  if (k <= 0 || k >= logits.length) return logits;
  const keep = topIndices(logits, k);
  const kept = new Float32Array(keep.length);
  for (let i = 0; i < keep.length; i++) kept[i] = logits[keep[i]];
  logits.fill(-Infinity);
  for (let i = 0; i < keep.length; i++) logits[keep[i]] = kept[i];
  return logits;
}

/** Softmax in float64 (removed tokens get 0). Throws when every token has been removed. */
export function softmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  if (max === -Infinity) throw new InputError("every token was filtered out; nothing is left to sample");
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp(logits[i] - max);
    p[i] = e;
    sum += e;
  }
  for (let i = 0; i < p.length; i++) p[i] /= sum;
  return p;
}

/**
 * Nucleus filter: keep the most likely tokens, best first, until their probability reaches `p` (the token
 * that crosses p is kept), and never fewer than `minKeep`.
 */
export function applyTopP(logits: Float32Array, p: number, minKeep = 1): Float32Array {
  if (p >= 1) return logits;
  const probs = softmax(logits);
  let finite = 0;
  for (let i = 0; i < logits.length; i++) if (logits[i] !== -Infinity) finite++;
  // Usually a few hundred tokens carry the mass; try those before ordering the whole vocabulary.
  for (let k = Math.min(256, finite); ; k = finite) {
    const order = topIndices(logits, k);
    let cum = 0;
    let last = -1;
    for (let i = 0; i < order.length; i++) {
      cum += probs[order[i]];
      if (cum >= p && i + 1 >= minKeep) {
        last = i;
        break;
      }
    }
    if (last >= 0 || k === finite) {
      if (last < 0) return logits;
      const keep = new Set<number>();
      for (let i = 0; i <= last; i++) keep.add(order[i]);
      for (let i = 0; i < logits.length; i++) if (!keep.has(i)) logits[i] = -Infinity;
      return logits;
    }
  }
}

/** Keep tokens with probability >= minP x the top token's (a logit test: logit >= max + ln minP), at least minKeep. */
export function applyMinP(logits: Float32Array, minP: number, minKeep = 1): Float32Array {
  if (minP <= 0) return logits;
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  if (max === -Infinity) return logits;
  const threshold = max + Math.log(minP);
  let kept = 0;
  for (let i = 0; i < logits.length; i++) if (logits[i] >= threshold) kept++;
  if (kept < minKeep) {
    const order = topIndices(logits, minKeep);
    const keep = new Set(order);
    for (let i = 0; i < logits.length; i++) if (!keep.has(i)) logits[i] = -Infinity;
    return logits;
  }
  for (let i = 0; i < logits.length; i++) if (logits[i] < threshold) logits[i] = -Infinity;
  return logits;
}

/** Divide logits by `t` (> 0); temperature 0 is greedy and handled by sampleToken, not here. */
export function applyTemperature(logits: Float32Array, t: number): Float32Array {
  if (!(t > 0))
    throw new InputError(`temperature must be positive here, got ${t} (0 means greedy: use argmax)`);
  if (t === 1) return logits;
  for (let i = 0; i < logits.length; i++) logits[i] /= t;
  return logits;
}

/** Index of the highest logit; the lowest such index on ties. */
export function argmax(logits: Float32Array): number {
  let best = -1;
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++)
    if (logits[i] > max) {
      max = logits[i];
      best = i;
    }
  if (best < 0) throw new InputError("every token was filtered out; nothing is left to sample");
  return best;
}

/** Draw a token from softmax(logits) with one uniform number from `rng` (inverse CDF, in id order). */
export function sampleFromLogits(logits: Float32Array, rng: Rng): number {
  const probs = softmax(logits);
  const u = rng.next();
  let cum = 0;
  let last = -1;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    cum += probs[i];
    last = i;
    if (u < cum) return i;
  }
  // Rounding can leave the total a hair under 1; the remainder belongs to the last live token.
  return last;
}

function checkParams(params: SamplingParams): void {
  const { temperature, topK, topP, minP, repeatPenalty, minKeep } = params;
  if (!(temperature >= 0) || !Number.isFinite(temperature))
    throw new InputError(`temperature must be a finite number >= 0, got ${temperature}`);
  if (topK !== undefined && !(Number.isInteger(topK) && topK >= 0))
    throw new InputError(`topK must be an integer >= 0, got ${topK}`);
  if (topP !== undefined && !(topP > 0 && topP <= 1))
    throw new InputError(`topP must be in (0, 1], got ${topP}`);
  if (minP !== undefined && !(minP >= 0 && minP <= 1))
    throw new InputError(`minP must be in [0, 1], got ${minP}`);
  if (repeatPenalty !== undefined && !(repeatPenalty > 0 && Number.isFinite(repeatPenalty)))
    throw new InputError(`repeatPenalty must be a positive number, got ${repeatPenalty}`);
  if (minKeep !== undefined && !(Number.isInteger(minKeep) && minKeep >= 1))
    throw new InputError(`minKeep must be an integer >= 1, got ${minKeep}`);
}

/**
 * The logits left after the penalty and the filters, on a copy (the input is not modified), before the
 * temperature. With temperature > 0, sampleToken draws from softmax(result / temperature).
 */
export function filterLogits(
  logits: Float32Array,
  params: SamplingParams,
  history: ArrayLike<number> = [],
): Float32Array {
  checkParams(params);
  checkLogits(logits);
  const out = Float32Array.from(logits);
  if (params.repeatPenalty !== undefined)
    applyRepetitionPenalty(out, history, params.repeatPenalty, params.repeatLastN ?? DEFAULT_REPEAT_LAST_N);
  if (params.temperature === 0) return out;
  const minKeep = params.minKeep ?? 1;
  if (params.topK) applyTopK(out, params.topK);
  if (params.topP !== undefined) applyTopP(out, params.topP, minKeep);
  if (params.minP) applyMinP(out, params.minP, minKeep);
  return out;
}

/** The exact distribution sampleToken draws from, as probabilities per token id. */
export function samplingDistribution(
  logits: Float32Array,
  params: SamplingParams,
  history: ArrayLike<number> = [],
): Float64Array {
  const filtered = filterLogits(logits, params, history);
  if (params.temperature === 0) {
    const p = new Float64Array(logits.length);
    p[argmax(filtered)] = 1;
    return p;
  }
  return softmax(applyTemperature(filtered, params.temperature));
}

/**
 * Pick the next token. `history` is the token ids so far (prompt and generated) for the repetition penalty.
 * Greedy (temperature 0) consumes no random numbers; otherwise exactly one `rng.next()` per call, so a seed
 * replays the same generation.
 */
export function sampleToken(
  logits: Float32Array,
  params: SamplingParams,
  rng: Rng,
  history: ArrayLike<number> = [],
): number {
  const filtered = filterLogits(logits, params, history);
  if (params.temperature === 0) return argmax(filtered);
  return sampleFromLogits(applyTemperature(filtered, params.temperature), rng);
}

/*
 * Stops on the decode side.
 */

export interface StopMatch {
  /** Text that is now final and may be shown; never contains (a prefix of) a stop string that might still complete. */
  text: string;
  /** True once a stop string was seen; `text` then ends right before it and later input is ignored. */
  stopped: boolean;
  /** The stop string that matched. */
  stop?: string;
}

/**
 * Watches streamed text for stop strings. A stop string may arrive split over several pieces, so the tail
 * that could still become a stop string is held back until it either completes (then it and everything after
 * is dropped) or cannot anymore (then it is released). When several stops match, the earliest wins.
 */
export class StopStringMatcher {
  private readonly stops: string[];
  private held = "";
  private done = false;
  private readonly maxLen: number;

  constructor(stops: readonly string[]) {
    for (const s of stops) if (s === "") throw new InputError("a stop string must not be empty");
    this.stops = [...new Set(stops)];
    this.maxLen = this.stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  get stopped(): boolean {
    return this.done;
  }

  push(piece: string): StopMatch {
    if (this.done) return { text: "", stopped: true };
    const buf = this.held + piece;
    let at = -1;
    let which: string | undefined;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at || (i === at && s.length > (which?.length ?? 0)))) {
        at = i;
        which = s;
      }
    }
    if (which !== undefined) {
      this.done = true;
      this.held = "";
      return { text: buf.slice(0, at), stopped: true, stop: which };
    }
    // Hold back the longest suffix that is a proper prefix of some stop string.
    let keep = 0;
    for (let len = Math.min(buf.length, this.maxLen - 1); len > 0; len--) {
      const tail = buf.slice(buf.length - len);
      if (this.stops.some((s) => s.startsWith(tail))) {
        keep = len;
        break;
      }
    }
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** At the end of generation: the held-back text, which can no longer become a stop string. */
  flush(): string {
    const rest = this.done ? "" : this.held;
    this.held = "";
    return rest;
  }
}

export type StopReason = "stop" | "eos" | "length";

export interface StopControllerOptions {
  /** Most tokens to generate; the token that reaches it is still shown. */
  maxTokens: number;
  stop?: readonly string[];
  /** End-of-sequence / end-of-turn token ids: generation ends and the token's text is not shown. */
  stopTokens?: Iterable<number>;
}

export interface StopStep {
  /** Text to show now. */
  text: string;
  done: boolean;
  reason?: StopReason;
}

/** One generation's stopping rules together: feed it every sampled token with its decoded text. */
export class StopController {
  private readonly matcher: StopStringMatcher;
  private readonly stopTokens: Set<number>;
  private count = 0;
  private finished: StopReason | undefined;

  constructor(private readonly opts: StopControllerOptions) {
    if (!(Number.isInteger(opts.maxTokens) && opts.maxTokens >= 1))
      throw new InputError(`maxTokens must be a positive integer, got ${opts.maxTokens}`);
    this.matcher = new StopStringMatcher(opts.stop ?? []);
    this.stopTokens = new Set(opts.stopTokens ?? []);
  }

  get reason(): StopReason | undefined {
    return this.finished;
  }

  get tokens(): number {
    return this.count;
  }

  push(token: number, piece: string): StopStep {
    if (this.finished) return { text: "", done: true, reason: this.finished };
    this.count++;
    if (this.stopTokens.has(token)) {
      this.finished = "eos";
      return { text: this.matcher.flush(), done: true, reason: "eos" };
    }
    const m = this.matcher.push(piece);
    if (m.stopped) {
      this.finished = "stop";
      return { text: m.text, done: true, reason: "stop" };
    }
    if (this.count >= this.opts.maxTokens) {
      this.finished = "length";
      return { text: m.text + this.matcher.flush(), done: true, reason: "length" };
    }
    return { text: m.text, done: false };
  }
}
