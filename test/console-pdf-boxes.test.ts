/**
 * The console's mapping from a span of a PDF document's text to boxes on its page (web/src/pdf-boxes.ts),
 * checked on a real PDF: the service's own text (parsePdf) and pdf.js text items of the same pages.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parsePdf, type PdfParse } from '../src/ingest/pdf.js';
import { pageOf, spanBoxes, type PdfTextItem } from '../web/src/pdf-boxes.js';
import { root } from './console-helpers.js';

const bytes = fs.readFileSync(path.join(root, 'fixtures', 'ingest', 'report.pdf'));
let parsed: PdfParse;
let items: PdfTextItem[][];

beforeAll(async () => {
  parsed = await parsePdf(bytes);
  const { getDocument } = await import('pdfjs-dist/legacy/build/pdf.mjs');
  const doc = await getDocument({ data: new Uint8Array(bytes), isEvalSupported: false, verbosity: 0 }).promise;
  items = [];
  for (let n = 1; n <= doc.numPages; n++) items.push((await (await doc.getPage(n)).getTextContent()).items as PdfTextItem[]);
  await doc.destroy();
});

/** The characters the boxes cover, read back from the items they sit on. */
function under(pageItems: PdfTextItem[], boxes: ReturnType<typeof spanBoxes>): string {
  return boxes
    .map((b) => {
      const item = pageItems.find((i) => i.str && i.transform[5] === b.y && b.x >= i.transform[4] - 1e-6 && b.x < i.transform[4] + i.width)!;
      const perChar = item.width / [...item.str!].length;
      const from = Math.round((b.x - item.transform[4]) / perChar);
      return [...item.str!].slice(from, from + Math.round(b.width / perChar)).join('');
    })
    .join(' ');
}

function boxesFor(value: string) {
  const start = parsed.text.indexOf(value);
  expect(start, value).toBeGreaterThanOrEqual(0);
  const page = pageOf(parsed.pages, start)!;
  const pageText = parsed.text.slice(page.start, page.end);
  return { page: page.page, boxes: spanBoxes(items[page.page - 1], pageText, start - page.start, start - page.start + value.length) };
}

describe('PDF evidence boxes', () => {
  it('finds a value on its page and covers exactly its characters', () => {
    const one = boxesFor('CardioSense Monitor 3000');
    expect(one.page).toBe(1);
    expect(one.boxes.length).toBeGreaterThanOrEqual(1);
    expect(under(items[0], one.boxes).replace(/\s+/g, '')).toBe('CardioSenseMonitor3000');

    const two = boxesFor('continuous');
    expect(two.page).toBe(2);
    expect(under(items[1], two.boxes)).toBe('continuous');
    // Page 2's box is not page 1's: the offsets restart at each page.
    expect(two.boxes[0].y).not.toBe(one.boxes[0].y);
  });

  it('spans several lines with one box per line, and none for an empty or blank span', () => {
    const value = 'continuous\nmonitoring';
    const start = parsed.text.indexOf(value);
    expect(start).toBeGreaterThan(0);
    const page = pageOf(parsed.pages, start)!;
    const text = parsed.text.slice(page.start, page.end);
    const boxes = spanBoxes(items[1], text, start - page.start, start - page.start + value.length);
    expect(boxes).toHaveLength(2);
    expect(boxes[0].y).toBeGreaterThan(boxes[1].y); // PDF y grows upward: the second line is lower
    expect(spanBoxes(items[1], text, 5, 5)).toEqual([]);
    expect(spanBoxes(items[1], ' \n ', 0, 3)).toEqual([]);
  });

  it('counts only non-space characters, so spaces added or dropped between items do not shift it', () => {
    const synthetic: PdfTextItem[] = [
      { str: 'Product', transform: [10, 0, 0, 10, 0, 100], width: 70, height: 10 },
      { str: 'code', transform: [10, 0, 0, 10, 75, 100], width: 40, height: 10 },
      { str: ' ', transform: [10, 0, 0, 10, 115, 100], width: 5, height: 10 },
      { str: 'DQK', transform: [10, 0, 0, 10, 120, 100], width: 30, height: 10 },
    ];
    const text = 'Product code DQK';
    expect(spanBoxes(synthetic, text, 13, 16)).toEqual([{ x: 120, y: 100, width: 30, height: 10 }]);
    expect(spanBoxes(synthetic, text, 9, 11)).toEqual([{ x: 85, y: 100, width: 20, height: 10 }]); // "od" of code
  });
});
