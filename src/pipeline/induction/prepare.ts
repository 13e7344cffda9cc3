import * as cheerio from 'cheerio';
import type { SandboxDocument } from '../../sandbox/types.js';
import type { PreparedDocument } from './types.js';

/** Parses lazily and once: text-only rules never pay for the DOM, and every rule shares one parse. */
export function prepareDocument(doc: SandboxDocument): PreparedDocument {
  let lines: string[] | undefined;
  let $: cheerio.CheerioAPI | undefined;
  const html = doc.html ?? '';
  return {
    text: doc.text,
    html,
    lines: () => (lines ??= doc.text.split('\n')),
    dom: () => ($ ??= cheerio.load(html)),
  };
}
