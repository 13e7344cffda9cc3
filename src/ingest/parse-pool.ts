/**
 * Parsing off the main thread: every file is parsed and chunked in a pool of worker threads (piscina, as the
 * sandbox does), with a wall-clock limit per file. A file past it has its worker terminated (which stops even
 * a busy loop inside pdfjs) and is answered with parse_timeout; the next file goes on in a fresh worker.
 * The server's event loop only waits on a message, so /health and every other request keep being served.
 */
import os from 'node:os';
import { Piscina } from 'piscina';
import type { Settings } from '../config.js';
import { EvaporateError } from '../errors.js';
import type { Chunk } from './chunk.js';
import type { DetectedKind } from './detect.js';
import type { ParsedDocument } from './parse.js';
import type { ParseTask, ParseTaskResult } from './parse-task.js';

const WORKER_URL = new URL('./parse-worker.mjs', import.meta.url);

type PoolSettings = Pick<Settings['ingest'], 'parseTimeoutMs' | 'pdfMaxPages' | 'htmlMaxDepth' | 'parseWorkers' | 'parseMemoryMb' | 'chunkTokens'>;

let shared: { pool: Piscina; key: string } | undefined;

function poolFor(settings: PoolSettings): Piscina {
  const threads = settings.parseWorkers > 0 ? settings.parseWorkers : Math.min(4, Math.max(2, Math.floor((os.availableParallelism?.() ?? os.cpus().length) / 2)));
  const key = `${threads}/${settings.parseMemoryMb}`;
  if (shared?.key === key) return shared.pool;
  if (shared) void shared.pool.destroy();
  const pool = new Piscina({
    filename: WORKER_URL.href,
    minThreads: 0,
    maxThreads: threads,
    idleTimeout: 30_000,
    resourceLimits: { maxOldGenerationSizeMb: settings.parseMemoryMb },
    env: {},
  });
  pool.on('error', () => {});
  shared = { pool, key };
  return pool;
}

/** Stops the parse workers (tests, shutdown). A later parse starts a new pool. */
export async function closeParsePool(): Promise<void> {
  const s = shared;
  shared = undefined;
  await s?.pool.destroy();
}

/** Parses and chunks one file in the pool; throws the file's EvaporateError (parse_timeout past the limit). */
export async function parseInPool(
  bytes: Buffer,
  filename: string,
  detected: DetectedKind,
  settings: PoolSettings,
): Promise<{ parsed: ParsedDocument; chunks: Chunk[] }> {
  const pool = poolFor(settings);
  const started = new Int32Array(new SharedArrayBuffer(4));
  const controller = new AbortController();
  const limitMs = settings.parseTimeoutMs;
  let timer: NodeJS.Timeout | undefined;
  // Counted from the moment a worker takes the file: time spent queued behind other files is not its fault.
  const arm = () => {
    timer = setTimeout(() => (Atomics.load(started, 0) === 1 ? controller.abort() : arm()), limitMs);
  };
  if (limitMs > 0) arm();
  const task: ParseTask = {
    bytes: new Uint8Array(bytes),
    filename,
    detected,
    limits: { htmlMaxDepth: settings.htmlMaxDepth, pdfMaxPages: settings.pdfMaxPages },
    chunkTokens: settings.chunkTokens,
    started,
  };
  let result: ParseTaskResult;
  try {
    result = (await pool.run(task, { signal: controller.signal })) as ParseTaskResult;
  } catch (error) {
    if (controller.signal.aborted) {
      throw new EvaporateError(
        'parse_timeout',
        `"${filename}" took longer than ${limitMs} ms to read (setting EVAPORATE_PARSE_TIMEOUT_MS); it was stopped.`,
        422,
      );
    }
    if ((error as { code?: string })?.code === 'ERR_WORKER_OUT_OF_MEMORY') {
      throw new EvaporateError(
        'parse_out_of_memory',
        `"${filename}" needed more than ${settings.parseMemoryMb} MB to read (setting EVAPORATE_PARSE_MEMORY_MB); it was stopped.`,
        422,
      );
    }
    throw new EvaporateError('parse_failed', `"${filename}" could not be read (its parser stopped unexpectedly).`, 422);
  } finally {
    clearTimeout(timer);
  }
  if (!result.ok) throw new EvaporateError(result.error.code, result.error.message, result.error.status);
  return { parsed: result.parsed, chunks: result.chunks };
}
