// Fencing of untrusted text inside judge prompts, and reading a judge's "#field: value" verdict lines.
// Fences carry a nonce derived from the fenced text itself, so an answer can never spell its own closing fence.

import { contentKey } from "../store/index.js";

/** The markers of one rendered judge prompt; `nonce` is 16 hex digits no fenced text can predict. */
export interface Fence {
  nonce: string;
  open(label: string): string;
  close(label: string): string;
}

/**
 * A fence for the given untrusted texts. The nonce is a hash of the texts (deterministic, so cached judge calls
 * hit again on resume); an attacker would need a hash fixed point to write the closing marker into their answer.
 */
export function fenceFor(...untrusted: string[]): Fence {
  const nonce = contentKey("judge-fence", ...untrusted).slice(0, 16);
  return {
    nonce,
    open: (label) => `<<<BEGIN ${label} ${nonce}>>>`,
    close: (label) => `<<<END ${label} ${nonce}>>>`,
  };
}

/**
 * Untrusted text as it goes between fences: runs of three or more angle brackets are broken up so the text
 * cannot even look like one of our markers to the judge model.
 */
export function escapeUntrusted(text: string): string {
  return text.replace(/<{3,}/g, (m) => m.split("").join(" ")).replace(/>{3,}/g, (m) => m.split("").join(" "));
}

/** `text` between the open and close markers of `label`. */
export function fenced(fence: Fence, label: string, text: string): string {
  return `${fence.open(label)}\n${escapeUntrusted(text)}\n${fence.close(label)}`;
}

/** Fill `{{name}}` placeholders; every placeholder must be given (a typo in a template fails loudly). */
export function fillTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`judge template placeholder {{${name}}} has no value`);
    return value;
  });
}

/**
 * The judge's output with every fenced region removed: a judge model that echoes its prompt (and with it the
 * answer under judgement) must not have the answer's fake verdict lines read as its own. An opening marker
 * without its closing marker removes everything after it.
 */
export function stripFenced(output: string, fence: Fence): string {
  const open = new RegExp(`<<<BEGIN [A-Z ]+ ${fence.nonce}>>>`, "g");
  let kept = "";
  let at = 0;
  for (;;) {
    open.lastIndex = at;
    const m = open.exec(output);
    if (!m) return kept + output.slice(at);
    kept += output.slice(at, m.index);
    const label = m[0].slice("<<<BEGIN ".length, -(fence.nonce.length + 4));
    const closeMarker = fence.close(label);
    const end = output.indexOf(closeMarker, m.index + m[0].length);
    if (end < 0) return kept;
    at = end + closeMarker.length;
  }
}

/**
 * The `#name: value` lines of a judge output (names lower-cased, every value kept in order). Tolerates markdown
 * emphasis, bullets, and spaces around the colon.
 */
export function readFields(output: string): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  const line = /^[\s*_>`-]*#\s*([a-z_]+)\s*[*_`]*\s*[:=]\s*[*_`]*\s*(.*)$/gim;
  for (const m of output.matchAll(line)) {
    const name = m[1].toLowerCase();
    const value = m[2].replace(/[*_`]+\s*$/, "").trim();
    const list = fields.get(name) ?? [];
    list.push(value);
    fields.set(name, list);
  }
  return fields;
}

/** One number from a field value within [lo, hi] ("4", "4/5", "4.", "**4** (mostly safe)"), or undefined. */
export function numberIn(value: string, lo: number, hi: number, fractional = false): number | undefined {
  const m = /^[*_`([]*\s*(-?\d+(?:\.\d+)?)/.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  if (!Number.isFinite(n) || n < lo || n > hi) return undefined;
  if (!fractional && !Number.isInteger(n)) return undefined;
  return n;
}

/**
 * The field's number: values that are not numbers in range are ignored (a judge restating the format line);
 * undefined when none is left or when two disagree (ambiguous: never guess a verdict).
 */
export function readNumber(
  fields: Map<string, string[]>,
  name: string,
  lo: number,
  hi: number,
  fractional = false,
): number | undefined {
  const numbers = new Set<number>();
  for (const v of fields.get(name) ?? []) {
    const n = numberIn(v, lo, hi, fractional);
    if (n !== undefined) numbers.add(n);
  }
  return numbers.size === 1 ? [...numbers][0] : undefined;
}
