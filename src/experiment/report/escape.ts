// Escaping for the report's two output languages: every piece of text (answers, prompts, run names) goes through here.
// Model answers are untrusted: in HTML they must stay text, in Markdown tables they must not break the table.

/** Escape text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/**
 * Text for one Markdown table cell: HTML-escaped (GitHub renders inline HTML), pipes escaped, newlines
 * shown as spaces, and Markdown emphasis/link characters backslash-escaped so an answer cannot format the report.
 */
export function escapeMarkdownCell(text: string): string {
  return escapeMarkdownInline(text)
    .replace(/\|/g, "\\|")
    .replace(/\s*\r?\n\s*/g, " ");
}

/** Text for a Markdown paragraph or list item (no tables): HTML and Markdown syntax characters escaped. */
export function escapeMarkdownInline(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/([\\`*_[\]#!])/g, "\\$1");
}
