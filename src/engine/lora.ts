// LoRA adapters: shapes per target, PEFT-style seeded initialisation, the alpha/rank scale, gradient buffers,
// and the seeded dropout masks; the forward/backward of an adapted projection live in model.ts.

import type { ModelSpec } from "../formats/model-spec.js";
import { InputError } from "../util/errors.js";
import { Rng } from "../util/random.js";
import type { FArray } from "./numerics.js";
import { LORA_TARGETS, type LoraConfig, type LoraPair, type LoraTarget, type LoraWeights } from "./types.js";

/** [in, out] of a projection, as torch.nn.Linear(in, out). */
export function loraTargetShape(spec: ModelSpec, target: LoraTarget): { in: number; out: number } {
  const h = spec.hiddenSize;
  const qDim = spec.numHeads * spec.headDim;
  const kvDim = spec.numKvHeads * spec.headDim;
  const f = spec.intermediateSize;
  switch (target) {
    case "q_proj":
      return { in: h, out: qDim };
    case "k_proj":
    case "v_proj":
      return { in: h, out: kvDim };
    case "o_proj":
      return { in: qDim, out: h };
    case "gate_proj":
    case "up_proj":
      return { in: h, out: f };
    case "down_proj":
      return { in: f, out: h };
  }
}

/** PEFT's scaling: alpha / rank. */
export function loraScale(config: LoraConfig): number {
  return config.alpha / config.rank;
}

/** Mix integers into a 32-bit seed (for independent, reproducible random streams). */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

export function validateLoraConfig(config: LoraConfig): void {
  if (!Number.isInteger(config.rank) || config.rank <= 0) {
    throw new InputError(`LoRA rank must be a positive integer, got ${config.rank}`);
  }
  if (!(config.dropout >= 0 && config.dropout < 1)) {
    throw new InputError(`LoRA dropout must be in [0, 1), got ${config.dropout}`);
  }
  if (config.targets.length === 0) throw new InputError("LoRA needs at least one target projection");
  for (const t of config.targets) {
    if (!LORA_TARGETS.includes(t)) {
      throw new InputError(`unknown LoRA target "${t}"`, { hint: `use some of ${LORA_TARGETS.join(", ")}` });
    }
  }
}

/**
 * Fresh adapters like PEFT: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with a = sqrt(5)), B = 0,
 * so the adapted model starts equal to the base model. Each factor's stream depends on (seed, layer, target).
 */
export function createLora(spec: ModelSpec, config: LoraConfig, seed: number): LoraWeights {
  validateLoraConfig(config);
  const layers: LoraWeights["layers"] = [];
  for (let l = 0; l < spec.numLayers; l++) {
    const layer: Partial<Record<LoraTarget, LoraPair>> = {};
    for (const target of config.targets) {
      const { in: inDim, out } = loraTargetShape(spec, target);
      const rng = new Rng(mixSeed(seed, l, LORA_TARGETS.indexOf(target)));
      const bound = 1 / Math.sqrt(inDim);
      const a = new Float32Array(config.rank * inDim);
      for (let i = 0; i < a.length; i++) a[i] = (rng.next() * 2 - 1) * bound;
      layer[target] = { a, b: new Float32Array(out * config.rank), in: inDim, out };
    }
    layers.push(layer);
  }
  return { config: { ...config, targets: [...config.targets] }, layers };
}

/** A deep copy (snapshots for tests, checkpoints). */
export function cloneLora(lora: LoraWeights): LoraWeights {
  return {
    config: { ...lora.config, targets: [...lora.config.targets] },
    layers: lora.layers.map((layer) => {
      const copy: Partial<Record<LoraTarget, LoraPair>> = {};
      for (const [t, p] of Object.entries(layer) as [LoraTarget, LoraPair][]) {
        copy[t] = { a: p.a.slice(), b: p.b.slice(), in: p.in, out: p.out };
      }
      return copy;
    }),
  };
}

/** Gradients of every adapted factor, same layout as LoraPair.a / .b. */
export interface LoraGradPair {
  a: FArray;
  b: FArray;
}
export interface LoraGrads {
  layers: Partial<Record<LoraTarget, LoraGradPair>>[];
}

export function zeroLoraGrads(lora: LoraWeights, alloc: (n: number) => FArray): LoraGrads {
  return {
    layers: lora.layers.map((layer) => {
      const g: Partial<Record<LoraTarget, LoraGradPair>> = {};
      for (const [t, p] of Object.entries(layer) as [LoraTarget, LoraPair][]) {
        g[t] = { a: alloc(p.a.length), b: alloc(p.b.length) };
      }
      return g;
    }),
  };
}

/**
 * Inverted dropout mask for n values: 1 keeps (the kept value is scaled by 1/(1-p) by the caller), 0 drops.
 * Seeded, so a resumed run and a finite-difference check see the same masks.
 */
export function dropoutMask(n: number, p: number, seed: number): Uint8Array {
  const mask = new Uint8Array(n);
  const rng = new Rng(seed);
  for (let i = 0; i < n; i++) mask[i] = rng.next() >= p ? 1 : 0;
  return mask;
}
