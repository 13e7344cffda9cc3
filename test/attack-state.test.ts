/**
 * Findings 3 and 6: state and memory that cross calls. A function's top-level bindings start fresh for every
 * call (so a top-level array cannot carry corpus A's documents into corpus B), globalThis is read-only, and
 * memory a function keeps across calls is charged to it (memory, then disabled) with its worker replaced.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSandbox } from '../src/sandbox/index.js';
import type { CallOutcome, Sandbox } from '../src/sandbox/types.js';
import { worstLoopDelay } from './attack-helpers.js';

let sandbox: Sandbox;
beforeAll(() => {
  sandbox = createSandbox({ callTimeoutMs: 5000, memoryLimitMb: 64, maxOutputChars: 2000, maxFailuresPerFunction: 1000, workers: 1, batchDocuments: 50 });
});
afterAll(async () => sandbox.close());

const corpus = (name: string, n: number) => Array.from({ length: n }, (_, i) => ({ id: `${name}${i}`, text: `Title: ${name}-${i}` }));
const show = (c: CallOutcome) => (c.ok ? c.value : c.error.code);
const GOOD = { id: 'good', source: 'function extract(text) { return text.slice(7); }' };

describe('no state across calls', () => {
  it("a top-level array returns nothing of corpus A's documents in corpus B, nor of one call in the next", async () => {
    const keeper = { id: 'keeper', source: 'const seen = []; function extract(text) { seen.push(text.slice(7)); return seen.slice(); }' };
    const { result: [a], worstMs } = await worstLoopDelay(() => sandbox.run([keeper], corpus('A', 5), { scope: 'job:1' }));
    console.log(`top-level state: worst event-loop delay ${worstMs.toFixed(1)} ms`);
    const [b] = await sandbox.run([keeper], corpus('B', 5), { scope: 'job:2' });
    const [b2] = await sandbox.run([keeper], corpus('B', 5));
    expect(a.map(show)).toEqual(corpus('A', 5).map((d) => [d.text.slice(7)]));
    expect(b.map(show)).toEqual(corpus('B', 5).map((d) => [d.text.slice(7)]));
    expect(b2.map(show)).toEqual(corpus('B', 5).map((d) => [d.text.slice(7)]));
  });

  it('globalThis cannot carry state: writes fail the call, a non-configurable property cannot be planted', async () => {
    const [writer, definer, reader] = await sandbox.run(
      [
        { id: 'w', source: 'function extract(text) { globalThis.stash = text; return "w"; }' },
        { id: 'd', source: 'function extract(text) { Object.defineProperty(globalThis, "kept", { value: text }); return "d"; }' },
        { id: 'r', source: 'function extract() { return [String(globalThis.stash), String(globalThis.kept), typeof gc]; }' },
      ],
      corpus('A', 3),
      { scope: 'job:3' },
    );
    expect(writer.map((c) => (c.ok ? 'ok' : c.error.code))).toEqual(['runtime', 'runtime', 'runtime']);
    expect(definer.map((c) => (c.ok ? 'ok' : c.error.code))).toEqual(['runtime', 'runtime', 'runtime']);
    expect(reader.map(show)).toEqual([['undefined', 'undefined', 'undefined'], ['undefined', 'undefined', 'undefined'], ['undefined', 'undefined', 'undefined']]);
  });
});

describe('memory across calls', () => {
  it('24 MB kept per call in a closure is let go after each call: 40 calls stay well under their sum', async () => {
    const before = process.memoryUsage().rss;
    let peak = before;
    const probe = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    const hoarder = { id: 'hoarder', source: 'const keep = []; function extract(text) { keep.push("x".repeat(24e6) + text); return String(keep.length); }' };
    const { result: [h, g], worstMs } = await worstLoopDelay(() => sandbox.run([hoarder, GOOD], corpus('M', 40), { scope: 'job:4' }));
    console.log(`24 MB kept per call: worst event-loop delay ${worstMs.toFixed(1)} ms`);
    clearInterval(probe);
    expect(h.map(show)).toEqual(corpus('M', 40).map(() => ['1']));
    expect(g.map(show)).toEqual(corpus('M', 40).map((d) => [d.text.slice(7)]));
    // Kept across calls, 40 x 24 MB would be 960 MB.
    expect((peak - before) / 2 ** 20).toBeLessThan(500);
  }, 60_000);

  it('memory kept in the isolate (the symbol registry) is charged to its function, which is disabled; the worker is replaced', async () => {
    const before = process.memoryUsage().rss;
    let peak = before;
    const probe = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    const leaker = { id: 'leaker', source: 'function extract(text) { Symbol.for("x".repeat(24e6) + text); return "kept"; }' };
    const { result: [l, g], worstMs } = await worstLoopDelay(() => sandbox.run([leaker, GOOD], corpus('S', 40), { scope: 'job:5' }));
    console.log(`symbol-registry leak: worst event-loop delay ${worstMs.toFixed(1)} ms`);
    clearInterval(probe);
    const codes = l.map((c) => (c.ok ? 'ok' : c.error.code));
    expect(codes).toContain('memory');
    // Once charged, it runs no more in this job: disabled for every later document.
    const first = codes.indexOf('memory');
    expect(codes.slice(first + 1).every((c) => c === 'disabled')).toBe(true);
    expect(first).toBeLessThan(10);
    expect(g.map(show)).toEqual(corpus('S', 40).map((d) => [d.text.slice(7)]));
    expect((peak - before) / 2 ** 20).toBeLessThan(800);
    // The pool still serves (on a fresh worker).
    const [again] = await sandbox.run([GOOD], corpus('T', 3));
    expect(again.map(show)).toEqual(corpus('T', 3).map((d) => [d.text.slice(7)]));
  }, 60_000);
});
