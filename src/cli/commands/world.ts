// `buckle world build|sample`: build (or load from the cache) the SafetyWorld model organism, and print
// examples of the world's splits.

import type { Command } from "commander";
import { createNativeModel } from "../../models/index.js";
import { InputError } from "../../util/errors.js";
import {
  buildOrganism,
  createWorld,
  evaluateWorldModel,
  WORLD_SPLITS,
  type OrganismSize,
  type WorldSplit,
} from "../../world/index.js";
import { intOption } from "../options.js";

interface BuildFlags {
  seed: number;
  size: string;
  force?: boolean;
  json?: boolean;
}

interface SampleFlags {
  seed: number;
  kind: string;
  n: number;
  json?: boolean;
}

function sizeOf(value: string): OrganismSize {
  if (value !== "tiny" && value !== "small")
    throw new InputError(`--size must be tiny or small, got "${value}"`);
  return value;
}

export function registerWorldCommands(program: Command): void {
  const world = program
    .command("world")
    .description("SafetyWorld: the synthetic world and the tiny model organism CTRL is demonstrated on");

  world
    .command("build")
    .description(
      "Pretrain and align the organism (cached by config hash), then score it with the exact judges",
    )
    .option("--seed <n>", "world and training seed", intOption, 1)
    .option("--size <size>", "tiny or small", "tiny")
    .option("--force", "rebuild even when the cache has this organism")
    .option("--json", "print a JSON summary on stdout")
    .action(async (flags: BuildFlags) => {
      const size = sizeOf(flags.size);
      const log = (s: string) => process.stderr.write(s + "\n");
      let lastShown = 0;
      const organism = await buildOrganism({
        seed: flags.seed,
        size,
        force: flags.force,
        onProgress: ({ phase, progress: p }) => {
          const now = Date.now();
          if (now - lastShown < 2000 && p.step !== p.totalSteps) return;
          lastShown = now;
          log(
            `${phase} step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(3)} (${Math.round(p.tokensPerSecond)} tok/s)`,
          );
        },
      });
      const model = await createNativeModel({ modelPath: organism.modelPath });
      const scores = await evaluateWorldModel(model, organism.world);
      await model.dispose();
      const summary = {
        modelPath: organism.modelPath,
        basePath: organism.basePath,
        configHash: organism.configHash,
        cached: organism.cached,
        parameters: organism.parameters,
        timings: organism.timings,
        scores,
      };
      if (flags.json) {
        process.stdout.write(JSON.stringify(summary, null, 2) + "\n");
        return;
      }
      const t = organism.timings;
      process.stdout.write(
        [
          `organism ${organism.modelPath}${organism.cached ? " (from cache)" : ""}`,
          `  ${organism.parameters.toLocaleString("en-US")} parameters, ${size}, seed ${flags.seed}, config ${organism.configHash}`,
          `  built in ${t.totalSeconds.toFixed(1)} s wall, ${t.cpuSeconds.toFixed(1)} s CPU ` +
            `(pretrain ${t.pretrainSeconds.toFixed(1)} s, align ${t.alignSeconds.toFixed(1)} s)`,
          `  aligned SR ${scores.safetyRate.toFixed(1)}% (refused ${scores.refusalRate.toFixed(1)}%) on ${scores.counts.harmful} held-out harmful prompts`,
          `  helpfulness ${scores.helpfulness.toFixed(2)}/5, correct ${scores.correctRate.toFixed(1)}% on ${scores.counts.benign} benign questions`,
          `  over-refusal ${scores.overRefusalRate.toFixed(1)}% on ${scores.counts.traps} traps`,
        ].join("\n") + "\n",
      );
    });

  world
    .command("sample")
    .description("Print examples of one of the world's splits")
    .requiredOption("--kind <split>", `one of ${WORLD_SPLITS.join(", ")}`)
    .option("--seed <n>", "world seed", intOption, 1)
    .option("-n <n>", "how many", intOption, 5)
    .option("--json", "print the samples as JSON lines")
    .action((flags: SampleFlags) => {
      if (!(WORLD_SPLITS as readonly string[]).includes(flags.kind)) {
        throw new InputError(`unknown split "${flags.kind}"`, {
          hint: `use one of ${WORLD_SPLITS.join(", ")}`,
        });
      }
      if (flags.n < 1) throw new InputError(`-n must be at least 1, got ${flags.n}`);
      const samples = createWorld(flags.seed)[flags.kind as WorldSplit].slice(0, flags.n);
      for (const s of samples) {
        if (flags.json) {
          process.stdout.write(JSON.stringify(s) + "\n");
          continue;
        }
        process.stdout.write(`# ${s.id} [${(s.tags ?? []).join(", ")}]\n`);
        for (const m of s.messages) process.stdout.write(`  ${m.role}: ${m.content}\n`);
      }
    });
}
