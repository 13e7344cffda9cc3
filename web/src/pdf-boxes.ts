/**
 * Where a span of a PDF document's text lies on its page, from pdf.js text positions. The service builds a
 * page's text from the same pdf.js text items, adding or dropping only whitespace between them, so the n-th
 * non-whitespace character of the page text is the n-th non-whitespace character of the items: counting
 * those maps a character span to the items (and the characters inside them) it covers, exactly.
 */
export interface PdfTextItem {
  str?: string;
  transform: number[];
  width: number;
  height: number;
}

/** A box in PDF user space: x, y of the baseline's left end, width and height (y up). */
export interface PdfBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

const isSpace = (c: string) => /\s/.test(c);

function nonSpaceCount(text: string): number {
  let n = 0;
  for (const c of text) if (!isSpace(c)) n++;
  return n;
}

/** Boxes covering pageText[start, end) (offsets within the page's text), one per text item it touches. */
export function spanBoxes(items: readonly PdfTextItem[], pageText: string, start: number, end: number): PdfBox[] {
  const first = nonSpaceCount(pageText.slice(0, start));
  const last = first + nonSpaceCount(pageText.slice(start, end)); // exclusive
  if (last <= first) return [];
  const boxes: PdfBox[] = [];
  let n = 0;
  for (const item of items) {
    if (typeof item.str !== 'string' || item.str === '') continue;
    const chars = [...item.str];
    let lo = -1;
    let hi = -1;
    chars.forEach((c, i) => {
      if (isSpace(c)) return;
      if (n >= first && n < last) {
        if (lo < 0) lo = i;
        hi = i;
      }
      n++;
    });
    if (lo >= 0) {
      const [a, b, , d, x, y] = item.transform;
      const fontHeight = item.height || Math.hypot(b, d) || Math.abs(a);
      const perChar = item.width / chars.length;
      boxes.push({ x: x + perChar * lo, y, width: perChar * (hi + 1 - lo), height: fontHeight });
    }
    if (n >= last) break;
  }
  return boxes;
}

/** The page (1-based) holding a text offset, from the document's structure.pages ranges. */
export function pageOf(pages: readonly { page: number; start: number; end: number }[], offset: number): { page: number; start: number; end: number } | null {
  return pages.find((p) => offset >= p.start && offset < p.end) ?? pages.find((p) => offset <= p.end) ?? null;
}
