/**
 * A simulated cluster on one machine for the scale-out bench: each worker in its own Linux network namespace,
 * reaching the host (where Redis and the coordinator run) over a point-to-point link with a chosen round-trip
 * time. The delay line is bench/netns-delay.py (TUN devices; this machine's kernel has no netem), so both ends
 * keep real kernel TCP.
 *
 * Everything it makes is named after this process (`evb<pid>...`) and undone by close(), by an exit or signal
 * handler when the bench dies on an error, and, for a bench that was SIGKILLed, by the next run (namespaces whose
 * process is gone are removed, with anything still running inside them).
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { alive, spawnTracked } from './children.js';
import { repoRoot } from './lib.js';

const FORWARDER = path.join(repoRoot, 'bench', 'netns-delay.py');
const MTU = 9000;

export interface SimulatedCluster {
  /** The host's address as the namespaces see it (bind Redis to it). */
  hostAddress: string;
  /** Network namespace of worker i (i < size). */
  namespaces: string[];
  /** The delay line's process (its CPU time is part of what a run cost). */
  forwarderPid: number;
  /** From now on, each link's round trip gets `ms` added (half each way). */
  setRtt(ms: number): Promise<void>;
  close(): void;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/** Why the simulated cluster cannot run here, or undefined when it can. */
export function clusterUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  try {
    ip('netns', 'list');
  } catch {
    return 'no usable `ip` command (iproute2)';
  }
  if (!fs.existsSync('/dev/net/tun')) return 'no /dev/net/tun for the delay line';
  try {
    execFileSync('python3', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'no python3 for the delay line (bench/netns-delay.py)';
  }
  return undefined;
}


/** Namespaces left by a bench process that no longer runs (a SIGKILL skips every handler): their processes, then them. */
function removeStale(): string[] {
  const removed: string[] = [];
  for (const line of ip('netns', 'list').split('\n')) {
    const name = line.split(' ')[0];
    const m = /^evb(\d+)w\d+$/.exec(name ?? '');
    if (!m || alive(Number(m[1]))) continue;
    for (const pid of ip('netns', 'pids', name!).split(/\s+/).filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    try {
      ip('netns', 'del', name!);
      removed.push(name!);
    } catch {}
  }
  return removed;
}

/** A /24 of 10.213.x.0 that no address or route on this machine touches yet. */
function freeSubnet(): string {
  const used = ip('-o', 'addr') + ip('route');
  for (let k = 0; k < 250; k++) {
    const third = (process.pid + k) % 250;
    if (!used.includes(`10.213.${third}.`)) return `10.213.${third}`;
  }
  throw new Error('no free 10.213.x.0/24 for the simulated cluster');
}

export async function startCluster(size: number, log: (line: string) => void = () => {}): Promise<SimulatedCluster> {
  const stale = removeStale();
  if (stale.length) log(`removed namespaces of an earlier bench that died: ${stale.join(', ')}`);
  const tag = `evb${process.pid}`;
  const net = freeSubnet();
  const hostAddress = `${net}.1`;
  const links = Array.from({ length: size }, (_, i) => ({ host: `${tag}h${i}`, ns: `${tag}n${i}`, namespace: `${tag}w${i}`, address: `${net}.${10 + i}` }));
  const made: string[] = [];
  let forwarder: ChildProcess | undefined;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    // The delay line first: its TUN devices (and with them the host ends' addresses) go when it exits.
    if (forwarder && forwarder.exitCode === null) forwarder.kill('SIGKILL');
    for (const ns of made) {
      try {
        for (const pid of ip('netns', 'pids', ns).split(/\s+/).filter(Boolean).map(Number)) process.kill(pid, 'SIGKILL');
      } catch {}
      try {
        ip('netns', 'del', ns);
      } catch {}
    }
    process.off('exit', close);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    close();
    process.kill(process.pid, signal);
  };
  process.on('exit', close);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    forwarder = spawnTracked('python3', [FORWARDER, ...links.flatMap((l) => [l.host, l.ns])], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines: string[] = [];
    const waiters: ((line: string) => void)[] = [];
    let buf = '';
    forwarder.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const w = waiters.shift();
        if (w) w(line);
        else lines.push(line);
      }
    });
    const exited = new Promise<never>((_, reject) => forwarder!.on('close', (code) => reject(new Error(`the delay line exited (${code})`))));
    exited.catch(() => {});
    const next = () => Promise.race([new Promise<string>((resolve) => (lines.length ? resolve(lines.shift()!) : waiters.push(resolve))), exited]);
    if ((await next()) !== 'ready') throw new Error('the delay line did not start');
    for (const l of links) {
      ip('netns', 'add', l.namespace);
      made.push(l.namespace);
      ip('link', 'set', l.ns, 'netns', l.namespace);
      ip('addr', 'add', hostAddress, 'peer', `${l.address}/32`, 'dev', l.host);
      ip('link', 'set', l.host, 'mtu', String(MTU), 'up');
      ip('netns', 'exec', l.namespace, 'ip', 'addr', 'add', l.address, 'peer', `${hostAddress}/32`, 'dev', l.ns);
      ip('netns', 'exec', l.namespace, 'ip', 'link', 'set', l.ns, 'mtu', String(MTU), 'up');
      ip('netns', 'exec', l.namespace, 'ip', 'link', 'set', 'lo', 'up');
    }
    return {
      hostAddress,
      namespaces: links.map((l) => l.namespace),
      forwarderPid: forwarder.pid!,
      async setRtt(ms: number) {
        forwarder!.stdin!.write(`rtt ${ms}\n`);
        const answer = await next();
        if (answer !== 'ok') throw new Error(`the delay line refused rtt ${ms}: ${answer}`);
      },
      close,
    };
  } catch (error) {
    close();
    throw error;
  }
}
