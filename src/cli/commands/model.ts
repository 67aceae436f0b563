// `buckle model create|info`: make random-initialised test models and inspect model files.

import { existsSync, statSync } from "node:fs";
import type { Command } from "commander";
import { openGGUF, ggufInfo, type GGUFInfo, type JsonValue } from "../../formats/gguf/index.js";
import { openHFCheckpoint } from "../../formats/hf/index.js";
import { openSafetensors } from "../../formats/safetensors/index.js";
import { createRandomModel, type FactoryDType } from "../../models/factory.js";
import type { ModelArch } from "../../formats/model-spec.js";
import { InputError } from "../../util/errors.js";
import { intOption, numberOption } from "../options.js";

interface CreateFlags {
  arch: string;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads?: number;
  ffn: number;
  headDim?: number;
  vocab: string;
  seed: number;
  dtype: string;
  context: number;
  ropeTheta: number;
  rmsEps: number;
  tied?: boolean;
  attentionBias?: boolean;
  initStd: number;
  template?: string;
  name?: string;
  output: string;
  json?: boolean;
}

export function registerModelCommands(program: Command): void {
  const model = program.command("model").description("Create and inspect model files");

  model
    .command("create")
    .description("Write a random-initialised llama-family GGUF model on a real tokenizer vocabulary")
    .requiredOption("-o, --output <file>", "output .gguf path")
    .option("--arch <arch>", "llama | qwen2 | mistral", "llama")
    .option("--hidden <n>", "hidden size", intOption, 64)
    .option("--layers <n>", "number of decoder layers", intOption, 2)
    .option("--heads <n>", "attention heads", intOption, 4)
    .option("--kv-heads <n>", "key/value heads (grouped-query attention); default = heads", intOption)
    .option("--ffn <n>", "feed-forward (intermediate) size", intOption, 128)
    .option("--head-dim <n>", "per-head dimension; default hidden / heads", intOption)
    .option(
      "--vocab <ref>",
      "builtin:<name> (see `buckle vocab list`) or a GGUF with tokenizer metadata",
      "builtin:llama-spm",
    )
    .option("--seed <n>", "random seed", intOption, 1)
    .option("--dtype <type>", "weight type: f32 | f16 | q8_0", "f32")
    .option("--context <n>", "context length", intOption, 2048)
    .option("--rope-theta <x>", "RoPE base frequency", numberOption, 10000)
    .option("--rms-eps <x>", "RMSNorm epsilon", numberOption, 1e-5)
    .option("--tied", "tie the output projection to the token embedding")
    .option("--attention-bias", "q/k/v biases (default on for qwen2)")
    .option("--no-attention-bias", "no q/k/v biases")
    .option("--init-std <x>", "standard deviation of the weight init", numberOption, 0.02)
    .option(
      "--template <name>",
      "chat template: chatml | llama2 | llama3 | mistral | phi3 | zephyr (default: suits the vocab)",
    )
    .option("--name <name>", "general.name written to the file")
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      "\nExample:\n  buckle model create --arch llama --hidden 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 \\\n    --vocab builtin:llama-spm --seed 1 -o tiny.gguf\n",
    )
    .action((flags: CreateFlags) => {
      const arch = flags.arch as ModelArch;
      if (!["llama", "qwen2", "mistral"].includes(arch)) {
        throw new InputError(`--arch must be llama, qwen2 or mistral, got "${flags.arch}"`);
      }
      const dtype = flags.dtype as FactoryDType;
      if (!["f32", "f16", "q8_0"].includes(dtype)) {
        throw new InputError(`--dtype must be f32, f16 or q8_0, got "${flags.dtype}"`);
      }
      const t0 = performance.now();
      const created = createRandomModel(
        {
          arch,
          hiddenSize: flags.hidden,
          numLayers: flags.layers,
          numHeads: flags.heads,
          numKvHeads: flags.kvHeads ?? flags.heads,
          intermediateSize: flags.ffn,
          headDim: flags.headDim,
          vocab: flags.vocab,
          seed: flags.seed,
          dtype,
          contextLength: flags.context,
          ropeTheta: flags.ropeTheta,
          rmsNormEps: flags.rmsEps,
          tiedEmbeddings: flags.tied,
          attentionBias: flags.attentionBias,
          initStd: flags.initStd,
          chatTemplate: flags.template,
          name: flags.name,
        },
        flags.output,
      );
      const seconds = (performance.now() - t0) / 1000;
      if (flags.json) {
        process.stdout.write(JSON.stringify({ ...created, seconds }, null, 2) + "\n");
      } else {
        const s = created.spec;
        process.stdout.write(
          `wrote ${created.path} (${(statSync(created.path).size / 1e6).toFixed(2)} MB, ${seconds.toFixed(2)} s)\n` +
            `  ${s.arch}: hidden ${s.hiddenSize}, layers ${s.numLayers}, heads ${s.numHeads}/${s.numKvHeads} kv, ` +
            `ffn ${s.intermediateSize}, vocab ${s.vocabSize} (${created.vocab}), ${created.parameters.toLocaleString("en-US")} parameters\n` +
            `  chat template: ${created.chatTemplateName}\n`,
        );
      }
    });

  model
    .command("info <file>")
    .description(
      "Print a model's metadata and tensor table (GGUF file, .safetensors file, or HF checkpoint directory)",
    )
    .option("--json", "print JSON")
    .option("--max-array-items <n>", "array items to show per metadata key", intOption, 8)
    .action((file: string, flags: { json?: boolean; maxArrayItems: number }) => {
      if (!existsSync(file)) throw new InputError(`no such file or directory: ${file}`);
      const info = describeModelFile(file, flags.maxArrayItems);
      if (flags.json) process.stdout.write(JSON.stringify(info, jsonReplacer, 2) + "\n");
      else process.stdout.write(formatInfo(info));
    });
}

type Info = Record<string, unknown>;

function describeModelFile(file: string, maxArrayItems: number): Info {
  if (statSync(file).isDirectory()) {
    const ckpt = openHFCheckpoint(file);
    try {
      return { format: "hf-checkpoint", path: file, spec: ckpt.spec, tensors: ckpt.tensorNames.length };
    } finally {
      ckpt.close();
    }
  }
  if (file.endsWith(".safetensors")) {
    const st = openSafetensors(file);
    try {
      return {
        format: "safetensors",
        path: file,
        metadata: st.metadata,
        tensors: st.tensors.map((t) => ({
          name: t.name,
          dtype: t.dtype,
          shape: t.shape,
          bytes: t.byteLength,
        })),
      };
    } finally {
      st.close();
    }
  }
  const gguf = openGGUF(file);
  try {
    return { format: "gguf", path: file, ...(ggufInfo(gguf, { maxArrayItems }) as unknown as Info) };
  } finally {
    gguf.close();
  }
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (ArrayBuffer.isView(value) && !(value instanceof DataView))
    return Array.from(value as unknown as ArrayLike<number>);
  return value;
}

function formatInfo(info: Info): string {
  if (info.format !== "gguf") return JSON.stringify(info, jsonReplacer, 2) + "\n";
  const g = info as unknown as GGUFInfo & { format: string };
  const lines: string[] = [];
  lines.push(`${g.path}: GGUF v${g.version}, ${(g.fileSize / 1e6).toFixed(2)} MB, alignment ${g.alignment}`);
  lines.push("", "metadata:");
  const width = Math.min(48, Math.max(...Object.keys(g.metadata).map((k) => k.length)));
  for (const [key, entry] of Object.entries(g.metadata)) {
    let shown: string;
    if (entry.type === "array") {
      const items = ((entry.value ?? entry.head ?? []) as JsonValue[])
        .map((v) => JSON.stringify(v))
        .join(", ");
      shown = `[${entry.itemType} x ${entry.length}] ${items}${entry.head ? ", ..." : ""}`;
    } else if (entry.type === "f32" && typeof entry.value === "number") {
      // f32 values widened to double print with noise digits (1e-5 -> 0.000009999999747...).
      shown = String(Number(entry.value.toPrecision(7)));
    } else {
      shown = JSON.stringify(entry.value);
    }
    if (shown.length > 160) shown = shown.slice(0, 157) + "...";
    lines.push(`  ${key.padEnd(width)}  ${shown}`);
  }
  const t = g.totals;
  lines.push(
    "",
    `tensors: ${t.tensorCount}, ${t.parameterCount.toLocaleString("en-US")} parameters, ${(t.tensorBytes / 1e6).toFixed(2)} MB`,
  );
  for (const [type, s] of Object.entries(t.byType)) {
    lines.push(
      `  ${type}: ${s.count} tensors, ${s.elements.toLocaleString("en-US")} values, ${(s.bytes / 1e6).toFixed(2)} MB`,
    );
  }
  const nameWidth = Math.max(4, ...g.tensors.map((x) => x.name.length));
  lines.push("", `  ${"name".padEnd(nameWidth)}  ${"type".padEnd(6)}  shape`);
  for (const x of g.tensors)
    lines.push(`  ${x.name.padEnd(nameWidth)}  ${x.type.padEnd(6)}  [${x.shape.join(", ")}]`);
  return lines.join("\n") + "\n";
}
