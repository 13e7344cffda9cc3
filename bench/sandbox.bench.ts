/**
 * Sandbox throughput: 10 regex extraction functions over the readable text of the 200 SWDE christianbook
 * pages repeated to 2,000 documents, sandboxed (the pool) versus the same functions run unsandboxed in plain
 * Node, in one run. Alternative boundaries (QuickJS/WebAssembly, isolated-vm) are measured too when their
 * packages are found in EVAPORATE_BENCH_ALT_MODULES (a node_modules folder outside the project: they are
 * not dependencies), so the choice can be re-checked on any machine.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { needsSharedData, sharedData, type BenchResult } from './lib.js';
import { parseHtml } from '../src/ingest/html.js';
import { loadSettings } from '../src/config.js';
import { createSandbox } from '../src/sandbox/index.js';
import type { ExtractionFunction } from '../src/sandbox/types.js';

const FUNCTIONS: ExtractionFunction[] = [
  ['isbn13', String.raw`function extract(text) { const m = /ISBN-13:\s*(97[89]\d{10})/.exec(text); return m ? m[1] : null; }`],
  ['isbn10', String.raw`function extract(text) { const m = /\bISBN:\s*([0-9]{9}[0-9X])\b/.exec(text); return m ? m[1] : null; }`],
  ['publisher', String.raw`function extract(text) { const m = /^Vendor:\s*(.+)$/m.exec(text); return m ? m[1].trim() : null; }`],
  ['date', String.raw`function extract(text) { const m = /Publication Date:\s*([^\n]+)/.exec(text); return m ? m[1] : null; }`],
  ['pages', String.raw`function extract(text) { const m = /Number of Pages:\s*(\d+)/i.exec(text); return m ? m[1] : null; }`],
  ['format', String.raw`function extract(text) { const m = /\nFormat:\s*([A-Za-z ,]+)\n/.exec(text); return m ? m[1] : null; }`],
  ['dimensions', String.raw`function extract(text) { const m = /Dimensions:\s*([\d.]+\s*X\s*[\d.]+)/.exec(text); return m ? m[1] : null; }`],
  ['prices', String.raw`function extract(text) { const all = text.match(/\$\d+\.\d{2}/g); return all ? all.slice(0, 3) : null; }`],
  ['series', String.raw`function extract(text) { const m = /^Series:\s*(.+)$/m.exec(text); return m ? m[1] : null; }`],
  ['availability', String.raw`function extract(text) { const line = text.split('\n').find((l) => l.startsWith('Availability:')); return line ? line.slice(13).trim() : null; }`],
].map(([id, source]) => ({ id, source }));

const REPEAT_TO = 2000;

function loadTexts(): string[] {
  const dir = path.join(sharedData, 'swde-book-christianbook', 'pages');
  const pages = fs.readdirSync(dir).filter((f) => f.endsWith('.htm')).sort();
  const texts = pages.map((f) => parseHtml(fs.readFileSync(path.join(dir, f))).text);
  return Array.from({ length: REPEAT_TO }, (_, i) => texts[i % texts.length]);
}

function normalize(v: unknown): string[] | null {
  if (v === null || v === undefined) return null;
  const list = Array.isArray(v) ? v : [v];
  const out = list.filter((x): x is string => typeof x === 'string').map((s) => s.trim()).filter(Boolean);
  return out.length ? out : null;
}

function unsandboxed(texts: string[]): { seconds: number; values: (string[] | null)[][] } {
  const fns = FUNCTIONS.map((f) => new Function(`${f.source}\nreturn extract;`)() as (t: string) => unknown);
  const start = performance.now();
  const values = fns.map((fn) => texts.map((t) => normalize(fn(t))));
  return { seconds: (performance.now() - start) / 1000, values };
}

async function bestOf<T>(runs: number, fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  let best = Infinity;
  let value!: T;
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    value = await fn();
    best = Math.min(best, (performance.now() - start) / 1000);
  }
  return { seconds: best, value };
}

/** QuickJS compiled to WebAssembly: one runtime per function, text copied in per call. Single thread. */
async function quickjs(req: NodeRequire, texts: string[]): Promise<number> {
  // Typed loosely on purpose: the package is optional and not a dependency of the project.
  const { getQuickJS } = req('quickjs-emscripten') as { getQuickJS: () => Promise<any> };
  const QuickJS = await getQuickJS();
  const contexts: { vm: any; fn: any }[] = FUNCTIONS.map((f) => {
    const vm = QuickJS.newContext();
    const fn = vm.unwrapResult(vm.evalCode(`${f.source}\n;extract`));
    return { vm, fn };
  });
  const sample = texts.slice(0, 200);
  const start = performance.now();
  for (const { vm, fn } of contexts) {
    for (const t of sample) {
      const arg = vm.newString(t);
      const r = vm.unwrapResult(vm.callFunction(fn, vm.undefined, arg));
      vm.dump(r);
      r.dispose();
      arg.dispose();
    }
  }
  const seconds = (performance.now() - start) / 1000;
  for (const { vm, fn } of contexts) {
    fn.dispose();
    vm.dispose();
  }
  return (FUNCTIONS.length * sample.length) / seconds;
}

/** isolated-vm: one isolate, one context per function, text copied in per call. Single thread. */
function isolatedVm(req: NodeRequire, texts: string[]): number {
  const ivm = req('isolated-vm') as any;
  const isolate = new ivm.Isolate({ memoryLimit: 128 });
  const fns = FUNCTIONS.map((f) => {
    const context = isolate.createContextSync();
    return isolate.compileScriptSync(`${f.source}\n;extract`).runSync(context, { reference: true });
  });
  const start = performance.now();
  for (const fn of fns) for (const t of texts) fn.applySync(undefined, [t], { arguments: { copy: true }, result: { copy: true }, timeout: 1000 });
  const seconds = (performance.now() - start) / 1000;
  isolate.dispose();
  return (FUNCTIONS.length * texts.length) / seconds;
}

export default async function run(): Promise<BenchResult> {
  const missing = needsSharedData('sandbox', 'swde-book-christianbook');
  if (missing) return missing;
  const texts = loadTexts();
  const evaluations = FUNCTIONS.length * texts.length;
  const documents = texts.map((text, i) => ({ id: i, text }));
  const rows: BenchResult['rows'] = [];
  const notes: string[] = [];

  unsandboxed(texts.slice(0, 200)); // warm the JIT the same way the workers get warmed
  const plain = unsandboxed(texts);
  rows.push({ variant: 'unsandboxed (plain Node, 1 thread)', evaluations, seconds: plain.seconds, 'evals/s': Math.round(evaluations / plain.seconds) });

  const settings = loadSettings().sandbox;
  const measure = async (isolation: 'process' | 'thread') => {
    const sandbox = createSandbox({ ...settings, isolation });
    try {
      // One scope, as in a job: its functions' contexts are made once per worker and shared by its runs.
      const scope = { scope: 'bench' };
      await sandbox.run(FUNCTIONS, documents.slice(0, 200), scope); // starts workers, compiles, warms
      return await bestOf(3, () => sandbox.run(FUNCTIONS, documents, scope));
    } finally {
      await sandbox.close();
    }
  };
  const threads = settings.workers > 0 ? settings.workers : os.availableParallelism();
  const inProcess = await measure('thread');
  rows.push({ variant: `sandbox, isolation=thread: vm contexts in ${threads} piscina workers in the service process`, evaluations, seconds: inProcess.seconds, 'evals/s': Math.round(evaluations / inProcess.seconds) });
  const sandboxed = await measure(settings.isolation === 'thread' ? 'thread' : 'process');
  const sandboxRate = evaluations / sandboxed.seconds;
  rows.push({
    variant: `sandbox, isolation=${settings.isolation}: the same pool in a child process under the permission model (chosen)`,
    evaluations,
    seconds: sandboxed.seconds,
    'evals/s': Math.round(sandboxRate),
  });
  notes.push(`child-process isolation costs ${Math.round((1 - sandboxRate / (evaluations / inProcess.seconds)) * 100)}% of in-process throughput here (documents cross over IPC once per run).`);

  let mismatches = 0;
  FUNCTIONS.forEach((_, f) =>
    texts.forEach((__, d) => {
      const c = sandboxed.value[f][d];
      if (!c.ok || JSON.stringify(c.value) !== JSON.stringify(plain.values[f][d])) mismatches++;
    }),
  );

  const altDir = process.env.EVAPORATE_BENCH_ALT_MODULES;
  if (altDir) {
    const req = createRequire(path.join(path.resolve(altDir), 'noop.js'));
    const version = (name: string) => {
      try {
        return (req(`${name}/package.json`) as { version: string }).version;
      } catch {
        return '?';
      }
    };
    try {
      const rate = await quickjs(req, texts);
      rows.push({ variant: `quickjs-emscripten ${version('quickjs-emscripten')} (WebAssembly, 1 thread, 200 docs)`, evaluations: FUNCTIONS.length * 200, seconds: null, 'evals/s': Math.round(rate) });
    } catch (error) {
      notes.push(`quickjs-emscripten not measured: ${(error as Error).message.split('\n')[0]}`);
    }
    try {
      const rate = isolatedVm(req, texts);
      rows.push({ variant: `isolated-vm ${version('isolated-vm')} (V8 isolate, 1 thread)`, evaluations, seconds: null, 'evals/s': Math.round(rate) });
    } catch (error) {
      notes.push(`isolated-vm not measured: ${(error as Error).message.split('\n')[0]}`);
    }
  } else {
    notes.push('Alternatives not measured in this run: set EVAPORATE_BENCH_ALT_MODULES to a node_modules folder holding quickjs-emscripten and isolated-vm.');
  }
  notes.push(`sandboxed results identical to unsandboxed: ${mismatches === 0} (${mismatches} differing of ${evaluations})`);
  notes.push(
    'Boundary: one vm context per function (frozen intrinsics, no host objects, string and wasm code generation off, import refused) inside piscina worker threads (own V8 isolate each, hard heap limit, env emptied), wall-clock and memory enforced by the pool thread by terminating the worker; with isolation=process the pool lives in a child process under the Node permission model (no file system beyond its own code, no child processes, empty environment). Single-thread rows are per core.',
  );

  const plainRate = evaluations / plain.seconds;
  return {
    name: 'sandbox',
    rows,
    targets: {
      'sandbox >= 20,000 evaluations/s': sandboxRate >= 20_000,
      'sandbox >= 1/3 of unsandboxed speed': sandboxRate >= plainRate / 3,
      'sandboxed results equal unsandboxed': mismatches === 0,
    },
    notes,
    extra: { functions: FUNCTIONS.map((f) => f.id), documents: texts.length, workers: threads, ratioToUnsandboxed: sandboxRate / plainRate },
  };
}
