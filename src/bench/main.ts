// `npm run bench`: benchmarks and fuzzers; prints one JSON object on stdout, progress on stderr.
// Usage: node dist/bench/main.js [--only fuzz,tokenizer,engine] [--fuzz-cases 10000] [--seed 1]

import { parseArgs } from "node:util";
import { fuzzGGUF } from "../formats/gguf/index.js";
import { fuzzSafetensors } from "../formats/safetensors/index.js";
import { benchEngine } from "./engine.js";
import { benchTokenizers } from "./tokenizer.js";
import { benchBackends } from "./backends.js";
import { packageVersion } from "../util/version.js";

const { values } = parseArgs({
  options: {
    only: { type: "string" },
    "fuzz-cases": { type: "string", default: "10000" },
    seed: { type: "string", default: "1" },
  },
});
const only = values.only ? new Set(values.only.split(",")) : undefined;
const want = (name: string) => only === undefined || only.has(name);
const seed = Number(values.seed);
const cases = Number(values["fuzz-cases"]);
const progress = (label: string) => (done: number, total: number) => {
  if (done % 1000 === 0 || done === total) process.stderr.write(`\r${label}: ${done}/${total}`);
  if (done === total) process.stderr.write("\n");
};

const results: Record<string, unknown> = {
  buckle: packageVersion(),
  node: process.version,
  date: new Date().toISOString(),
};
if (want("fuzz")) {
  results.fuzzGGUF = fuzzGGUF({ cases, seed, onProgress: progress("fuzz gguf") });
  results.fuzzSafetensors = fuzzSafetensors({ cases, seed, onProgress: progress("fuzz safetensors") });
}
if (want("tokenizer")) results.tokenizer = await benchTokenizers({ seed, strings: 2000 });
if (only?.has("engine")) results.engine = await benchEngine();
if (want("backends")) results.backends = await benchBackends({ seed });
process.stdout.write(JSON.stringify(results, null, 2) + "\n");
