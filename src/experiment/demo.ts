// The built-in default of `npm run demo`: the paper's every-stage table on the model organism. A scaled-down
// curation grid by default (minutes on a laptop CPU); `full` uses the paper's settings (5 rounds, 5 x 5 grid).

import { parseExperimentConfig, type ExperimentConfig, type ExperimentConfigInput } from "./config.js";

export interface DemoOptions {
  /** The paper's curation settings instead of the scaled-down grid. */
  full?: boolean;
  /** Seeds of the matrix (default 1, 2, 3). */
  seeds?: number[];
}

/** The recipe both the attacker and the defender use on the organism (LoRA r8 at a high rate, 5 epochs). */
const ORGANISM_RECIPE = { learningRate: 0.001, epochs: 5, loraRank: 8, batchSize: 10 };

export function demoConfigInput(options: DemoOptions = {}): ExperimentConfigInput {
  const grid = options.full
    ? { rounds: 5, beamWidth: 3, temperatures: [0.2, 0.4, 0.6, 0.8, 1.0], topPs: [0.2, 0.4, 0.6, 0.8, 1.0] }
    : { rounds: 2, beamWidth: 3, temperatures: [0.6, 1.0], topPs: [0.8, 1.0] };
  return {
    name: options.full ? "demo-full" : "demo",
    seeds: options.seeds ?? [1, 2, 3],
    model: { organism: { seed: 1, size: "tiny" } },
    backend: "native",
    threads: 1,
    data: { pool: "world:pool", safety: "world:safetyData" },
    curation: {
      strategy: "stride",
      judge: "exact",
      postScorer: "compromised",
      // Flesch readability means little on the world's short sentences: the exact helpfulness judge's clarity
      // aspect (fluency in the world's grammar) is the quality floor instead
      settings: { ...grid, maxTokens: 96, filter: { helpfulnessRatio: 0.9, readabilityRatio: 0 } },
    },
    attacks: [
      { name: "ExHarm", kind: "exharm", data: "world:exharm", recipe: ORGANISM_RECIPE },
      { name: "AOA", kind: "aoa", data: "world:aoa", recipe: { ...ORGANISM_RECIPE, epochs: 10 } },
    ],
    defences: [
      "nodef",
      { kind: "randdrop", p: 0.5 },
      { kind: "ppldrop", p: 0.5 },
      "uncurated",
      "uncurated-post",
      "safetydata",
      "pre",
      "in",
      "post",
      "all",
    ],
    training: { preset: "default", recipe: ORGANISM_RECIPE },
    evaluation: {
      harmful: "world:evalHarmful",
      benign: "world:evalBenign",
      overRefusal: "world:evalOverRefusal",
      judges: ["exact"],
      maxTokens: 48,
    },
    // two steps at once: trainings run on worker threads with one engine thread each, so both cores work
    concurrency: 2,
  };
}

export function demoConfig(options: DemoOptions = {}): ExperimentConfig {
  return parseExperimentConfig(demoConfigInput(options), "built-in demo config");
}
