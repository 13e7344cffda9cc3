/**
 * What one parse worker does for one file: parse it and cut its chunks, the two steps whose cost an uploaded
 * file controls. Runs in a worker thread (parse-worker.mjs), so a slow file never holds the server's event loop.
 */
import { EvaporateError } from '../errors.js';
import { countTokens } from '../llm/tokens.js';
import { chunkText, type Chunk } from './chunk.js';
import type { DetectedKind } from './detect.js';
import { parseDocument, type ParsedDocument, type ParseLimits } from './parse.js';

export interface ParseTask {
  bytes: Uint8Array;
  filename: string;
  detected: DetectedKind;
  limits: ParseLimits;
  chunkTokens: number;
  /** Set to 1 when a worker picks the task up: the wall-clock limit counts from then, not from the queue. */
  started: Int32Array;
}

export type ParseTaskResult =
  | { ok: true; parsed: ParsedDocument; chunks: Chunk[] }
  | { ok: false; error: { code: string; message: string; status: number } };

// The BPE tables load on first use (about a second); a fresh worker loads them here, before it takes a file,
// so that time is never charged to a file's wall-clock limit.
countTokens('warm up');

export default async function parseTask(task: ParseTask): Promise<ParseTaskResult> {
  Atomics.store(task.started, 0, 1);
  const bytes = Buffer.from(task.bytes.buffer, task.bytes.byteOffset, task.bytes.byteLength);
  try {
    const parsed = await parseDocument(bytes, task.filename, task.detected, task.limits);
    return { ok: true, parsed, chunks: chunkText(parsed.text, task.chunkTokens) };
  } catch (error) {
    // Errors cross the thread boundary as plain data; the pool turns them back into EvaporateErrors.
    if (error instanceof EvaporateError) return { ok: false, error: { code: error.code, message: error.message, status: error.status } };
    return { ok: false, error: { code: 'parse_failed', message: `"${task.filename}" could not be read (${(error as Error)?.message ?? String(error)}).`, status: 422 } };
  }
}
