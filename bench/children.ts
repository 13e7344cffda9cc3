/**
 * Child processes a bench starts (worker processes, a redis-server) that must not outlive it: killed when the
 * bench exits, on an error or a signal, and, for a bench that was SIGKILLed, by the next run, which finds their
 * pids in a file named after the dead bench and kills those whose command line is still the one recorded.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const DIR = path.join(os.tmpdir(), 'evaporate-bench-children');
const own = path.join(DIR, `${process.pid}.json`);
const live = new Map<number, ChildProcess>();

const cmdline = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
};
/** Whether a process with this pid still exists. */
export const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

function record(): void {
  fs.mkdirSync(DIR, { recursive: true });
  fs.writeFileSync(own, JSON.stringify([...live.keys()].map((pid) => ({ pid, cmdline: cmdline(pid) }))));
}

function killAll(): void {
  for (const [pid, child] of live) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  live.clear();
  fs.rmSync(own, { force: true });
}

let installed = false;
function install(): void {
  if (installed) return;
  installed = true;
  // Left by benches that were killed before their handlers ran.
  for (const file of fs.existsSync(DIR) ? fs.readdirSync(DIR) : []) {
    const owner = Number(file.replace(/\.json$/, ''));
    if (!Number.isInteger(owner) || owner === process.pid || alive(owner)) continue;
    try {
      for (const { pid, cmdline: was } of JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8')) as { pid: number; cmdline: string }[])
        if (was && cmdline(pid) === was) process.kill(pid, 'SIGKILL');
    } catch {}
    fs.rmSync(path.join(DIR, file), { force: true });
  }
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => {
      killAll();
      process.kill(process.pid, signal);
    });
}

/** spawn(), with the child killed when this process ends however it ends. */
export function spawnTracked(command: string, args: string[], options: SpawnOptions): ChildProcess {
  install();
  const child = spawn(command, args, options);
  if (child.pid !== undefined) {
    live.set(child.pid, child);
    // The command line is read once the child has exec'd (ip netns exec replaces itself with the worker).
    setTimeout(record, 200).unref();
    record();
  }
  child.on('exit', () => {
    if (child.pid !== undefined) live.delete(child.pid);
  });
  return child;
}

/** Stops a tracked child: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopTracked(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
