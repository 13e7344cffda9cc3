import { useEffect, useState } from 'preact/hooks';
import { api } from './api';
import { go, href } from './router';

export function CorporaPage() {
  const [items, setItems] = useState<any[] | null>(null);
  const [name, setName] = useState('');
  const [error, setError] = useState('');
  const load = () => api('GET', '/corpora').then((r) => setItems(r.items));
  useEffect(() => {
    load().catch((e) => setError(e.message));
  }, []);
  const create = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      const c = await api('POST', '/corpora', { name: name.trim() });
      go('c', c.name, 'documents');
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <section>
      <h1>Corpora</h1>
      <form class="row" onSubmit={create}>
        <input name="corpusName" placeholder="new corpus name" value={name} onInput={(e) => setName(e.currentTarget.value)} required />
        <button type="submit">Create corpus</button>
      </form>
      {error && <p class="error">{error}</p>}
      {items === null ? (
        <p>Loading…</p>
      ) : items.length === 0 ? (
        <p class="muted">No corpus yet: create one, then drop files on it.</p>
      ) : (
        <table class="grid" id="corpora">
          <thead>
            <tr>
              <th>corpus</th>
              <th>documents</th>
              <th>failed</th>
              <th>created</th>
            </tr>
          </thead>
          <tbody>
            {items.map((c) => (
              <tr key={c.id} data-corpus={c.name}>
                <td>
                  <a href={href('c', c.name, 'documents')}>{c.name}</a>
                </td>
                <td class="num">{c.documents ?? 0}</td>
                <td class={'num' + (c.failed ? ' bad' : '')}>{c.failed ?? 0}</td>
                <td class="muted">{c.createdAt?.slice(0, 16).replace('T', ' ')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
