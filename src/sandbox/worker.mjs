// Piscina worker: runs untrusted extraction functions, each in its own vm context with frozen intrinsics,
// no host objects, code generation from strings and WebAssembly disabled. Only primitives cross between this
// file and a context (strings in, strings/null out), so no host-realm object is ever reachable from user code.
// Wall-clock and memory limits are enforced from outside: the pool owner watches `progress` and terminates
// this whole thread; resourceLimits cap its heap.
import v8 from 'node:v8';
import vm from 'node:vm';
import { workerData } from 'piscina';

// A full collection on demand, to tell memory a function keeps across calls from garbage not yet collected.
// The flag is switched off again at once, so no context created after this line has a gc global.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc');
v8.setFlagsFromString('--no-expose-gc');

const CONTEXT_OPTIONS = { codeGeneration: { strings: false, wasm: false }, microtaskMode: 'afterEvaluate' };

// Runs first in every context: removes what an extraction function never needs (shared memory, raw buffers
// outside the heap limit, WebAssembly, console, RegExp's cross-call legacy statics, stack frames), then freezes every
// reachable intrinsic so nothing one call does can be seen by the next.
const HARDEN = `"use strict";
(() => {
  const g = globalThis;
  const drop = ['gc', 'console', 'SharedArrayBuffer', 'Atomics', 'WebAssembly', 'FinalizationRegistry', 'WeakRef'];
  if (!KEEP_BUFFERS) drop.push('ArrayBuffer', 'DataView', 'Uint8Array', 'Int8Array', 'Uint16Array', 'Int16Array',
    'Uint32Array', 'Int32Array', 'Float32Array', 'Float64Array', 'Uint8ClampedArray', 'BigUint64Array', 'BigInt64Array', 'Float16Array');
  for (const k of drop) delete g[k];
  // Stack traces would show the host's frames: its file paths and module layout.
  Error.stackTraceLimit = 0;
  for (const k of ['$1','$2','$3','$4','$5','$6','$7','$8','$9','input','$_','lastMatch','$&','lastParen','$+','leftContext','$\`','rightContext',"$'"]) {
    try { delete RegExp[k]; } catch {}
  }
  const seen = new WeakSet();
  const stack = [];
  for (const k of Reflect.ownKeys(g)) {
    const d = Reflect.getOwnPropertyDescriptor(g, k);
    if (d && 'value' in d && (typeof d.value === 'object' || typeof d.value === 'function') && d.value !== g) stack.push(d.value);
  }
  const isTyped = (o) => { try { return ArrayBuffer.isView(o); } catch { return false; } };
  while (stack.length) {
    const o = stack.pop();
    if (o === null || (typeof o !== 'object' && typeof o !== 'function') || seen.has(o)) continue;
    seen.add(o);
    if (!isTyped(o)) Object.freeze(o);
    stack.push(Object.getPrototypeOf(o));
    for (const k of Reflect.ownKeys(o)) {
      const d = Reflect.getOwnPropertyDescriptor(o, k);
      if (!d) continue;
      if ('value' in d) stack.push(d.value); else { stack.push(d.get); stack.push(d.set); }
    }
  }
  for (const k of Reflect.ownKeys(g)) {
    const d = Reflect.getOwnPropertyDescriptor(g, k);
    if (!d || !('value' in d)) continue;
    try { Object.defineProperty(g, k, { value: d.value, writable: false, enumerable: d.enumerable, configurable: false }); } catch {}
  }
})();`;

// Longest error name and message that leave a context (characters).
const MAX_ERROR_NAME = 100;
const MAX_ERROR_MESSAGE = 300;

// Runs in each function's context after HARDEN: wraps extract so that whatever it returns or throws turns
// into a primitive before leaving the context. Intrinsics are captured here, before user code exists.
const RUNNER = `"use strict";
(() => {
  const MAX_ERROR_NAME = ${MAX_ERROR_NAME}, MAX_ERROR_MESSAGE = ${MAX_ERROR_MESSAGE};
  const isArray = Array.isArray;
  const trim = Function.prototype.call.bind(String.prototype.trim);
  const stringify = JSON.stringify;
  const ErrorCtor = Error;
  const apply = Reflect.apply;
  const describe = (e) => {
    try {
      if (e instanceof ErrorCtor || (typeof e === 'object' && e !== null && typeof e.message === 'string')) {
        // Both are capped here, inside the context: a function can build a huge string cheaply (by doubling) and
        // throw it as name or message; only the capped copy is ever flattened and sent to the host.
        const name = e.name, message = e.message;
        return (typeof name === 'string' ? name.slice(0, MAX_ERROR_NAME) : 'Error') + ': ' + (typeof message === 'string' ? message.slice(0, MAX_ERROR_MESSAGE) : '');
      }
      return 'threw a non-Error value (' + (e === null ? 'null' : typeof e) + ')';
    } catch {
      return 'threw a value that could not be inspected';
    }
  };
  // What user code sees as globalThis: a frozen copy of this (hardened) global. The real global object is
  // shadowed by the factory's parameter of that name, and strict code has no other way to reach it, so a
  // function cannot hang state on it.
  const g = globalThis;
  const view = Object.create(null);
  for (const k of Reflect.ownKeys(g)) { try { view[k] = g[k]; } catch {} }
  view.globalThis = view;
  Object.freeze(view);
  const probe = (factory) => () => typeof apply(factory, undefined, [view]) === 'function';
  return (factory, maxChars, maxItems) => [probe(factory), (text, doc) => {
    let v;
    // The top-level code runs again for every call, so nothing one call leaves in the function's own
    // bindings (a top-level array, a closure) is seen by the next: each call starts from the source.
    let extract;
    try { extract = apply(factory, undefined, [view]); } catch (e) { return 'Rthe top-level code threw: ' + describe(e); }
    if (typeof extract !== 'function') return 'Rthe source does not define function extract(text, doc)';
    try { v = apply(extract, undefined, [text, doc]); } catch (e) { return 'R' + describe(e); }
    try {
      if (v === null || v === undefined) return null;
      if (typeof v === 'string') {
        const s = trim(v);
        if (s.length > maxChars) return 'O' + 'returned ' + s.length + ' characters; the limit is ' + maxChars;
        return s === '' ? null : 'S' + s;
      }
      if (isArray(v)) {
        const n = v.length;
        if (typeof n !== 'number' || n > maxItems) return 'O' + 'returned an array of ' + n + ' items; the limit is ' + maxItems;
        const out = [];
        let total = 0;
        for (let i = 0; i < n; i++) {
          const x = v[i];
          if (x === null || x === undefined) continue;
          if (typeof x !== 'string') return 'O' + 'returned an array holding a ' + typeof x + '; only strings are allowed';
          const s = trim(x);
          total += s.length;
          if (total > maxChars) return 'O' + 'returned more than ' + maxChars + ' characters in total';
          if (s !== '') out.push(s);
        }
        return out.length === 0 ? null : 'A' + stringify(out);
      }
      return 'O' + 'returned a ' + (typeof v) + '; expected a string, an array of strings or null';
    } catch (e) {
      return 'O' + 'returned a value that could not be read (' + describe(e) + ')';
    }
  }];
})();`;

const domContext = vm.createContext(Object.create(null), CONTEXT_OPTIONS);
// The DOM realm keeps typed arrays: the HTML entity decoder needs them. Its global is never handed out.
// The HTML entity decoder builds its tables with atob, which a bare context lacks.
vm.runInContext(`globalThis.atob = (input) => {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  let out = '', bits = 0, acc = 0;
  for (const ch of String(input)) {
    const v = A.indexOf(ch);
    if (v < 0) continue;
    acc = (acc << 6) | v; bits += 6;
    if (bits >= 8) { bits -= 8; out += String.fromCharCode((acc >> bits) & 255); }
  }
  return out;
};`, domContext);
vm.runInContext(`const KEEP_BUFFERS = true;\n${HARDEN}`, domContext);
vm.runInContext(workerData.domSource, domContext);
const makeDoc = vm.runInContext('globalThis.__evaporateMakeDoc', domContext);

const hardenScript = new vm.Script(`const KEEP_BUFFERS = false;\n${HARDEN}`);
const runnerScript = new vm.Script(RUNNER);

// Compiled functions, keyed by scope (a job; else one sandbox.run), id and source, so each gets a fresh
// context per scope and is compiled once per worker within it (bounded: least recently used out).
const compiled = new Map();
const MAX_COMPILED = workerData.maxCompiled ?? 256;
// Runs the context's pending microtasks (a promise callback a call queued), inside the call's time and
// memory accounting; left queued, they would hold whatever they captured for as long as the context lives.
const drainScript = new vm.Script('undefined');

function compile(fn, limits, report, scope) {
  const key = scope + '\u0000' + fn.id + '\u0000' + fn.source;
  let entry = compiled.get(key);
  if (entry) {
    compiled.delete(key);
    compiled.set(key, entry);
    return entry;
  }
  report();
  try {
    const context = vm.createContext(Object.create(null), CONTEXT_OPTIONS);
    hardenScript.runInContext(context);
    const wrapRunner = runnerScript.runInContext(context);
    const factory = vm.compileFunction(
      `"use strict";\n${fn.source}\n;return typeof extract === 'function' ? extract : undefined;`,
      ['globalThis'],
      { parsingContext: context },
    );
    const runner = wrapRunner(factory, limits.maxOutputChars, limits.maxOutputItems);
    let defined = false;
    try {
      // Once here, under the compile phase: top-level code that hangs or throws fails the function as a whole.
      defined = runner[0]() === true;
    } catch {
      entry = { error: 'the top-level code of the function threw' };
    }
    if (!entry) {
      entry = defined ? { call: runner[1], context } : { error: 'the source does not define function extract(text, doc)' };
    }
  } catch (e) {
    entry = { error: 'the source does not compile: ' + (e instanceof SyntaxError ? String(e.message).slice(0, MAX_ERROR_MESSAGE) : 'invalid JavaScript') };
  }
  compiled.set(key, entry);
  if (compiled.size > MAX_COMPILED) compiled.delete(compiled.keys().next().value);
  return entry;
}

/**
 * Longest tagged outcome a call can legitimately produce: its values JSON-encoded (each character at most six,
 * as a \u escape; each item adds quotes and a comma) or an error line. Kept equal to outcomeCharLimit in sandbox.ts,
 * which checks the same bound again on receipt.
 */
export function outcomeCharLimit(maxOutputChars, maxOutputItems) {
  return 6 * maxOutputChars + 3 * maxOutputItems + 1024;
}

const PHASE_COMPILE = 1;
const PHASE_CALL = 2;
// Live heap growth since start, in memory caps, past which a worker is replaced (compiled contexts included).
const WORKER_GROWTH_CAPS = 4;
const workerBaseline = v8.getHeapStatistics().used_heap_size;

/**
 * task: { functions: [{id, source}], store: {buffer, offsets, ids, hasHtml}, skip: number[] (call indexes),
 *         failures: Int32Array over a SharedArrayBuffer (per function), progress: Int32Array [seq, phase, f, d],
 *         maxFailures, maxOutputChars, maxOutputItems }
 * Returns one tagged string per call (doc-major: d * F + f; null when skipped; flat strings clone cheaply):
 * N no value, S one value, A JSON array of values, R threw, O invalid output, C compile error, D disabled,
 * M over the memory cap (body: the cap in MB);
 * and the failures per function counted in this batch.
 */
export default function runBatch(task) {
  const { functions, store, progress, failures, maxFailures } = task;
  const F = functions.length;
  const D = store.ids.length;
  const skip = new Set(task.skip);
  const bytes = Buffer.from(store.buffer);
  const offsets = store.offsets;
  const limits = { maxOutputChars: task.maxOutputChars, maxOutputItems: task.maxOutputItems };
  const memoryCapBytes = (task.memoryLimitMb ?? 0) * 1024 * 1024;
  const maxOutcomeChars = outcomeCharLimit(task.maxOutputChars, task.maxOutputItems);
  const mark = (phase, f, d) => {
    progress[1] = phase;
    progress[2] = f;
    progress[3] = d;
    Atomics.add(progress, 0, 1);
  };
  const dropped = new Set(task.skipFunctions);
  const entries = functions.map((fn, f) =>
    dropped.has(f) ? { error: 'skipped' }
      // Already disabled (e.g. its top-level code hung in another batch): not even compiled again.
      : Atomics.load(failures, f) >= maxFailures ? { disabled: true }
      : compile(fn, limits, () => mark(PHASE_COMPILE, f, -1), task.scope));
  const out = new Array(F * D).fill(null);
  // Counted here and added to the shared counts by the pool only when this batch completes, so a batch
  // resumed after a worker was replaced does not count the same failure twice.
  const localFailures = new Array(F).fill(0);
  // Memory kept across calls (past what each call allocates): live heap growth over the batch, measured
  // after a full collection once the heap has grown by the cap, is charged to the function whose calls grew
  // the heap most. That function fails with `memory` and is disabled, and this worker is replaced after the
  // batch, since what V8 holds for a function (the symbol registry, compiled code) is only freed with it.
  const grown = new Float64Array(F);
  const lastCall = new Int32Array(F).fill(-1);
  let base = v8.getHeapStatistics().used_heap_size;
  let checkAt = base + memoryCapBytes;
  let recycle = false;
  for (let d = 0; d < D; d++) {
    const text = bytes.toString('utf8', offsets[2 * d], offsets[2 * d + 1]);
    const html = store.hasHtml[d] ? bytes.toString('utf8', offsets[2 * (D + d)], offsets[2 * (D + d) + 1]) : '';
    let doc = null;
    for (let f = 0; f < F; f++) {
      const i = d * F + f;
      if (skip.has(i)) continue;
      const entry = entries[f];
      if (entry.error) { out[i] = 'C' + entry.error; continue; }
      if (entry.disabled || Atomics.load(failures, f) + localFailures[f] >= maxFailures) { out[i] = 'D'; continue; }
      if (doc === null) doc = makeDoc(store.ids[d], text, html);
      mark(PHASE_CALL, f, d);
      // The committed heap only grows during a call and is given back later, so its growth across the call
      // bounds what the call allocated from below: a call that allocates past the cap and returns before
      // the pool's sampling watchdog looks is still caught here.
      const before = v8.getHeapStatistics();
      const heapBefore = before.total_heap_size;
      let r;
      try {
        r = entry.call(text, doc);
        drainScript.runInContext(entry.context);
      } catch {
        // Only a failure deep in the runner itself (e.g. the stack already exhausted) gets here; the thrown
        // value belongs to the context and is deliberately not inspected.
        r = 'Rthe function failed in a way that could not be inspected';
      }
      const after = v8.getHeapStatistics();
      grown[f] += Math.max(0, after.used_heap_size - before.used_heap_size);
      lastCall[f] = i;
      if (memoryCapBytes > 0 && after.used_heap_size > checkAt) {
        collectGarbage();
        const live = v8.getHeapStatistics().used_heap_size;
        checkAt = live + memoryCapBytes;
        if (live - base > memoryCapBytes) {
          let culprit = 0;
          for (let g = 1; g < F; g++) if (grown[g] > grown[culprit]) culprit = g;
          localFailures[culprit] = maxFailures;
          grown[culprit] = 0;
          if (lastCall[culprit] >= 0) out[lastCall[culprit]] = 'M' + task.memoryLimitMb;
          // What the culprit holds stays until the worker goes; the others are measured from here.
          base = live;
          recycle = true;
          if (culprit === f) continue;
        }
      }
      if (typeof r === 'string' && r.length > maxOutcomeChars) {
        // Cannot happen through the runner's own caps; checked anyway so nothing unbounded leaves this thread.
        out[i] = 'Rthe outcome had ' + r.length + ' characters; the limit is ' + maxOutcomeChars;
        localFailures[f]++;
      } else if (memoryCapBytes > 0 && v8.getHeapStatistics().total_heap_size - heapBefore > memoryCapBytes) {
        out[i] = 'M' + task.memoryLimitMb;
        localFailures[f]++;
      } else if (r === null) out[i] = 'N';
      else if (typeof r !== 'string') out[i] = 'Rthe function failed in a way that could not be inspected';
      else {
        out[i] = r;
        const kind = r.charCodeAt(0);
        if (kind === 82 /* R */ || kind === 79 /* O */) localFailures[f]++;
      }
    }
  }
  mark(0, -1, -1);
  // Across batches: a worker whose live heap grew past a few caps since it started (memory kept a little
  // per batch) is replaced too.
  if (!recycle && memoryCapBytes > 0 && v8.getHeapStatistics().used_heap_size - workerBaseline > WORKER_GROWTH_CAPS * memoryCapBytes) {
    collectGarbage();
    if (v8.getHeapStatistics().used_heap_size - workerBaseline > WORKER_GROWTH_CAPS * memoryCapBytes) recycle = true;
  }
  // Replaced after answering: the exit comes after the answer is posted (timers run after the microtask that
  // posts it); a batch sent to this worker meanwhile fails before it starts, and the pool runs it again.
  if (recycle) setTimeout(() => process.exit(0), 0);
  return { out, failures: localFailures, recycled: recycle };
}
