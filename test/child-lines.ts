/**
 * A child process watched line by line on stdout, for tests that kill or stop it at a point it announces
 * ("ready", "unit-start batch:0"): the lines so far, its exit code, and a wait for the first line that matches.
 */
import type { ChildProcess } from 'node:child_process';

export interface WatchedChild {
  proc: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
  stderr(): string;
  /** The first line matching, seen already or still to come; rejects (with the child's stderr) if it exits first. */
  waitFor(pattern: RegExp): Promise<string>;
}

export function watchLines(proc: ChildProcess, options: { logStderrOnFailure?: boolean } = {}): WatchedChild {
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  let buf = '';
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      lines.push(line);
      for (const w of waiters.splice(0)) {
        if (w.pattern.test(line)) w.resolve(line);
        else waiters.push(w);
      }
    }
  });
  const exited = new Promise<number | null>((resolve) =>
    proc.on('close', (code) => {
      if (options.logStderrOnFailure && code !== 0 && code !== null) console.error(stderr);
      resolve(code);
    }),
  );
  return {
    proc,
    lines,
    exited,
    stderr: () => stderr,
    waitFor: (pattern) =>
      new Promise<string>((resolve, reject) => {
        const seen = lines.find((l) => pattern.test(l));
        if (seen !== undefined) return resolve(seen);
        waiters.push({ pattern, resolve });
        void exited.then(() => setTimeout(() => reject(new Error(`the child exited before ${pattern}: ${stderr.slice(-2000)}`)), 50));
      }),
  };
}
