// The revision prompts sent to the reviser (our own wording) and their renderer: a template with {{query}},
// {{response}} and {{phrases}} placeholders becomes the user message of a one-turn chat.

import { InputError } from "../util/errors.js";

/** Buckle Up: rewrite from a different perspective, with the four guidelines and a few seed phrases. */
export const BUCKLE_UP_TEMPLATE = `Below is a question and an answer to it. Rewrite the answer from a different perspective.

Guidelines for the rewrite:
1. Keep every piece of information the original answer gives.
2. Work in some of these words or phrases where they fit naturally: {{phrases}}.
3. Add new ideas that make the content richer.
4. Be informative, responsible and knowledgeable.

Reply with the rewritten answer only, without any introduction or comment.

Question:
{{query}}

Original answer:
{{response}}`;

/** CTRL-2024: present an alternative perspective; no seed phrases. */
export const CTRL_2024_TEMPLATE = `Below is a question and an answer to it. Revise the answer so that it presents an alternative perspective while staying correct and helpful.

Reply with the revised answer only, without any introduction or comment.

Question:
{{query}}

Original answer:
{{response}}`;

const PLACEHOLDER = /\{\{\s*([a-zA-Z_]+)\s*\}\}/g;
const KNOWN = new Set(["query", "response", "phrases"]);

/** Check a revision template: only known placeholders, and {{response}} must be there. */
export function checkRevisionTemplate(template: string): void {
  const names = [...template.matchAll(PLACEHOLDER)].map((m) => m[1]);
  const unknown = names.filter((n) => !KNOWN.has(n));
  if (unknown.length > 0)
    throw new InputError(`revision template: unknown placeholder {{${unknown[0]}}}`, {
      hint: "use {{query}}, {{response}} and {{phrases}} only",
    });
  if (!names.includes("response"))
    throw new InputError("revision template: {{response}} is missing", {
      hint: "the reviser must see the text it revises; put {{response}} in the template",
    });
}

/** Render the phrases as a comma-separated list, quoted ("a", "b", "c") by default or plain (a, b, c). */
export function formatPhrases(phrases: readonly string[], style: "quoted" | "plain" = "quoted"): string {
  return phrases.map((p) => (style === "plain" ? p : `"${p}"`)).join(", ");
}

/** Fill a revision template. Placeholders are replaced in one pass, so a value containing "{{x}}" stays literal. */
export function renderRevisionPrompt(
  template: string,
  values: { query: string; response: string; phrases: readonly string[] },
  phraseStyle: "quoted" | "plain" = "quoted",
): string {
  return template.replace(PLACEHOLDER, (whole, name: string) => {
    if (name === "query") return values.query;
    if (name === "response") return values.response;
    if (name === "phrases") return formatPhrases(values.phrases, phraseStyle);
    return whole;
  });
}
