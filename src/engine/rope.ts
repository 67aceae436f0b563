// Rotary position embeddings exactly as llama.cpp applies them: which pairs rotate (per architecture),
// the angle table (theta, linear scaling, Llama-3 frequency factors), and the rotation and its transpose.

import type { ModelArch, ModelSpec } from "../formats/model-spec.js";
import { UnavailableError } from "../util/errors.js";
import type { FArray } from "./numerics.js";

/**
 * "normal": adjacent pairs (2i, 2i+1) rotate together, llama.cpp's LLAMA_ROPE_TYPE_NORM (llama, mistral).
 * GGUF q/k rows of llama models are permuted by the converter to make this equal to HF's rotate_half.
 * "neox": pairs (i, i + headDim/2), LLAMA_ROPE_TYPE_NEOX (qwen2), with unpermuted weights.
 */
export type RopeMode = "normal" | "neox";

export function ropeModeFor(arch: ModelArch): RopeMode {
  return arch === "qwen2" ? "neox" : "normal";
}

const fround = Math.fround;

/**
 * Llama-3 frequency factors (what convert_hf_to_gguf stores as rope_freqs.weight): wavelengths shorter than
 * originalContext/highFreqFactor keep their frequency, longer than originalContext/lowFreqFactor are divided
 * by `factor`, and the band between is interpolated smoothly.
 */
export function llama3RopeFactors(spec: ModelSpec): Float32Array {
  const rs = spec.ropeScaling;
  if (rs?.type !== "llama3") throw new Error("llama3RopeFactors needs a llama3 rope scaling spec");
  const factor = rs.factor;
  const low = rs.lowFreqFactor ?? 1;
  const high = rs.highFreqFactor ?? 4;
  const oldCtx = rs.originalContextLength ?? 8192;
  const lowWavelen = oldCtx / low;
  const highWavelen = oldCtx / high;
  const half = spec.headDim / 2;
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const freq = 1 / Math.pow(spec.ropeTheta, (2 * i) / spec.headDim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = factor;
    else {
      const smooth = (oldCtx / wavelen - low) / (high - low);
      out[i] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return out;
}

/**
 * cos/sin of every (position, frequency) pair, grown on demand. Angles follow ggml's float32 recurrence
 * (theta_i = p * base^(-2i/d), by repeated multiplication), so they match llama.cpp to the last bit or two.
 */
export class RopeTable {
  readonly mode: RopeMode;
  readonly half: number;
  private readonly thetaScale: number;
  private readonly freqScale: number;
  private readonly factors: Float32Array | undefined;
  cos = new Float32Array(0);
  sin = new Float32Array(0);
  positions = 0;

  constructor(spec: ModelSpec, freqFactors?: Float32Array) {
    this.mode = ropeModeFor(spec.arch);
    this.half = spec.headDim / 2;
    this.thetaScale = fround(Math.pow(spec.ropeTheta, fround(-2 / spec.headDim)));
    const rs = spec.ropeScaling;
    if (rs?.type === "yarn") {
      throw new UnavailableError("YaRN rope scaling is not implemented in buckle's engine yet", {
        hint: "use a model without rope scaling, or with linear or llama3 scaling",
      });
    }
    this.freqScale = rs?.type === "linear" ? fround(1 / rs.factor) : 1;
    this.factors = freqFactors ?? (rs?.type === "llama3" ? llama3RopeFactors(spec) : undefined);
    if (this.factors && this.factors.length < this.half) {
      throw new UnavailableError(
        `rope frequency factors have ${this.factors.length} values, need ${this.half}`,
      );
    }
  }

  /** Make positions [0, n) available. */
  ensure(n: number): void {
    if (n <= this.positions) return;
    const size = Math.max(n, this.positions * 2, 64);
    const half = this.half;
    const cos = new Float32Array(size * half);
    const sin = new Float32Array(size * half);
    for (let p = 0; p < size; p++) {
      let theta = p;
      for (let i = 0; i < half; i++) {
        const ff = this.factors ? this.factors[i] : 1;
        const angle = fround(this.freqScale * fround(theta / ff));
        cos[p * half + i] = Math.cos(angle);
        sin[p * half + i] = Math.sin(angle);
        theta = fround(theta * this.thetaScale);
      }
    }
    this.cos = cos;
    this.sin = sin;
    this.positions = size;
  }
}

/**
 * Rotate every head of x[n, heads*headDim] in place, row i at position positions[i].
 * inverse = true applies the transpose (sin negated): the backward pass of the rotation.
 */
export function applyRope(
  x: FArray,
  n: number,
  heads: number,
  headDim: number,
  positions: Int32Array,
  table: RopeTable,
  inverse = false,
): void {
  const half = headDim / 2;
  const sign = inverse ? -1 : 1;
  // normal mode pairs (2i, 2i+1); neox pairs (i, i+half). Both use frequency i.
  const stride = table.mode === "normal" ? 2 : 1;
  const offset = table.mode === "normal" ? 1 : half;
  for (let r = 0; r < n; r++) {
    const t = positions[r] * half;
    for (let h = 0; h < heads; h++) {
      const base = (r * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const c = table.cos[t + i];
        const s = sign * table.sin[t + i];
        const a = base + i * stride;
        const x0 = x[a];
        const x1 = x[a + offset];
        x[a] = x0 * c - x1 * s;
        x[a + offset] = x0 * s + x1 * c;
      }
    }
  }
}
