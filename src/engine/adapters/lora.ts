// What every adapter format shares: each LoRA target's GGUF tensor and shape for a ModelSpec, validation of a
// LoraWeights against a spec, and seeded random adapters for tests and benchmarks.

import type { ModelSpec } from "../../formats/model-spec.js";
import { InputError } from "../../util/errors.js";
import { Rng } from "../../util/random.js";
import { LORA_TARGETS, type LoraConfig, type LoraPair, type LoraTarget, type LoraWeights } from "../types.js";

/** The GGUF (canonical) tensor suffix each target adapts, after "blk.N.". */
export const GGUF_TARGET_TENSOR: Readonly<Record<LoraTarget, string>> = {
  q_proj: "attn_q.weight",
  k_proj: "attn_k.weight",
  v_proj: "attn_v.weight",
  o_proj: "attn_output.weight",
  gate_proj: "ffn_gate.weight",
  up_proj: "ffn_up.weight",
  down_proj: "ffn_down.weight",
};

/** The Hugging Face module path of each target inside a decoder layer. */
export const HF_TARGET_MODULE: Readonly<Record<LoraTarget, string>> = {
  q_proj: "self_attn.q_proj",
  k_proj: "self_attn.k_proj",
  v_proj: "self_attn.v_proj",
  o_proj: "self_attn.o_proj",
  gate_proj: "mlp.gate_proj",
  up_proj: "mlp.up_proj",
  down_proj: "mlp.down_proj",
};

export function isLoraTarget(name: string): name is LoraTarget {
  return (LORA_TARGETS as readonly string[]).includes(name);
}

/** Input and output width of the projection a target adapts. */
export function targetShape(spec: ModelSpec, target: LoraTarget): { in: number; out: number } {
  const h = spec.hiddenSize;
  const q = spec.numHeads * spec.headDim;
  const kv = spec.numKvHeads * spec.headDim;
  const f = spec.intermediateSize;
  switch (target) {
    case "q_proj":
      return { in: h, out: q };
    case "k_proj":
    case "v_proj":
      return { in: h, out: kv };
    case "o_proj":
      return { in: q, out: h };
    case "gate_proj":
    case "up_proj":
      return { in: h, out: f };
    case "down_proj":
      return { in: f, out: h };
  }
}

/** Heads a q/k projection's rows split into (for the rotary row permutation); undefined for other targets. */
export function permuteHeads(spec: ModelSpec, target: LoraTarget): number | undefined {
  if (target === "q_proj") return spec.numHeads;
  if (target === "k_proj") return spec.numKvHeads;
  return undefined;
}

/** PEFT's scaling factor alpha / r: the adapted weight is W + scale * B A. */
export function loraScale(config: LoraConfig): number {
  return config.alpha / config.rank;
}

/**
 * Throws an InputError naming the first few problems when `lora` does not fit `spec`: layer count, targets,
 * pair dimensions and array lengths, non-finite values.
 */
export function checkLoraMatchesSpec(lora: LoraWeights, spec: ModelSpec): void {
  const { rank, alpha, targets } = lora.config;
  const problems: string[] = [];
  if (!(Number.isInteger(rank) && rank >= 1)) problems.push(`rank must be a positive integer, got ${rank}`);
  if (!Number.isFinite(alpha)) problems.push(`alpha must be finite, got ${alpha}`);
  for (const t of targets) if (!isLoraTarget(t)) problems.push(`unknown target ${JSON.stringify(t)}`);
  if (lora.layers.length !== spec.numLayers)
    problems.push(`adapter has ${lora.layers.length} layers, the model ${spec.numLayers}`);
  lora.layers.forEach((layer, i) => {
    for (const [t, pair] of Object.entries(layer) as [LoraTarget, LoraPair | undefined][]) {
      if (!pair) continue;
      const where = `layer ${i} ${t}`;
      if (!isLoraTarget(t)) {
        problems.push(`${where}: unknown target`);
        continue;
      }
      if (!targets.includes(t)) problems.push(`${where}: not listed in config.targets`);
      const want = targetShape(spec, t);
      if (pair.in !== want.in || pair.out !== want.out)
        problems.push(
          `${where}: is ${pair.out}x${pair.in}, the model's projection is ${want.out}x${want.in}`,
        );
      if (pair.a.length !== rank * pair.in)
        problems.push(`${where}: A has ${pair.a.length} values, not ${rank}x${pair.in}`);
      if (pair.b.length !== pair.out * rank)
        problems.push(`${where}: B has ${pair.b.length} values, not ${pair.out}x${rank}`);
      if (!pair.a.every(Number.isFinite) || !pair.b.every(Number.isFinite))
        problems.push(`${where}: holds NaN or infinite values`);
    }
  });
  if (problems.length > 0) {
    const shown =
      problems.slice(0, 6).join("; ") + (problems.length > 6 ? `; and ${problems.length - 6} more` : "");
    throw new InputError(`LoRA adapter does not fit the model: ${shown}`, {
      hint: "was the adapter trained for this base model?",
    });
  }
}

/** Every (layer, target, pair) of an adapter, in layer then LORA_TARGETS order. */
export function* loraEntries(
  lora: LoraWeights,
): Generator<[layer: number, target: LoraTarget, pair: LoraPair]> {
  for (let i = 0; i < lora.layers.length; i++)
    for (const t of LORA_TARGETS) {
      const pair = lora.layers[i][t];
      if (pair) yield [i, t, pair];
    }
}

export interface RandomLoraOptions {
  seed: number;
  /** Standard deviation of A's entries (default 1 / sqrt(in), roughly PEFT's Kaiming init). */
  stdA?: number;
  /** Standard deviation of B's entries; PEFT starts B at 0, tests want it non-zero (default 0). */
  stdB?: number;
}

/** An adapter with seeded normal A and B for every layer and every target in `config.targets`. */
export function createRandomLora(spec: ModelSpec, config: LoraConfig, opts: RandomLoraOptions): LoraWeights {
  const rng = new Rng(opts.seed);
  const layers: LoraWeights["layers"] = [];
  for (let i = 0; i < spec.numLayers; i++) {
    const layer: Partial<Record<LoraTarget, LoraPair>> = {};
    for (const t of LORA_TARGETS) {
      if (!config.targets.includes(t)) continue;
      const { in: n, out } = targetShape(spec, t);
      const stdA = opts.stdA ?? 1 / Math.sqrt(n);
      const stdB = opts.stdB ?? 0;
      const a = new Float32Array(config.rank * n);
      const b = new Float32Array(out * config.rank);
      for (let j = 0; j < a.length; j++) a[j] = rng.normal() * stdA;
      if (stdB !== 0) for (let j = 0; j < b.length; j++) b[j] = rng.normal() * stdB;
      layer[t] = { a, b, in: n, out };
    }
    layers.push(layer);
  }
  return { config: { ...config, targets: [...config.targets] }, layers };
}

/**
 * w += scale * B A in place, w row-major [out, in]. Each row of B A is accumulated in float64 and added to w
 * before rounding, so a merge rounds once per weight.
 */
export function addLoraDelta(w: Float32Array, pair: LoraPair, rank: number, scale: number): Float32Array {
  const { a, b, in: n, out } = pair;
  if (w.length !== out * n)
    throw new InputError(`weight has ${w.length} values, the LoRA pair is ${out}x${n}`);
  const row = new Float64Array(n);
  for (let o = 0; o < out; o++) {
    row.fill(0);
    for (let r = 0; r < rank; r++) {
      const coef = b[o * rank + r];
      if (coef === 0) continue;
      const off = r * n;
      for (let i = 0; i < n; i++) row[i] += coef * a[off + i];
    }
    const base = o * n;
    for (let i = 0; i < n; i++) w[base + i] = w[base + i] + row[i] * scale;
  }
  return w;
}

/** scale * B A as a new row-major [out, in] array. */
export function loraDelta(pair: LoraPair, rank: number, scale: number): Float32Array {
  return addLoraDelta(new Float32Array(pair.out * pair.in), pair, rank, scale);
}
