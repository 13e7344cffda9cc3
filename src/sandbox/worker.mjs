// Piscina worker: runs untrusted extraction functions, each in its own vm context with frozen intrinsics,
// no host objects, code generation from strings and WebAssembly disabled. Only primitives cross between this
// file and a context (strings in, strings/null out), so no host-realm object is ever reachable from user code.
// Wall-clock and memory limits are enforced from outside: the pool owner watches `progress` and terminates
// this whole thread; resourceLimits cap its heap.
import v8 from 'node:v8';
import vm from 'node:vm';
import { workerData } from 'piscina';

const CONTEXT_OPTIONS = { codeGeneration: { strings: false, wasm: false }, microtaskMode: 'afterEvaluate' };

// Runs first in every context: removes what an extraction function never needs (shared memory, raw buffers
// outside the heap limit, WebAssembly, console, RegExp's cross-call legacy statics, stack frames), then freezes every
// reachable intrinsic so nothing one call does can be seen by the next.
const HARDEN = `"use strict";
(() => {
  const g = globalThis;
  const drop = ['console', 'SharedArrayBuffer', 'Atomics', 'WebAssembly', 'FinalizationRegistry', 'WeakRef'];
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
  return (extract, maxChars, maxItems) => (text, doc) => {
    let v;
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
  };
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

// Compiled functions, keyed by id and source, so each is compiled once per worker (bounded: least recently used out).
const compiled = new Map();
const MAX_COMPILED = workerData.maxCompiled ?? 256;

function compile(fn, limits, report) {
  const key = fn.id + '\u0000' + fn.source;
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
      [],
      { parsingContext: context },
    );
    let extract;
    try {
      extract = factory();
    } catch {
      entry = { error: 'the top-level code of the function threw' };
    }
    if (!entry) {
      entry = typeof extract === 'function'
        ? { call: wrapRunner(extract, limits.maxOutputChars, limits.maxOutputItems) }
        : { error: 'the source does not define function extract(text, doc)' };
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
      : compile(fn, limits, () => mark(PHASE_COMPILE, f, -1)));
  const out = new Array(F * D).fill(null);
  // Counted here and added to the shared counts by the pool only when this batch completes, so a batch
  // resumed after a worker was replaced does not count the same failure twice.
  const localFailures = new Array(F).fill(0);
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
      const heapBefore = v8.getHeapStatistics().total_heap_size;
      let r;
      try {
        r = entry.call(text, doc);
      } catch {
        // Only a failure deep in the runner itself (e.g. the stack already exhausted) gets here; the thrown
        // value belongs to the context and is deliberately not inspected.
        r = 'Rthe function failed in a way that could not be inspected';
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
  return { out, failures: localFailures };
}
