import type { Sandbox } from './types.js';
import { domRealmSource } from './dom-bundle.js';
import { createProcessSandbox } from './process-sandbox.js';
import { createThreadSandbox, type SandboxSettings } from './sandbox.js';

export type { SandboxSettings } from './sandbox.js';
export { EXTRACTION_FUNCTION_CONTRACT, type DocHelpers, type DocNode, type ExtractResult } from './contract.js';
export type * from './types.js';

/**
 * The sandbox: by default its pool runs in a child process under Node's permission model (process-sandbox.ts);
 * isolation 'thread' keeps the pool in this process (one boundary fewer, a little faster).
 */
export function createSandbox(settings: SandboxSettings & { isolation?: 'process' | 'thread' }): Sandbox {
  return (settings.isolation ?? 'process') === 'process' ? createProcessSandbox(settings) : createThreadSandbox(settings, { domSource: domRealmSource() });
}
