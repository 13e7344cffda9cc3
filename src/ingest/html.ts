/**
 * HTML to readable text. Parsed with cheerio (htmlparser2 mode: tolerant and fast enough for 100+
 * pages/s); the rendering keeps what a person sees: block elements on their own lines, table cells
 * separated by " | ", list items on their own lines, script/style and other invisible parts dropped.
 */
import * as cheerio from 'cheerio';
import { isUtf8 } from 'node:buffer';
import { decodeBuffer } from 'encoding-sniffer';
import { ResultType, Sniffer } from 'encoding-sniffer/sniffer';
import type { AnyNode, Element } from 'domhandler';
import { parseHtmlDom } from './html-depth.js';
import { normalizeNewlines } from './text.js';

// WHATWG's fallback for pages that declare nothing; the SWDE-era web is mostly Latin-1/CP1252.
const defaultEncoding = 'windows-1252';

/** Any byte outside ASCII: only then can UTF-8 and windows-1252 read the page differently. */
function hasNonAscii(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] >= 0x80) return true;
  return false;
}

/**
 * BOM, then <meta> or XML declaration; a page that declares nothing is UTF-8 when its bytes are valid UTF-8 with
 * non-ASCII sequences in them (as browsers sniff: such bytes are almost never meant as windows-1252), else the
 * windows-1252 default.
 */
export function htmlEncoding(bytes: Buffer): string {
  const sniffer = new Sniffer({ defaultEncoding });
  sniffer.write(bytes);
  if (sniffer.resultType === ResultType.DEFAULT && hasNonAscii(bytes) && isUtf8(bytes)) return 'UTF-8';
  return sniffer.encoding;
}

/** The page as a string, decoded with its sniffed charset (BOM, then <meta>, then the default). */
export function decodeHtml(bytes: Buffer, encoding = htmlEncoding(bytes)): string {
  // Node's own UTF-8 decoder is several times faster than iconv-lite's, and UTF-8 is most of the web.
  if (encoding.toLowerCase() === 'utf-8') {
    const start = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
    return bytes.toString('utf8', start);
  }
  return decodeBuffer(bytes, { defaultEncoding });
}

export interface HtmlParse {
  text: string;
  title: string | null;
  encoding: string;
}

/** Pages nested deeper than this are refused (too_deep) unless the caller says otherwise. */
export const DEFAULT_HTML_MAX_DEPTH = 1000;

export function parseHtml(bytes: Buffer, maxDepth = DEFAULT_HTML_MAX_DEPTH): HtmlParse {
  const encoding = htmlEncoding(bytes);
  // Limits (issue 15): the DOM is built with a nesting cap, then handed to cheerio as it would build it.
  const $ = cheerio.load(parseHtmlDom(decodeHtml(bytes, encoding), maxDepth), { xml: { xmlMode: false, decodeEntities: true } });
  const title = $('title').first().text().replace(/\s+/g, ' ').trim() || null;
  return { text: renderText($.root()[0]), title, encoding };
}

const hidden = new Set(['script', 'style', 'noscript', 'template', 'head', 'svg', 'iframe', 'object', 'select', 'button', 'map']);
const blocks = new Set([
  'address', 'article', 'aside', 'blockquote', 'body', 'center', 'dd', 'details', 'dialog', 'div', 'dl', 'dt',
  'fieldset', 'figcaption', 'figure', 'footer', 'form', 'header', 'hr', 'html', 'legend', 'main', 'nav', 'ol',
  'section', 'summary', 'table', 'tbody', 'thead', 'tfoot', 'ul', 'caption',
]);
// Blocks that read as separate paragraphs get a blank line around them.
const paragraphs = new Set(['p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'pre', 'blockquote', 'table']);

/** Collects text with whitespace collapsed, emitting pending breaks lazily so no run of blanks piles up. */
class TextWriter {
  private parts: string[] = [];
  private length = 0;
  private pendingSpace = false;
  private pendingBreaks = 0;
  private pendingSeparator = '';
  private pendingPrefix = '';

  /** A marker (a list bullet) written only if text follows, so empty items leave no stray bullets. */
  prefix(p: string): void {
    this.pendingPrefix = p;
  }

  text(raw: string, preformatted: boolean): void {
    if (preformatted) {
      if (raw.length === 0) return;
      this.flush();
      this.push(normalizeNewlines(raw));
      return;
    }
    const collapsed = raw.replace(/\s+/g, ' ');
    if (collapsed === ' ' || collapsed === '') {
      if (collapsed === ' ') this.pendingSpace = true;
      return;
    }
    if (collapsed.startsWith(' ')) this.pendingSpace = true;
    const body = collapsed.trim();
    this.flush();
    this.push(body);
    this.pendingSpace = collapsed.endsWith(' ');
  }

  lineBreak(count = 1): void {
    this.pendingBreaks = Math.max(this.pendingBreaks, count);
    this.pendingSeparator = '';
    this.pendingPrefix = '';
  }

  /** A separator (between table cells) written only if more text follows on the same line. */
  separator(sep: string): void {
    if (this.pendingBreaks === 0 && this.length > 0) this.pendingSeparator = sep;
  }

  result(): string {
    return this.parts.join('');
  }

  private flush(): void {
    if (this.length > 0) {
      if (this.pendingBreaks > 0) this.push('\n'.repeat(this.pendingBreaks));
      else if (this.pendingSeparator) this.push(this.pendingSeparator);
      else if (this.pendingSpace) this.push(' ');
    }
    if (this.pendingPrefix) this.push(this.pendingPrefix);
    this.pendingPrefix = '';
    this.pendingBreaks = 0;
    this.pendingSpace = false;
    this.pendingSeparator = '';
  }

  private push(s: string): void {
    this.parts.push(s);
    this.length += s.length;
  }
}

/** Iterative walk: crawled pages can nest deep enough to overflow a recursive one. */
export function renderText(root: AnyNode): string {
  const out = new TextWriter();
  type Frame = { node: AnyNode; exit: boolean };
  const stack: Frame[] = [{ node: root, exit: false }];
  let preDepth = 0;
  while (stack.length > 0) {
    const { node, exit } = stack.pop()!;
    if (node.type === 'text') {
      out.text((node as unknown as { data: string }).data, preDepth > 0);
      continue;
    }
    if (node.type !== 'tag' && node.type !== 'root' && node.type !== 'script' && node.type !== 'style') continue;
    if (node.type === 'script' || node.type === 'style') continue;
    const el = node as Element;
    const name = node.type === 'root' ? '' : el.name.toLowerCase();
    if (exit) {
      if (name === 'pre') preDepth--;
      closeTag(out, name);
      continue;
    }
    if (hidden.has(name)) continue;
    if (name === 'br') {
      out.lineBreak(1);
      continue;
    }
    openTag(out, name, el);
    if (name === 'pre') preDepth++;
    stack.push({ node, exit: true });
    const children = (node as unknown as { children?: AnyNode[] }).children ?? [];
    for (let i = children.length - 1; i >= 0; i--) stack.push({ node: children[i], exit: false });
  }
  return out.result().trim();
}

function openTag(out: TextWriter, name: string, el: Element): void {
  if (paragraphs.has(name)) out.lineBreak(2);
  else if (name === 'li') {
    out.lineBreak(1);
    out.prefix('- ');
  } else if (name === 'tr' || blocks.has(name)) out.lineBreak(1);
  else if (name === 'td' || name === 'th') out.separator(' | ');
  else if (name === 'img') {
    const alt = el.attribs?.alt?.trim();
    if (alt) out.text(` ${alt} `, false);
  }
}

function closeTag(out: TextWriter, name: string): void {
  if (paragraphs.has(name)) out.lineBreak(2);
  else if (name === 'li' || name === 'tr' || blocks.has(name)) out.lineBreak(1);
  else if (name === 'td' || name === 'th') out.separator(' | ');
}
