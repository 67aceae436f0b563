// The benchmark suite behind `npm run bench` and `buckle bench`: fuzzers, tokenizers, engine and backends,
// each measured next to its peer in the same run; returns one JSON-able object.

import { fuzzGGUF } from "../formats/gguf/index.js";
import { fuzzSafetensors } from "../formats/safetensors/index.js";
import { InputError } from "../util/errors.js";
import { packageVersion } from "../util/version.js";
import { benchBackends } from "./backends.js";
import { benchCuration } from "./curation.js";
import { benchEngine } from "./engine.js";
import { benchTokenizers } from "./tokenizer.js";

export const BENCH_SECTIONS = ["fuzz", "tokenizer", "engine", "backends", "curation"] as const;
export type BenchSection = (typeof BENCH_SECTIONS)[number];

export interface BenchOptions {
  /** Sections to run; default all. */
  only?: readonly string[];
  fuzzCases?: number;
  seed?: number;
  /** Progress lines (stderr by default). */
  log?: (line: string) => void;
}

export async function runBench(options: BenchOptions = {}): Promise<Record<string, unknown>> {
  const only = options.only ?? BENCH_SECTIONS;
  for (const s of only) {
    if (!(BENCH_SECTIONS as readonly string[]).includes(s)) {
      throw new InputError(`unknown benchmark section "${s}"`, {
        hint: `choose from ${BENCH_SECTIONS.join(", ")}`,
      });
    }
  }
  const want = (s: BenchSection) => only.includes(s);
  const seed = options.seed ?? 1;
  const cases = options.fuzzCases ?? 10000;
  const log = options.log ?? ((line: string) => process.stderr.write(line + "\n"));
  const progress = (label: string) => (done: number, total: number) => {
    if (done % 1000 === 0 || done === total) log(`${label}: ${done}/${total}`);
  };
  const results: Record<string, unknown> = {
    buckle: packageVersion(),
    node: process.version,
    date: new Date().toISOString(),
    sections: only,
  };
  if (want("fuzz")) {
    results.fuzzGGUF = fuzzGGUF({ cases, seed, onProgress: progress("fuzz gguf") });
    results.fuzzSafetensors = fuzzSafetensors({ cases, seed, onProgress: progress("fuzz safetensors") });
  }
  if (want("tokenizer")) results.tokenizer = await benchTokenizers({ seed, strings: 2000 });
  if (want("engine")) results.engine = await benchEngine({ log });
  if (want("backends")) results.backends = await benchBackends({ seed, log });
  if (want("curation")) results.curation = await benchCuration({ log });
  return results;
}
