/**
 * Finding 1: a function that throws an error whose name (or message) is a huge string, built cheaply by
 * doubling inside the worker. Every outcome must be capped in the worker and checked on receipt, so a batch
 * of them fits in a main heap capped at 96 MB (uncapped, 40 outcomes of 16M characters are 640 MB there).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const script = path.join(root, 'test', 'attack-child-sandbox.ts');

function attack(source: string, documents: number) {
  const r = spawnSync(process.execPath, ['--max-old-space-size=96', '--import', 'tsx', script, source, String(documents)], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
  });
  expect(r.status, r.stderr.slice(-2000)).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { codes: string[]; longest: number; values: string[]; heapUsedMb: number; worstLoopDelayMs: number };
}

const GOOD_VALUES = (n: number) => [...Array.from({ length: n }, (_, i) => `T${i}`), 'T0', 'T1'];
const BOMB = (field: string) =>
  `function extract() { let s = 'x'; for (let i = 0; i < 24; i++) s = s + s; const e = { name: 'E', message: 'm' }; e.${field} = s; throw e; }`;

describe('bounded outcomes (error-name bomb)', () => {
  for (const field of ['name', 'message']) {
    it(`an error ${field} of 16M characters, 40 times, is a runtime failure with a short message; the pool still serves`, () => {
      const got = attack(BOMB(field), 40);
      console.log(`error-${field} bomb: worst event-loop delay in the service process ${got.worstLoopDelayMs.toFixed(1)} ms`);
      expect(got.codes).toEqual(['runtime']);
      expect(got.longest).toBeLessThan(600);
      expect(got.values).toEqual(GOOD_VALUES(40));
    }, 120_000);
  }

  it('a thrown Error subclass with a huge name getter result is capped the same way', () => {
    const got = attack(`class Boom extends Error { get name() { let s = 'y'; for (let i = 0; i < 24; i++) s += s; return s; } }
      function extract() { throw new Boom('boom'); }`, 40);
    expect(got.codes).toEqual(['runtime']);
    expect(got.longest).toBeLessThan(600);
    expect(got.values).toEqual(GOOD_VALUES(40));
  }, 120_000);
});
