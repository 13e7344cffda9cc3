import { useEffect, useState } from 'preact/hooks';
import { api, upload } from './api';
import { href } from './router';
import { TableView } from './table';
import { JobsView } from './jobs';

const tabs = [
  ['documents', 'Documents'],
  ['table', 'Table'],
  ['jobs', 'Jobs'],
] as const;

export function CorpusPage({ corpus, tab }: { corpus: string; tab: string }) {
  const [info, setInfo] = useState<any>(null);
  const [error, setError] = useState('');
  const reload = () =>
    api('GET', `/corpora/${encodeURIComponent(corpus)}`)
      .then(setInfo)
      .catch((e) => setError(e.message));
  useEffect(() => {
    reload();
  }, [corpus]);
  return (
    <section>
      <h1>
        {corpus}{' '}
        {info && (
          <small class="muted">
            {info.documents} documents{info.failed ? `, ${info.failed} failed` : ''}
          </small>
        )}
      </h1>
      {error && <p class="error">{error}</p>}
      <nav class="tabs">
        {tabs.map(([id, label]) => (
          <a key={id} href={href('c', corpus, id)} class={tab === id ? 'active' : ''}>
            {label}
          </a>
        ))}
      </nav>
      {tab === 'table' ? <TableView corpus={corpus} /> : tab === 'jobs' ? <JobsView corpus={corpus} /> : <DocumentsView corpus={corpus} onChange={reload} />}
    </section>
  );
}

function DocumentsView({ corpus, onChange }: { corpus: string; onChange: () => void }) {
  const [docs, setDocs] = useState<any[]>([]);
  const [nextAfter, setNextAfter] = useState<number | null>(null);
  const [failed, setFailed] = useState<any[]>([]);
  const [results, setResults] = useState<any[] | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [over, setOver] = useState(false);
  const [error, setError] = useState('');
  const base = `/corpora/${encodeURIComponent(corpus)}/documents`;
  const load = async (after = 0) => {
    const page = await api('GET', `${base}?status=ready&limit=100&after=${after}`);
    setDocs((d) => (after === 0 ? page.items : [...d, ...page.items]));
    setNextAfter(page.nextAfter);
    setFailed((await api('GET', `${base}?status=failed&limit=1000`)).items);
  };
  useEffect(() => {
    load().catch((e) => setError(e.message));
  }, [corpus]);
  const send = async (files: File[]) => {
    if (files.length === 0) return;
    setBusy(`Uploading ${files.length} file${files.length === 1 ? '' : 's'}…`);
    setError('');
    try {
      const r = await upload(corpus, files, (sent, total) =>
        setBusy(sent < total ? `Uploading ${files.length} files: ${Math.round((100 * sent) / total)}%` : 'Ingesting… (each file is parsed and stored)'),
      );
      setResults(r.results);
      await load();
      onChange();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(null);
    }
  };
  const drop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    send([...(e.dataTransfer?.files ?? [])]);
  };
  return (
    <>
      <label
        class={'dropzone' + (over ? ' over' : '')}
        id="dropzone"
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={drop}
      >
        <input type="file" multiple name="files" onChange={(e) => send([...(e.currentTarget.files ?? [])])} />
        {busy ?? 'Drop HTML, PDF, text files or zip / tar archives here, or click to choose'}
      </label>
      {error && <p class="error">{error}</p>}
      {results && (
        <table class="grid" id="upload-results">
          <thead>
            <tr>
              <th>file</th>
              <th>result</th>
              <th>kind</th>
              <th>detail</th>
            </tr>
          </thead>
          <tbody>
            {results.map((r, i) => (
              <tr key={i} class={r.status}>
                <td>{r.filename}</td>
                <td>{r.status}</td>
                <td>{r.kind ?? ''}</td>
                <td>{r.error ? `${r.error.code}: ${r.error.message}` : r.note ?? (r.documentId ? `document ${r.documentId}` : '')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {failed.length > 0 && (
        <>
          <h3>Failed documents</h3>
          <table class="grid" id="failed-docs">
            <tbody>
              {failed.map((d) => (
                <tr key={d.id} class="failed">
                  <td>{d.filename}</td>
                  <td>{d.errorCode}</td>
                  <td>{d.errorMessage}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <h3>Documents</h3>
      {docs.length === 0 ? (
        <p class="muted">No documents yet.</p>
      ) : (
        <table class="grid" id="documents">
          <thead>
            <tr>
              <th>id</th>
              <th>file</th>
              <th>kind</th>
              <th>bytes</th>
            </tr>
          </thead>
          <tbody>
            {docs.map((d) => (
              <tr key={d.id}>
                <td class="num">{d.id}</td>
                <td>
                  <a href={href('c', corpus, 'doc', d.id)}>{d.filename}</a>
                </td>
                <td>{d.kind}</td>
                <td class="num">{d.byteSize}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {nextAfter !== null && <button onClick={() => load(nextAfter)}>More</button>}
    </>
  );
}
