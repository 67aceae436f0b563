// Test support: the tiny factory model the tests share (llama, hidden 64, 2 layers, 4 heads, 2 KV heads, FFN 128,
// the built-in llama-spm vocabulary), as createRandomModel options with any field overridden.

import type { RandomModelOptions } from "../models/factory.js";

/** The tiny model's options for `seed`, with `over` on top (e.g. initStd, dtype, or another arch and vocab). */
export function tinyModelOptions(seed: number, over: Partial<RandomModelOptions> = {}): RandomModelOptions {
  return {
    arch: "llama",
    vocab: "builtin:llama-spm",
    hiddenSize: 64,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    intermediateSize: 128,
    seed,
    ...over,
  };
}
