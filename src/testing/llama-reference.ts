// Test support for comparing against real llama.cpp (node-llama-cpp): full logits per position with the settings
// that make llama.cpp a tight reference, and the largest absolute difference between two sets of values.

import assert from "node:assert/strict";
import type { ControlledEvaluateInputItem, LlamaModel, Token } from "node-llama-cpp";

export interface LlamaCppLogitsOptions {
  /** Vocabulary size: every returned row must hold a logit for each token. */
  vocab: number;
  contextSize: number;
  /** Positions (of `n` tokens) whose logits are returned, in order; default all. */
  positions?: (i: number, n: number) => boolean;
  /** A GGUF LoRA adapter applied at scale 1. */
  loraPath?: string;
}

/**
 * Logits after each selected position of `tokens`, from llama.cpp on one thread with an F32 KV cache and flash
 * attention off: with either the f16 cache or the CPU flash-attention kernel, llama.cpp itself moves logits by up
 * to ~3e-3 (measured), which would hide small errors. The context is disposed again; the model is the caller's.
 */
export async function llamaCppLogits(
  model: LlamaModel,
  tokens: readonly number[],
  options: LlamaCppLogitsOptions,
): Promise<Float32Array[]> {
  const { vocab, contextSize, loraPath } = options;
  const wanted = options.positions ?? (() => true);
  const ctx = await model.createContext({
    contextSize,
    threads: 1,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
    ...(loraPath ? { lora: { adapters: [{ filePath: loraPath }] } } : {}),
  });
  try {
    const n = tokens.length;
    const res = await ctx
      .getSequence()
      .controlledEvaluate(
        tokens.map((t, i): ControlledEvaluateInputItem =>
          wanted(i, n) ? [t as Token, { generateNext: { logits: true } }] : (t as Token),
        ),
      );
    const rows: Float32Array[] = [];
    for (let i = 0; i < n; i++) {
      if (!wanted(i, n)) continue;
      const map = res[i]?.next?.logits;
      assert.ok(map && map.size === vocab, `no full logits at position ${i}`);
      const row = new Float32Array(vocab);
      for (const [t, v] of map) row[t] = v;
      rows.push(row);
    }
    return rows;
  } finally {
    await ctx.dispose();
  }
}

/** Values, or rows of values (logits per position). */
export type Values = ArrayLike<number> | readonly ArrayLike<number>[];

/** max |a[i] - b[i]| (0 when empty); asserts that both have the same shape, row by row. */
export function maxAbsDiff(a: Values, b: Values): number {
  assert.equal(a.length, b.length, "maxAbsDiff: lengths differ");
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (typeof x === "number" || typeof y === "number") {
      assert.ok(typeof x === "number" && typeof y === "number", "maxAbsDiff: a row against a number");
      m = Math.max(m, Math.abs(x - y));
    } else m = Math.max(m, maxAbsDiff(x, y));
  }
  return m;
}
