// Public surface of the llamacpp backend: createLlamaCppModel and its options, plus the request -> token ids
// helpers every backend can share so that all of them condition on and score the same tokens.

export { createLlamaCppModel, type LlamaCppAdapter, type LlamaCppOptions } from "./backend.js";
export { fileIdentity, type GpuSetting } from "./runtime.js";
