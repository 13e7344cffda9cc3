/**
 * Nightly incremental runs and drift, with a small IncrementalPipeline of our own (regex functions stored in
 * the functions table, majority vote, re-synthesis through the real LLM stack against the fake server).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { createLlm, OpenAiProvider } from '../src/llm/index.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { JobRunner } from '../src/jobs/runner.js';
import { JobScheduler } from '../src/jobs/scheduler.js';
import { JobService } from '../src/jobs/service.js';
import { JobEvents } from '../src/jobs/events.js';
import { createNightlyHandler, type IncrementalPipeline, type NightlyResult } from '../src/jobs/nightly.js';
import type { Vote } from '../src/weak-supervision/types.js';
import { startFakeOpenAI, type FakeOpenAI } from './fake-openai.js';

const settings = loadSettings({ databasePath: ':memory:' });
const jobSettings = { ...settings.jobs, batchSize: 25, driftMinDocuments: 10, driftThreshold: 0.15, pollMs: 20 };

function regexPipeline(db: Db, fake: FakeOpenAI, hooks: { onApply?: () => void; writes: number[] }): IncrementalPipeline {
  const llm = createLlm({
    db,
    settings,
    provider: new OpenAiProvider({ baseURL: fake.url, apiKey: 'test', defaultMaxTokens: 64 }),
    models: { default: 'fake', synthesis: 'fake', schema: 'fake', extraction: 'fake' },
  });
  const kept = (attributeId: number) =>
    db.prepare('SELECT source FROM functions WHERE attribute_id = ? AND selected = 1 ORDER BY id').pluck().all(attributeId) as string[];
  const text = (id: number) => db.prepare('SELECT text FROM documents WHERE id = ?').pluck().get(id) as string;
  return {
    attributes: (corpusId) =>
      db
        .prepare('SELECT DISTINCT a.id, a.name FROM attributes a JOIN functions f ON f.attribute_id = a.id WHERE a.corpus_id = ? ORDER BY a.id')
        .all(corpusId) as { id: number; name: string }[],
    async apply(_c, attributeId, ids) {
      hooks.onApply?.();
      const fns = kept(attributeId).map((s) => new RegExp(s));
      return ids.map((id) => fns.map((re) => re.exec(text(id))?.[1] ?? null));
    },
    write(_c, attributeId, ids, votes, jobId) {
      const ins = db.prepare(
        `INSERT INTO extractions (document_id, attribute_id, value, origin, job_id) VALUES (?, ?, ?, 'functions', ?)
         ON CONFLICT (document_id, attribute_id) DO UPDATE SET value = excluded.value, job_id = excluded.job_id`,
      );
      ids.forEach((id, i) => {
        const cast = votes[i]!.filter((v): v is string => v !== null);
        const value = cast.sort((a, b) => cast.filter((x) => x === b).length - cast.filter((x) => x === a).length)[0] ?? null;
        ins.run(id, attributeId, value, jobId);
        hooks.writes.push(id);
      });
    },
    async resynthesize(_c, attributeId, recent, ctx) {
      const name = db.prepare('SELECT name FROM attributes WHERE id = ?').pluck().get(attributeId) as string;
      const sample = recent.slice(0, 3).map(text).join('\n');
      const r = await llm.complete(
        { messages: [{ role: 'user', content: `Write a function for the attribute ${name}.\n${sample}` }], temperature: 0 },
        { jobId: ctx.jobId, signal: ctx.signal },
      );
      db.transaction(() => {
        db.prepare('UPDATE functions SET selected = 0 WHERE attribute_id = ?').run(attributeId);
        db.prepare("INSERT INTO functions (attribute_id, source, source_hash, selected) VALUES (?, ?, ?, 1)").run(
          attributeId,
          r.texts[0],
          `resynth:${r.texts[0]}`,
        );
      })();
    },
  };
}

function addDocuments(db: Db, corpusId: number, from: number, count: number, format: 'price' | 'cost'): number[] {
  const ins = db.prepare(
    "INSERT INTO documents (corpus_id, filename, content_hash, kind, byte_size, text, status) VALUES (?, ?, ?, 'text', 1, ?, 'ready')",
  );
  const ids: number[] = [];
  for (let i = from; i < from + count; i++) {
    ids.push(Number(ins.run(corpusId, `d${i}`, `h${i}`, `title: Book ${i}; ${format}: ${(i * 2).toFixed(2)}`).lastInsertRowid));
  }
  return ids;
}

describe('nightly incremental runs', () => {
  let fake: FakeOpenAI;
  let db: Db;
  let corpusId: number;
  let runner: JobRunner;
  let scheduler: JobScheduler;
  let jobs: JobService;
  const hooks: { onApply?: () => void; writes: number[] } = { writes: [] };
  const attr: Record<string, number> = {};

  beforeAll(async () => {
    fake = await startFakeOpenAI();
    fake.on(/attribute price/, 'cost: ([0-9.]+)');
    db = openDatabase(':memory:');
    corpusId = Number(db.prepare("INSERT INTO corpora (name) VALUES ('books')").run().lastInsertRowid);
    for (const [name, fns] of [
      ['title', ['title: ([^;]+)', 'title:\\s*([^;]+)']],
      ['price', ['price: ([0-9.]+)', 'price:\\s*\\$?([0-9.]+)']],
    ] as const) {
      attr[name] = Number(db.prepare("INSERT INTO attributes (corpus_id, name, origin) VALUES (?, ?, 'user')").run(corpusId, name).lastInsertRowid);
      for (const f of fns) db.prepare('INSERT INTO functions (attribute_id, source, source_hash, selected) VALUES (?, ?, ?, 1)').run(attr[name], f, f);
    }
    const events = new JobEvents();
    jobs = new JobService(db, events);
    const pipeline = regexPipeline(db, fake, hooks);
    // The original extraction: 100 documents, written by the kept functions.
    const original = addDocuments(db, corpusId, 0, 100, 'price');
    for (const a of Object.values(attr)) pipeline.write(corpusId, a, original, await pipeline.apply(corpusId, a, original, null as never), 0);
    hooks.writes = [];
    jobs.setSchedule(corpusId, { cron: '0 2 * * *' });
    runner = new JobRunner({ db, settings: jobSettings, handlers: { nightly: createNightlyHandler({ db, pipeline, settings: jobSettings }) }, events });
    scheduler = new JobScheduler(db, events);
  });
  afterAll(async () => {
    scheduler.stop();
    db.close();
    await fake.close();
  });

  let night = 0;
  const runNightly = async () => {
    // One tick per night: the scheduler's dedupe key is per tick.
    const job = scheduler.fire({ corpus_id: corpusId, kind: 'nightly', params: '{}' }, new Date(Date.UTC(2027, 0, ++night, 2)));
    expect(job).toBeDefined();
    const done = await runner.runOnce();
    expect(done?.state).toBe('succeeded');
    return { jobId: done!.id, result: JSON.parse(done!.result!) as NightlyResult };
  };

  it('a schedule starts after the documents already extracted', () => {
    expect(jobs.getSchedule(corpusId).watermark).toBe(100);
  });

  it('processes only the 100 new documents and makes no LLM call when health is stable', async () => {
    const fresh = addDocuments(db, corpusId, 100, 100, 'price');
    const { jobId, result } = await runNightly();
    expect(result).toMatchObject({ from: 100, to: 200, documents: 100 });
    expect([...new Set(hooks.writes)].sort((a, b) => a - b)).toEqual(fresh);
    expect(hooks.writes.length).toBe(200); // each new document once per attribute
    expect(fake.chatRequests.length).toBe(0);
    expect(db.prepare('SELECT count(*) FROM llm_usage').pluck().get()).toBe(0);
    expect(db.prepare('SELECT count(*) FROM extractions WHERE job_id = ?').pluck().get(jobId)).toBe(200);
    expect(result.attributes.map((a) => [a.attribute, a.drifted, a.unhealthyShare])).toEqual([
      ['title', false, 0],
      ['price', false, 0],
    ]);
    expect(jobs.getSchedule(corpusId)).toMatchObject({ watermark: 200, lastJobId: jobId });
    // Baselines were measured on processed documents, with the same functions and no LLM.
    expect(jobs.health(corpusId).map((h) => [h.attribute, h.runKind])).toEqual([
      ['title', 'baseline'],
      ['title', 'nightly'],
      ['price', 'baseline'],
      ['price', 'nightly'],
    ]);
  });

  it('leaves documents that arrive during a run whole for the next run', async () => {
    hooks.writes = [];
    const batchOne = addDocuments(db, corpusId, 200, 30, 'price');
    let late: number[] = [];
    hooks.onApply = () => {
      if (!late.length) late = addDocuments(db, corpusId, 230, 5, 'price');
    };
    const first = await runNightly();
    hooks.onApply = undefined;
    expect(first.result).toMatchObject({ from: 200, to: 230, documents: 30 });
    expect([...new Set(hooks.writes)].sort((a, b) => a - b)).toEqual(batchOne);
    expect(db.prepare(`SELECT count(*) FROM extractions WHERE document_id IN (${late.join(',')})`).pluck().get()).toBe(0);
    expect(jobs.getSchedule(corpusId).watermark).toBe(230);
    hooks.writes = [];
    const second = await runNightly();
    expect(second.result).toMatchObject({ from: 230, to: 235, documents: 5 });
    expect([...new Set(hooks.writes)].sort((a, b) => a - b)).toEqual(late);
  });

  it('re-synthesizes only the attribute whose new documents changed format', async () => {
    hooks.writes = [];
    const changed = addDocuments(db, corpusId, 300, 50, 'cost');
    const { jobId, result } = await runNightly();
    const byName = Object.fromEntries(result.attributes.map((a) => [a.attribute, a]));
    expect(byName.title).toMatchObject({ drifted: false, resynthesized: false, unhealthyShare: 0 });
    expect(byName.price).toMatchObject({ drifted: true, resynthesized: true, unhealthyShare: 1, baselineShare: 0 });
    // One synthesis call, for price only.
    expect(fake.chatRequests.map((r) => r.prompt.split('\n')[0])).toEqual(['Write a function for the attribute price.']);
    expect(db.prepare("SELECT count(*) FROM llm_usage WHERE job_id = ? AND cached = 0 AND status = 'ok'").pluck().get(jobId)).toBe(1);
    // The new function fills the changed documents.
    const prices = db
      .prepare(`SELECT value FROM extractions WHERE attribute_id = ? AND document_id IN (${changed.join(',')}) ORDER BY document_id`)
      .pluck()
      .all(attr.price) as (string | null)[];
    expect(prices).toEqual(changed.map((_, i) => ((300 + i) * 2).toFixed(2)));
    // History: price's drift and its new baseline are on record; title kept its old functions.
    const history = jobs.health(corpusId).filter((h) => h.jobId === jobId);
    expect(history.map((h) => [h.attribute, h.runKind, h.drifted, h.resynthesized])).toEqual([
      ['title', 'nightly', false, false],
      ['price', 'baseline', false, false],
      ['price', 'nightly', true, true],
    ]);
    expect(db.prepare('SELECT count(*) FROM functions WHERE attribute_id = ? AND selected = 1').pluck().get(attr.title)).toBe(2);
  });

  it('enqueues one run per tick however many schedulers fire, and none while a run is open', () => {
    const other = new JobScheduler(db, new JobEvents());
    const tick = new Date('2030-01-01T02:00:00Z');
    const a = scheduler.fire({ corpus_id: corpusId, kind: 'nightly', params: '{}' }, tick);
    const b = other.fire({ corpus_id: corpusId, kind: 'nightly', params: '{}' }, tick);
    expect(a).toBeDefined();
    expect(b).toBeUndefined();
    expect(db.prepare("SELECT count(*) FROM jobs WHERE kind = 'nightly' AND state = 'queued'").pluck().get()).toBe(1);
    db.prepare("UPDATE jobs SET state = 'cancelled' WHERE id = ?").run(a!.id);
  });
});
