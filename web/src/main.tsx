import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, apiKey, whenUnauthorized } from './api';
import { href, useRoute } from './router';
import { CorporaPage } from './corpora';
import { CorpusPage } from './corpus';
import { DocumentPage } from './document';
import { SqlPage } from './sql';
import './style.css';

function KeyForm({ onDone }: { onDone: () => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    apiKey.set(key.trim());
    try {
      await api('GET', '/corpora');
      onDone();
    } catch (err) {
      apiKey.clear();
      setError((err as Error).message);
    }
  };
  return (
    <form class="card keyform" onSubmit={submit}>
      <h2>API key</h2>
      <p>This service requires its API key (EVAPORATE_API_KEY). It is kept in this tab only.</p>
      <input type="password" name="apiKey" placeholder="API key" value={key} onInput={(e) => setKey(e.currentTarget.value)} autofocus />
      <button type="submit">Open</button>
      {error && <p class="error">{error}</p>}
    </form>
  );
}

function App() {
  const route = useRoute();
  const [auth, setAuth] = useState<'checking' | 'needed' | 'ok'>('checking');
  useEffect(() => {
    whenUnauthorized(() => setAuth('needed'));
    api('GET', '/corpora')
      .then(() => setAuth('ok'))
      .catch(() => setAuth((a) => (a === 'checking' ? 'needed' : a)));
  }, []);
  let page;
  if (auth === 'checking') page = <p>Loading…</p>;
  else if (auth === 'needed') page = <KeyForm onDone={() => setAuth('ok')} />;
  else if (route[0] === 'sql') page = <SqlPage />;
  else if (route[0] === 'c' && route[2] === 'doc') page = <DocumentPage corpus={route[1]} id={Number(route[3])} column={route[4]} />;
  else if (route[0] === 'c' && route[1]) page = <CorpusPage corpus={route[1]} tab={route[2] ?? 'documents'} />;
  else page = <CorporaPage />;
  return (
    <>
      <header>
        <a class="brand" href={href()}>
          Evaporate
        </a>
        <nav>
          <a href={href()}>Corpora</a>
          <a href={href('sql')}>SQL</a>
          <a href="/docs">API docs</a>
        </nav>
      </header>
      <main data-ready={auth === 'ok' ? 'true' : 'false'}>{page}</main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
