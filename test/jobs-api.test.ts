import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { buildApp } from '../src/server/app.js';
import { JobRunner } from '../src/jobs/runner.js';
import { JobService } from '../src/jobs/service.js';
import { JobEvents } from '../src/jobs/events.js';
import type { JobHandler } from '../src/jobs/types.js';

const settings = loadSettings({ databasePath: ':memory:' });
const jobSettings = { ...settings.jobs, pollMs: 20, heartbeatMs: 50, leaseMs: 500, progressWriteMs: 0 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Ten units; counts executions per key so a repeated unit shows. */
function countingHandler(runs: Map<string, number>, unitMs = 30): JobHandler<{ units: number; failAt?: number }> {
  return async (params, ctx) => {
    let sum = 0;
    for (let i = 0; i < params.units; i++) {
      ctx.progress('units', i, params.units);
      sum += await ctx.checkpoint(`unit:${i}`, async () => {
        runs.set(`${ctx.jobId}:${i}`, (runs.get(`${ctx.jobId}:${i}`) ?? 0) + 1);
        await sleep(unitMs);
        if (params.failAt === i && (runs.get(`${ctx.jobId}:fail`) ?? 0) === 0) {
          runs.set(`${ctx.jobId}:fail`, 1);
          throw new Error('the model endpoint went away');
        }
        return i * i;
      });
    }
    ctx.progress('units', params.units, params.units);
    return { sum };
  };
}

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function setup(handler: JobHandler<any>) {
  const db = openDatabase(':memory:');
  const events = new JobEvents();
  const jobs = new JobService(db, events);
  const runner = new JobRunner({ db, settings: jobSettings, handlers: { count: handler }, events });
  const app = await buildApp({ db, settings: { ...settings, jobs: jobSettings }, jobs });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  cleanup.push(async () => {
    await runner.stop(1000);
    await app.close();
    db.close();
  });
  return { db, jobs, runner, base };
}

async function waitState(db: Db, id: number, state: string) {
  for (let i = 0; i < 400; i++) {
    if (db.prepare('SELECT state FROM jobs WHERE id = ?').pluck().get(id) === state) return;
    await sleep(10);
  }
  throw new Error(`job ${id} never reached ${state}`);
}

describe('jobs API', () => {
  it('reports progress, tokens and ETA, and streams it as server-sent events until the end', async () => {
    const runs = new Map<string, number>();
    const { jobs, runner, base } = await setup(countingHandler(runs));
    const job = jobs.enqueue({ kind: 'count', params: { units: 8 } });

    const events: { event: string; data: any }[] = [];
    const streamDone = new Promise<void>((resolve) => {
      http.get(`${base}/jobs/${job.id}/events`, (res) => {
        expect(res.headers['content-type']).toMatch(/text\/event-stream/);
        let buf = '';
        res.on('data', (d) => {
          buf += d;
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const event = /^event: (.*)$/m.exec(block)![1]!;
            events.push({ event, data: JSON.parse(/^data: (.*)$/m.exec(block)![1]!) });
          }
        });
        res.on('end', resolve);
      });
    });
    await sleep(50);
    runner.start();
    await sleep(120);
    const mid = (await (await fetch(`${base}/jobs/${job.id}`)).json()) as any;
    expect(mid.state).toBe('running');
    expect(mid.step).toBe('units');
    expect(mid.total).toBe(8);
    expect(mid.done).toBeGreaterThan(0);
    expect(mid.etaSeconds).toBeGreaterThan(0);
    await streamDone;

    expect(events.at(-1)).toEqual({ event: 'end', data: { id: job.id, state: 'succeeded' } });
    const progress = events.filter((e) => e.event === 'progress').map((e) => e.data);
    expect(progress[0].state).toBe('queued');
    const dones = progress.filter((p) => p.state === 'running').map((p) => p.done);
    expect(dones.length).toBeGreaterThan(3);
    expect(dones).toEqual([...dones].sort((a, b) => a - b));
    const final = (await (await fetch(`${base}/jobs/${job.id}`)).json()) as any;
    expect(final).toMatchObject({ state: 'succeeded', done: 8, total: 8, result: { sum: 140 }, etaSeconds: null });
    const list = (await (await fetch(`${base}/jobs?state=succeeded`)).json()) as any;
    expect(list.jobs.map((j: any) => j.id)).toEqual([job.id]);
  });

  it('cancels a running job at its next checkpoint and retries it without redoing finished units', async () => {
    const runs = new Map<string, number>();
    const { db, jobs, runner, base } = await setup(countingHandler(runs, 40));
    const job = jobs.enqueue({ kind: 'count', params: { units: 10 } });
    runner.start();
    await sleep(130);
    const cancel = await fetch(`${base}/jobs/${job.id}/cancel`, { method: 'POST' });
    expect(cancel.status).toBe(202);
    await waitState(db, job.id, 'cancelled');
    const doneAtCancel = db.prepare('SELECT count(*) FROM job_checkpoints WHERE job_id = ?').pluck().get(job.id) as number;
    expect(doneAtCancel).toBeGreaterThan(0);
    expect(doneAtCancel).toBeLessThan(10);
    const again = await fetch(`${base}/jobs/${job.id}/cancel`, { method: 'POST' });
    expect(again.status).toBe(409);
    expect(((await again.json()) as any).error.code).toBe('job_finished');

    const retry = await fetch(`${base}/jobs/${job.id}/retry`, { method: 'POST' });
    expect(retry.status).toBe(202);
    await waitState(db, job.id, 'succeeded');
    expect(jobs.get(job.id).result).toEqual({ sum: 285 });
    // Every unit ran once; the one in hand at cancel time ran at most twice.
    const counts = [...Array(10).keys()].map((i) => runs.get(`${job.id}:${i}`) ?? 0);
    expect(counts.filter((c) => c === 1).length).toBeGreaterThanOrEqual(9);
    expect(Math.max(...counts)).toBeLessThanOrEqual(2);
  });

  it('marks a failing job failed with its reason, and retry resumes after the failed unit', async () => {
    const runs = new Map<string, number>();
    const { db, jobs, runner, base } = await setup(countingHandler(runs, 5));
    const job = jobs.enqueue({ kind: 'count', params: { units: 6, failAt: 3 } });
    runner.start();
    await waitState(db, job.id, 'failed');
    expect(jobs.get(job.id).error).toEqual({ code: 'job_failed', message: 'the model endpoint went away' });
    expect((await fetch(`${base}/jobs/${job.id}/retry`, { method: 'POST' })).status).toBe(202);
    await waitState(db, job.id, 'succeeded');
    expect([0, 1, 2, 4, 5].map((i) => runs.get(`${job.id}:${i}`))).toEqual([1, 1, 1, 1, 1]);
    expect(runs.get(`${job.id}:3`)).toBe(2);
  });

  it('answers bad requests with stable error codes', async () => {
    const { base } = await setup(countingHandler(new Map()));
    const missing = await fetch(`${base}/jobs/999`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as any).error.code).toBe('job_not_found');
    const sse = await fetch(`${base}/jobs/999/events`);
    expect(sse.status).toBe(404);
    const badState = await fetch(`${base}/jobs?state=exploded`);
    expect(badState.status).toBe(400);
    const retryQueued = await fetch(`${base}/jobs/999/retry`, { method: 'POST' });
    expect(retryQueued.status).toBe(404);
  });

  it('sets, validates and removes a corpus schedule', async () => {
    const { db, base } = await setup(countingHandler(new Map()));
    db.prepare("INSERT INTO corpora (name) VALUES ('books')").run();
    const bad = await fetch(`${base}/corpora/1/schedule`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cron: 'every night please' }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error.code).toBe('invalid_cron');
    const ok = await fetch(`${base}/corpora/1/schedule`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cron: '0 2 * * *', timezone: 'UTC' }),
    });
    expect(ok.status).toBe(200);
    const view = (await ok.json()) as any;
    expect(view).toMatchObject({ corpusId: 1, cron: '0 2 * * *', watermark: 0, enabled: true });
    expect(new Date(view.nextRunAt).getUTCHours()).toBe(2);
    expect((await fetch(`${base}/corpora/2/schedule`)).status).toBe(404);
    expect((await fetch(`${base}/corpora/1/schedule`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(`${base}/corpora/1/schedule`)).status).toBe(404);
  });
});

describe('runner shutdown', () => {
  it('stops at the next checkpoint on stop(), hands the job back, and another runner finishes it', async () => {
    const runs = new Map<string, number>();
    const db = openDatabase(':memory:');
    const events = new JobEvents();
    const jobs = new JobService(db, events);
    const a = new JobRunner({ db, settings: jobSettings, handlers: { count: countingHandler(runs, 30) }, events, owner: 'a' });
    const job = jobs.enqueue({ kind: 'count', params: { units: 10 } });
    a.start();
    await sleep(100);
    await a.stop();
    const row = db.prepare('SELECT state, lease_owner FROM jobs WHERE id = ?').get(job.id);
    expect(row).toEqual({ state: 'queued', lease_owner: null });
    const b = new JobRunner({ db, settings: jobSettings, handlers: { count: countingHandler(runs, 1) }, events, owner: 'b' });
    const done = await b.runOnce();
    expect(done?.state).toBe('succeeded');
    expect([...Array(10).keys()].every((i) => runs.get(`${job.id}:${i}`) === 1)).toBe(true);
    db.close();
  });
});
