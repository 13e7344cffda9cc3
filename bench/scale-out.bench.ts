/**
 * `npm run bench scale-out`: the corpus pass (kept functions over every document, batch by batch) in this
 * process, on 1 `evaporate worker` process and on 2, through BullMQ on a redis-server the bench starts for
 * itself (so its CPU and bytes are the bench's alone; EVAPORATE_BENCH_REDIS_URL points it at another). Every
 * configuration gets one sandbox thread per process, so "2 workers" is two cores' worth of sandbox against one.
 * The workload is the pipeline's own: the 200 real SWDE christianbook pages (HTML and rendered text, replicated
 * with ISBN, title and year varied per copy) and the functions wrapper induction keeps for them (DOM helpers and
 * anchored regexes), cut into batches the way the extract job cuts them (src/pipeline/batches.ts, the
 * EVAPORATE_BATCH_SIZE / EVAPORATE_BATCH_BYTES settings).
 *
 * Robust figures on a shared machine: the bench waits for a quiet machine before it starts (1-minute load
 * average below EVAPORATE_BENCH_QUIET_LOAD, default 1.0) and before each run (other processes' CPU, read from
 * /proc, below EVAPORATE_BENCH_QUIET_CORES cores, default 0.3); it runs EVAPORATE_BENCH_SCALE_ROUNDS (5)
 * interleaved rounds and reports medians with their spread, the targets on the median of each round's paired
 * ratio. Every run records the load average before it and the CPU other processes and the hypervisor (steal)
 * took during it.
 *
 * Optional, EVAPORATE_BENCH_NETNS=1 (root, iproute2, /dev/net/tun, python3): a simulated cluster, each worker in
 * its own network namespace reaching Redis over a link with added round-trip time (bench/netns.ts), for
 * EVAPORATE_BENCH_NETNS_RTT_MS (0,1,10,50) x EVAPORATE_BENCH_NETNS_WORKERS (1,2,4,8) at concurrency 1 over
 * EVAPORATE_BENCH_NETNS_DOCS (400) documents in shards of EVAPORATE_BENCH_NETNS_BATCH_BYTES (2 MiB), EVAPORATE_BENCH_NETNS_ROUNDS (2) rounds. On 2 cores it cannot show
 * throughput past 2 workers; it shows how the queue's cost per shard and the total time move with latency and
 * with more workers than cores.
 *
 * EVAPORATE_BENCH_SCALE_DOCS sets the corpus size (600), EVAPORATE_BENCH_SCALE_NODE_ARGS extra node flags for the
 * workers (a CPU profile). Skips without ../shared/data.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { loadSettings, type Settings } from '../src/config.js';
import { induceCandidates } from '../src/pipeline/induction/index.js';
import { runAttributes, runBatch } from '../src/pipeline/aggregation.js';
import { cutBatches, sliceBatches } from '../src/pipeline/batches.js';
import { shardedCorpusPass } from '../src/pipeline/corpus-shards.js';
import { memoryJobContext } from '../src/pipeline/extract-job.js';
import * as repo from '../src/pipeline/repository.js';
import { createSandbox } from '../src/sandbox/index.js';
import { QueueShardRunner } from '../src/shards/coordinator.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { spawnTracked, stopTracked } from './children.js';
import { loadSwde, seededSample, type Page } from './induction.bench.js';
import { redisServerAvailable, startLocalRedis, type LocalRedis } from './local-redis.js';
import { clusterUnavailable, startCluster, type SimulatedCluster } from './netns.js';
import { needsSharedData, repoRoot, sharedData, type BenchResult } from './lib.js';

const env = process.env;
const N = Number(env.EVAPORATE_BENCH_SCALE_DOCS ?? 600);
const ROUNDS = Math.max(1, Number(env.EVAPORATE_BENCH_SCALE_ROUNDS ?? 5));
const QUIET_LOAD = Number(env.EVAPORATE_BENCH_QUIET_LOAD ?? 1.0);
const QUIET_CORES = Number(env.EVAPORATE_BENCH_QUIET_CORES ?? 0.3);
const QUIET_WAIT_S = Number(env.EVAPORATE_BENCH_QUIET_WAIT_S ?? 900);
const NETNS = env.EVAPORATE_BENCH_NETNS === '1';
const list = (v: string | undefined, fallback: number[]) => (v ? v.split(',').map(Number) : fallback);
const NETNS_RTTS = list(env.EVAPORATE_BENCH_NETNS_RTT_MS, [0, 1, 10, 50]);
const NETNS_WORKERS = list(env.EVAPORATE_BENCH_NETNS_WORKERS, [1, 2, 4, 8]);
const NETNS_DOCS = Number(env.EVAPORATE_BENCH_NETNS_DOCS ?? 400);
const NETNS_ROUNDS = Math.max(1, Number(env.EVAPORATE_BENCH_NETNS_ROUNDS ?? 2));
/** Smaller shards than the main part's, so 8 workers get several each and their hand-offs show. */
const NETNS_BATCH_BYTES = Number(env.EVAPORATE_BENCH_NETNS_BATCH_BYTES ?? 2 * 2 ** 20);
const SITE = 'swde-book-christianbook';
/** Extra node flags for the worker processes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to see where a shard's time goes. */
const WORKER_NODE_ARGS = (env.EVAPORATE_BENCH_SCALE_NODE_ARGS ?? '').split(' ').filter(Boolean);
const TICK_MS = 10; // USER_HZ 100: /proc counts CPU in 10 ms ticks

type Attributes = { name: string; functions: { id: string; source: string }[] }[];

/**
 * The functions the pipeline keeps for this site when it learns from labels: wrapper induction's top 3 per
 * attribute from 10 labelled pages (seed 0, as the induction bench draws them), run as the corpus pass runs
 * them. They mix DOM helpers (doc.select, doc.textAfter) and anchored regexes over the text.
 */
function keptFunctions(pages: Page[], gold: Record<string, Map<string, string[]>>, attributes: string[]): Attributes {
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
function corpus(db: Db, pages: Page[], gold: Record<string, Map<string, string[]>>): number {
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
  return corpusId;
}

// ---- what a run costs, from /proc -------------------------------------------------------------------------

/** CPU time (user + system, all threads) of one process so far; 0 where there is none. */
function processCpuMs(pid: number): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return 0;
  }
}
function childPids(pid: number): number[] {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).flatMap((t) => fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
  } catch {
    return [];
  }
}
/** CPU of a process and its descendants but those under `skip` (a worker's sandbox runs in a child process). */
function treeCpuMs(pid: number | undefined, skip: ReadonlySet<number> = new Set()): number {
  if (pid === undefined || skip.has(pid)) return 0;
  return processCpuMs(pid) + childPids(pid).reduce((n, c) => n + treeCpuMs(c, skip), 0);
}
/** The whole machine's busy and stolen CPU so far (all cores). */
function machineCpuMs(): { busy: number; steal: number } {
  const [user, nice, system, , , irq, softirq, steal] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { busy: (user + nice + system + irq + softirq) * TICK_MS, steal: steal * TICK_MS };
}
const loadavg = () => Number(os.loadavg()[0].toFixed(2));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Cores' worth of CPU that processes other than this bench and its children use, over `ms`. */
async function otherCores(ms = 2000): Promise<number> {
  const [m0, s0] = [machineCpuMs().busy, treeCpuMs(process.pid)];
  await sleep(ms);
  return Math.max(0, machineCpuMs().busy - m0 - (treeCpuMs(process.pid) - s0)) / ms;
}

/** Waits (up to EVAPORATE_BENCH_QUIET_WAIT_S) until other processes use less than QUIET_CORES; returns what it saw last. */
async function awaitQuiet(log: (line: string) => void): Promise<{ otherCores: number; waitedS: number }> {
  const t0 = Date.now();
  let other = await otherCores();
  while (other > QUIET_CORES && Date.now() - t0 < QUIET_WAIT_S * 1000) {
    log(`other processes use ${other.toFixed(2)} cores; waiting for under ${QUIET_CORES}`);
    await sleep(10_000);
    other = await otherCores();
  }
  return { otherCores: Number(other.toFixed(2)), waitedS: Math.round((Date.now() - t0) / 1000) };
}

// ---- worker processes ---------------------------------------------------------------------------------------

interface ShardEvent {
  job: number;
  index: number;
  kind: 'start' | 'done';
  t: number;
  ms?: number;
}

interface WorkerProc {
  proc: ChildProcess;
  events: ShardEvent[];
}

async function startWorker(queue: string, redisUrl: string, namespace?: string): Promise<WorkerProc> {
  const node = [...WORKER_NODE_ARGS, '--import', 'tsx', path.join(repoRoot, 'src', 'cli', 'main.ts'), 'worker', '--redis', redisUrl];
  const [command, args] = namespace ? ['ip', ['netns', 'exec', namespace, process.execPath, ...node]] : [process.execPath, node];
  const proc = spawnTracked(command, args as string[], {
    cwd: repoRoot,
    env: { ...env, EVAPORATE_SHARD_QUEUE: queue, EVAPORATE_SHARD_PREFIX: queue, EVAPORATE_SANDBOX_WORKERS: '1', EVAPORATE_WORKER_CONCURRENCY: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const events: ShardEvent[] = [];
  let buf = '';
  let ready!: () => void;
  const isReady = new Promise<void>((resolve, reject) => {
    ready = resolve;
    proc.once('exit', (code) => reject(new Error(`worker exited (${code}) before it was ready`)));
  });
  proc.stdout!.on('data', (d: Buffer) => {
    const t = performance.now();
    buf += d.toString();
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.includes(' ready')) ready();
      const m = /^shard-(start|done) job (\d+) batch:(\d+)(?: in (\d+) ms)?/.exec(line);
      if (m) events.push({ kind: m[1] as 'start' | 'done', job: Number(m[2]), index: Number(m[3]), t, ...(m[4] ? { ms: Number(m[4]) } : {}) });
    }
  });
  await isReady;
  return { proc, events };
}

interface Pool {
  workers: WorkerProc[];
  runner: QueueShardRunner;
  queue: string;
}

async function startPool(settings: Settings['shards'], n: number, redisUrl: string, coordinatorUrl: string, namespaces?: string[]): Promise<Pool> {
  const queue = `evbench-${process.pid}-${n}${namespaces ? 'ns' : ''}`;
  const workers = await Promise.all(Array.from({ length: n }, (_, i) => startWorker(queue, redisUrl, namespaces?.[i])));
  const runner = new QueueShardRunner({ ...settings, redisUrl: coordinatorUrl, queue, prefix: queue, pollMs: 200 }, (line) => console.log(`scale-out: ${line}`));
  return { workers, runner, queue };
}

async function stopPool(pool: Pool, redis: Redis): Promise<void> {
  await pool.runner.close();
  await Promise.all(pool.workers.map((w) => stopTracked(w.proc)));
  const keys = await redis.keys(`${pool.queue}:*`);
  if (keys.length) await redis.del(...keys);
}

// ---- one measured run -----------------------------------------------------------------------------------------

interface Run {
  round: number;
  ms: number;
  /** 1-minute load average just before the run (it includes this bench's own previous run). */
  loadBefore: number;
  /** Other processes' CPU (cores) over 2 s just before the run, and over the run. */
  otherCoresBefore: number;
  otherCoresDuring: number;
  /** CPU the hypervisor took from this VM during the run (cores). */
  stealCores: number;
  cpuMs: { coordinator: number; workers: number; redis: number; forwarder: number };
  redisBytes: { input: number; output: number };
  shards: number;
  /** Shards the workers reported done, the sum of their own times for them, and the waits between a worker's shards. */
  workerShards?: number;
  workerBusyMs?: number;
  handoffMs?: number[];
  /** From the start of the pass to the first shard starting, and from the first worker done to the last. */
  firstStartMs?: number;
  tailMs?: number;
  reissued?: number;
}

interface Measure {
  redis?: LocalRedis;
  forwarderPid?: number;
  log: (line: string) => void;
}

async function measure(m: Measure, round: number, shards: number, fn: () => Promise<unknown>, pool?: Pool, jobId?: number): Promise<Run> {
  const quiet = await awaitQuiet(m.log);
  const workerPids = (pool?.workers ?? []).map((w) => w.proc.pid!);
  const others = new Set([...workerPids, ...(m.redis ? [m.redis.pid] : []), ...(m.forwarderPid ? [m.forwarderPid] : [])]);
  const cpu = () => ({
    coordinator: treeCpuMs(process.pid, others),
    workers: workerPids.reduce((n, pid) => n + treeCpuMs(pid), 0),
    redis: m.redis ? processCpuMs(m.redis.pid) : 0,
    forwarder: m.forwarderPid ? processCpuMs(m.forwarderPid) : 0,
    all: treeCpuMs(process.pid),
  });
  const loadBefore = loadavg();
  const [c0, k0, b0] = [cpu(), machineCpuMs(), m.redis ? await m.redis.netBytes() : { input: 0, output: 0 }];
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  const [c1, k1, b1] = [cpu(), machineCpuMs(), m.redis ? await m.redis.netBytes() : { input: 0, output: 0 }];
  const run: Run = {
    round,
    ms,
    loadBefore,
    otherCoresBefore: quiet.otherCores,
    otherCoresDuring: Number((Math.max(0, k1.busy - k0.busy - (c1.all - c0.all)) / ms).toFixed(2)),
    stealCores: Number(((k1.steal - k0.steal) / ms).toFixed(2)),
    cpuMs: { coordinator: c1.coordinator - c0.coordinator, workers: c1.workers - c0.workers, redis: c1.redis - c0.redis, forwarder: c1.forwarder - c0.forwarder },
    redisBytes: { input: b1.input - b0.input, output: b1.output - b0.output },
    shards,
  };
  if (pool && jobId !== undefined) {
    const done = pool.workers.flatMap((w) => w.events.filter((e) => e.job === jobId && e.kind === 'done'));
    const starts = pool.workers.flatMap((w) => w.events.filter((e) => e.job === jobId && e.kind === 'start'));
    const handoffMs = pool.workers.flatMap((w) => {
      const mine = w.events.filter((e) => e.job === jobId).sort((a, b) => a.t - b.t);
      return mine.flatMap((e, i) => (e.kind === 'start' && i > 0 && mine[i - 1].kind === 'done' ? [e.t - mine[i - 1].t] : []));
    });
    const lastDone = pool.workers.map((w) => Math.max(...w.events.filter((e) => e.job === jobId && e.kind === 'done').map((e) => e.t))).filter(Number.isFinite);
    Object.assign(run, {
      workerShards: done.length,
      workerBusyMs: done.reduce((n, e) => n + (e.ms ?? 0), 0),
      handoffMs: handoffMs.map((x) => Math.round(x)),
      firstStartMs: Math.round(Math.min(...starts.map((e) => e.t)) - t0),
      tailMs: Math.round(Math.max(...lastDone) - Math.min(...lastDone)),
      reissued: (pool.runner.stats as { reissued?: number }).reissued ?? 0,
    });
  }
  return run;
}

// ---- figures ----------------------------------------------------------------------------------------------------

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const r3 = (x: number) => Number(x.toFixed(3));
const spread = (xs: number[], digits = 3) => `${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}`;
const cpuTotal = (r: Run) => r.cpuMs.coordinator + r.cpuMs.workers + r.cpuMs.redis + r.cpuMs.forwarder;

function configRow(name: string, runs: Run[], evaluations: number, documents: number): BenchResult['rows'][number] {
  const s = runs.map((r) => r.ms / 1000);
  const row: BenchResult['rows'][number] = {
    run: name,
    documents,
    shards: runs[0].shards,
    'median s': r3(median(s)),
    'min-max s': spread(s, 1),
    'evaluations/s': Math.round(evaluations / median(s)),
    'CPU s': r3(median(runs.map((r) => cpuTotal(r) / 1000))),
    'load before': runs.map((r) => r.loadBefore.toFixed(1)).join(' '),
    'other cores during': runs.map((r) => r.otherCoresDuring.toFixed(2)).join(' '),
  };
  if (runs[0].workerShards !== undefined) {
    Object.assign(row, {
      'coordinator CPU s': r3(median(runs.map((r) => r.cpuMs.coordinator / 1000))),
      'worker CPU s': r3(median(runs.map((r) => r.cpuMs.workers / 1000))),
      'Redis CPU s': r3(median(runs.map((r) => r.cpuMs.redis / 1000))),
      'worker busy s': r3(median(runs.map((r) => r.workerBusyMs! / 1000))),
      'hand-off ms/shard': Math.round(median(runs.flatMap((r) => r.handoffMs!))),
      'Redis in KB/shard': Math.round(median(runs.map((r) => r.redisBytes.input / r.shards / 1024))),
      'Redis out KB/shard': Math.round(median(runs.map((r) => r.redisBytes.output / r.shards / 1024))),
    });
  }
  return row;
}

export default async function scaleOutBench(): Promise<BenchResult> {
  const missing = needsSharedData('scale-out', SITE);
  if (missing) return missing;
  const log = (line: string) => console.log(`scale-out: ${line}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-bench-scale-'));
  const settings = loadSettings({ databasePath: path.join(dir, 'b.db') });
  // The bench's own Redis where it can start one; otherwise the shared one (db 14), whose CPU other tests share.
  const ownRedis = !env.EVAPORATE_BENCH_REDIS_URL && redisServerAvailable();
  const redisServer = ownRedis ? await startLocalRedis(['127.0.0.1'], dir) : undefined;
  const redisUrl = redisServer?.url() ?? env.EVAPORATE_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/14';
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    await redis.ping();
  } catch {
    redis.disconnect();
    await redisServer?.close();
    log(`no Redis at ${redisUrl}; skipped`);
    return { name: 'scale-out', rows: [], skipped: `scale-out: no Redis at ${redisUrl}; skipped.` };
  }

  const t0 = Date.now();
  while (os.loadavg()[0] >= QUIET_LOAD && Date.now() - t0 < QUIET_WAIT_S * 1000) {
    log(`load average ${os.loadavg()[0].toFixed(2)}; waiting for under ${QUIET_LOAD} before starting`);
    await sleep(15_000);
  }
  const startLoad = loadavg();
  const startWaitS = Math.round((Date.now() - t0) / 1000);

  const db = openDatabase(settings.databasePath);
  const { pages, gold, attributes } = loadSwde(path.join(sharedData, SITE));
  const ATTRIBUTES = keptFunctions(pages, gold, attributes);
  const corpusId = corpus(db, pages, gold);
  const ids = repo.documentSummaries(db, corpusId).map((d) => d.id);
  const bytes = repo.documentBytes(db, corpusId);
  const limits = { documents: settings.pipeline.batchSize, bytes: settings.pipeline.batchBytes };
  const cutOf = (docIds: number[], budget = limits.bytes) => sliceBatches(docIds, cutBatches(docIds.map((id) => bytes.get(id) ?? 0), { ...limits, bytes: budget }));
  const batches = cutOf(ids);
  // What the in-process pass hands the sandbox: text, and the HTML the DOM helpers read.
  const load = (batch: number[]) => repo.loadDocuments(db, batch).map((d) => ({ id: d.id, text: d.text, ...(d.html ? { html: d.html } : {}) }));
  const fnCount = ATTRIBUTES.reduce((n, a) => n + a.functions.length, 0);
  let jobId = 1;

  // In process: the extract job's loop (a checkpoint per batch, every attribute's functions over its documents).
  const sandbox = createSandbox({ ...settings.sandbox, workers: 1 });
  await runBatch(sandbox, ATTRIBUTES[0].functions, load(ids.slice(0, 10))); // warm the pool
  const inProcessPass = async (cut: number[][]) => {
    const ctx = memoryJobContext({ jobId: jobId++ });
    const failures = new Map(ATTRIBUTES.map((a) => [a.name, new Map<string, number>()]));
    for (const [b, docIds] of cut.entries())
      await ctx.checkpoint(`batch:${b}`, async () => {
        return runAttributes(sandbox, ATTRIBUTES, load(docIds), failures);
      });
  };
  const shardedPass = (pool: Pool, cut: number[][], job: number) => shardedCorpusPass(pool.runner, memoryJobContext({ jobId: job }), { attributes: ATTRIBUTES, batches: cut, load });
  // Two small shards a worker before any timing, so each has its sandbox started and its code compiled.
  const warm = async (pool: Pool) => {
    const few = ids.slice(0, 4 * pool.workers.length);
    await shardedPass(pool, Array.from({ length: few.length / 2 }, (_, i) => few.slice(2 * i, 2 * i + 2)), jobId++);
  };

  const notes: string[] = [];
  const rows: BenchResult['rows'] = [];
  const extra: Record<string, unknown> = {};
  const evaluations = ids.length * fnCount;
  const m: Measure = { redis: redisServer, log };
  const runs: Record<'in process' | '1 worker' | '2 workers', Run[]> = { 'in process': [], '1 worker': [], '2 workers': [] };
  const pools: Pool[] = [];
  try {
    for (const n of [1, 2]) {
      const pool = await startPool(settings.shards, n, redisUrl, redisUrl);
      pools.push(pool);
      await warm(pool);
    }
    // Interleaved rounds: a slow spell on the machine falls on every configuration alike, and each round's
    // 1-worker run is compared with that round's in-process run.
    for (let round = 0; round < ROUNDS; round++) {
      runs['in process'].push(await measure(m, round, batches.length, () => inProcessPass(batches)));
      for (const pool of pools) {
        const job = jobId++;
        const run = await measure(m, round, batches.length, () => shardedPass(pool, batches, job), pool, job);
        runs[pool.workers.length === 1 ? '1 worker' : '2 workers'].push(run);
      }
      const last = (k: keyof typeof runs) => (runs[k].at(-1)!.ms / 1000).toFixed(1);
      log(`round ${round + 1}/${ROUNDS}: in process ${last('in process')} s, 1 worker ${last('1 worker')} s, 2 workers ${last('2 workers')} s`);
    }
  } finally {
    for (const pool of pools.splice(0)) await stopPool(pool, redis);
  }

  const shards = batches.length;
  const inProc = runs['in process'];
  const one = runs['1 worker'];
  const two = runs['2 workers'];
  const overheadShare = one.map((r, i) => (r.ms - inProc[i].ms) / inProc[i].ms);
  const overheadMsPerShard = one.map((r, i) => (r.ms - inProc[i].ms) / shards);
  const cpuMsPerShard = one.map((r, i) => (cpuTotal(r) - cpuTotal(inProc[i])) / shards);
  const speedUp = one.map((r, i) => r.ms / two[i].ms);
  rows.push(configRow('in process', inProc, evaluations, ids.length));
  rows.push(configRow('1 worker', one, evaluations, ids.length));
  rows.push(configRow('2 workers', two, evaluations, ids.length));
  rows.push({
    run: 'queue overhead (1 worker vs in process, paired by round)',
    documents: ids.length,
    shards,
    'ms/shard': Math.round(median(overheadMsPerShard)),
    'min-max ms/shard': spread(overheadMsPerShard, 0),
    'share of in-process time': r3(median(overheadShare)),
    'min-max share': spread(overheadShare),
    'CPU ms/shard': Math.round(median(cpuMsPerShard)),
    'min-max CPU ms/shard': spread(cpuMsPerShard, 0),
    'Redis KB/shard (in + out)': Math.round(median(one.map((r) => (r.redisBytes.input + r.redisBytes.output) / shards / 1024))),
  });
  rows.push({ run: 'speed-up 2 workers / 1 worker (paired by round)', documents: ids.length, shards, x: r3(median(speedUp)), 'min-max x': spread(speedUp) });

  // Where the 1-worker run's extra time goes, and what keeps 2 workers from 2x (medians over rounds).
  const busy1 = median(one.map((r) => r.workerBusyMs!));
  const busy2 = median(two.map((r) => r.workerBusyMs!));
  const breakdown = {
    'in-process pass s': median(inProc.map((r) => r.ms)) / 1000,
    '1 worker: in shards s (worker busy)': busy1 / 1000,
    '1 worker: between shards s (hand-offs)': median(one.map((r) => r.handoffMs!.reduce((a, b) => a + b, 0))) / 1000,
    '1 worker: before the first shard s': median(one.map((r) => r.firstStartMs!)) / 1000,
    '2 workers: shard work s (both workers)': busy2 / 1000,
    '2 workers: shard work vs 1 worker': busy2 / busy1,
    '2 workers: hand-offs s (both)': median(two.map((r) => r.handoffMs!.reduce((a, b) => a + b, 0))) / 1000,
    '2 workers: tail s (first worker idle to the end)': median(two.map((r) => r.tailMs!)) / 1000,
    '2 workers: CPU s of all processes / (2 cores x wall)': median(two.map((r) => (cpuTotal(r) + r.otherCoresDuring * r.ms) / (2 * r.ms))),
  };
  extra.breakdown = Object.fromEntries(Object.entries(breakdown).map(([k, v]) => [k, r3(v)]));
  extra.runs = runs;
  extra.settings = { batchDocuments: limits.documents, batchBytes: limits.bytes, inFlight: settings.shards.inFlight, rounds: ROUNDS };
  extra.batches = { count: shards, documents: batches.map((b) => b.length), megabytes: batches.map((b) => r3(b.reduce((n, id) => n + (bytes.get(id) ?? 0), 0) / 2 ** 20)) };
  extra.evaluations = evaluations;
  extra.functions = Object.fromEntries(ATTRIBUTES.map((a) => [a.name, a.functions.length]));
  extra.start = { loadAverage: startLoad, waitedS: startWaitS, quietLoad: QUIET_LOAD, quietCores: QUIET_CORES };
  extra.redis = redisServer ? `own redis-server on 127.0.0.1:${redisServer.port}` : redisUrl;

  const targets = {
    'queue overhead < 10% of the in-process time (1 worker)': median(overheadShare) < 0.1,
    '2 workers >= 1.6x one worker': median(speedUp) >= 1.6,
  };
  await redisServer?.close();
  redis.disconnect();

  notes.push(
    `workload: ${ids.length} documents (the 200 real SWDE christianbook pages, HTML + rendered text, replicated with ISBN, title and year varied per copy) in ${shards} batches cut by the extract job's rule (at most ${limits.documents} documents and ${(limits.bytes / 2 ** 20).toFixed(1)} MiB of text + HTML: ${Math.min(...batches.map((b) => b.length))}-${Math.max(...batches.map((b) => b.length))} documents each); ${fnCount} kept functions (wrapper induction's top 3 per attribute from 10 labelled pages: ${ATTRIBUTES.flatMap((a) => a.functions).filter((f) => /doc\./.test(f.source)).length} use DOM helpers, the rest regexes over the text)`,
    `${ROUNDS} interleaved rounds; figures are medians, with min-max; the targets are the medians of each round's paired ratio (1 worker / in process, 1 worker / 2 workers)`,
    `quiet: started at load average ${startLoad} after waiting ${startWaitS} s for under ${QUIET_LOAD}; each run waited for other processes to use under ${QUIET_CORES} cores. "load before" includes this bench's previous run; "other cores during" is CPU of processes outside this bench during the run (from /proc/stat), the measure of interference`,
    'one sandbox thread per process in every row; each worker takes one shard at a time (EVAPORATE_WORKER_CONCURRENCY=1)',
    `CPU s: this process (the coordinator, with the in-process sandbox), the workers with their sandbox child processes, and ${redisServer ? 'the bench\'s own redis-server' : 'the shared Redis'} (all threads, from /proc); CPU ms/shard: (1 worker - in process) / shards; Redis KB: bytes the server read (in) and wrote (out), from INFO stats; hand-off: from a worker's shard-done to its next shard-start`,
  );

  if (NETNS) {
    const why = clusterUnavailable() ?? (redisServerAvailable() ? undefined : 'no redis-server to bind to the namespaces\' link');
    if (why) {
      log(`simulated cluster skipped: ${why}`);
      notes.push(`simulated cluster skipped: ${why}`);
    } else {
      const netns = await simulatedCluster({ settings, dir, ids: ids.slice(0, NETNS_DOCS), cutOf, inProcessPass, shardedPass, warm, fnCount, log });
      rows.push(...netns.rows);
      notes.push(...netns.notes);
      extra.netns = netns.extra;
    }
  } else notes.push('simulated cluster not run: set EVAPORATE_BENCH_NETNS=1 (root, iproute2, /dev/net/tun, python3)');

  await sandbox.close();
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return { name: 'scale-out', rows, targets, notes, extra };
}

// ---- the simulated cluster ---------------------------------------------------------------------------------------

async function simulatedCluster(input: {
  settings: Settings;
  dir: string;
  ids: number[];
  cutOf: (ids: number[], budget?: number) => number[][];
  inProcessPass: (cut: number[][]) => Promise<void>;
  shardedPass: (pool: Pool, cut: number[][], job: number) => Promise<unknown>;
  warm: (pool: Pool) => Promise<void>;
  fnCount: number;
  log: (line: string) => void;
}): Promise<{ rows: BenchResult['rows']; notes: string[]; extra: Record<string, unknown> }> {
  const { settings, ids, log } = input;
  const batches = input.cutOf(ids, NETNS_BATCH_BYTES);
  const evaluations = ids.length * input.fnCount;
  let cluster: SimulatedCluster | undefined;
  let redisServer: LocalRedis | undefined;
  let redis: Redis | undefined;
  const pools = new Map<number, Pool>();
  const inProc: Run[] = [];
  const runs: Record<string, Run[]> = {};
  const rttMeasured: Record<number, number[]> = {};
  let job = 1_000_000;
  try {
    cluster = await startCluster(Math.max(...NETNS_WORKERS), log);
    redisServer = await startLocalRedis(['127.0.0.1', cluster.hostAddress], input.dir);
    redis = new Redis(redisServer.url(), { maxRetriesPerRequest: 1 });
    const m: Measure = { redis: redisServer, forwarderPid: cluster.forwarderPid, log };
    for (const n of NETNS_WORKERS) {
      const pool = await startPool(settings.shards, n, redisServer.url(cluster.hostAddress), redisServer.url(), cluster.namespaces);
      pools.set(n, pool);
      await input.warm(pool);
    }
    for (let round = 0; round < NETNS_ROUNDS; round++) {
      inProc.push(await measure(m, round, batches.length, () => input.inProcessPass(batches)));
      for (const rtt of NETNS_RTTS) {
        await cluster.setRtt(rtt);
        (rttMeasured[rtt] ??= []).push(await pingFrom(cluster.namespaces[0], redisServer.url(cluster.hostAddress)));
        for (const n of NETNS_WORKERS) {
          const id = job++;
          const run = await measure(m, round, batches.length, () => input.shardedPass(pools.get(n)!, batches, id), pools.get(n), id);
          (runs[`${rtt}:${n}`] ??= []).push(run);
          log(`netns round ${round + 1}/${NETNS_ROUNDS}, +${rtt} ms RTT, ${n} worker(s): ${(run.ms / 1000).toFixed(1)} s`);
        }
      }
    }
  } finally {
    for (const pool of pools.values()) if (redis) await stopPool(pool, redis);
    redis?.disconnect();
    await redisServer?.close();
    cluster?.close();
  }
  const inProcMs = median(inProc.map((r) => r.ms));
  const rows: BenchResult['rows'] = [
    { run: `netns: in process`, documents: ids.length, shards: batches.length, 'median s': r3(inProcMs / 1000), 'evaluations/s': Math.round(evaluations / (inProcMs / 1000)) },
  ];
  for (const rtt of NETNS_RTTS)
    for (const n of NETNS_WORKERS) {
      const rs = runs[`${rtt}:${n}`];
      const wall = median(rs.map((r) => r.ms));
      rows.push({
        run: `netns: +${rtt} ms RTT, ${n} worker${n > 1 ? 's' : ''}`,
        documents: ids.length,
        shards: batches.length,
        'RTT ms (Redis PING)': r3(median(rttMeasured[rtt])),
        'median s': r3(wall / 1000),
        'min-max s': spread(rs.map((r) => r.ms / 1000), 1),
        'evaluations/s': Math.round(evaluations / (wall / 1000)),
        'vs in process': r3(inProcMs / wall),
        // Wall time beyond the in-process pass shared over the workers, per shard: the queue's cost as the job sees it.
        'overhead ms/shard': Math.round((wall - inProcMs / Math.min(n, 2)) / batches.length),
        'hand-off ms/shard': Math.round(median(rs.flatMap((r) => r.handoffMs!))),
        'worker ms/shard': Math.round(median(rs.map((r) => r.workerBusyMs! / r.workerShards!))),
        'delay-line CPU s': r3(median(rs.map((r) => r.cpuMs.forwarder / 1000))),
        'other cores during': rs.map((r) => r.otherCoresDuring.toFixed(2)).join(' '),
      });
    }
  const notes = [
    `simulated cluster: ${Math.max(...NETNS_WORKERS)} network namespaces, one worker each (concurrency 1, one sandbox thread), each reaching Redis and the coordinator on the host over its own point-to-point link; the added round trip is a user-space delay line over TUN devices (bench/netns-delay.py: this kernel has no netem), so both ends run real kernel TCP; ${ids.length} documents in ${batches.length} shards of at most ${(NETNS_BATCH_BYTES / 2 ** 20).toFixed(1)} MiB (smaller than the main part's, so every worker gets several), ${NETNS_ROUNDS} round(s), medians`,
    'the coordinator and Redis share the host with no added delay (Redis next to the coordinator, workers remote); all of it, the delay line included, shares the same 2 cores, so more than 2 workers measure contention, not throughput',
    '"overhead ms/shard": (wall - in-process time / min(workers, 2 cores)) / shards; "hand-off ms/shard": a worker\'s wait from finishing a shard to starting its next (result written, next shard fetched and parsed); "worker ms/shard": the worker\'s own time in a shard',
  ];
  return { rows, notes, extra: { inProcess: inProc, runs, rttMs: rttMeasured, workers: NETNS_WORKERS, rtts: NETNS_RTTS, rounds: NETNS_ROUNDS } };
}

/** Median time of 20 Redis PINGs from inside a namespace, over one connection (the link's round trip as a client sees it). */
async function pingFrom(namespace: string, url: string): Promise<number> {
  const script = `import { Redis } from 'ioredis';
const r = new Redis(${JSON.stringify(url)}); await r.ping(); const t = [];
for (let i = 0; i < 20; i++) { const t0 = performance.now(); await r.ping(); t.push(performance.now() - t0); }
t.sort((a, b) => a - b); console.log(((t[9] + t[10]) / 2).toFixed(3)); r.disconnect();`;
  const proc = spawnTracked('ip', ['netns', 'exec', namespace, process.execPath, '--input-type=module', '-e', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  await new Promise((r) => proc.once('exit', r));
  return Number(out.trim());
}
