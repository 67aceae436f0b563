// `npm run bench`: benchmarks and fuzzers; prints one JSON object on stdout, progress on stderr.
// Usage: node dist/bench/main.js [--only fuzz,tokenizer,engine,backends] [--fuzz-cases 10000] [--seed 1]

import { parseArgs } from "node:util";
import { runBench } from "./run.js";

const { values } = parseArgs({
  options: {
    only: { type: "string" },
    "fuzz-cases": { type: "string", default: "10000" },
    seed: { type: "string", default: "1" },
  },
});
const results = await runBench({
  only: values.only?.split(","),
  fuzzCases: Number(values["fuzz-cases"]),
  seed: Number(values.seed),
});
process.stdout.write(JSON.stringify(results, null, 2) + "\n");
