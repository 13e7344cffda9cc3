import { useState } from 'preact/hooks';
import { api, queryCsv } from './api';

export function SqlPage() {
  const [sql, setSql] = useState('SELECT name, table_name FROM result_tables JOIN corpora ON corpora.id = result_tables.corpus_id');
  const [result, setResult] = useState<any>(null);
  const [error, setError] = useState('');
  const run = async (e?: Event) => {
    e?.preventDefault();
    setError('');
    try {
      setResult(await api('POST', '/query', { sql }));
    } catch (err) {
      setResult(null);
      setError((err as Error).message);
    }
  };
  const download = async () => {
    try {
      const csv = await queryCsv(sql);
      const a = document.createElement('a');
      a.href = URL.createObjectURL(new Blob([csv], { type: 'text/csv' }));
      a.download = 'query.csv';
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <section>
      <h1>SQL</h1>
      <p class="muted">Read-only queries over the result tables, their provenance and the catalog (corpora, documents, attributes, functions, extractions).</p>
      <form onSubmit={run}>
        <textarea
          name="sql"
          rows={5}
          value={sql}
          onInput={(e) => setSql(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) run();
          }}
        />
        <div class="row">
          <button type="submit">Run (Ctrl+Enter)</button>
          <button type="button" onClick={download}>
            Download CSV
          </button>
        </div>
      </form>
      {error && <p class="error">{error}</p>}
      {result && (
        <>
          <p class="muted">
            {result.rows.length} rows{result.hasMore ? ' (more: add OFFSET)' : ''}
          </p>
          <div class="scroll">
            <table class="grid" id="sql-result">
              <thead>
                <tr>
                  {result.columns.map((c: string) => (
                    <th key={c}>{c}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {result.rows.map((r: unknown[], i: number) => (
                  <tr key={i}>
                    {r.map((v, j) => (
                      <td key={j}>{v === null ? <span class="muted">NULL</span> : String(v)}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}
