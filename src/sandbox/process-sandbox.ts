/**
 * Defence in depth: the pool of worker threads (sandbox.ts) runs in a child process of its own, started under
 * Node's permission model (--permission on 22/24, --experimental-permission on 20) with worker threads as its
 * only right: it may read only piscina's files and this folder's (worker.mjs), write nothing, start no process,
 * and has an empty environment and a heap cap. A V8 bug that lets code out of its vm context lands there, not
 * in the service with the database and the credentials. Calls cross as documents and tagged outcomes over IPC,
 * one message per batch of work, so the cost per call is small.
 *
 * If the process dies during a run (a crash no limit caught), the run is repeated one function at a time in a
 * fresh process: a function that kills it again alone fails every call with `runtime`; the others keep results.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EvaporateError } from '../errors.js';
import { domRealmSource } from './dom-bundle.js';
import type { SandboxSettings } from './sandbox.js';
import type { CallOutcome, ExtractionFunction, RunOptions, Sandbox, SandboxDocument } from './types.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const piscinaMain = createRequire(import.meta.url).resolve('piscina');
const piscinaDir = path.resolve(path.dirname(piscinaMain), '..');

let hostSource: string | undefined;

/**
 * The host entry and sandbox.ts as one CommonJS script. The package ships it prebuilt (process-host.cjs, written
 * by `npm run build`), so an installed evaporate needs no bundler at run time; a checkout bundles it on first use.
 */
export const PREBUILT_PROCESS_HOST = path.join(here, 'process-host.cjs');

/** Bundles process-host with esbuild (a development dependency: only a checkout or the build needs it). */
export function bundleProcessHost(): string {
  const { buildSync } = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
  const entry = fs.existsSync(path.join(here, 'process-host.ts')) ? 'process-host.ts' : 'process-host.js';
  return buildSync({
    entryPoints: [path.join(here, entry)],
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    write: false,
    logLevel: 'silent',
    external: ['piscina'],
  }).outputFiles[0].text;
}

/** The host script, with piscina loaded from its own files at run time. */
function hostScript(): string {
  hostSource ??= (fs.existsSync(PREBUILT_PROCESS_HOST) ? fs.readFileSync(PREBUILT_PROCESS_HOST, 'utf8') : bundleProcessHost())
    // loaded by absolute path: under the permission model the child may read only its files
    .replace(/require\(["']piscina["']\)/g, `require(${JSON.stringify(piscinaMain)})`);
  if (!hostSource.includes(JSON.stringify(piscinaMain))) throw new Error('process-sandbox: the host bundle does not load piscina');
  return hostSource;
}

/** Node's permission flag: --permission from Node 22 on (Node 20 only knows the experimental spelling). */
function permissionFlag(): string {
  return process.allowedNodeEnvironmentFlags.has('--permission') ? '--permission' : '--experimental-permission';
}

interface Pending {
  resolve: (r: { out: CallOutcome[][]; failures: [string, number][] }) => void;
  reject: (e: Error) => void;
}

class SandboxProcess {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly pending = new Map<number, Pending>();
  private nextId = 0;
  dead = false;

  constructor(settings: SandboxSettings) {
    this.child = spawn(
      process.execPath,
      [
        permissionFlag(),
        '--allow-worker',
        `--allow-fs-read=${piscinaDir}${path.sep}`,
        `--allow-fs-read=${here}${path.sep}`,
        '--max-old-space-size=512',
        '--no-warnings',
        '-e',
        hostScript(),
      ],
      { env: {}, stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'advanced' },
    );
    let stderr = '';
    this.child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    this.ready = new Promise<void>((resolve, reject) => {
      this.child.once('message', (m: { type?: string }) => (m?.type === 'ready' ? resolve() : reject(new Error('unexpected first message'))));
      this.child.once('exit', () => reject(new EvaporateError('sandbox_unavailable', `The sandbox process could not start: ${stderr.trim().slice(-500)}`, 500)));
    });
    this.ready.catch(() => {});
    this.child.on('message', (m: { type: string; id: number; out?: string; failures?: [string, number][]; error?: { code: string; message: string } }) => {
      if (m.type !== 'result') return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error) p.reject(new EvaporateError(m.error.code, m.error.message, 500));
      else p.resolve({ out: JSON.parse(m.out!) as CallOutcome[][], failures: m.failures! });
    });
    this.child.on('error', () => {
      this.dead = true;
    });
    this.child.on('exit', () => {
      this.dead = true;
      for (const p of this.pending.values()) p.reject(new ProcessDied());
      this.pending.clear();
    });
    this.child.send({ type: 'init', settings, domSource: domRealmSource(), workerUrl: new URL('./worker.mjs', import.meta.url).href });
  }

  async run(functions: ExtractionFunction[], documents: SandboxDocument[], options: RunOptions): Promise<{ out: CallOutcome[][]; failures: [string, number][] }> {
    await this.ready;
    if (this.dead) throw new ProcessDied();
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send({
        type: 'run',
        id,
        functions: functions.map((f) => ({ id: String(f.id), source: f.source })),
        documents: documents.map((d) => ({ id: d.id, text: d.text, ...(d.html ? { html: d.html } : {}) })),
        timeoutMs: options.timeoutMs,
        scope: options.scope,
        failures: options.failures ? [...options.failures] : [],
      }, (error) => {
        // The process died before the message got through (its exit not yet seen here).
        if (!error || !this.pending.has(id)) return;
        this.pending.delete(id);
        this.dead = true;
        reject(new ProcessDied());
      });
    });
  }

  async close(): Promise<void> {
    if (this.dead) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.send({ type: 'close' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

class ProcessDied extends Error {
  constructor() {
    super('the sandbox process died');
  }
}

export function createProcessSandbox(settings: SandboxSettings): Sandbox & { processId(): number | undefined } {
  let current: SandboxProcess | undefined;
  let closed = false;
  const processNow = () => {
    if (!current || current.dead) current = new SandboxProcess(settings);
    return current;
  };

  const runOnce = async (functions: ExtractionFunction[], documents: SandboxDocument[], options: RunOptions) => {
    const { out, failures } = await processNow().run(functions, documents, options);
    if (options.failures) for (const [id, n] of failures) options.failures.set(id, n);
    return out;
  };

  return {
    async run(functions, documents, options: RunOptions = {}) {
      if (closed) throw new EvaporateError('sandbox_closed', 'The sandbox has been shut down and runs no more functions.', 503);
      if (functions.length === 0 || documents.length === 0) return functions.map(() => new Array<CallOutcome>(documents.length));
      try {
        return await runOnce(functions, documents, options);
      } catch (error) {
        if (!(error instanceof ProcessDied) || closed) throw error;
      }
      // The process died under this run: find out which function did it, one at a time in fresh processes.
      const out: CallOutcome[][] = [];
      for (const fn of functions) {
        try {
          out.push((await runOnce([fn], documents, options))[0]);
        } catch (error) {
          if (!(error instanceof ProcessDied) || closed) throw error;
          options.failures?.set(String(fn.id), settings.maxFailuresPerFunction);
          const crashed: CallOutcome = { ok: false, error: { code: 'runtime', message: 'The function crashed the sandbox process and was stopped.' } };
          out.push(documents.map(() => crashed));
        }
      }
      return out;
    },
    async close() {
      closed = true;
      await current?.close();
    },
    /** The pid of the sandbox process now running, if any (for tests and diagnostics). */
    processId: () => (current && !current.dead ? current.child.pid : undefined),
  };
}
