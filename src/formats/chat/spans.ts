// Exact token spans of each message in a rendered chat, so that training can put loss on assistant answers
// (and their end-of-turn markers) and evaluation can score responses, without guessing where a turn begins.
//
// Span boundary rule (tokens never line up with characters exactly):
// - Every token is first aligned to the byte range of the rendered text it stands for. Tokenizers add bytes
//   that are not in the text (the SentencePiece space prefix after a special token: "[INST]" + "Hi" gives
//   "▁Hi") and drop some that are (whitespace eaten by special tokens with rstrip, as Phi-3's "<|end|>\n");
//   the alignment allows both. A token made only of added bytes (a lone "▁") goes with the token after it.
//   BOS tokens the tokenizer adds in front of the text come before everything.
// - Content: a token belongs to a message's content if its bytes overlap the content's bytes. A token that
//   straddles the start ("▁Hello" whose space the template wrote) or the end of the content is content.
// - Message boundary (where the next message's rendering starts): a token that straddles it belongs to the
//   later message. turnEnd (end of the message) never falls before contentEnd.
// - Spans never overlap; non-empty content always has at least one token (else an error is thrown).

import { InputError } from "../../util/errors.js";
import type { Tokenizer } from "../tokenizer/types.js";
import type { ChatMessage, ChatTemplate } from "./template.js";

export interface MessageSpan {
  role: ChatMessage["role"];
  /** The message's part of the text: [charStart, charEnd) in UTF-16 units; message 0 starts at 0. */
  charStart: number;
  charEnd: number;
  /** The message's tokens, [tokenStart, tokenEnd); message 0 includes any BOS the tokenizer adds. */
  tokenStart: number;
  tokenEnd: number;
  /** Where the content sits in `text` (after any whitespace trimming the template does). */
  contentCharStart: number;
  contentCharEnd: number;
  /** The content's tokens, [contentStart, contentEnd), under the boundary rule above. */
  contentStart: number;
  contentEnd: number;
}

export interface AssistantSpan {
  messageIndex: number;
  /** Tokens [contentStart, contentEnd) are the answer; [contentEnd, turnEnd) the template's end of turn. */
  contentStart: number;
  contentEnd: number;
  turnEnd: number;
}

export interface ChatSpans {
  text: string;
  ids: number[];
  messages: MessageSpan[];
  assistantSpans: AssistantSpan[];
}

export interface SpanOptions {
  /** Render the opening of a new assistant turn after the last message. Default false. */
  addGenerationPrompt?: boolean;
}

/**
 * Render `messages`, tokenize the text once and report where every message, and every assistant answer and
 * its end-of-turn tokens, lie. Throws InputError naming the template when the template rewrites a message's
 * content (other than trimming whitespace), repeats it, drops it, or moves it out of order.
 */
export function renderWithSpans(
  template: ChatTemplate,
  messages: readonly ChatMessage[],
  tokenizer: Tokenizer,
  options: SpanOptions = {},
): ChatSpans {
  const addGenerationPrompt = options.addGenerationPrompt ?? false;
  const layout = locateMessages(template, messages, addGenerationPrompt);
  const { text } = layout;
  const { ids, added } = tokenizeChat(text, tokenizer);
  const align = alignTokens(text, ids, tokenizer, added, template.name);
  const toByte = charToByteTable(text);
  const n = messages.length;

  const spans: MessageSpan[] = [];
  let prevTurnEnd = 0;
  let prevCharEnd = 0;
  for (let i = 0; i < n; i++) {
    const cStart = layout.contentStart[i];
    const cEnd = layout.contentEnd[i];
    let contentStart = floorIndex(align, toByte[cStart]);
    if (cEnd === cStart) contentStart = Math.max(contentStart, prevTurnEnd);
    let contentEnd = cEnd > cStart ? ceilIndex(align, toByte[cEnd]) : contentStart;
    if (contentStart < prevTurnEnd) {
      throw new InputError(
        `chat template "${template.name}": messages ${i - 1} and ${i} share a token (${describeToken(tokenizer, ids[contentStart])}); ` +
          "the template puts nothing that separates their texts",
      );
    }
    if (cEnd > cStart && contentEnd <= contentStart) {
      throw new InputError(
        `chat template "${template.name}": message ${i} (${messages[i].role}) has content but no tokens of its own ` +
          "(the tokenizer dropped it, e.g. whitespace swallowed by a special token)",
      );
    }
    contentEnd = Math.max(contentEnd, contentStart);
    const boundary = layout.boundaries[i];
    const turnEnd = Math.max(floorIndex(align, toByte[boundary]), contentEnd);
    // Keep characters and tokens in step: a token straddling the boundary moved to the next message.
    let charEnd = boundary;
    if (turnEnd < ids.length && align.starts[turnEnd] < toByte[boundary]) {
      charEnd = Math.max(cEnd, byteToChar(toByte, Math.max(0, align.starts[turnEnd])));
    }
    spans.push({
      role: messages[i].role,
      charStart: prevCharEnd,
      charEnd,
      tokenStart: prevTurnEnd,
      tokenEnd: turnEnd,
      contentCharStart: cStart,
      contentCharEnd: cEnd,
      contentStart,
      contentEnd,
    });
    prevTurnEnd = turnEnd;
    prevCharEnd = charEnd;
  }
  const assistantSpans: AssistantSpan[] = [];
  spans.forEach((s, i) => {
    if (s.role === "assistant") {
      assistantSpans.push({
        messageIndex: i,
        contentStart: s.contentStart,
        contentEnd: s.contentEnd,
        turnEnd: s.tokenEnd,
      });
    }
  });
  return { text, ids, messages: spans, assistantSpans };
}

/** Token ids of the prompt for generating the next assistant turn (template with its generation prompt). */
export function encodeChatPrompt(
  template: ChatTemplate,
  messages: readonly ChatMessage[],
  tokenizer: Tokenizer,
): number[] {
  return tokenizeChat(template.render(messages, { addGenerationPrompt: true }), tokenizer).ids;
}

/**
 * Tokenize rendered chat text: special-token texts become special tokens, and the tokenizer's leading
 * specials (BOS, when the vocabulary asks for one) are added only when the text does not already begin
 * with them, since many templates write `bos_token` themselves and a doubled BOS hurts the model.
 * A trailing EOS that a vocabulary may add is not added: chat text ends where the template says.
 * `added` is how many tokens were put in front.
 */
export function tokenizeChat(text: string, tokenizer: Tokenizer): { ids: number[]; added: number } {
  const body = tokenizer.encode(text, { addSpecial: false, parseSpecial: true });
  const lead = leadingSpecials(tokenizer);
  if (lead.length === 0 || lead.every((id, k) => body[k] === id)) return { ids: body, added: 0 };
  return { ids: [...lead, ...body], added: lead.length };
}

const leadCache = new WeakMap<Tokenizer, readonly number[]>();

// What addSpecial puts in front, found by asking the tokenizer rather than reading vocabulary flags, so
// the tokenizer's own defaults (add_bos_token absent from the GGUF, ...) are respected.
function leadingSpecials(tokenizer: Tokenizer): readonly number[] {
  const cached = leadCache.get(tokenizer);
  if (cached) return cached;
  const withSpecial = tokenizer.encode("a", { addSpecial: true, parseSpecial: false });
  const plain = tokenizer.encode("a", { addSpecial: false, parseSpecial: false });
  let lead: number[] = [];
  for (let o = 0; o + plain.length <= withSpecial.length; o++) {
    if (plain.every((id, k) => withSpecial[o + k] === id)) {
      lead = withSpecial.slice(0, o);
      break;
    }
  }
  leadCache.set(tokenizer, lead);
  return lead;
}

/** Byte range [starts[k], ends[k]) of the rendered text that token k stands for (UTF-8 offsets). */
export interface TokenAlignment {
  starts: Int32Array;
  ends: Int32Array;
}

const encoder = new TextEncoder();

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

function matchesAt(text: Uint8Array, pos: number, bytes: Uint8Array, from: number): boolean {
  const len = bytes.length - from;
  if (pos + len > text.length) return false;
  for (let j = 0; j < len; j++) if (text[pos + j] !== bytes[from + j]) return false;
  return true;
}

/**
 * Align each token to the bytes of `text` it stands for. The first `added` tokens were put in front of the
 * text by the tokenizer (BOS) and get the empty range [-1, -1), before everything. See the rule at the top.
 */
export function alignTokens(
  text: string,
  ids: readonly number[],
  tokenizer: Tokenizer,
  added = 0,
  templateName = "chat",
): TokenAlignment {
  const bytes = encoder.encode(text);
  const starts = new Int32Array(ids.length);
  const ends = new Int32Array(ids.length);
  let pos = 0;
  let pending: number[] = [];
  const place = (k: number, start: number, end: number) => {
    for (const p of pending) starts[p] = ends[p] = start;
    pending = [];
    starts[k] = start;
    ends[k] = end;
    pos = end;
  };
  for (let k = 0; k < ids.length; k++) {
    if (k < added) {
      starts[k] = ends[k] = -1;
      continue;
    }
    const id = ids[k];
    const candidates = [tokenizer.tokenBytes(id)];
    if (tokenizer.isSpecial(id)) candidates.push(encoder.encode(tokenizer.tokenText(id)));
    let placed = false;
    // Try at pos, then after each whitespace byte the tokenizer may have swallowed.
    for (let at = pos; !placed && at <= bytes.length; at++) {
      for (const cand of candidates) {
        if (cand.length === 0) continue;
        if (matchesAt(bytes, at, cand, 0)) {
          place(k, at, at + cand.length);
          placed = true;
          break;
        }
        if (cand.length > 1 && cand[0] === 0x20 && matchesAt(bytes, at, cand, 1)) {
          place(k, at, at + cand.length - 1);
          placed = true;
          break;
        }
      }
      if (at >= bytes.length || !isSpace(bytes[at])) break;
    }
    if (placed) continue;
    const own = candidates[0];
    if (own.length === 0 || (own.length === 1 && own[0] === 0x20)) {
      pending.push(k);
      continue;
    }
    throw new InputError(
      `chat template "${templateName}": token ${k} (${describeToken(tokenizer, id)}) does not match the rendered ` +
        `text at byte ${pos} (${JSON.stringify(new TextDecoder().decode(bytes.subarray(pos, pos + 16)))})`,
      {
        hint: "the tokenizer's output cannot be lined up with the text; this is a bug in buckle's tokenizer",
      },
    );
  }
  for (const p of pending) starts[p] = ends[p] = pos;
  return { starts, ends };
}

function describeToken(tokenizer: Tokenizer, id: number | undefined): string {
  return id === undefined ? "none" : `${id} ${JSON.stringify(tokenizer.tokenText(id))}`;
}

/** How many tokens lie before byte x when a token straddling x goes after it (first token not before x). */
export function floorIndex(a: TokenAlignment, x: number): number {
  let lo = 0;
  let hi = a.starts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const s = a.starts[mid];
    const e = a.ends[mid];
    const before = s < e ? e <= x : s < x;
    if (before) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** How many tokens lie before byte x when a token straddling x counts as before it. */
export function ceilIndex(a: TokenAlignment, x: number): number {
  let lo = 0;
  let hi = a.starts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a.starts[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** UTF-8 byte offset of every UTF-16 position of `text` (length + 1 entries). */
export function charToByteTable(text: string): Int32Array {
  const table = new Int32Array(text.length + 1);
  let b = 0;
  for (let i = 0; i < text.length; i++) {
    table[i] = b;
    const c = text.charCodeAt(i);
    if (c < 0x80) b += 1;
    else if (c < 0x800) b += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        b += 4;
        table[++i] = b; // the middle of a pair is not a real position; map it past the character
        continue;
      }
      b += 3;
    } else b += 3;
  }
  table[text.length] = b;
  return table;
}

/** The last UTF-16 position whose byte offset is <= byte (a byte inside a character rounds down). */
function byteToChar(table: Int32Array, byte: number): number {
  let lo = 0;
  let hi = table.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (table[mid] <= byte) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

interface Layout {
  text: string;
  contentStart: number[];
  contentEnd: number[];
  /** Char offset where message i's part ends (and i+1's begins). */
  boundaries: number[];
}

// Private-use characters around a number: not whitespace (trimming leaves them alone), unchanged by case
// filters (so an upper-casing template is reported as rewriting content, not as dropping it).
const PROBE_OPEN = "\uE000";
const PROBE_CLOSE = "\uE001";

/**
 * Where every message's content and every message's end lie in the rendered text.
 * Content: render once more with message i's content swapped for a unique probe string; the text before
 * and after the probe must then be exactly the text around the content in the real render, which pins the
 * content down without searching for it (a search could hit the same words in a header or another turn).
 * Message ends: render messages[0..i] alone; where that text stops agreeing with the full render is where
 * message i+1 begins (clamped between the two contents, since some templates append a trailer such as
 * EOS when not generating, or fold a system prompt into a later turn).
 */
function locateMessages(
  template: ChatTemplate,
  messages: readonly ChatMessage[],
  addGenerationPrompt: boolean,
): Layout {
  const text = template.render(messages, { addGenerationPrompt });
  const n = messages.length;
  const contentStart: number[] = [];
  const contentEnd: number[] = [];
  const rawBoundaries: number[] = [];
  for (let i = 0; i < n; i++) {
    const isLast = i === n - 1;
    if (isLast && !addGenerationPrompt) rawBoundaries.push(text.length);
    else rawBoundaries.push(commonPrefixLength(renderPart(template, messages, i), text));
  }
  const quick = locateAllAtOnce(template, messages, text, addGenerationPrompt);
  if (quick)
    return {
      text,
      ...quick,
      boundaries: clampBoundaries(rawBoundaries, quick.contentStart, quick.contentEnd),
    };
  const fail = (i: number, why: string): never => {
    throw new InputError(
      `chat template "${template.name}": cannot find message ${i} (${messages[i].role}) in the rendered text: ${why}`,
      {
        hint: "token spans need each message's content written out once, in order, unchanged apart from trimmed whitespace",
      },
    );
  };
  for (let i = 0; i < n; i++) {
    const content = messages[i].content;
    const probe = probeFor(i, text);
    const probed = messages.map((m, j) => (j === i ? { role: m.role, content: probe } : m));
    let rendered: string;
    try {
      rendered = template.render(probed, { addGenerationPrompt });
    } catch (err) {
      if (content !== "") throw err;
      rendered = "";
    }
    const at = rendered.indexOf(probe);
    const after = at < 0 ? -1 : at + probe.length;
    const consistent =
      at >= 0 &&
      rendered.indexOf(probe, after) < 0 &&
      at + (rendered.length - after) <= text.length &&
      text.startsWith(rendered.slice(0, at)) &&
      text.endsWith(rendered.slice(after));
    const prevEnd = i === 0 ? 0 : contentEnd[i - 1];
    if (!consistent) {
      // Empty content may legitimately render as nothing (a template skipping empty system prompts).
      if (content === "") {
        const pos = Math.max(prevEnd, i === 0 ? 0 : rawBoundaries[i - 1]);
        contentStart.push(pos);
        contentEnd.push(pos);
        continue;
      }
      if (at < 0) fail(i, "the template does not write its content");
      if (rendered.indexOf(probe, after) >= 0) fail(i, "the template writes its content more than once");
      fail(i, "the text around it changes with the content (the template inspects or rewrites it)");
    }
    const start = at;
    const end = text.length - (rendered.length - after);
    const shown = text.slice(start, end);
    if (shown !== content && !(shown.trim() === content.trim() && content.includes(shown))) {
      fail(
        i,
        "the template changes the content, or writes something next to it that depends on it " +
          `(${JSON.stringify(truncate(content))} is rendered as ${JSON.stringify(truncate(shown))})`,
      );
    }
    if (start < prevEnd) fail(i, `the template places it before message ${i - 1}'s content`);
    contentStart.push(start);
    contentEnd.push(end);
  }
  return {
    text,
    contentStart,
    contentEnd,
    boundaries: clampBoundaries(rawBoundaries, contentStart, contentEnd),
  };
}

function clampBoundaries(
  raw: readonly number[],
  contentStart: readonly number[],
  contentEnd: readonly number[],
): number[] {
  return raw.map((b, i) => {
    const c = Math.max(b, contentEnd[i]);
    return i + 1 < raw.length ? Math.min(c, contentStart[i + 1]) : c;
  });
}

function probeFor(i: number, text: string): string {
  let probe = `${PROBE_OPEN}${i}${PROBE_CLOSE}`;
  while (text.includes(probe)) probe += PROBE_CLOSE;
  return probe;
}

/**
 * The common case in one render: every content swapped for its own probe at once. When the probes come out
 * once each, in order, and putting the contents (or their trimmed forms) back between the template's pieces
 * gives exactly the real text, those are the positions. Otherwise undefined, and each message is probed
 * on its own, which also tells which message is the problem.
 */
function locateAllAtOnce(
  template: ChatTemplate,
  messages: readonly ChatMessage[],
  text: string,
  addGenerationPrompt: boolean,
): { contentStart: number[]; contentEnd: number[] } | undefined {
  const probes = messages.map((_, i) => probeFor(i, text));
  let rendered: string;
  try {
    rendered = template.render(
      messages.map((m, i) => ({ role: m.role, content: probes[i] })),
      { addGenerationPrompt },
    );
  } catch {
    return undefined;
  }
  const pieces: string[] = [];
  let pos = 0;
  for (const probe of probes) {
    const at = rendered.indexOf(probe, pos);
    if (
      at < 0 ||
      rendered.indexOf(probe, at + probe.length) >= 0 ||
      rendered.lastIndexOf(probe, at - 1) >= 0
    ) {
      return undefined;
    }
    pieces.push(rendered.slice(pos, at));
    pos = at + probe.length;
  }
  pieces.push(rendered.slice(pos));
  if (!text.startsWith(pieces[0])) return undefined;
  let t = pieces[0].length;
  const contentStart: number[] = [];
  const contentEnd: number[] = [];
  for (let i = 0; i < messages.length; i++) {
    const content = messages[i].content;
    const next = pieces[i + 1];
    const shown = [content, content.trim(), content.trimStart(), content.trimEnd()].find(
      (c) => text.startsWith(c, t) && text.startsWith(next, t + c.length),
    );
    if (shown === undefined) return undefined;
    contentStart.push(t);
    contentEnd.push(t + shown.length);
    t += shown.length + next.length;
  }
  return t === text.length ? { contentStart, contentEnd } : undefined;
}

function renderPart(template: ChatTemplate, messages: readonly ChatMessage[], last: number): string {
  if (last === messages.length - 1) return template.render(messages, { addGenerationPrompt: false });
  try {
    return template.render(messages.slice(0, last + 1), { addGenerationPrompt: false });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new InputError(
      `chat template "${template.name}": cannot tell where message ${last} ends, because the first ${last + 1} ` +
        `messages do not render on their own: ${why}`,
      { cause: err, hint: "token spans need every prefix of the conversation to render" },
    );
  }
}

function commonPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

function truncate(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
