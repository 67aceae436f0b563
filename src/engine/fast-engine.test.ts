// The engine on the fast WebAssembly kernels (weights and activations in their heap, attention as matrix
// products) against the same engine on the reference kernels: forward logits, log-probs, KV-cached decoding,
// and a LoRA training step's loss and gradients (the cases are in ./kernel-check.ts).

import { test } from "node:test";
import { getFastKernels } from "./kernels/fast.js";
import {
  checkDecodeAgainstReference,
  checkForwardAgainstReference,
  checkLoraStepAgainstReference,
} from "./kernel-check.js";

const fast = getFastKernels();
test.before(async () => fast.init({ threads: 2 }));
test.after(async () => fast.dispose());

test("fast kernels: forward logits and log-probs equal the reference kernels' (< 1e-4)", () => {
  checkForwardAgainstReference(fast);
});

test("fast kernels: KV-cached decoding (cache in the heap) equals the reference", () => {
  checkDecodeAgainstReference(fast);
});

test("fast kernels: a LoRA training step's loss and gradients equal the reference's", () => {
  checkLoraStepAgainstReference(fast);
});

test("fast kernels: no pass reads an activation it did not write (uninitialized blocks filled with NaN)", () => {
  fast.poisonUninit = true;
  try {
    checkForwardAgainstReference(fast);
    checkDecodeAgainstReference(fast);
    checkLoraStepAgainstReference(fast);
  } finally {
    fast.poisonUninit = false;
  }
});
