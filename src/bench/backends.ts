// Backend overhead benchmark: the llamacpp backend against node-llama-cpp called directly doing the same work
// (perplexity scoring, batched generation with 4 and 16 sequences) on a factory model where compute dominates.

import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  getLlama,
  LlamaLogLevel,
  type ControlledEvaluateInputItem,
  type LlamaContextSequence,
  type LlamaModel,
  type SequenceEvaluateOptions,
  type Token,
} from "node-llama-cpp";
import { createRandomModel, type RandomModelOptions } from "../models/factory.js";
import { createLlamaCppModel } from "../models/llamacpp/index.js";
import { scoredIds, promptIds } from "../models/requests.js";
import type { GenerateRequest, LogprobsRequest } from "../models/types.js";
import { loadTokenizerAndTemplate } from "../formats/load.js";
import { cacheDir } from "../util/fs.js";
import { Rng } from "../util/random.js";

export interface BackendBenchOptions {
  /** CPU threads for both sides (default 1: steadiest on a shared 2-core machine). */
  threads?: number;
  /** Timed repetitions of each measurement, alternating ours / direct (default 3; the best is reported). */
  reps?: number;
  seed?: number;
  /** Model shape; default hidden 384, 6 layers, f32, llama-spm vocabulary (32,000 tokens). */
  model?: Partial<RandomModelOptions>;
  /** Scoring requests and tokens per request (default 8 x ~256). */
  scoreRequests?: number;
  /** Generated tokens per request (default 64). */
  genTokens?: number;
  log?: (line: string) => void;
}

interface Timed {
  /** Tokens per second of the best repetition. */
  tokPerS: number;
  /** Tokens per second of the median repetition (the machine is shared: the best is the steadier figure). */
  medianTokPerS: number;
  /** Seconds of each repetition. */
  seconds: number[];
  tokens: number;
}

const WORDS = (
  "the a fox river stone light quick brown small old green house garden road sky cloud rain wind tree " +
  "bird song music night morning city market bread water fire paper window door story king queen child"
).split(" ");

function words(rng: Rng, n: number): string {
  return Array.from({ length: n }, () => rng.pick(WORDS)).join(" ");
}

async function timeIt(fn: () => Promise<number>): Promise<{ seconds: number; tokens: number }> {
  const t0 = performance.now();
  const tokens = await fn();
  return { seconds: (performance.now() - t0) / 1000, tokens };
}

function summarize(runs: { seconds: number; tokens: number }[]): Timed {
  const best = runs.reduce((a, b) => (b.tokens / b.seconds > a.tokens / a.seconds ? b : a));
  const rates = runs.map((r) => r.tokens / r.seconds).sort((a, b) => a - b);
  return {
    tokPerS: Math.round((best.tokens / best.seconds) * 10) / 10,
    medianTokPerS: Math.round(rates[Math.floor(rates.length / 2)] * 10) / 10,
    seconds: runs.map((r) => Math.round(r.seconds * 1000) / 1000),
    tokens: best.tokens,
  };
}

/** Our time over direct time, minus 1, in percent (positive: we are slower), on best and median runs. */
function overhead(ours: Timed, direct: Timed): { best: number; median: number } {
  const pct = (a: number, b: number) => Math.round((b / a - 1) * 1000) / 10;
  return { best: pct(ours.tokPerS, direct.tokPerS), median: pct(ours.medianTokPerS, direct.medianTokPerS) };
}

export async function benchBackends(options: BackendBenchOptions = {}): Promise<Record<string, unknown>> {
  const threads = options.threads ?? 1;
  const reps = options.reps ?? 3;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const spec: RandomModelOptions = {
    arch: "llama",
    vocab: "builtin:llama-spm",
    hiddenSize: 384,
    numLayers: 6,
    numHeads: 6,
    numKvHeads: 2,
    intermediateSize: 1024,
    seed: 1,
    initStd: 0.1,
    dtype: "f32",
    contextLength: 2048,
    ...options.model,
  };
  const dir = cacheDir("bench", "models");
  mkdirSync(dir, { recursive: true });
  const path = join(
    dir,
    `llama-h${spec.hiddenSize}-l${spec.numLayers}-${spec.dtype}-${spec.vocab.replace(/\W+/g, "_")}-s${spec.seed}.gguf`,
  );
  if (!existsSync(path)) {
    log(`backends: creating ${path}`);
    createRandomModel(spec, path);
  }
  const { tokenizer, template } = loadTokenizerAndTemplate(path);
  const rng = new Rng(options.seed ?? 1);

  const result: Record<string, unknown> = {
    model: { path, hidden: spec.hiddenSize, layers: spec.numLayers, dtype: spec.dtype, vocab: spec.vocab },
    threads,
    reps,
  };
  const llama = await getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.error });
  const direct = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  try {
    // Scoring: distinct prompts (so prefix reuse cannot help either side), ~64 prompt + ~192 response tokens.
    const nScore = options.scoreRequests ?? 8;
    const texts = Array.from({ length: nScore }, () => ({
      prompt: words(rng, 50),
      response: ` ${words(rng, 150)}`,
    }));
    // Each repetition gets its own prompts, so no side finds them cached from the previous one.
    const scoring = (rep: number): LogprobsRequest[] =>
      texts.map((t, i) => ({ prompt: `${rep}.${i} ${t.prompt}`, response: t.response }));
    result.scoring = await benchScoring(
      path,
      direct,
      scoring,
      tokenizerAndTemplate(path),
      threads,
      reps,
      log,
    );

    // Generation: P chats, sampled (T 0.8, top-p 0.95, seeded), genTokens each, EOS ignored on neither side.
    const genTokens = options.genTokens ?? 64;
    const generation: Record<string, unknown> = {};
    for (const parallel of [4, 16]) {
      const requests: GenerateRequest[] = Array.from({ length: parallel }, (_, i) => ({
        messages: [{ role: "user", content: `${i}: ${words(rng, 20)}` }],
        sampling: { temperature: 0.8, topP: 0.95, maxTokens: genTokens, seed: 1000 + i },
      }));
      const ids = requests.map((r, i) => promptIds(r, i, tokenizer, template));
      generation[String(parallel)] = await benchGeneration(
        path,
        direct,
        requests,
        ids,
        parallel,
        threads,
        reps,
        log,
      );
    }
    result.generation = generation;
  } finally {
    await direct.dispose();
    await llama.dispose();
  }
  return result;
}

function tokenizerAndTemplate(path: string) {
  return loadTokenizerAndTemplate(path);
}

async function benchScoring(
  path: string,
  direct: LlamaModel,
  makeRequests: (rep: number) => LogprobsRequest[],
  { tokenizer, template }: ReturnType<typeof loadTokenizerAndTemplate>,
  threads: number,
  reps: number,
  log: (line: string) => void,
): Promise<Record<string, unknown>> {
  const parallel = 4;
  const ours = await createLlamaCppModel({
    modelPath: path,
    gpu: false,
    threads,
    parallel,
    contextSize: 512,
  });
  const ctx = await direct.createContext({
    sequences: parallel,
    contextSize: 512,
    threads: { ideal: threads, min: threads },
    flashAttention: false,
  });
  const seqs = Array.from({ length: parallel }, () => ctx.getSequence());
  try {
    const oursRuns = [];
    const directRuns = [];
    let tokens = 0;
    let count = 0;
    for (let r = 0; r < reps; r++) {
      const requests = makeRequests(r);
      const sets = requests.map((q, i) => scoredIds(q, i, tokenizer, template));
      tokens = sets.reduce((a, s) => a + s.end - 1, 0);
      count = requests.length;
      oursRuns.push(await timeIt(() => ours.logprobs(requests).then(() => tokens)));
      directRuns.push(await timeIt(() => directScoring(seqs, sets).then(() => tokens)));
      log(
        `backends: scoring rep ${r}: ours ${oursRuns[r].seconds.toFixed(2)} s, direct ${directRuns[r].seconds.toFixed(2)} s`,
      );
    }
    const o = summarize(oursRuns);
    const d = summarize(directRuns);
    return {
      requests: count,
      parallel,
      tokensEvaluated: tokens,
      ours: o,
      direct: d,
      overheadPct: overhead(o, d),
    };
  } finally {
    await ctx.dispose();
    await ours.dispose();
  }
}

/** node-llama-cpp alone: the same positions scored the same way, requests spread over the sequences. */
async function directScoring(
  seqs: LlamaContextSequence[],
  sets: { ids: number[]; start: number; end: number }[],
): Promise<void> {
  let next = 0;
  await Promise.all(
    seqs.map(async (seq) => {
      while (next < sets.length) {
        const s = sets[next++];
        await seq.clearHistory();
        const input = s.ids.slice(0, s.end - 1).map((t, p): ControlledEvaluateInputItem =>
          p >= s.start - 1
            ? [
                t as Token,
                {
                  generateNext: {
                    token: true,
                    totalLogitWeight: true,
                    logits: { filter: { tokens: [s.ids[p + 1] as Token], includeSelected: true } },
                    options: { temperature: 0 },
                  },
                },
              ]
            : (t as Token),
        );
        const out = await seq.controlledEvaluate(input);
        for (let p = s.start - 1; p < s.end - 1; p++) {
          const n = out[p]!.next;
          const lg = n.logits!.get(n.token!)!;
          void (n.logits!.get(s.ids[p + 1] as Token)! - lg - Math.log(n.totalLogitWeight!));
        }
      }
    }),
  );
}

async function benchGeneration(
  path: string,
  direct: LlamaModel,
  requests: GenerateRequest[],
  ids: number[][],
  parallel: number,
  threads: number,
  reps: number,
  log: (line: string) => void,
): Promise<Record<string, unknown>> {
  const contextSize = 256;
  const ours = await createLlamaCppModel({ modelPath: path, gpu: false, threads, parallel, contextSize });
  const ctx = await direct.createContext({
    sequences: parallel,
    contextSize,
    threads: { ideal: threads, min: threads },
    flashAttention: false,
  });
  const seqs = Array.from({ length: parallel }, () => ctx.getSequence());
  const maxTokens = requests[0].sampling.maxTokens;
  const sampling = (i: number) =>
    ({
      temperature: 0.8,
      topP: 0.95,
      topK: null,
      minP: 0,
      seed: 1000 + i,
      yieldEogToken: true,
    }) as unknown as SequenceEvaluateOptions;
  try {
    const runs: Record<
      "ours" | "directLockstep" | "directConcurrent",
      { seconds: number; tokens: number }[]
    > = {
      ours: [],
      directLockstep: [],
      directConcurrent: [],
    };
    for (let r = 0; r < reps; r++) {
      runs.ours.push(
        await timeIt(async () => {
          // A fresh prefix per repetition so the prompt is decoded every time, as on the direct side.
          const res = await ours.generate(
            requests.map((q) => ({ ...q, messages: [{ role: "user", content: `${r}` }, ...q.messages!] })),
          );
          return res.reduce((a, x) => a + (x.tokens?.length ?? 0), 0);
        }),
      );
      // Direct, the same lockstep schedule: every sequence asked for a token at once.
      runs.directLockstep.push(
        await timeIt(async () => {
          await Promise.all(seqs.map((s) => s.clearHistory()));
          const its = seqs.map((s, i) => s.evaluate(ids[i] as Token[], sampling(i)));
          let total = 0;
          for (let step = 0; step < maxTokens; step++) {
            const outs = await Promise.all(its.map((it) => it.next()));
            total += outs.filter((o) => !o.done).length;
          }
          await Promise.all(its.map((it) => it.return()));
          return total;
        }),
      );
      // Direct, the way node-llama-cpp is usually driven: one evaluate() loop per sequence, concurrently.
      runs.directConcurrent.push(
        await timeIt(async () => {
          await Promise.all(seqs.map((s) => s.clearHistory()));
          const counts = await Promise.all(
            seqs.map(async (s, i) => {
              let n = 0;
              for await (const _token of s.evaluate(ids[i] as Token[], sampling(i)))
                if (++n >= maxTokens) break;
              return n;
            }),
          );
          return counts.reduce((a, b) => a + b, 0);
        }),
      );
      log(
        `backends: generation x${parallel} rep ${r}: ours ${runs.ours[r].seconds.toFixed(2)} s, ` +
          `direct lockstep ${runs.directLockstep[r].seconds.toFixed(2)} s, concurrent ${runs.directConcurrent[r].seconds.toFixed(2)} s`,
      );
    }
    const o = summarize(runs.ours);
    const dl = summarize(runs.directLockstep);
    const dc = summarize(runs.directConcurrent);
    return {
      parallel,
      requests: requests.length,
      maxTokens,
      ours: o,
      directLockstep: dl,
      directConcurrent: dc,
      overheadPct: overhead(o, dl),
      vsConcurrentPct: overhead(o, dc),
    };
  } finally {
    await ctx.dispose();
    await ours.dispose();
  }
}
