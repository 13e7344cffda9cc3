/**
 * A redis-server of the bench's own, on a free port with nothing persisted: its CPU time and network bytes are
 * then the bench's alone (the shared 127.0.0.1:6379 also serves other sessions' tests), and the simulated
 * cluster can bind it to the address its namespaces reach.
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { Redis } from 'ioredis';
import { spawnTracked, stopTracked } from './children.js';

export interface LocalRedis {
  port: number;
  pid: number;
  url(host?: string): string;
  /** Bytes the server read from and wrote to its clients so far. */
  netBytes(): Promise<{ input: number; output: number }>;
  close(): Promise<void>;
}

export function redisServerAvailable(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });

export async function startLocalRedis(bind: string[] = ['127.0.0.1'], dir: string): Promise<LocalRedis> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', ...bind, '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--dir', dir, '--logfile', ''];
  const proc = spawnTracked('redis-server', args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out.slice(-500)}`)), 10_000);
    proc.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out.slice(-500)}`)));
  });
  proc.stdout!.resume();
  const admin = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 });
  return {
    port,
    pid: proc.pid!,
    url: (host = '127.0.0.1') => `redis://${host}:${port}/0`,
    async netBytes() {
      const info = await admin.info('stats');
      const get = (k: string) => Number(new RegExp(`${k}:(\\d+)`).exec(info)?.[1] ?? 0);
      return { input: get('total_net_input_bytes'), output: get('total_net_output_bytes') };
    },
    async close() {
      admin.disconnect();
      await stopTracked(proc, 5000);
    },
  };
}
