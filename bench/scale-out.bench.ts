/**
 * `npm run bench scale-out`: the corpus pass (kept functions over every document, batch by batch) in this
 * process, on 1 `evaporate worker` process and on 2, through BullMQ on the local Redis (db 14, a key prefix per
 * run). Every configuration gets one sandbox thread per process, so "2 workers" is two cores' worth of sandbox
 * against one. The workload is the pipeline's own: the 200 real SWDE christianbook pages (HTML and rendered
 * text, replicated with ISBN, title and year varied per copy) and the functions wrapper induction keeps for
 * them (DOM helpers and anchored regexes). Reports evaluations/s, the queue's overhead per shard (time and CPU
 * against the in-process pass, bytes of payload and result) and the machine's load average while each ran.
 *
 * EVAPORATE_BENCH_SCALE_DOCS sets the corpus size (default 600), EVAPORATE_BENCH_SCALE_BATCH the documents per
 * shard (default 50), EVAPORATE_BENCH_SCALE_ROUNDS the interleaved rounds (default 2), EVAPORATE_BENCH_SCALE_NODE_ARGS
 * extra node flags for the workers (a CPU profile). Skips without ../shared/data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { loadSettings } from '../src/config.js';
import { induceCandidates } from '../src/pipeline/induction/index.js';
import { runBatch } from '../src/pipeline/aggregation.js';
import { shardedCorpusPass } from '../src/pipeline/corpus-shards.js';
import { memoryJobContext } from '../src/pipeline/extract-job.js';
import * as repo from '../src/pipeline/repository.js';
import { createSandbox } from '../src/sandbox/index.js';
import { QueueShardRunner } from '../src/shards/coordinator.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { loadSwde, seededSample, type Page } from './induction.bench.js';
import { needsSharedData, repoRoot, sharedData, type BenchResult } from './lib.js';

const REDIS_URL = process.env.EVAPORATE_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/14';
const N = Number(process.env.EVAPORATE_BENCH_SCALE_DOCS ?? 600);
/** Documents per shard: real pages carry their HTML (about 130 KB each), so the pipeline's 500 would make 65 MB shards. */
const SHARD_DOCS = Number(process.env.EVAPORATE_BENCH_SCALE_BATCH ?? 50);
const SITE = 'swde-book-christianbook';
/** Extra node flags for the worker processes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to see where a shard's time goes. */
const WORKER_NODE_ARGS = (process.env.EVAPORATE_BENCH_SCALE_NODE_ARGS ?? '').split(' ').filter(Boolean);

/**
 * The functions the pipeline keeps for this site when it learns from labels: wrapper induction's top 3 per
 * attribute from 10 labelled pages (seed 0, as the induction bench draws them), run as the corpus pass runs
 * them. They mix DOM helpers (doc.select, doc.textAfter) and anchored regexes over the text.
 */
function keptFunctions(pages: Page[], gold: Record<string, Map<string, string[]>>, attributes: string[]) {
  const labelled = new Set(seededSample(pages.map((p) => p.id), 10, 0));
  return attributes.map((name) => {
    const examples = pages.filter((p) => labelled.has(p.id)).map((p) => ({ document: p, values: gold[name].get(p.id) ?? [] }));
    const { candidates } = induceCandidates(name, examples, { maxCandidates: 3 });
    return { name, functions: candidates.map((c, i) => ({ id: `${name}:${i}`, source: c.source })) };
  });
}

/**
 * Document i: one of the 200 real pages (HTML and its rendered text, stored as an HTML document the way ingest
 * stores one), with ISBN, title and year varied per copy as bench/pipeline.bench.ts varies them.
 */
function corpus(db: Db, pages: Page[], gold: Record<string, Map<string, string[]>>): number[] {
  const vary = (page: Page, copy: number, s: string) => {
    if (copy === 0) return s;
    const isbn = gold.isbn_13?.get(page.id)?.[0];
    const title = gold.title?.get(page.id)?.[0];
    if (isbn) s = s.split(isbn).join(String(BigInt(isbn) + BigInt(copy * 7919)).padStart(13, '0'));
    if (title && title.length > 3) s = s.split(title).join(`${title}, Volume ${copy + 1}`);
    return s.replace(/Publication Date: (\d{4})/, (_m, y: string) => `Publication Date: ${1900 + ((Number(y) + copy) % 125)}`);
  };
  const corpusId = Number(db.prepare("INSERT INTO corpora (name) VALUES ('scale-out')").run().lastInsertRowid);
  const insert = db.prepare(`INSERT INTO documents (corpus_id, filename, content_hash, kind, byte_size, raw, text, status) VALUES (?, ?, ?, 'html', ?, ?, ?, 'ready')`);
  db.transaction(() => {
    for (let i = 0; i < N; i++) {
      const page = pages[i % pages.length];
      const copy = Math.floor(i / pages.length);
      const raw = Buffer.from(vary(page, copy, page.html));
      const text = vary(page, copy, page.text);
      insert.run(corpusId, `c${copy}/${page.id}.htm`, createHash('sha1').update(`${i}:`).update(raw).digest('hex'), raw.length, raw, text);
    }
  })();
  return repo.documentSummaries(db, corpusId).map((d) => d.id);
}

function worker(queue: string): { proc: ChildProcess; ready: Promise<void>; shardMs: number[]; exited: Promise<unknown> } {
  const proc = spawn(process.execPath, [...WORKER_NODE_ARGS, '--import', 'tsx', path.join(repoRoot, 'src', 'cli', 'main.ts'), 'worker', '--redis', REDIS_URL], {
    cwd: repoRoot,
    env: { ...process.env, EVAPORATE_SHARD_QUEUE: queue, EVAPORATE_SHARD_PREFIX: queue, EVAPORATE_SANDBOX_WORKERS: '1', EVAPORATE_WORKER_CONCURRENCY: process.env.EVAPORATE_WORKER_CONCURRENCY ?? '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const shardMs: number[] = [];
  proc.stdout!.on('data', (d: Buffer) => {
    for (const m of d.toString().matchAll(/shard-done .* in (\d+) ms/g)) shardMs.push(Number(m[1]));
  });
  const ready = new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('ready')) resolve();
    });
    proc.on('close', () => reject(new Error('worker exited before ready')));
  });
  return { proc, ready, shardMs, exited: new Promise((r) => proc.on('close', r)) };
}

const loadavg = () => os.loadavg()[0];
const chunk = (ids: number[], n: number) => Array.from({ length: Math.ceil(ids.length / n) }, (_, i) => ids.slice(i * n, (i + 1) * n));

/** CPU time (user + system, all threads) of one process so far, from /proc; 0 where there is none. */
function processCpuMs(pid: number): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return 0;
  }
}
/** The process's children, from /proc (every thread's list). */
function childPids(pid: number): number[] {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).flatMap((t) => fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
  } catch {
    return [];
  }
}
/**
 * CPU of a process and its descendants but those under `skip`: the sandbox runs its pool in a child process,
 * where all function work happens, so a process's own CPU alone would leave the work out.
 */
function treeCpuMs(pid: number | undefined, skip: Set<number> = new Set()): number {
  if (pid === undefined || skip.has(pid)) return 0;
  return processCpuMs(pid) + childPids(pid).reduce((n, c) => n + treeCpuMs(c, skip), 0);
}
async function redisCpuMs(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const get = (k: string) => Number(new RegExp(`${k}:([0-9.]+)`).exec(info)?.[1] ?? 0);
  return (get('used_cpu_user') + get('used_cpu_sys')) * 1000;
}

export default async function scaleOutBench(): Promise<BenchResult> {
  const missing = needsSharedData('scale-out', SITE);
  if (missing) return missing;
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    await redis.ping();
  } catch {
    redis.disconnect();
    console.log(`scale-out: no Redis at ${REDIS_URL}; skipped`);
    return { name: 'scale-out', rows: [], notes: [`skipped: no Redis at ${REDIS_URL}`] };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-bench-scale-'));
  const settings = loadSettings({ databasePath: path.join(dir, 'b.db') });
  const batchSize = SHARD_DOCS;
  const db = openDatabase(settings.databasePath);
  const { pages, gold, attributes } = loadSwde(path.join(sharedData, SITE));
  const ATTRIBUTES = keptFunctions(pages, gold, attributes);
  const ids = corpus(db, pages, gold);
  // What the in-process pass hands the sandbox: text, and the HTML the DOM helpers read.
  const load = (batch: number[]) => repo.loadDocuments(db, batch).map((d) => ({ id: d.id, text: d.text, ...(d.html ? { html: d.html } : {}) }));
  const evaluations = ids.length * ATTRIBUTES.reduce((n, a) => n + a.functions.length, 0);
  const shards = Math.ceil(ids.length / batchSize);
  const rows: BenchResult['rows'] = [];
  const rounds = Math.max(1, Number(process.env.EVAPORATE_BENCH_SCALE_ROUNDS ?? 2));

  // In process: the same loop as the in-process corpus pass, one sandbox thread.
  const sandbox = createSandbox({ ...settings.sandbox, workers: 1 });
  await runBatch(sandbox, ATTRIBUTES[0].functions, load(ids.slice(0, 10))); // warm the pool
  const inProcessPass = async () => {
    const failures = new Map(ATTRIBUTES.map((a) => [a.name, new Map<string, number>()]));
    for (let b = 0; b < shards; b++) {
      const docs = load(ids.slice(b * batchSize, (b + 1) * batchSize));
      for (const a of ATTRIBUTES) await runBatch(sandbox, a.functions, docs, failures.get(a.name));
    }
  };
  // Worker pools of 1 and 2 processes, each on its own queue, started (and warmed) before any timing.
  const pools = [];
  for (const n of [1, 2]) {
    const queue = `evbench-${process.pid}-${n}`;
    const ws = Array.from({ length: n }, () => worker(queue));
    await Promise.all(ws.map((w) => w.ready));
    const runner = new QueueShardRunner({ ...settings.shards, redisUrl: REDIS_URL, queue, prefix: queue, pollMs: 200 }, (line) => console.log(`scale-out: ${line}`), true);
    await shardedCorpusPass(runner, memoryJobContext({ jobId: 0 }), { attributes: ATTRIBUTES, batches: chunk(ids.slice(0, 10 * n), 5), load });
    pools.push({ n, queue, ws, runner });
  }
  const runs: Record<string, { ms: number; load: number; cpuMs: number; coordinatorCpuMs: number; redisCpuMs: number }[]> = { 'in process': [], '1 worker': [], '2 workers': [] };
  let jobId = 1;
  // CPU time of every process taking part (this one, the workers, Redis) besides the wall time: on a machine
  // shared with other work the wall time says how busy the machine was; the CPU time says what the pass cost.
  const timed = async (name: string, fn: () => Promise<unknown>, pids: (number | undefined)[] = []) => {
    const workerPids = new Set(pids.filter((p): p is number => p !== undefined));
    const selfCpuMs = () => treeCpuMs(process.pid, workerPids);
    const workersCpu = () => pids.reduce<number>((n, pid) => n + treeCpuMs(pid), 0);
    const [s0, w0, r0] = [selfCpuMs(), workersCpu(), await redisCpuMs(redis)];
    const t0 = performance.now();
    await fn();
    const ms = performance.now() - t0;
    const [self, workers] = [selfCpuMs() - s0, workersCpu() - w0];
    runs[name].push({ ms, load: loadavg(), cpuMs: self + workers, coordinatorCpuMs: self, redisCpuMs: (await redisCpuMs(redis)) - r0 });
  };
  // Interleaved rounds, best of each: on a shared machine the minimum is the run least disturbed by others.
  for (let r = 0; r < rounds; r++) {
    await timed('in process', inProcessPass);
    for (const p of pools) {
      Object.assign(p.runner.stats, { issued: 0, accepted: 0, sampledPayloads: 0, sampledResults: 0, payloadBytes: 0, resultBytes: 0, reissued: 0 });
      await timed(
        p.n === 1 ? '1 worker' : '2 workers',
        () => shardedCorpusPass(p.runner, memoryJobContext({ jobId: jobId++ }), { attributes: ATTRIBUTES, batches: chunk(ids, batchSize), load }),
        p.ws.map((w) => w.proc.pid),
      );
    }
  }
  await sandbox.close();
  const best = (name: string) => Math.min(...runs[name].map((x) => x.ms));
  const loads = (name: string) => runs[name].map((x) => x.load.toFixed(1)).join(' ');
  const cpuOf = (name: string) => Math.min(...runs[name].map((x) => x.cpuMs));
  const redisCpuOf = (name: string) => Math.min(...runs[name].map((x) => x.redisCpuMs));
  rows.push({ run: 'in process', documents: ids.length, shards, 'best s': best('in process') / 1000, 'evaluations/s': Math.round(evaluations / (best('in process') / 1000)), 'load avg per round': loads('in process'), 'CPU s': cpuOf('in process') / 1000 });
  for (const p of pools) {
    const name = p.n === 1 ? '1 worker' : '2 workers';
    const stats = p.runner.stats;
    rows.push({
      run: name,
      documents: ids.length,
      shards,
      'best s': best(name) / 1000,
      'evaluations/s': Math.round(evaluations / (best(name) / 1000)),
      'load avg per round': loads(name),
      'CPU s': cpuOf(name) / 1000,
      'of which coordinator': Math.min(...runs[name].map((x) => x.coordinatorCpuMs)) / 1000,
      'Redis CPU s': redisCpuOf(name) / 1000,
      'payload B/shard': Math.round(stats.payloadBytes / Math.max(1, stats.sampledPayloads)),
      'result B/shard': Math.round(stats.resultBytes / Math.max(1, stats.sampledResults)),
      reissued: stats.reissued,
    });
    await p.runner.close();
    for (const w of p.ws) w.proc.kill('SIGTERM');
    await Promise.all(p.ws.map((w) => w.exited));
    const keys = await redis.keys(`${p.queue}:*`);
    if (keys.length) await redis.del(...keys);
  }
  const measured = { 'in process': { ms: best('in process') }, '1 worker': { ms: best('1 worker') }, '2 worker': { ms: best('2 workers') }, runs };
  redis.disconnect();
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });

  const inProcess = measured['in process'].ms;
  const one = measured['1 worker'].ms;
  const two = measured['2 worker'].ms;
  const overheadMs = (one - inProcess) / shards;
  const cpuOverheadMs = (cpuOf('1 worker') + redisCpuOf('1 worker') - cpuOf('in process')) / shards;
  rows.push({ run: 'queue overhead (1 worker - in process)', documents: ids.length, shards, 'best s': (one - inProcess) / 1000, 'ms/shard': overheadMs, 'share of in-process time': (one - inProcess) / inProcess, 'CPU ms/shard': cpuOverheadMs, 'CPU share of in-process CPU': (cpuOverheadMs * shards) / cpuOf('in process') });
  rows.push({ run: 'speed-up 2 workers / 1 worker', documents: ids.length, shards, 'x': one / two });
  return {
    name: 'scale-out',
    rows,
    targets: {
      'queue overhead < 10% of the in-process time (1 worker)': (one - inProcess) / inProcess < 0.1,
      '2 workers >= 1.6x one worker': one / two >= 1.6,
    },
    notes: [
      `workload: ${ids.length} documents (the 200 real SWDE christianbook pages, HTML + rendered text, replicated with ISBN, title and year varied per copy), ${batchSize} per shard; ${ATTRIBUTES.map((a) => a.functions.length).reduce((x, y) => x + y, 0)} kept functions (wrapper induction's top 3 per attribute from 10 labelled pages: ${ATTRIBUTES.flatMap((a) => a.functions).filter((f) => /doc\./.test(f.source)).length} use DOM helpers, the rest regexes over the text)`,
      `${os.cpus().length} cores shared with other work: load average ${loadavg().toFixed(1)} at the end`,
      `best of ${rounds} interleaved rounds per row`,
      'one sandbox thread per process in every row; each worker takes one shard at a time (EVAPORATE_WORKER_CONCURRENCY=1, measured faster than 2 or 4 here)',
      'no simulated larger cluster: with 2 cores, a third worker only measures contention',
      'CPU s: this process plus the workers, each with its sandbox child process (all threads, from /proc); Redis CPU s is the server\'s, which other tests on the machine may share; CPU ms/shard: (1 worker + Redis - in process) / shards',
    ],
    extra: { measured, batchSize, evaluations, functions: Object.fromEntries(ATTRIBUTES.map((a) => [a.name, a.functions.length])), cpuOverheadMsPerShard: cpuOverheadMs },
  };
}
