// Public surface of the models folder: the LanguageModel interface and types, the test-model factory, model
// references (parse, download, open) and the backends.

export * from "./types.js";
export * from "./factory.js";
export * from "./refs.js";
export * from "./requests.js";
export * from "./llamacpp/index.js";
export { createNativeModel, type NativeModelOptions } from "./native/index.js";
