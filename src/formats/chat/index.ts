// Entry point for chat formatting: templates (model-supplied, built-in, fallback) and the token spans
// of each message that training and evaluation use to mask or score assistant answers.

export {
  ChatTemplate,
  type ChatMessage,
  type ChatRole,
  type ChatTemplateOptions,
  type RenderOptions,
} from "./template.js";
export {
  FALLBACK_TEMPLATE_NAME,
  FALLBACK_TEMPLATE_SOURCE,
  builtinTemplates,
  isBuiltinTemplateName,
  templateForVocab,
  type BuiltinTemplateName,
} from "./builtin.js";
export {
  encodeChatPrompt,
  renderWithSpans,
  tokenizeChat,
  type AssistantSpan,
  type ChatSpans,
  type MessageSpan,
  type SpanOptions,
} from "./spans.js";
