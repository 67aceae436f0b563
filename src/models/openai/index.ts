// Entry point of the OpenAI-compatible HTTP backend (vLLM, llama.cpp's llama-server, Ollama, OpenAI).
// createOpenAIModel() gives a LanguageModel; BatchError carries finished results when some requests fail.

export {
  createOpenAIModel,
  noPromptLogprobsError,
  OpenAIModel,
  type LogprobsMode,
  type OpenAIModelOptions,
  type ServerKind,
  type ServerStats,
} from "./model.js";
export { BatchError } from "./errors.js";
