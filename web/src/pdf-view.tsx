/** A PDF page drawn by pdf.js with the evidence span's boxes over it (loaded on demand: pdf.js is large). */
import { useEffect, useRef, useState } from 'preact/hooks';
import * as pdfjs from 'pdfjs-dist';
import workerUrl from 'pdfjs-dist/build/pdf.worker.min.mjs?url';
import { rawBytes } from './api';
import { pageOf, spanBoxes, type PdfTextItem } from './pdf-boxes';

pdfjs.GlobalWorkerOptions.workerSrc = workerUrl;

const SCALE = 1.3;
const loaded = new Map<number, Promise<pdfjs.PDFDocumentProxy>>();
const open = (id: number) => {
  if (!loaded.has(id)) loaded.set(id, rawBytes(id).then((data) => pdfjs.getDocument({ data, isEvalSupported: false }).promise));
  return loaded.get(id)!;
};

interface Props {
  documentId: number;
  text: string;
  pages: { page: number; start: number; end: number }[];
  /** The evidence to box; without one the first page is shown. */
  span: [number, number] | null;
}

export default function PdfPage({ documentId, text, pages, span }: Props) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [boxes, setBoxes] = useState<{ left: number; top: number; width: number; height: number }[]>([]);
  const [size, setSize] = useState({ width: 0, height: 0 });
  const [error, setError] = useState('');
  const evidencePage = span ? pageOf(pages, span[0]) : null;
  const [shown, setShown] = useState(evidencePage?.page ?? 1);
  useEffect(() => setShown(evidencePage?.page ?? 1), [documentId, evidencePage?.page]);
  const page = pages.find((p) => p.page === shown) ?? null;
  useEffect(() => {
    if (!page) return;
    let cancelled = false;
    let task: { cancel(): void } | null = null;
    (async () => {
      const doc = await open(documentId);
      const p = await doc.getPage(page.page);
      const viewport = p.getViewport({ scale: SCALE });
      const el = canvas.current!;
      el.width = Math.ceil(viewport.width);
      el.height = Math.ceil(viewport.height);
      if (cancelled) return;
      // One render at a time per canvas: a newer page or span cancels the one in flight.
      const rendering = p.render({ canvas: el, canvasContext: el.getContext('2d')!, viewport });
      task = rendering;
      await rendering.promise;
      const content = await p.getTextContent();
      const pageText = text.slice(page.start, page.end);
      const found =
        span && span[1] > page.start && span[0] < page.end
          ? spanBoxes(content.items as PdfTextItem[], pageText, Math.max(0, span[0] - page.start), Math.min(page.end, span[1]) - page.start)
          : [];
      if (cancelled) return;
      setSize({ width: el.width, height: el.height });
      setBoxes(
        found.map((b) => {
          const [x1, y1, x2, y2] = viewport.convertToViewportRectangle([b.x, b.y - b.height * 0.2, b.x + b.width, b.y + b.height * 0.9]);
          return { left: Math.min(x1, x2), top: Math.min(y1, y2), width: Math.abs(x2 - x1), height: Math.abs(y2 - y1) };
        }),
      );
    })().catch((e) => {
      if ((e as Error).name !== 'RenderingCancelledException') setError((e as Error).message);
    });
    return () => {
      cancelled = true;
      task?.cancel();
    };
  }, [documentId, page?.page, span?.[0], span?.[1]]);
  if (!page) return null;
  return (
    <div class="pdfpage" id="pdf-page" data-page={page.page} data-rendered={size.width > 0 ? 'true' : 'false'}>
      <div class="row">
        <button disabled={shown <= 1} onClick={() => setShown(shown - 1)}>
          ‹
        </button>
        <span class="muted">
          page {page.page} of {pages.length}
          {boxes.length > 0 && ' · the evidence is highlighted'}
        </span>
        <button disabled={shown >= pages.length} onClick={() => setShown(shown + 1)}>
          ›
        </button>
      </div>
      {error && <p class="error">{error}</p>}
      <div class="pdfwrap" style={{ width: `${size.width}px`, height: `${size.height}px` }}>
        <canvas ref={canvas} />
        {boxes.map((b, i) => (
          <div key={i} class="pdf-hl" style={{ left: `${b.left}px`, top: `${b.top}px`, width: `${b.width}px`, height: `${b.height}px` }} />
        ))}
      </div>
    </div>
  );
}
