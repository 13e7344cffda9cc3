/**
 * The one description of what an extraction function may rely on. The pipeline prompts embed
 * EXTRACTION_FUNCTION_CONTRACT verbatim and wrapper induction emits functions against the same types,
 * so this file only ever grows (additive changes); nothing in it is renamed or removed.
 */

/** A read-only element of the parsed HTML. Every object is frozen; reading never changes the document. */
export interface DocNode {
  /** Lower-case tag name, e.g. 'td'. */
  readonly tag: string;
  /** Readable text of the element: <br> and block boundaries become spaces, whitespace collapsed, trimmed. */
  readonly text: string;
  /** Outer HTML of the element as it appears in the source. */
  readonly html: string;
  /** Attribute value, or null when absent. */
  attr(name: string): string | null;
  readonly parent: DocNode | null;
  /** Element children, in document order. */
  readonly children: readonly DocNode[];
  /** Next / previous element sibling. */
  readonly next: DocNode | null;
  readonly prev: DocNode | null;
  /** Descendants matching a CSS selector. */
  select(selector: string): readonly DocNode[];
}

/** The second argument of extract(text, doc). */
export interface DocHelpers {
  readonly id: string;
  /** Same as the first argument. */
  readonly text: string;
  /** Raw HTML; '' when the document is not HTML (then select/findText return [] and textAfter null). */
  readonly html: string;
  /** All elements matching a CSS selector (as document.querySelectorAll), plus :contains("text"). */
  select(selector: string): readonly DocNode[];
  /** First match or null. */
  selectOne(selector: string): DocNode | null;
  /** Text of the first match, or null. */
  textOf(selector: string): string | null;
  /**
   * The value next to a label: finds the innermost element whose text equals `label` (case-insensitive,
   * a trailing ':' ignored; or matches the RegExp) and returns the text that follows it up to the next
   * <br> or block boundary, or else the next element's text (the cell after the cell that says "Publisher").
   */
  textAfter(label: string | RegExp): string | null;
  /** Innermost elements whose text contains the string (case-insensitive) or matches the RegExp. */
  findText(pattern: string | RegExp): readonly DocNode[];
  /**
   * The value after a label in the same element or line: finds the label as whole words (a string,
   * case-insensitive, trailing ':' optional; or a RegExp) in the innermost element (or, without HTML, the line)
   * that contains it, and returns the rest of that text up to the next "Label:" or the end, label punctuation
   * trimmed ("Height: 6'10' Weight: 278" gives "6'10'" for "Height"); when nothing follows inside the element,
   * the text after it as textAfter reads it. "by" never matches inside "Gatsby".
   */
  valueAfter(label: string | RegExp): string | null;
}

/** What extract may return; undefined is read as null. */
export type ExtractResult = string | string[] | null;

export const EXTRACTION_FUNCTION_CONTRACT = `Write JavaScript that defines exactly this function:

  function extract(text, doc) { ... }

- text: the readable text of the document (string).
- doc: read-only helpers over the same document:
    doc.id                  document id (string)
    doc.text                same as text
    doc.html                raw HTML ('' when the document is not HTML)
    doc.select(css)         array of elements matching a CSS selector (like querySelectorAll; also :contains("x"))
    doc.selectOne(css)      first matching element or null
    doc.textOf(css)         text of the first matching element or null
    doc.textAfter(label)    text right after a label, e.g. doc.textAfter('Publisher') for
                            "<td>Publisher</td><td>Zondervan</td>" or "<b>Publisher:</b> Zondervan<br>";
                            label is a string (case-insensitive, trailing ':' ignored) or a RegExp; null if absent
    doc.findText(pattern)   innermost elements whose text contains the string (case-insensitive) or matches the RegExp
    doc.valueAfter(label)   the part of an element's text (or line) after a label, as whole words, up to the next
                            "Label:": doc.valueAfter('Height') gives "6'10'" for "Height: 6'10' Weight: 278";
                            prefer it to slicing text yourself, so a label never leaks into the value; null if absent
  Each element has: el.tag, el.text (whitespace-collapsed text), el.html (outer HTML), el.attr(name) (string or null),
  el.parent, el.children, el.next, el.prev (next/previous element sibling or null), el.select(css).
- Return a string, an array of strings (for several values), or null when the value is absent.
  Strings are trimmed; empty strings count as absent. Anything else (numbers, objects) is an error.
- Plain synchronous JavaScript only: no require, import, fetch, eval, new Function, timers, async, or global state.
  Helper functions and constants may be defined next to extract. Each call must finish quickly; slow or
  failing functions are stopped and disabled.`;
