// Chat templates written for buckle: the fallback used when a model ships none, and a few well-known
// prompt formats by family name, so that test models built from a bare vocabulary can embed a fitting one.

/**
 * The template used when a model has no chat template of its own: ChatML turns,
 * `<|im_start|>{role}\n{content}<|im_end|>\n`, and `<|im_start|>assistant\n` as the generation prompt.
 * ChatML is chosen because its markers are unambiguous and many instruction-tuned models know it;
 * a vocabulary without `<|im_start|>`/`<|im_end|>` tokens still works, it just spells them as text.
 * A template built from it reports `isFallback === true` and the name {@link FALLBACK_TEMPLATE_NAME}.
 */
export const FALLBACK_TEMPLATE_NAME = "buckle-fallback-chatml";

const CHATML = `{%- for message in messages -%}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\\n' -}}
{%- endif -%}`;

export const FALLBACK_TEMPLATE_SOURCE = CHATML;

// Llama 2 chat: the system prompt sits inside the first [INST] block between <<SYS>> markers;
// every exchange is its own BOS ... EOS sequence.
const LLAMA2 = `{%- set ns = namespace(system=none, placed=false) -%}
{%- if messages | length > 0 and messages[0].role == 'system' -%}
{%- set ns.system = messages[0].content -%}
{%- endif -%}
{%- for message in messages -%}
{%- if message.role == 'user' -%}
{{- bos_token + '[INST] ' -}}
{%- if ns.system is not none and not ns.placed -%}
{{- '<<SYS>>\\n' + ns.system + '\\n<</SYS>>\\n\\n' -}}
{%- set ns.placed = true -%}
{%- endif -%}
{{- message.content + ' [/INST]' -}}
{%- elif message.role == 'assistant' -%}
{{- ' ' + message.content + ' ' + eos_token -}}
{%- elif not loop.first -%}
{{- raise_exception('the llama2 format allows a system message only as the first message') -}}
{%- endif -%}
{%- endfor -%}`;

// Llama 3 instruct: header-delimited turns, each closed by <|eot_id|>.
const LLAMA3 = `{{- bos_token -}}
{%- for message in messages -%}
{{- '<|start_header_id|>' + message.role + '<|end_header_id|>\\n\\n' + message.content + '<|eot_id|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
{%- endif -%}`;

// Mistral instruct (v0.1/v0.2 layout): one BOS, [INST] blocks, answers closed by EOS.
// It has no system role, so system text is prepended to the next user message.
const MISTRAL = `{{- bos_token -}}
{%- set ns = namespace(system='') -%}
{%- for message in messages -%}
{%- if message.role == 'system' -%}
{%- set ns.system = ns.system + message.content + '\\n\\n' -%}
{%- elif message.role == 'user' -%}
{{- '[INST] ' + ns.system + message.content + ' [/INST]' -}}
{%- set ns.system = '' -%}
{%- else -%}
{{- message.content + eos_token -}}
{%- endif -%}
{%- endfor -%}`;

// Phi-3: <|role|> headers and <|end|> after every turn.
const PHI3 = `{%- for message in messages -%}
{{- '<|' + message.role + '|>\\n' + message.content + '<|end|>\\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|assistant|>\\n' -}}
{%- endif -%}`;

// Zephyr: <|role|> headers, every turn closed by the EOS token text.
const ZEPHYR = `{%- for message in messages -%}
{{- '<|' + message.role + '|>\\n' + message.content + eos_token + '\\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|assistant|>\\n' -}}
{%- endif -%}`;

/** Jinja sources of the prompt formats buckle knows by name (written for buckle, not copied from models). */
export const builtinTemplates = {
  chatml: CHATML,
  llama2: LLAMA2,
  llama3: LLAMA3,
  mistral: MISTRAL,
  phi3: PHI3,
  zephyr: ZEPHYR,
} as const satisfies Record<string, string>;

export type BuiltinTemplateName = keyof typeof builtinTemplates;

export function isBuiltinTemplateName(name: string): name is BuiltinTemplateName {
  return Object.prototype.hasOwnProperty.call(builtinTemplates, name);
}

/**
 * The built-in format that suits a built-in vocabulary (see `builtin:<name>` in vocabs.ts): the one whose
 * markers are that vocabulary's special tokens. Unknown vocabularies get ChatML.
 */
export function templateForVocab(vocabName: string): BuiltinTemplateName {
  switch (vocabName) {
    case "llama-spm":
      return "llama2";
    case "phi-3":
      return "phi3";
    case "llama-bpe":
      return "llama3";
    case "qwen2":
      return "chatml";
    default:
      return "chatml";
  }
}
