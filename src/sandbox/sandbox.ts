/**
 * The sandbox pool: piscina worker threads, each running functions in hardened vm contexts (see worker.mjs).
 * This side owns the limits that need an outside view: it watches every batch's progress counter and
 * terminates the worker when one call runs past the wall-clock limit, and it turns worker deaths
 * (timeout, heap cap) into an error for exactly the call that was running, then resumes the batch.
 */
import os from 'node:os';
import { Piscina } from 'piscina';
import type { Settings } from '../config.js';
import { EvaporateError } from '../errors.js';
import { MemoryGuard } from './memory-guard.js';
import type { CallOutcome, ExtractionFunction, RunOptions, Sandbox, SandboxDocument, SandboxErrorCode } from './types.js';

type OptionalSettings = 'maxOutputItems' | 'maxSourceChars' | 'batchDocuments' | 'isolation';
/** Settings['sandbox']; the newer knobs may be left out and take their defaults. */
export type SandboxSettings = Omit<Settings['sandbox'], OptionalSettings> & Partial<Pick<Settings['sandbox'], OptionalSettings>>;

const PHASE_COMPILE = 1;

interface Store {
  buffer: SharedArrayBuffer;
  offsets: Uint32Array;
  ids: string[];
  hasHtml: Uint8Array;
}

function encodeStore(documents: SandboxDocument[]): Store {
  const D = documents.length;
  const parts: Buffer[] = [];
  const offsets = new Uint32Array(4 * D);
  const hasHtml = new Uint8Array(D);
  let at = 0;
  const push = (slot: number, s: string) => {
    const b = Buffer.from(s, 'utf8');
    parts.push(b);
    offsets[2 * slot] = at;
    at += b.length;
    offsets[2 * slot + 1] = at;
  };
  documents.forEach((d, i) => push(i, typeof d.text === 'string' ? d.text : ''));
  documents.forEach((d, i) => {
    hasHtml[i] = typeof d.html === 'string' && d.html !== '' ? 1 : 0;
    push(D + i, hasHtml[i] ? (d.html as string) : '');
  });
  const buffer = new SharedArrayBuffer(Math.max(at, 1));
  const view = new Uint8Array(buffer);
  let o = 0;
  for (const p of parts) {
    view.set(p, o);
    o += p.length;
  }
  return { buffer, offsets, ids: documents.map((d) => String(d.id)), hasHtml };
}

/**
 * `import(...)` is the one syntax that reaches the host's module loader (and a host-realm error object) from
 * inside a context. Comments may sit between `import` and `(`, so any standalone `import` word is refused;
 * only property access (`x.import`) is let through.
 */
const IMPORT_TOKEN = /(^|[^\w$.])import(?![\w$])/;

function staticRejection(fn: ExtractionFunction, maxSourceChars: number): string | null {
  if (typeof fn.source !== 'string') return 'the source is not a string';
  if (fn.source.length > maxSourceChars) return `the source has ${fn.source.length} characters; the limit is ${maxSourceChars}`;
  if (IMPORT_TOKEN.test(fn.source)) return 'the word import is not allowed in extraction functions (modules are not available)';
  return null;
}

interface Running {
  progress: Int32Array;
  controller: AbortController;
  lastSeq: number;
  since: number;
  limitMs: number;
  /** Set when the memory guard, not the clock, stopped this batch. */
  overMemory?: boolean;
  /** The call (phase, function, document) the watchdog stopped, read when it decided: by the time the
   * worker is gone, that call may have just returned and the worker moved on. */
  blame?: [number, number, number];
}

const stop = (r: Running) => {
  r.blame = [Atomics.load(r.progress, 1), Atomics.load(r.progress, 2), Atomics.load(r.progress, 3)];
  r.controller.abort();
};

/**
 * V8 aborts the whole process, not just the worker, when one allocation overshoots a worker's heap limit by
 * more than a few MB (e.g. new Array(2 ** 25).fill(1.5) under a 64 MB limit). So the hard per-worker heap
 * limit sits far above any single allocation (V8 caps those near 1 GB), and the configured memory cap is
 * enforced by the watchdog from the process's memory growth instead.
 */
const HARD_HEAP_MB = 3072;
const MIN_MEMORY_BLAME_MS = 30;
const MEMORY_COOLDOWN_MS = 300;
const MEMORY_SLACK_MB = 256;
const MAX_LOST_BEFORE_START = 3;
let runCounter = 0;

/** What the pool needs from its surroundings; the process host passes both, having no bundler or module URL. */
export interface PoolInternals {
  /** The script run in each worker's DOM realm (dom-bundle.ts builds it). */
  domSource: string;
  /** worker.mjs, as a file URL. */
  workerUrl?: string;
}

/** The pool of worker threads, in this process (see process-sandbox.ts for the pool in its own process). */
export function createThreadSandbox(settings: SandboxSettings, internals: PoolInternals): Sandbox {
  const workerUrl = internals.workerUrl ?? new URL('./worker.mjs', import.meta.url).href;
  const threads = settings.workers > 0 ? settings.workers : Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  const maxOutputItems = settings.maxOutputItems ?? 1000;
  const maxSourceChars = settings.maxSourceChars ?? 100_000;
  const pool = new Piscina({
    filename: workerUrl,
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: 60_000,
    workerData: { domSource: internals.domSource },
    // Heap cap per worker: an allocation bomb kills that worker, not the process.
    resourceLimits: { maxOldGenerationSizeMb: Math.max(HARD_HEAP_MB, settings.memoryLimitMb * 4), maxYoungGenerationSizeMb: 32, stackSizeMb: 4 },
    // Workers share nothing with the host process environment.
    env: {},
  });
  // A worker dying of its heap cap is also reported on the pool; the task's own rejection handles it.
  pool.on('error', () => {});
  const running = new Set<Running>();
  let watchdog: NodeJS.Timeout | undefined;
  let closed = false;

  // Growth allowed before the guard steps in: each worker's cap, plus room for a replacement worker starting up.
  const memory = new MemoryGuard((settings.memoryLimitMb * threads + MEMORY_SLACK_MB) * 1024 * 1024, MEMORY_COOLDOWN_MS);
  const settle = () => memory.settle(Date.now());
  const tick = () => {
    const now = Date.now();
    if (memory.over(process.memoryUsage(), now)) {
      // Blame the call that has been running longest: allocating past the cap takes far longer than any normal call.
      let culprit: Running | undefined;
      for (const r of running) {
        if (Atomics.load(r.progress, 1) !== 0 && now - r.since >= MIN_MEMORY_BLAME_MS && (!culprit || r.since < culprit.since)) culprit = r;
      }
      if (culprit) {
        culprit.overMemory = true;
        stop(culprit);
        running.delete(culprit);
        settle();
      }
    }
    for (const r of running) {
      const seq = Atomics.load(r.progress, 0);
      if (seq !== r.lastSeq) {
        r.lastSeq = seq;
        r.since = now;
      } else if (seq > 0 && Atomics.load(r.progress, 1) !== 0 && now - r.since > r.limitMs) {
        stop(r);
        running.delete(r);
      }
    }
    if (running.size === 0 && watchdog) {
      clearInterval(watchdog);
      watchdog = undefined;
    }
  };

  async function runBatch(
    functions: ExtractionFunction[],
    store: Store,
    failures: Int32Array,
    timeoutMs: number,
    maxFailures: number,
    out: CallOutcome[][],
    docBase: number,
    scope: string,
  ): Promise<void> {
    const F = functions.length;
    const D = store.ids.length;
    const skip: number[] = [];
    const skipFunctions: number[] = [];
    const limits = { maxOutputChars: settings.maxOutputChars, maxOutputItems };
    const fail = (i: number, code: SandboxErrorCode, message: string) => {
      out[i % F][docBase + Math.floor(i / F)] = { ok: false, error: { code, message } };
      skip.push(i);
    };
    let lostBeforeStart = 0;
    for (;;) {
      const progress = new Int32Array(new SharedArrayBuffer(16));
      const controller = new AbortController();
      const watch: Running = { progress, controller, lastSeq: 0, since: Date.now(), limitMs: timeoutMs };
      running.add(watch);
      if (!watchdog) {
        memory.start(process.memoryUsage());
        watchdog = setInterval(tick, Math.max(5, Math.min(20, Math.floor(timeoutMs / 5))));
        watchdog.unref();
      }
      try {
        const result = (await pool.run(
          {
            functions: functions.map((f) => ({ id: String(f.id), source: f.source })),
            scope,
            store,
            skip,
            skipFunctions,
            failures,
            progress,
            maxFailures,
            maxOutputChars: settings.maxOutputChars,
            maxOutputItems,
            memoryLimitMb: settings.memoryLimitMb,
          },
          { signal: controller.signal },
        )) as { out: (string | null)[]; failures: number[] };
        running.delete(watch);
        if (!Array.isArray(result?.out) || result.out.length !== F * D || !Array.isArray(result.failures) || result.failures.length !== F) {
          throw new EvaporateError('sandbox_protocol', 'A sandbox worker answered with a malformed batch result.', 500);
        }
        result.failures.forEach((n, f) => typeof n === 'number' && n > 0 && Atomics.add(failures, f, Math.min(n, D)));
        result.out.forEach((tagged, i) => {
          if (tagged === null) return;
          const outcome = decodeOutcome(tagged, limits);
          const countedByWorker = typeof tagged === 'string' && (tagged.charCodeAt(0) === 82 || tagged.charCodeAt(0) === 79 || tagged.charCodeAt(0) === 77);
          if (!outcome.ok && outcome.error.code === 'runtime' && !countedByWorker) {
            // Oversized or malformed on receipt: a runtime failure of that function, counted like any other.
            Atomics.add(failures, i % F, 1);
          }
          out[i % F][docBase + Math.floor(i / F)] = outcome;
        });
        return;
      } catch (error) {
        running.delete(watch);
        if (closed) throw error;
        settle();
        // The worker is gone (terminated by the watchdog or killed by its heap cap); blame the call it was in.
        const [phase, f, d] = watch.blame ?? [Atomics.load(progress, 1), Atomics.load(progress, 2), Atomics.load(progress, 3)];
        const aborted = controller.signal.aborted;
        const code: SandboxErrorCode = watch.overMemory || isOutOfMemory(error) ? 'memory' : aborted ? 'timeout' : 'runtime';
        const what =
          code === 'timeout'
            ? `ran longer than ${timeoutMs} ms and was stopped`
            : code === 'memory'
              ? `exceeded the ${settings.memoryLimitMb} MB memory limit and was stopped`
              : 'crashed its worker and was stopped';
        // A batch handed to a worker that was just being replaced (recycled for memory) never started: run it again.
        if (phase === 0 && !aborted && !isOutOfMemory(error) && ++lostBeforeStart <= MAX_LOST_BEFORE_START) continue;
        if (phase === 0 || f < 0 || f >= F) throw error;
        if (phase === PHASE_COMPILE) {
          // Top-level code that never finishes fails every call of this function, in every batch.
          Atomics.store(failures, f, maxFailures);
          skipFunctions.push(f);
          for (let dd = 0; dd < D; dd++) fail(dd * F + f, code, `the function's top-level code ${what}`);
        } else {
          Atomics.add(failures, f, 1);
          fail(d * F + f, code, `the call ${what}`);
        }
      }
    }
  }

  return {
    async run(functions, documents, options: RunOptions = {}) {
      if (closed) throw new EvaporateError('sandbox_closed', 'The sandbox has been shut down and runs no more functions.', 503);
      const timeoutMs = options.timeoutMs ?? settings.callTimeoutMs;
      const scope = options.scope ?? `run:${process.pid}:${++runCounter}`;
      const maxFailures = settings.maxFailuresPerFunction;
      const out: CallOutcome[][] = functions.map(() => new Array<CallOutcome>(documents.length));
      if (functions.length === 0 || documents.length === 0) return out;
      const failures = new Int32Array(new SharedArrayBuffer(4 * functions.length));
      functions.forEach((f, i) => (failures[i] = options.failures?.get(f.id) ?? 0));

      // Functions refused before they reach a worker answer 'compile' for every document.
      const accepted: number[] = [];
      functions.forEach((fn, f) => {
        const reason = staticRejection(fn, maxSourceChars);
        if (reason === null) accepted.push(f);
        else out[f].fill({ ok: false, error: { code: 'compile', message: reason } });
      });
      if (accepted.length > 0) {
        const sent = accepted.map((f) => functions[f]);
        const sentFailures = new Int32Array(new SharedArrayBuffer(4 * sent.length));
        accepted.forEach((f, j) => (sentFailures[j] = failures[f]));
        const sentOut: CallOutcome[][] = sent.map(() => new Array<CallOutcome>(documents.length));
        const perBatch =
          settings.batchDocuments && settings.batchDocuments > 0
            ? settings.batchDocuments
            : Math.max(1, Math.min(256, Math.ceil(documents.length / (threads * 4))));
        // A few batches in flight per worker: enough to keep every core busy, while only those batches'
        // documents are copied into shared memory at any time.
        let next = 0;
        const lane = async () => {
          while (next < documents.length) {
            const start = next;
            next += perBatch;
            const store = encodeStore(documents.slice(start, start + perBatch));
            await runBatch(sent, store, sentFailures, timeoutMs, maxFailures, sentOut, start, scope);
          }
        };
        await Promise.all(Array.from({ length: threads * 2 }, lane));
        accepted.forEach((f, j) => {
          out[f] = sentOut[j];
          failures[f] = sentFailures[j];
        });
      }
      if (options.failures) functions.forEach((f, i) => options.failures!.set(f.id, failures[i]));
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      if (watchdog) clearInterval(watchdog);
      await pool.destroy();
    },
  };
}

function isOutOfMemory(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'ERR_WORKER_OUT_OF_MEMORY';
}

/** Same bound as outcomeCharLimit in worker.mjs: the longest tagged outcome a well-behaved call produces. */
function outcomeCharLimit(maxOutputChars: number, maxOutputItems: number): number {
  return 6 * maxOutputChars + 3 * maxOutputItems + 1024;
}

interface OutcomeLimits {
  maxOutputChars: number;
  maxOutputItems: number;
}

const oversized = (message: string): CallOutcome => ({ ok: false, error: { code: 'runtime', message: `The function's outcome was refused: ${message}.` } });

/** Checks what a worker sent again, so nothing unbounded or malformed reaches the pipeline even from a subverted worker. */
function decodeOutcome(tagged: unknown, limits: OutcomeLimits): CallOutcome {
  if (typeof tagged !== 'string' || tagged.length === 0) return oversized('the worker sent something that is not an outcome');
  const limit = outcomeCharLimit(limits.maxOutputChars, limits.maxOutputItems);
  if (tagged.length > limit) return oversized(`it had ${tagged.length} characters; the limit is ${limit}`);
  const body = tagged.slice(1);
  switch (tagged.charCodeAt(0)) {
    case 78: // N
      return { ok: true, value: null };
    case 83: // S
      if (body.length > limits.maxOutputChars) return oversized(`a value of ${body.length} characters; the limit is ${limits.maxOutputChars}`);
      return { ok: true, value: [body] };
    case 65: { // A
      let values: unknown;
      try {
        values = JSON.parse(body);
      } catch {
        return oversized('its values could not be read');
      }
      if (!Array.isArray(values) || values.some((v) => typeof v !== 'string')) return oversized('its values are not a list of strings');
      if (values.length > limits.maxOutputItems) return oversized(`${values.length} values; the limit is ${limits.maxOutputItems}`);
      const total = (values as string[]).reduce((n, v) => n + v.length, 0);
      if (total > limits.maxOutputChars) return oversized(`${total} characters of values; the limit is ${limits.maxOutputChars}`);
      return { ok: true, value: values as string[] };
    }
    case 68: // D
      return { ok: false, error: { code: 'disabled', message: messageFor('disabled', '') } };
    case 67: // C
      return { ok: false, error: { code: 'compile', message: messageFor('compile', body) } };
    case 77: // M
      return { ok: false, error: { code: 'memory', message: `The function exceeded the ${body} MB memory limit and was stopped.` } };
    case 79: // O
      return { ok: false, error: { code: 'invalid_output', message: messageFor('invalid_output', body) } };
    default:
      return { ok: false, error: { code: 'runtime', message: messageFor('runtime', body) } };
  }
}

function messageFor(code: SandboxErrorCode, payload: unknown): string {
  const detail = typeof payload === 'string' ? payload : '';
  switch (code) {
    case 'compile':
      return `The function could not be loaded: ${detail}.`;
    case 'runtime':
      return `The function threw: ${detail}`;
    case 'invalid_output':
      return `The function's result was rejected: ${detail}.`;
    case 'disabled':
      return 'The function failed too often in this job and was disabled.';
    default:
      return detail || code;
  }
}
