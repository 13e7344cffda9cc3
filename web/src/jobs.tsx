import { useEffect, useState } from 'preact/hooks';
import { api, followJob } from './api';

const terminal = ['succeeded', 'failed', 'cancelled'];

const eta = (s: number | null) => (s === null ? '–' : s < 60 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`);

/** One job, live: follows its event stream while it runs. */
export function JobCard({ job: initial, onEnd }: { job: any; onEnd?: (job: any) => void }) {
  const [job, setJob] = useState(initial);
  // Bumped by retry: the job runs again and is followed again.
  const [run, setRun] = useState(0);
  useEffect(() => {
    if (terminal.includes(initial.state) && run === 0) return;
    let last = initial;
    return followJob(
      initial.id,
      (j) => {
        last = j;
        setJob(j);
      },
      () => onEnd?.(last),
    );
  }, [initial.id, run]);
  const act = async (what: 'cancel' | 'retry') => {
    setJob(await api('POST', `/jobs/${job.id}/${what}`));
    if (what === 'retry') setRun(run + 1);
  };
  const pct = job.total > 0 ? Math.round((100 * job.done) / job.total) : terminal.includes(job.state) ? 100 : 0;
  const attrs = (job.params?.attributes ?? []).map((a: any) => a.name ?? a).join(', ');
  return (
    <div class={`card job ${job.state}`} data-job={job.id} data-state={job.state}>
      <div class="row">
        <strong>
          Job {job.id} · {job.params?.mode ?? job.kind}
        </strong>
        <span class="state">{job.state}</span>
        {!terminal.includes(job.state) && <button onClick={() => act('cancel')}>Cancel</button>}
        {(job.state === 'failed' || job.state === 'cancelled') && <button onClick={() => act('retry')}>Retry</button>}
      </div>
      {attrs && <div class="muted">attributes: {attrs}</div>}
      <div class="progress">
        <div style={{ width: `${pct}%` }} />
      </div>
      <div class="jobstats">
        <span class="step">step: {job.step ?? '–'}</span>
        <span class="count">
          {job.done}/{job.total}
        </span>
        <span>tokens: {job.tokens}</span>
        <span>cost: ${Number(job.costUsd ?? 0).toFixed(4)}</span>
        <span>ETA: {eta(job.etaSeconds)}</span>
      </div>
      {job.error && (
        <p class="error">
          {job.error.code}: {job.error.message}
        </p>
      )}
      {job.state === 'succeeded' && job.result?.rows !== undefined && <div class="muted">{job.result.rows} rows materialized</div>}
    </div>
  );
}

export function StartExtraction({ corpus, onStarted, initialAttributes = '' }: { corpus: string; onStarted: (job: any) => void; initialAttributes?: string }) {
  const [mode, setMode] = useState<'closed' | 'open'>('closed');
  const [attributes, setAttributes] = useState(initialAttributes);
  const [maxTokens, setMaxTokens] = useState('');
  const [maxUsd, setMaxUsd] = useState('');
  const [error, setError] = useState('');
  const start = async (e: Event) => {
    e.preventDefault();
    setError('');
    const body: any = { mode };
    if (mode === 'closed') body.attributes = attributes.split(',').map((a) => a.trim()).filter(Boolean);
    const budget: any = {};
    if (maxTokens) budget.maxTokens = Number(maxTokens);
    if (maxUsd) budget.maxUsd = Number(maxUsd);
    if (Object.keys(budget).length) body.budget = budget;
    try {
      onStarted(await api('POST', `/corpora/${encodeURIComponent(corpus)}/extractions`, body));
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <form class="card" onSubmit={start} id="start-extraction">
      <h3>Start an extraction</h3>
      <div class="row">
        <label>
          <input type="radio" name="mode" checked={mode === 'closed'} onChange={() => setMode('closed')} /> closed (name the columns)
        </label>
        <label>
          <input type="radio" name="mode" checked={mode === 'open'} onChange={() => setMode('open')} /> open (discover them)
        </label>
      </div>
      {mode === 'closed' && (
        <input name="attributes" placeholder="attributes, comma-separated: title, author, isbn_13" value={attributes} onInput={(e) => setAttributes(e.currentTarget.value)} required />
      )}
      <div class="row">
        <input name="maxTokens" type="number" min="0" placeholder="budget: max tokens" value={maxTokens} onInput={(e) => setMaxTokens(e.currentTarget.value)} />
        <input name="maxUsd" type="number" min="0" step="0.01" placeholder="budget: max USD" value={maxUsd} onInput={(e) => setMaxUsd(e.currentTarget.value)} />
        <button type="submit">Start</button>
      </div>
      {error && <p class="error">{error}</p>}
    </form>
  );
}

/** Share of documents where the functions abstained or disagreed, per run and attribute. */
function HealthChart({ points }: { points: any[] }) {
  if (points.length === 0) return <p class="muted">No health history yet (it grows with each run).</p>;
  const runs = [...new Set(points.map((p) => p.jobId))];
  const attributes = [...new Set(points.map((p) => p.attribute))];
  const W = 420;
  const H = 120;
  const x = (i: number) => (runs.length === 1 ? W / 2 : 30 + (i * (W - 40)) / (runs.length - 1));
  const y = (share: number) => H - 15 - share * (H - 30);
  const colours = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2'];
  return (
    <svg class="health" width={W} height={H + 20} id="health-chart">
      <line x1="25" x2={W} y1={y(0)} y2={y(0)} stroke="#ccc" />
      <line x1="25" x2={W} y1={y(1)} y2={y(1)} stroke="#eee" />
      <text x="0" y={y(0) + 4} font-size="10">0</text>
      <text x="0" y={y(1) + 4} font-size="10">100%</text>
      {attributes.map((a, k) => {
        const pts = runs.map((r, i) => [i, points.find((p) => p.jobId === r && p.attribute === a)] as const).filter(([, p]) => p);
        const colour = colours[k % colours.length];
        return (
          <g key={a}>
            <polyline fill="none" stroke={colour} stroke-width="2" points={pts.map(([i, p]) => `${x(i)},${y(p.unhealthyShare)}`).join(' ')} />
            {pts.map(([i, p]) => (
              <circle key={i} cx={x(i)} cy={y(p.unhealthyShare)} r={p.drifted ? 5 : 3} fill={p.drifted ? '#dc2626' : colour}>
                <title>{`${a}, job ${p.jobId} (${p.runKind}): ${Math.round(100 * p.unhealthyShare)}% abstain or disagree${p.drifted ? ', drifted' : ''}`}</title>
              </circle>
            ))}
            <text x={30 + k * 90} y={H + 15} font-size="11" fill={colour}>
              {a}
            </text>
          </g>
        );
      })}
    </svg>
  );
}

export function JobsView({ corpus }: { corpus: string }) {
  const [jobs, setJobs] = useState<any[]>([]);
  const [health, setHealth] = useState<any[]>([]);
  const [error, setError] = useState('');
  const c = encodeURIComponent(corpus);
  const load = () =>
    Promise.all([api('GET', `/corpora/${c}/extractions`), api('GET', `/corpora/${c}/health`)])
      .then(([j, h]) => {
        setJobs(j.extractions);
        setHealth(h.health);
      })
      .catch((e) => setError(e.message));
  useEffect(() => {
    load();
  }, [corpus]);
  return (
    <>
      <StartExtraction corpus={corpus} onStarted={(job) => setJobs([job, ...jobs])} />
      {error && <p class="error">{error}</p>}
      <h3>Health of the attributes per run</h3>
      <HealthChart points={health} />
      <h3>Extraction jobs</h3>
      {jobs.length === 0 && <p class="muted">No extraction yet.</p>}
      {jobs.map((j) => (
        <JobCard key={j.id} job={j} onEnd={() => load()} />
      ))}
    </>
  );
}
