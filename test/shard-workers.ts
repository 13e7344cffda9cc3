/** `evaporate worker` processes for the shard tests: spawned from the sources, watched line by line, stopped with SIGTERM. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { watchLines, type WatchedChild } from './child-lines.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** One worker on `queue` (also its key prefix), with short locks so a killed worker's shard comes back quickly. */
export function spawnShardWorker(redisUrl: string, queue: string, env: Record<string, string> = {}): WatchedChild {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), 'worker', '--redis', redisUrl, '--concurrency', '1'], {
    cwd: root,
    env: {
      ...process.env,
      EVAPORATE_SHARD_QUEUE: queue,
      EVAPORATE_SHARD_PREFIX: queue,
      EVAPORATE_SHARD_LOCK_MS: '1500',
      EVAPORATE_SHARD_STALLED_CHECK_MS: '500',
      EVAPORATE_SANDBOX_WORKERS: '1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return watchLines(proc);
}

export async function startShardWorkers(n: number, spawnOne: () => WatchedChild): Promise<WatchedChild[]> {
  const ws = Array.from({ length: n }, spawnOne);
  await Promise.all(ws.map((w) => w.waitFor(/ready/)));
  return ws;
}

export async function stopShardWorkers(ws: WatchedChild[]): Promise<void> {
  for (const w of ws) if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGTERM');
  await Promise.all(ws.map((w) => w.exited));
}
