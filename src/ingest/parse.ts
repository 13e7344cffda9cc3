/**
 * One file's bytes to readable text plus structure, by detected content type. Pure: no database,
 * so the server, the CLI and the benchmark all parse the same way.
 */
import { EvaporateError } from '../errors.js';
import type { DocumentKind } from '../store/documents.js';
import { detectKind, type DetectedKind } from './detect.js';
import { parseHtml } from './html.js';
import { parsePdf } from './pdf.js';
import { decodeText } from './text.js';

export interface ParsedDocument {
  kind: DocumentKind;
  text: string;
  structure: Record<string, unknown>;
  /** Something worth telling the uploader that did not stop the file, e.g. a misleading extension. */
  note?: string;
}

export function documentKind(kind: DetectedKind): DocumentKind {
  return kind === 'html' || kind === 'pdf' || kind === 'text' ? kind : 'unknown';
}

const extensionKinds: Record<string, DocumentKind> = { pdf: 'pdf', htm: 'html', html: 'html', xhtml: 'html', txt: 'text', text: 'text', md: 'text' };

function extensionNote(filename: string, kind: DocumentKind): string | undefined {
  const ext = /\.([A-Za-z0-9]+)$/.exec(filename)?.[1]?.toLowerCase();
  const expected = ext ? extensionKinds[ext] : undefined;
  if (!expected || expected === kind || (expected === 'text' && kind === 'html')) return undefined;
  return `"${filename}" is named .${ext} but its content is ${kind.toUpperCase()}; it was read as ${kind.toUpperCase()}.`;
}

/** Caps on what one file may cost to parse (0 = none); defaults in html.ts and pdf.ts. */
export interface ParseLimits {
  htmlMaxDepth?: number;
  pdfMaxPages?: number;
}

/** Parses a non-archive file; throws an EvaporateError saying why a file cannot be used. */
export async function parseDocument(
  bytes: Buffer,
  filename: string,
  detected: DetectedKind = detectKind(bytes, filename).kind,
  limits: ParseLimits = {},
): Promise<ParsedDocument> {
  if (bytes.length === 0) throw new EvaporateError('empty_file', `"${filename}" is empty.`, 422);
  let parsed: ParsedDocument;
  if (detected === 'html') {
    let html;
    try {
      html = parseHtml(bytes, limits.htmlMaxDepth);
    } catch (error) {
      if (error instanceof EvaporateError && error.code === 'too_deep') throw new EvaporateError('too_deep', `"${filename}": ${error.message}`, 422);
      throw error;
    }
    parsed = { kind: 'html', text: html.text, structure: { title: html.title, encoding: html.encoding } };
  } else if (detected === 'pdf') {
    const pdf = await parsePdf(bytes, filename, limits.pdfMaxPages);
    parsed = { kind: 'pdf', text: pdf.text, structure: { pageCount: pdf.pageCount, pages: pdf.pages } };
  } else if (detected === 'text') {
    const text = decodeText(bytes, filename);
    parsed = { kind: 'text', text: text.text, structure: { encoding: text.encoding } };
  } else {
    throw new EvaporateError('unsupported_type', `"${filename}" is not HTML, PDF, plain text or a zip/tar archive, so it cannot be ingested.`, 415);
  }
  if (parsed.text.trim() === '') throw new EvaporateError('empty_document', `"${filename}" has no readable text.`, 422);
  const note = extensionNote(filename, parsed.kind);
  return note ? { ...parsed, note } : parsed;
}
