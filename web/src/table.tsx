import { useEffect, useState } from 'preact/hooks';
import { api } from './api';
import { href } from './router';

const PAGE = 50;
/** Columns whose mean confidence is below this are marked doubtful. */
const LOW_CONFIDENCE = 0.6;

/** Red (0) to green (1), light enough to read text on. */
export const confidenceColour = (c: number | null) => (c === null ? 'transparent' : `hsl(${Math.round(Math.max(0, Math.min(1, c)) * 120)} 65% 88%)`);

export function TableView({ corpus }: { corpus: string }) {
  const [page, setPage] = useState<any>(null);
  const [offset, setOffset] = useState(0);
  const [sort, setSort] = useState('_document_id');
  const [order, setOrder] = useState<'asc' | 'desc'>('asc');
  const [error, setError] = useState('');
  useEffect(() => {
    api('GET', `/corpora/${encodeURIComponent(corpus)}/table/rows?offset=${offset}&limit=${PAGE}&sort=${encodeURIComponent(sort)}&order=${order}`)
      .then((p) => {
        setPage(p);
        setError('');
      })
      .catch((e) => setError(e.message));
  }, [corpus, offset, sort, order]);
  if (error) return <p class="error">{error}</p>;
  if (!page) return <p>Loading…</p>;
  const sortBy = (column: string) => {
    if (column === sort) setOrder(order === 'asc' ? 'desc' : 'asc');
    else {
      setSort(column);
      setOrder('asc');
    }
    setOffset(0);
  };
  const arrow = (column: string) => (column === sort ? (order === 'asc' ? ' ▲' : ' ▼') : '');
  return (
    <>
      <p class="muted">
        Table <code>{page.table}</code>: {page.total} rows. Cell colour is the label model's confidence (red low, green high); click a cell for its evidence.
      </p>
      <div class="scroll">
        <table class="grid results" id="results">
          <thead>
            <tr>
              <th onClick={() => sortBy('_document_id')}>document{arrow('_document_id')}</th>
              {page.columns.map((c: any) => {
                const state = c.filled === 0 ? 'empty' : c.meanConfidence !== null && c.meanConfidence < LOW_CONFIDENCE ? 'low' : '';
                return (
                  <th key={c.column} class={state ? `col-${state}` : ''} data-column={c.column} onClick={() => sortBy(c.column)}>
                    {c.name}
                    {arrow(c.column)}
                    <div class="colstat">
                      {state === 'empty' ? 'empty column' : `${Math.round((100 * c.filled) / Math.max(1, page.total))}% filled`}
                      {state === 'low' && ', low confidence'}
                    </div>
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>
            {page.rows.map((r: any) => (
              <tr key={r.documentId}>
                <td>
                  <a href={href('c', corpus, 'doc', r.documentId)}>{r.filename}</a>
                </td>
                {page.columns.map((c: any) => {
                  const cell = r.cells[c.column];
                  return (
                    <td
                      key={c.column}
                      class="cell"
                      data-column={c.column}
                      data-document={r.documentId}
                      style={{ background: confidenceColour(cell.confidence) }}
                      title={cell.confidence === null ? 'no value' : `confidence ${cell.confidence.toFixed(2)} (${cell.origin})`}
                    >
                      {cell.value === null ? <span class="muted">–</span> : <a href={href('c', corpus, 'doc', r.documentId, c.column)}>{String(cell.value)}</a>}
                    </td>
                  );
                })}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div class="row">
        <button disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
          Previous
        </button>
        <span class="muted">
          {page.total === 0 ? 0 : offset + 1}–{Math.min(page.total, offset + PAGE)} of {page.total}
        </span>
        <button disabled={offset + PAGE >= page.total} onClick={() => setOffset(offset + PAGE)}>
          Next
        </button>
      </div>
    </>
  );
}
