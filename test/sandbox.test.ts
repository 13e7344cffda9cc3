import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSandbox } from '../src/sandbox/index.js';
import { EXTRACTION_FUNCTION_CONTRACT } from '../src/sandbox/contract.js';
import { MemoryGuard } from '../src/sandbox/memory-guard.js';
import type { CallOutcome, SandboxDocument, SandboxErrorCode } from '../src/sandbox/types.js';

const TIMEOUT_MS = 250;
const settings = {
  callTimeoutMs: TIMEOUT_MS,
  memoryLimitMb: 64,
  maxOutputChars: 200,
  maxFailuresPerFunction: 1000,
  workers: 2,
};

const DOCS: SandboxDocument[] = [
  { id: 'a', text: 'Title: Alpha\nISBN-13: 9781111111111\nPublisher: Zondervan', html: '<table><tr><td>Publisher</td><td> Zondervan </td></tr></table><p><b>ISBN-13:</b> 9781111111111<br>x</p>' },
  { id: 'b', text: 'Title: Beta\nISBN-13: 9782222222222\nPublisher: Baker', html: '<table><tr><th>Publisher:</th><td>Baker</td></tr></table>' },
  { id: 'c', text: 'Title: Gamma\nno isbn here', html: '' },
];
const GOOD = { id: 'good', source: String.raw`function extract(text) { const m = /ISBN-13: (\d{13})/.exec(text); return m ? m[1] : null; }` };
const GOOD_VALUES = [['9781111111111'], ['9782222222222'], null];

let sandbox: ReturnType<typeof createSandbox>;
beforeAll(() => {
  sandbox = createSandbox(settings);
});
afterAll(async () => {
  await sandbox.close();
});

const code = (c: CallOutcome) => (c.ok ? 'ok' : c.error.code);

/** Runs the attack next to a well-behaved function and checks that one is untouched, then that the pool still serves. */
async function attack(source: string, expected: SandboxErrorCode | 'ok', docs = DOCS, timeoutMs = TIMEOUT_MS): Promise<CallOutcome[]> {
  const [bad, good] = await sandbox.run([{ id: `attack-${Math.random()}`, source }, GOOD], docs, { timeoutMs });
  for (const outcome of bad) {
    expect(code(outcome)).toBe(expected);
    if (!outcome.ok) expect(outcome.error.message.length).toBeGreaterThan(0);
  }
  expect(good.map((c) => (c.ok ? c.value : c.error.code))).toEqual(GOOD_VALUES.slice(0, docs.length));
  const [again] = await sandbox.run([GOOD], docs);
  expect(again.map((c) => (c.ok ? c.value : c.error.code))).toEqual(GOOD_VALUES.slice(0, docs.length));
  return bad;
}

describe('contract', () => {
  it('runs functions and normalizes their output', async () => {
    const [trimmed, list, empty, undef] = await sandbox.run(
      [
        { id: 't', source: 'function extract(text) { return "  " + text.split("\\n")[0].slice(7) + "  "; }' },
        { id: 'l', source: 'function extract(text) { return [" x ", "", null, "y"]; }' },
        { id: 'e', source: 'function extract() { return "   "; }' },
        { id: 'u', source: 'function extract() {}' },
      ],
      DOCS,
      { timeoutMs: 10_000 },
    );
    expect(trimmed.map((c) => c.ok && c.value)).toEqual([['Alpha'], ['Beta'], ['Gamma']]);
    expect(list[0]).toEqual({ ok: true, value: ['x', 'y'] });
    expect(empty[0]).toEqual({ ok: true, value: null });
    expect(undef[0]).toEqual({ ok: true, value: null });
  });

  it('offers the documented DOM helpers', async () => {
    const [after, textOf, select, find, none] = await sandbox.run(
      [
        { id: 'after', source: 'function extract(text, doc) { return doc.textAfter("publisher"); }' },
        { id: 'textOf', source: 'function extract(text, doc) { return doc.textOf("td:contains(Publisher) + td"); }' },
        { id: 'select', source: 'function extract(text, doc) { return doc.select("td, th").map((n) => n.tag + "=" + n.text + "@" + (n.next ? n.next.text : "")); }' },
        { id: 'find', source: 'function extract(text, doc) { const n = doc.findText("isbn-13")[0]; return n ? [n.html, n.parent.tag, String(n.attr("x"))] : null; }' },
        { id: 'none', source: 'function extract(text, doc) { return [doc.id, String(doc.select("td").length), String(doc.textAfter("x")), String(doc.html === "")]; }' },
      ],
      DOCS,
      { timeoutMs: 10_000 },
    );
    expect(after.map((c) => c.ok && c.value)).toEqual([['Zondervan'], ['Baker'], null]);
    expect(textOf.map((c) => c.ok && c.value)).toEqual([['Zondervan'], null, null]);
    expect(select[0]).toEqual({ ok: true, value: ['td=Publisher@Zondervan', 'td=Zondervan@'] });
    expect(find[0]).toEqual({ ok: true, value: ['<b>ISBN-13:</b>', 'p', 'null'] });
    expect(none[2]).toEqual({ ok: true, value: ['c', '0', 'null', 'true'] });
  });

  it('reads label-value pairs from a real SWDE page', async () => {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const html = fs.readFileSync(path.join(here, '..', 'fixtures', 'swde', 'book-christianbook', 'pages', '0000.htm'), 'utf8');
    const [isbn, vendor] = await sandbox.run(
      [
        { id: 'isbn', source: 'function extract(text, doc) { return doc.textAfter("ISBN-13"); }' },
        { id: 'vendor', source: 'function extract(text, doc) { return doc.textAfter(/^vendor:?$/i); }' },
      ],
      [{ id: 0, text: '', html }],
      { timeoutMs: 10_000 }, // the first parse of a 150 KB page on a busy machine must not count as a runaway
    );
    expect(isbn[0]).toEqual({ ok: true, value: ['9781602600157'] });
    expect(vendor[0]).toEqual({ ok: true, value: ['Value Books'] });
  });

  it('exports a prompt-ready description of the contract', () => {
    expect(EXTRACTION_FUNCTION_CONTRACT).toContain('function extract(text, doc)');
    expect(EXTRACTION_FUNCTION_CONTRACT).toContain('doc.textAfter');
  });

  it('rejects sources that do not define extract', async () => {
    const [missing, syntax, breakout] = await sandbox.run(
      [
        { id: 'm', source: 'function other() { return "x"; }' },
        { id: 's', source: 'function extract( {' },
        { id: 'b', source: '}); (function () { return this; })(); (function () {' },
      ],
      DOCS.slice(0, 1),
    );
    expect([missing[0], syntax[0], breakout[0]].map(code)).toEqual(['compile', 'compile', 'compile']);
  });
});

describe('attack suite', () => {
  it('cannot reach process, require or import()', async () => {
    await attack('function extract() { return String(process.pid); }', 'runtime');
    await attack('function extract() { return require("fs").readFileSync("/etc/passwd", "utf8"); }', 'runtime');
    await attack('function extract() { return import("fs"); }', 'compile');
    await attack('function extract() { return import /* hidden */ ("node:fs"); }', 'compile');
  });

  it('cannot climb constructor chains to the host', async () => {
    await attack('function extract() { return this.constructor.constructor("return process")().pid; }', 'runtime');
    await attack('function extract(text) { return text.constructor.constructor("return process")().pid; }', 'runtime');
    await attack('function extract(text, doc) { return doc.select.constructor("return process")().pid; }', 'runtime');
    await attack('function extract(text, doc) { return Object.getPrototypeOf(doc).constructor.constructor("return process")().pid; }', 'runtime');
    await attack('function extract(text, doc) { return doc.select("td")[0].attr.constructor("return process")().pid; }', 'runtime', DOCS.slice(0, 1));
    const [r] = await sandbox.run(
      [{ id: 'g', source: 'function extract() { return Object.getOwnPropertyNames(globalThis).filter((k) => /process|require|Buffer|fetch|setTimeout|console|WebAssembly|SharedArrayBuffer|Atomics/.test(k)); }' }],
      DOCS.slice(0, 1),
    );
    expect(r[0]).toEqual({ ok: true, value: null });
  });

  it('cannot read the host\'s frames or file paths from stack traces', async () => {
    const [out] = await attack(
      'function extract() { const o = {}; Error.captureStackTrace(o); return [String(o.stack), String(new Error("e").stack), (() => { try { null.x; } catch (e) { return String(e.stack); } })()]; }',
      'ok',
      DOCS.slice(0, 1),
    );
    expect(out.ok && out.value!.join('\n')).not.toMatch(/\/|worker|piscina|evalmachine|at /);
    await attack('function extract() { Error.stackTraceLimit = 50; return "x"; }', 'runtime', DOCS.slice(0, 1));
  });

  it('cannot use eval or Function', async () => {
    await attack('function extract() { return eval("1 + 1"); }', 'runtime');
    await attack('function extract() { return new Function("return 1")(); }', 'runtime');
    await attack('function extract() { return (function* () {}).constructor("yield 1")().next().value; }', 'runtime');
    await attack('function extract() { return (async function () {}).constructor("return 1")(); }', 'runtime');
  });

  it('cannot pollute prototypes for the next call or another function', async () => {
    await attack('function extract() { Object.prototype.polluted = "yes"; return "done"; }', 'runtime');
    await attack('function extract() { Array.prototype.map = () => ["evil"]; return "done"; }', 'runtime');
    await attack('function extract() { String.prototype.trim = function () { return "evil"; }; return "done"; }', 'runtime');
    await attack('function extract() { Object.defineProperty(RegExp.prototype, "exec", { value: () => null }); return "x"; }', 'runtime');
    // globalThis is a frozen view of the hardened global: writing to it fails the call, and nothing reaches
    // another function or the next call.
    const [writer, reader] = await sandbox.run(
      [
        { id: 'w', source: 'function extract(text) { globalThis.leak = text; /Title: (\\w+)/.exec(text); return "w"; }' },
        { id: 'r', source: 'function extract() { return [String(globalThis.leak), String(RegExp.$1), String(({}).polluted), [1].map((x) => String(x))[0]]; }' },
      ],
      DOCS,
    );
    expect(writer.map(code)).toEqual(DOCS.map(() => 'runtime'));
    expect(reader.map((c) => c.ok && c.value)).toEqual(DOCS.map(() => ['undefined', 'undefined', 'undefined', '1']));
  });

  it('cannot modify the shared doc helpers', async () => {
    await attack('function extract(text, doc) { doc.select = () => []; return "x"; }', 'runtime');
    await attack('function extract(text, doc) { doc.textAfter.cache = text; return "x"; }', 'runtime');
    await attack('function extract(text, doc) { const n = doc.select("td")[0]; Object.getPrototypeOf(n).text = "evil"; return "x"; }', 'runtime', DOCS.slice(0, 1));
    await attack('function extract(text, doc) { doc.select("td").push("x"); return "x"; }', 'runtime', DOCS.slice(0, 1));
    const [after] = await sandbox.run([{ id: 'after', source: 'function extract(text, doc) { return doc.textAfter("publisher"); }' }], DOCS);
    expect(after.map((c) => c.ok && c.value)).toEqual([['Zondervan'], ['Baker'], null]);
  });

  it('stops an infinite loop by its wall-clock limit', async () => {
    const started = Date.now();
    const bad = await attack('function extract() { for (;;) {} }', 'timeout', DOCS.slice(0, 2).concat(DOCS.slice(2)));
    expect(bad[0].ok === false && bad[0].error.message).toMatch(/250 ms/);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('stops catastrophic regex backtracking on a long input', async () => {
    await attack('function extract(text) { return /^(\\w+\\s?)+$/.test(text.replace(/\\W/g, "").repeat(5) + "!") ? "y" : "n"; }', 'timeout');
  });

  it('caps memory: allocating gigabytes kills only that call', async () => {
    await attack('function extract() { const a = []; for (;;) a.push(new Array(1e6).fill(1.5)); }', 'memory', DOCS.slice(0, 1), 5000);
    // One allocation far beyond the cap: V8 would abort the whole process if it hit a worker's hard heap limit.
    await attack('function extract() { const a = new Array(2 ** 25).fill(1.5); const b = new Array(2 ** 25).fill(2.5); return String(a.length + b.length); }', 'memory', DOCS.slice(0, 1), 5000);
  });

  it('turns deep recursion into a clean error', async () => {
    await attack('function extract() { const r = (n) => r(n + 1) + 1; return r(0); }', 'runtime');
  });

  it('rejects Proxies, throwing getters and non-string results', async () => {
    await attack('function extract() { return new Proxy([], { get() { throw new Error("trap"); } }); }', 'invalid_output');
    await attack('function extract() { return new Proxy({}, {}); }', 'invalid_output');
    await attack('function extract() { return { get length() { throw 1; }, 0: "x" }; }', 'invalid_output');
    await attack('function extract() { return [["nested"]]; }', 'invalid_output');
    await attack('function extract() { return 42; }', 'invalid_output');
    await attack('async function extract() { return "x"; }', 'invalid_output');
    await attack('function extract() { return Object.assign(["a"], { get 0() { for (;;) {} } }); }', 'timeout', DOCS.slice(0, 1));
  });

  it('turns throws of non-Error values into clean errors', async () => {
    const cases = ['throw 42', 'throw null', 'throw undefined', 'throw "text"', 'throw Symbol("s")',
      'throw { message: { toString() { throw 1; } } }', 'throw new Proxy({}, { get() { throw 1; }, getPrototypeOf() { throw 2; } })',
      'const e = new Error("x"); Object.defineProperty(e, "message", { get() { throw e; } }); throw e'];
    for (const body of cases) {
      const [bad] = await attack(`function extract() { ${body}; }`, 'runtime', DOCS.slice(0, 1));
      expect(bad.ok === false && typeof bad.error.message).toBe('string');
    }
  });

  it('has no Atomics.wait, SharedArrayBuffer or WebAssembly', async () => {
    await attack('function extract() { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); return "x"; }', 'runtime');
    await attack('function extract() { return String(new SharedArrayBuffer(8).byteLength); }', 'runtime');
    await attack('function extract() { new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])); return "x"; }', 'runtime');
    await attack('function extract() { return String(new ArrayBuffer(2 ** 31).byteLength); }', 'runtime');
  });

  it('has no timers, and queued work never runs after the call', async () => {
    await attack('function extract() { setTimeout(() => { for (;;) {} }, 0); return "x"; }', 'runtime');
    await attack('function extract() { queueMicrotask(() => { for (;;) {} }); return "x"; }', 'runtime');
    // A promise job runs before the call ends, inside its time limit (left queued, it would keep whatever it
    // captured alive), so one that never finishes is that call's timeout, and no later call runs it.
    await attack('function extract() { Promise.resolve().then(() => { for (;;) {} }); return "x"; }', 'timeout');
    const [late] = await sandbox.run(
      [{ id: 'late', source: 'function extract(text) { let seen = "none"; Promise.resolve().then(() => { seen = text; }); return seen; }' }],
      DOCS,
    );
    expect(late.map((c) => c.ok && c.value)).toEqual([['none'], ['none'], ['none']]);
  });

  it('cannot read environment variables, files or sockets', async () => {
    await attack('function extract() { return process.env.HOME; }', 'runtime');
    await attack('function extract() { return fetch("http://127.0.0.1:1/"); }', 'runtime');
    await attack('function extract() { return process.binding("fs"); }', 'runtime');
    await attack('function extract() { return module.constructor._load("net"); }', 'runtime');
  });

  it('rejects very long output', async () => {
    await attack('function extract() { return "x".repeat(1e6); }', 'invalid_output');
    await attack('function extract() { return Array.from({ length: 5000 }, () => "y"); }', 'invalid_output');
    await attack('function extract() { return "x".repeat(2 ** 30); }', 'runtime');
  });

  it('disables a function after too many failures in a job', async () => {
    const strict = createSandbox({ ...settings, maxFailuresPerFunction: 2, workers: 1, batchDocuments: 6 });
    try {
      const docs = Array.from({ length: 6 }, (_, i) => ({ id: i, text: `t${i}` }));
      const failures = new Map<string, number>();
      const [bad, good] = await strict.run([{ id: 'bad', source: 'function extract() { throw new Error("no"); }' }, { id: 'ok', source: 'function extract(t) { return t; }' }], docs, { failures });
      expect(bad.map(code)).toEqual(['runtime', 'runtime', 'disabled', 'disabled', 'disabled', 'disabled']);
      expect(good.map((c) => c.ok && c.value)).toEqual(docs.map((d) => [d.text]));
      expect(failures.get('bad')).toBe(2);
      // The count carries over to the next run of the same job.
      const [later] = await strict.run([{ id: 'bad', source: 'function extract() { throw new Error("no"); }' }], docs.slice(0, 1), { failures });
      expect(later.map(code)).toEqual(['disabled']);
    } finally {
      await strict.close();
    }
  });

  it('stops top-level code that never finishes, once per job', async () => {
    await attack('for (;;) {}\nfunction extract() { return "x"; }', 'timeout', DOCS.slice(0, 1));
    // Several batches: the first to hit it disables the function, the others skip it instead of hanging again.
    const many = Array.from({ length: 12 }, (_, i) => ({ id: i, text: `d${i}` }));
    const small = createSandbox({ ...settings, batchDocuments: 3 });
    try {
      const started = Date.now();
      const [hang] = await small.run([{ id: 'hang', source: 'while (true) {}\nfunction extract() { return "x"; }' }], many);
      expect(new Set(hang.map(code))).toEqual(new Set(['timeout', 'disabled']));
      expect(hang.filter((c) => code(c) === 'timeout').length).toBeLessThanOrEqual(3 * 2);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await small.close();
    }
  });
});

describe('memory guard', () => {
  const MB = 1024 * 1024;
  const sample = (rss: number, heap: number, external = 0) => ({ rss: rss * MB, heapTotal: heap * MB, external: external * MB });

  it('flags growth outside the main heap past the budget, and not main-heap growth', () => {
    const guard = new MemoryGuard(100 * MB, 300);
    guard.start(sample(1000, 400));
    expect(guard.over(sample(1500, 900), 0)).toBe(false); // the main heap grew by as much as the process did
    expect(guard.over(sample(1550, 900), 10)).toBe(false); // 50 MB of worker growth: within budget
    expect(guard.over(sample(1750, 900), 20)).toBe(true); // 250 MB
  });

  it('does not read a shrinking main heap, whose freed pages the process still holds, as worker growth', () => {
    const guard = new MemoryGuard(100 * MB, 300);
    guard.start(sample(3000, 2400));
    // a main-thread GC returns 1.5 GB of heap; the resident size has not caught up yet
    expect(guard.over(sample(2900, 900), 0)).toBe(false);
    expect(guard.over(sample(2850, 900), 10)).toBe(false); // the next reading is the new baseline
    expect(guard.over(sample(2700, 900), 20)).toBe(false); // the system takes the pages back
    expect(guard.over(sample(2900, 900), 30)).toBe(true); // then real growth counts again
  });

  it('waits out the cooldown after a worker was stopped, then measures afresh', () => {
    const guard = new MemoryGuard(100 * MB, 300);
    guard.start(sample(1000, 400));
    guard.settle(0);
    expect(guard.over(sample(1900, 400), 100)).toBe(false); // still inside the cooldown
    expect(guard.over(sample(1900, 400), 400)).toBe(false); // rebased here
    expect(guard.over(sample(1950, 400), 410)).toBe(false);
    expect(guard.over(sample(2050, 400), 420)).toBe(true);
  });
});
