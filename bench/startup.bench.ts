/**
 * Cold start of `evaporate serve`: time from launch until /health answers, compiled (dist/, what `npm start` and
 * the installed command run) against the sources through tsx (with and without tsx's transform cache). Wall time,
 * and the server process's CPU time at that moment (/proc, Linux), which a busy machine disturbs less.
 * Needs `npm run build` first.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { repoRoot, type BenchResult } from './lib.js';

const RUNS = 5;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function cpuMs(pid: number): number | null {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in USER_HZ ticks
  } catch {
    return null;
  }
}

async function startOnce(args: string[], env: Record<string, string>): Promise<{ wall: number; cpu: number | null }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-bench-start-'));
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, [...args, 'serve', '--port', String(port)], {
    cwd: repoRoot,
    env: { ...process.env, ...env, EVAPORATE_DB: path.join(dir, 'e.db') },
    stdio: 'ignore',
  });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}`);
      try {
        if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) break;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    return { wall: performance.now() - t0, cpu: cpuMs(child.pid!) };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export default async function bench(): Promise<BenchResult> {
  if (!fs.existsSync(path.join(repoRoot, 'dist', 'cli', 'main.js'))) {
    return { name: 'startup', rows: [], skipped: 'startup: dist/ is not built (npm run build); skipped.' };
  }
  const bin = path.join(repoRoot, 'bin', 'evaporate.js');
  const variants: { variant: string; args: string[]; env: () => Record<string, string> }[] = [
    { variant: 'compiled (dist/)', args: [path.join(repoRoot, 'dist', 'cli', 'main.js')], env: () => ({}) },
    { variant: 'tsx, transform cache warm', args: [bin], env: () => ({ EVAPORATE_FROM_SOURCE: '1' }) },
    // a fresh TMPDIR is a fresh tsx cache (tsx keeps it in the temporary folder)
    { variant: 'tsx, no transform cache', args: [bin], env: () => ({ EVAPORATE_FROM_SOURCE: '1', TMPDIR: fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-bench-tsx-')) }) },
  ];
  await startOnce(variants[1].args, variants[1].env()); // warm tsx's cache and the OS file cache for all
  const rows: BenchResult['rows'] = [];
  const medians: Record<string, number> = {};
  for (const v of variants) {
    const runs: { wall: number; cpu: number | null }[] = [];
    for (let i = 0; i < RUNS; i++) {
      const env = v.env();
      runs.push(await startOnce(v.args, env));
      if (env.TMPDIR) fs.rmSync(env.TMPDIR, { recursive: true, force: true });
    }
    const cpus = runs.map((r) => r.cpu).filter((c): c is number => c !== null);
    medians[v.variant] = median(runs.map((r) => r.wall));
    rows.push({
      variant: v.variant,
      runs: RUNS,
      'median ms to /health': Math.round(medians[v.variant]),
      'min ms': Math.round(Math.min(...runs.map((r) => r.wall))),
      'median CPU ms': cpus.length ? Math.round(median(cpus)) : null,
    });
  }
  return {
    name: 'startup',
    rows,
    targets: { 'compiled starts faster than tsx with a warm cache': medians['compiled (dist/)'] < medians['tsx, transform cache warm'] },
    notes: [`load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (${os.availableParallelism()} cores)`],
  };
}
