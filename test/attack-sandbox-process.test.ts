/**
 * Finding "defence in depth": the function pool runs in a child process under Node's permission model, so a
 * V8 escape from a vm context would land where there is no file system, no child process and no environment.
 * The child's real command line is re-run with a probe in place of the host script (what escaped code could
 * do there), and a SIGKILL of the child during a run is survived: the run is repeated in a fresh process.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProcessSandbox } from '../src/sandbox/process-sandbox.js';

const settings = { callTimeoutMs: 5000, memoryLimitMb: 64, maxOutputChars: 200, maxFailuresPerFunction: 100, workers: 1 };
let sandbox: ReturnType<typeof createProcessSandbox>;
beforeAll(() => {
  sandbox = createProcessSandbox(settings);
});
afterAll(async () => sandbox.close());

const docs = Array.from({ length: 6 }, (_, i) => ({ id: i, text: `Title: T${i}` }));
const GOOD = { id: 'good', source: 'function extract(text) { return text.slice(7); }' };
const values = (outcomes: { ok: boolean; value?: string[] | null }[]) => outcomes.map((c) => (c.ok ? c.value?.[0] : 'error'));

describe.skipIf(process.platform !== 'linux')('the sandbox process', () => {
  it('runs under the permission model with an empty environment; escaped code there can read, write and spawn nothing', async () => {
    const [good] = await sandbox.run([GOOD], docs);
    expect(values(good)).toEqual(docs.map((d) => d.text.slice(7)));
    const pid = sandbox.processId()!;
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    expect(argv.some((a) => a === '--permission' || a === '--experimental-permission')).toBe(true);
    expect(argv.some((a) => a.startsWith('--allow-fs-write') || a.startsWith('--allow-child-process') || a.startsWith('--allow-addons'))).toBe(false);
    // Only Node's own IPC plumbing (which it removes from process.env at start), nothing of the service's.
    const environ = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
    expect(environ.filter((v) => !v.startsWith('NODE_CHANNEL_'))).toEqual([]);

    // The same command line, with a probe where the host script was.
    const secretDir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-secret-'));
    const secret = path.join(secretDir, 'evaporate.db');
    fs.writeFileSync(secret, 'tenant data');
    const probe = `
      const fs = require('fs'), cp = require('child_process');
      const tryIt = (f) => { try { f(); return 'allowed'; } catch (e) { return e.code || e.message; } };
      process.stdout.write(JSON.stringify({
        read: tryIt(() => fs.readFileSync(${JSON.stringify(secret)})),
        write: tryIt(() => fs.writeFileSync(${JSON.stringify(path.join(secretDir, 'x'))}, 'x')),
        spawn: tryIt(() => cp.execFileSync('/bin/true')),
        env: Object.keys(process.env).length,
      }));`;
    const at = argv.indexOf('-e');
    const r = spawnSync(argv[0], [...argv.slice(1, at + 1), probe], { env: {}, encoding: 'utf8' });
    expect(JSON.parse(r.stdout), r.stderr).toEqual({ read: 'ERR_ACCESS_DENIED', write: 'ERR_ACCESS_DENIED', spawn: 'ERR_ACCESS_DENIED', env: 0 });
  }, 60_000);

  it('survives the process being killed mid-run: the run is repeated in a fresh process and every result comes back', async () => {
    const slow = { id: 'slow', source: 'function extract(text) { const t = Date.now(); while (Date.now() - t < 400); return text.slice(7); }' };
    await sandbox.run([GOOD], docs.slice(0, 1));
    const first = sandbox.processId()!;
    const running = sandbox.run([slow, GOOD], docs);
    await new Promise((r) => setTimeout(r, 300));
    process.kill(first, 'SIGKILL');
    const [s, g] = await running;
    expect(values(s)).toEqual(docs.map((d) => d.text.slice(7)));
    expect(values(g)).toEqual(docs.map((d) => d.text.slice(7)));
    expect(sandbox.processId()).not.toBe(first);
    const [again] = await sandbox.run([GOOD], docs);
    expect(values(again)).toEqual(docs.map((d) => d.text.slice(7)));
  }, 60_000);
});
