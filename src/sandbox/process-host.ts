/**
 * Entry of the sandbox process (bundled by process-sandbox.ts and run with `node -e` under Node's permission
 * model): it owns the pool of worker threads and runs what the parent sends over IPC. Nothing here reads a
 * file or the environment; the parent hands over the settings and the DOM realm's source.
 */
import { createThreadSandbox, type SandboxSettings } from './sandbox.js';
import type { ExtractionFunction, Sandbox, SandboxDocument } from './types.js';

type Message =
  | { type: 'init'; settings: SandboxSettings; domSource: string; workerUrl: string }
  | { type: 'run'; id: number; functions: ExtractionFunction[]; documents: SandboxDocument[]; timeoutMs?: number; scope?: string; failures: [string, number][] }
  | { type: 'close' };

let sandbox: Sandbox | undefined;
const send = (m: unknown) => process.send!(m);

process.on('message', (m: Message) => {
  if (m.type === 'init') {
    sandbox = createThreadSandbox(m.settings, { domSource: m.domSource, workerUrl: m.workerUrl });
    send({ type: 'ready' });
  } else if (m.type === 'run') {
    const failures = new Map(m.failures);
    sandbox!
      .run(m.functions, m.documents, { timeoutMs: m.timeoutMs, scope: m.scope, failures })
      .then((out) => send({ type: 'result', id: m.id, out: JSON.stringify(out), failures: [...failures] })) // one string clones faster than 10,000s of objects
      .catch((e: { code?: string; message?: string }) => send({ type: 'result', id: m.id, error: { code: e?.code ?? 'sandbox_failed', message: String(e?.message ?? e) } }));
  } else if (m.type === 'close') {
    void (sandbox?.close() ?? Promise.resolve()).finally(() => process.exit(0));
  }
});
// The parent went away: nothing is left to answer.
process.on('disconnect', () => process.exit(0));
