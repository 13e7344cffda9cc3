import type { FunctionComponent } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from './api';
import { href } from './router';
import { JobCard } from './jobs';
import { confidenceColour } from './table';

type PdfPageProps = { documentId: number; text: string; pages: { page: number; start: number; end: number }[]; span: [number, number] | null };

// pdf.js is large: it loads only when a PDF is opened.
function usePdfPage(wanted: boolean): FunctionComponent<PdfPageProps> | null {
  const [component, setComponent] = useState<FunctionComponent<PdfPageProps> | null>(null);
  useEffect(() => {
    if (wanted && !component) import('./pdf-view').then((m) => setComponent(() => m.default));
  }, [wanted]);
  return component;
}

/** The text with marks: the first range wins where ranges overlap (evidence or selection before labels). */
function marked(text: string, ranges: { start: number; end: number; cls: string }[]) {
  const kept: typeof ranges = [];
  for (const r of ranges) if (r.end > r.start && !kept.some((k) => r.start < k.end && k.start < r.end)) kept.push(r);
  kept.sort((a, b) => a.start - b.start);
  const out: (string | preact.JSX.Element)[] = [];
  let at = 0;
  kept.forEach((r, i) => {
    out.push(text.slice(at, r.start));
    out.push(
      <mark key={i} class={r.cls}>
        {text.slice(r.start, r.end)}
      </mark>,
    );
    at = r.end;
  });
  out.push(text.slice(at));
  return out;
}

export function DocumentPage({ corpus, id, column }: { corpus: string; id: number; column?: string }) {
  const [doc, setDoc] = useState<any>(null);
  const [cell, setCell] = useState<any>(null);
  const [error, setError] = useState('');
  const [selection, setSelection] = useState<[number, number] | null>(null);
  // Values this document is labelled with, marked in its text.
  const [labelled, setLabelled] = useState<string[]>([]);
  const textRef = useRef<HTMLPreElement>(null);
  const PdfPage = usePdfPage(doc?.kind === 'pdf');
  useEffect(() => {
    setCell(null);
    setSelection(null);
    api('GET', `/documents/${id}`)
      .then(setDoc)
      .catch((e) => setError(e.message));
    if (column)
      api('GET', `/corpora/${encodeURIComponent(corpus)}/table/cells/${id}/${encodeURIComponent(column)}`)
        .then(setCell)
        .catch((e) => setError(e.message));
  }, [corpus, id, column]);
  // Scroll the text box (not the page) to the evidence.
  useEffect(() => {
    const pre = textRef.current;
    const mark = pre?.querySelector('mark.evidence');
    if (pre && mark) pre.scrollTop += mark.getBoundingClientRect().top - pre.getBoundingClientRect().top - pre.clientHeight / 3;
  }, [doc, cell]);
  if (error) return <p class="error">{error}</p>;
  if (!doc) return <p>Loading…</p>;
  const text: string = doc.text ?? '';
  const span: [number, number] | null = selection ?? cell?.span ?? null;
  const pages = (doc.structure?.pages ?? []) as { page: number; start: number; end: number }[];

  /** The selection's character offsets within the document text (the <pre> holds it as a few text nodes). */
  const readSelection = () => {
    const sel = getSelection();
    const root = textRef.current;
    if (!sel || sel.isCollapsed || !root || !root.contains(sel.anchorNode)) return;
    const range = sel.getRangeAt(0);
    const offsetOf = (node: Node, offset: number) => {
      const r = document.createRange();
      r.setStart(root, 0);
      r.setEnd(node, offset);
      return r.toString().length;
    };
    let start = offsetOf(range.startContainer, range.startOffset);
    let end = offsetOf(range.endContainer, range.endOffset);
    while (start < end && /\s/.test(text[start])) start++;
    while (end > start && /\s/.test(text[end - 1])) end--;
    if (end > start) setSelection([start, end]);
  };

  return (
    <section class="docpage">
      <p>
        <a href={href('c', corpus, column ? 'table' : 'documents')}>← {corpus}</a>
      </p>
      <h1>
        {doc.filename} <small class="muted">{doc.kind}, document {doc.id}</small>
      </h1>
      <div class="split">
        <div class="docmain">
          {doc.kind === 'pdf' && pages.length > 0 && (PdfPage ? <PdfPage documentId={doc.id} text={text} pages={pages} span={span} /> : <p>Loading the PDF viewer…</p>)}
          <pre class="doctext" ref={textRef} onMouseUp={readSelection} id="doctext">
            {marked(text, [
              ...(span ? [{ start: span[0], end: span[1], cls: selection ? 'selected' : 'evidence' }] : []),
              ...labelled.map((v) => {
                const start = text.indexOf(v);
                return { start, end: start < 0 ? -1 : start + v.length, cls: 'label' };
              }),
            ])}
          </pre>
        </div>
        <aside>
          {cell && <CellPanel cell={cell} />}
          <LabelPanel
            key={corpus}
            corpus={corpus}
            documentId={doc.id}
            selectedText={selection ? text.slice(selection[0], selection[1]) : ''}
            defaultAttribute={column}
            onLabelled={() => setSelection(null)}
            onLabels={(values) => setLabelled(values)}
          />
        </aside>
      </div>
    </section>
  );
}

function CellPanel({ cell }: { cell: any }) {
  return (
    <div class="card" id="cell-panel">
      <h3>
        {cell.attribute}: <span style={{ background: confidenceColour(cell.confidence) }}>{String(cell.value ?? '–')}</span>
      </h3>
      <p class="muted">
        origin {cell.origin ?? '–'}, confidence {cell.confidence === null ? '–' : cell.confidence.toFixed(3)}
        {cell.span ? `, characters ${cell.span[0]}–${cell.span[1]}` : ', no evidence span found in the text'}
      </p>
      <h4>
        {cell.functions.length} agreeing function{cell.functions.length === 1 ? '' : 's'}
      </h4>
      {cell.functions.map((f: any) => (
        <details key={f.id} class="fn">
          <summary>
            function {f.id} ({f.origin}) · learned accuracy {f.learnedAccuracy === null ? '–' : f.learnedAccuracy.toFixed(3)}
            {f.sampleScore !== null && ` · sample F1 ${f.sampleScore.toFixed(2)}`}
          </summary>
          <pre class="code">{f.source}</pre>
        </details>
      ))}
    </div>
  );
}

function LabelPanel(props: {
  corpus: string;
  documentId: number;
  selectedText: string;
  defaultAttribute?: string;
  onLabelled: () => void;
  onLabels: (values: string[]) => void;
}) {
  const { corpus, documentId, selectedText } = props;
  const c = encodeURIComponent(corpus);
  const [attribute, setAttribute] = useState(props.defaultAttribute ?? '');
  // Opening another cell's document names that cell's attribute; moving between documents keeps the one typed.
  useEffect(() => {
    if (props.defaultAttribute) setAttribute(props.defaultAttribute);
  }, [props.defaultAttribute]);
  const [labels, setLabels] = useState<any[]>([]);
  const [job, setJob] = useState<any>(null);
  const [column, setColumn] = useState<any[] | null>(null);
  const [error, setError] = useState('');
  const load = () => api('GET', `/corpora/${c}/labels`).then((r) => setLabels(r.labels));
  useEffect(() => {
    load().catch((e) => setError(e.message));
  }, [corpus, documentId]);
  const label = async (value: string | null) => {
    setError('');
    try {
      await api('POST', `/corpora/${c}/labels`, { document: documentId, attribute: attribute.trim(), value });
      props.onLabelled();
      await load();
    } catch (err) {
      setError((err as Error).message);
    }
  };
  const attr = attribute.trim();
  const labelled = labels.filter((l) => l.attribute === attr);
  const mine = labels.filter((l) => l.documentId === documentId);
  const mineKey = JSON.stringify(mine.map((l) => l.values));
  useEffect(() => props.onLabels(mine.flatMap((l) => l.values)), [mineKey]);
  // Re-learn every column the table already has plus this one, so the table keeps its other columns.
  const learn = async () => {
    setError('');
    setColumn(null);
    try {
      const table = await api('GET', `/corpora/${c}/table`).catch(() => null);
      const names = new Set<string>([...(table?.columns ?? []).map((col: any) => col.name), attr]);
      setJob(await api('POST', `/corpora/${c}/extractions`, { mode: 'closed', attributes: [...names] }));
    } catch (err) {
      setError((err as Error).message);
    }
  };
  const showColumn = async (ended: any) => {
    if (ended?.state !== 'succeeded') return;
    const table = await api('GET', `/corpora/${c}/table`);
    const col = table.columns.find((x: any) => x.name === attr);
    if (!col) return;
    const page = await api('GET', `/corpora/${c}/table/rows?limit=20&sort=_document_id`);
    setColumn(page.rows.map((r: any) => ({ documentId: r.documentId, filename: r.filename, column: col.column, ...r.cells[col.column] })));
  };
  const attributes = [...new Set(labels.map((l) => l.attribute))];
  return (
    <div class="card" id="label-panel">
      <h3>Label this document</h3>
      <p class="muted">Select a value in the text, name its attribute, and label it. Two labelled documents are enough to learn an attribute without a model.</p>
      <input name="attribute" list="attribute-names" placeholder="attribute, e.g. isbn_13" value={attribute} onInput={(e) => setAttribute(e.currentTarget.value)} />
      <datalist id="attribute-names">
        {attributes.map((a) => (
          <option key={a} value={a} />
        ))}
      </datalist>
      <p class="selection">{selectedText ? <>selected: “{selectedText}”</> : <span class="muted">nothing selected</span>}</p>
      <div class="row">
        <button id="label-value" disabled={!attr || !selectedText} onClick={() => label(selectedText)}>
          Label as value
        </button>
        <button id="label-absent" disabled={!attr} onClick={() => label(null)}>
          Not present
        </button>
      </div>
      {mine.length > 0 && (
        <ul class="labels" id="doc-labels">
          {mine.map((l) => (
            <li key={l.attribute}>
              {l.attribute}: {l.values.length ? l.values.join('; ') : <em>not present</em>}
            </li>
          ))}
        </ul>
      )}
      {attr && (
        <>
          <p class="muted">
            {labelled.length} documents labelled for {attr}
          </p>
          <button id="learn" disabled={labelled.length < 2} onClick={learn}>
            Learn {attr} from labels
          </button>
        </>
      )}
      {error && <p class="error">{error}</p>}
      {job && <JobCard key={job.id} job={job} onEnd={showColumn} />}
      {column && (
        <table class="grid" id="learned-column">
          <thead>
            <tr>
              <th>document</th>
              <th>{attr}</th>
            </tr>
          </thead>
          <tbody>
            {column.map((r) => (
              <tr key={r.documentId}>
                <td>{r.filename}</td>
                <td style={{ background: confidenceColour(r.confidence) }}>
                  {r.value === null ? '–' : <a href={href('c', corpus, 'doc', r.documentId, r.column)}>{String(r.value)}</a>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
