/**
 * PDF to text with pdfjs-dist (legacy build: runs on Node 20 with no worker and no DOM). Page
 * boundaries are kept as character ranges so a value can be traced to its page; within a page the
 * text follows the content stream's order, broken into lines where the baseline moves.
 */
import { EvaporateError } from '../errors.js';

type Pdfjs = typeof import('pdfjs-dist/legacy/build/pdf.mjs');
let pdfjs: Promise<Pdfjs> | undefined;

/**
 * The legacy build bundles core-js, which on import swaps Array.prototype.push, JSON.parse and
 * JSON.stringify for slower polyfills for the whole process (cheerio, fastify and SQLite rows included).
 * Node's own are correct, so they are put back; what core-js only adds (Promise.withResolvers, ...) stays,
 * since pdfjs needs it on Node 20. Loaded on first use so processes that never see a PDF skip it.
 */
function loadPdfjs(): Promise<Pdfjs> {
  pdfjs ??= (async () => {
    const { push } = Array.prototype;
    const { parse, stringify } = JSON;
    try {
      const lib = await import('pdfjs-dist/legacy/build/pdf.mjs');
      // Without a worker thread pdfjs imports its worker module on first use, core-js again; loading
      // it here, where the builtins are restored after, and handing it over the way pdfjs looks for it.
      const workerModule = 'pdfjs-dist/legacy/build/pdf.worker.mjs'; // ships no type declarations
      (globalThis as { pdfjsWorker?: unknown }).pdfjsWorker = await import(workerModule);
      return lib;
    } finally {
      Array.prototype.push = push;
      JSON.parse = parse;
      JSON.stringify = stringify;
    }
  })();
  return pdfjs;
}

export interface PdfPage {
  page: number;
  start: number;
  end: number;
}

export interface PdfParse {
  text: string;
  pages: PdfPage[];
  pageCount: number;
}

interface TextItem {
  str: string;
  hasEOL: boolean;
  transform: number[];
  width: number;
  height: number;
}

const pageSeparator = '\n\n';

/** PDFs with more pages than this are refused (too_many_pages) unless the caller says otherwise. */
export const DEFAULT_PDF_MAX_PAGES = 5000;

export async function parsePdf(bytes: Uint8Array, filename = 'file', maxPages = DEFAULT_PDF_MAX_PAGES): Promise<PdfParse> {
  // A PDF ends with %%EOF (possibly followed by a little whitespace); without it the file was cut short
  // and pdfjs would silently "recover" a partial document.
  const tail = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).subarray(Math.max(0, bytes.byteLength - 2048));
  if (tail.indexOf('%%EOF') < 0) {
    throw new EvaporateError('pdf_truncated', `"${filename}" is a truncated PDF (no end-of-file marker); upload the complete file.`, 422);
  }
  const { getDocument } = await loadPdfjs();
  const task = getDocument({
    // pdfjs may take ownership of the buffer it is given; a copy keeps the caller's bytes intact.
    data: new Uint8Array(bytes),
    isEvalSupported: false,
    disableFontFace: true,
    useSystemFonts: false,
    stopAtErrors: false,
    verbosity: 0,
  });
  let doc;
  try {
    doc = await task.promise;
  } catch (error) {
    await task.destroy().catch(() => undefined);
    const name = (error as { name?: string }).name;
    if (name === 'PasswordException') {
      throw new EvaporateError('pdf_encrypted', `"${filename}" is password-protected; upload a copy without a password.`, 422);
    }
    throw new EvaporateError('pdf_invalid', `"${filename}" is not a readable PDF (${(error as Error).message}).`, 422);
  }
  try {
    if (doc.numPages === 0) throw new EvaporateError('pdf_no_pages', `"${filename}" is a PDF with no pages.`, 422);
    // Checked before any page is read: pdfjs's cost per page grows with the page count on a flat page tree.
    if (maxPages > 0 && doc.numPages > maxPages) {
      throw new EvaporateError(
        'too_many_pages',
        `"${filename}" has ${doc.numPages} pages; the limit is ${maxPages} (setting EVAPORATE_PDF_MAX_PAGES).`,
        422,
      );
    }
    const parts: string[] = [];
    const pages: PdfPage[] = [];
    let offset = 0;
    for (let n = 1; n <= doc.numPages; n++) {
      const page = await doc.getPage(n);
      const content = await page.getTextContent();
      // No page.cleanup() here: it drops the parsed fonts that later pages share, and re-parsing them per page
      // cost 10-15% of the CPU time here; doc.destroy() below frees everything once the document is read.
      const pageText = itemsToText(content.items as TextItem[]);
      if (n > 1) {
        parts.push(pageSeparator);
        offset += pageSeparator.length;
      }
      pages.push({ page: n, start: offset, end: offset + pageText.length });
      parts.push(pageText);
      offset += pageText.length;
    }
    const text = parts.join('');
    if (text.trim() === '') {
      throw new EvaporateError('pdf_no_text', `"${filename}" has no text layer (a scan?); text recognition (OCR) is not supported.`, 422);
    }
    return { text, pages, pageCount: doc.numPages };
  } catch (error) {
    if (error instanceof EvaporateError) throw error;
    throw new EvaporateError('pdf_invalid', `"${filename}" could not be read as a PDF (${(error as Error).message}).`, 422);
  } finally {
    await doc.destroy();
  }
}

function itemsToText(items: TextItem[]): string {
  let out = '';
  let lastY: number | null = null;
  let lastEndX = 0;
  let lastHeight = 0;
  for (const item of items) {
    if (typeof item.str !== 'string') continue;
    const [, , , , x, y] = item.transform;
    if (lastY !== null && item.str !== '') {
      const lineHeight = Math.max(item.height, lastHeight, 1);
      if (Math.abs(y - lastY) > lineHeight * 0.5) {
        if (!out.endsWith('\n')) out += '\n';
      } else if (!out.endsWith('\n') && !/\s$/.test(out) && !/^\s/.test(item.str) && x - lastEndX > lineHeight * 0.15) {
        // Words placed apart on the same baseline without a space glyph between them.
        out += ' ';
      }
    }
    out += item.str;
    if (item.hasEOL) out += '\n';
    if (item.str !== '') {
      lastY = y;
      lastEndX = x + item.width;
      lastHeight = item.height;
    }
  }
  return out.replace(/[ \t]+\n/g, '\n').replace(/\n{3,}/g, '\n\n').trim();
}
