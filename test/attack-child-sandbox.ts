/**
 * Runs one attack function through a real sandbox in a process whose own heap is capped
 * (`node --max-old-space-size=N --import tsx test/attack-child-sandbox.ts <source> <documents>`), then a
 * well-behaved function to show the pool still serves. Prints one JSON line: the attack's outcome codes,
 * the longest message, the good function's values, and the process's heap use.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createSandbox } from '../src/sandbox/index.js';

const [source, count] = process.argv.slice(2) as [string, string];
const sandbox = createSandbox({ callTimeoutMs: 5000, memoryLimitMb: 64, maxOutputChars: 200, maxFailuresPerFunction: 10_000, workers: 1 });
const docs = Array.from({ length: Number(count) }, (_, i) => ({ id: String(i), text: `Title: T${i}` }));
const good = { id: 'good', source: 'function extract(text) { return text.slice(7); }' };
// The service's event loop during the attack: what a /health probe would wait for, at worst.
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
const [bad, ok] = await sandbox.run([{ id: 'bad', source }, good], docs);
loop.disable();
const [again] = await sandbox.run([good], docs.slice(0, 2));
const codes = [...new Set(bad.map((c) => (c.ok ? 'ok' : c.error.code)))];
const longest = Math.max(...bad.map((c) => (c.ok ? JSON.stringify(c.value).length : c.error.message.length)));
const values = [...ok, ...again].map((c) => (c.ok ? c.value?.[0] : c.error.code));
await sandbox.close();
process.stdout.write(JSON.stringify({ codes, longest, values, heapUsedMb: Math.round(process.memoryUsage().heapUsed / 2 ** 20), worstLoopDelayMs: loop.max / 1e6 }) + '\n');
