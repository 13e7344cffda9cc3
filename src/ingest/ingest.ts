/**
 * Ingestion: files (or archives of files) into documents and chunks. One bad file is one failed
 * result, never a failed batch; each document is written in its own transaction; the same bytes
 * uploaded twice to a corpus are reported as a duplicate of the stored document.
 */
import crypto from 'node:crypto';
import type { Settings } from '../config.js';
import { EvaporateError } from '../errors.js';
import type { Db } from '../store/database.js';
import { findByHash, insertDocument, insertFailedDocument, type DocumentKind } from '../store/documents.js';
import { expandArchive, type ArchiveBudget, type ArchiveKind } from './archive.js';
import { detectKind } from './detect.js';
import { documentKind } from './parse.js';
import { parseInPool } from './parse-pool.js';

export interface IngestFile {
  filename: string;
  bytes: Buffer;
}

export type IngestStatus = 'stored' | 'duplicate' | 'failed';

export interface IngestResult {
  filename: string;
  status: IngestStatus;
  documentId?: number;
  kind?: DocumentKind;
  bytes: number;
  error?: { code: string; message: string };
  note?: string;
}

export type IngestSettings = Settings['ingest'];

export interface IngestOptions {
  settings: IngestSettings;
  /** Called once per result as it happens (progress bars, streaming responses). */
  onResult?: (result: IngestResult) => void;
}

const mib = (n: number) => `${Math.round((n / 1024 / 1024) * 10) / 10} MiB`;

/** The result for a file refused before its bytes were read in full. */
export function oversizeResult(filename: string, limitBytes: number, size?: number): IngestResult {
  return {
    filename,
    status: 'failed',
    bytes: size ?? limitBytes,
    error: {
      code: 'file_too_large',
      message: `"${filename}" is ${size !== undefined ? mib(size) : 'larger than the limit'}; the limit per file is ${mib(limitBytes)} (${limitBytes} bytes, setting EVAPORATE_MAX_FILE_BYTES).`,
    },
  };
}

export async function ingestFiles(
  db: Db,
  corpusId: number,
  files: Iterable<IngestFile> | AsyncIterable<IngestFile>,
  options: IngestOptions,
): Promise<IngestResult[]> {
  const results: IngestResult[] = [];
  for await (const file of files) results.push(...(await ingestFile(db, corpusId, file, options)));
  return results;
}

/** One uploaded file; an archive yields one result per entry. */
export async function ingestFile(db: Db, corpusId: number, file: IngestFile, options: IngestOptions): Promise<IngestResult[]> {
  const results: IngestResult[] = [];
  const emit = (r: IngestResult) => {
    results.push(r);
    options.onResult?.(r);
  };
  await ingestOne(db, corpusId, file, 0, { entries: 0, bytes: 0 }, options.settings, emit);
  return results;
}

function failure(filename: string, bytes: number, error: unknown, kind?: DocumentKind): IngestResult {
  const e = error instanceof EvaporateError ? error : new EvaporateError('parse_failed', `"${filename}" could not be read (${(error as Error)?.message ?? error}).`, 422);
  return { filename, status: 'failed', bytes, ...(kind ? { kind } : {}), error: { code: e.code, message: e.message } };
}

async function ingestOne(
  db: Db,
  corpusId: number,
  file: IngestFile,
  depth: number,
  budget: ArchiveBudget,
  settings: IngestSettings,
  emit: (r: IngestResult) => void,
): Promise<void> {
  const { filename, bytes } = file;
  if (bytes.length > settings.maxFileBytes) return emit(oversizeResult(filename, settings.maxFileBytes, bytes.length));
  const detected = detectKind(bytes, filename).kind;
  if (detected === 'zip' || detected === 'gzip' || detected === 'tar') {
    return ingestArchive(db, corpusId, file, detected, depth, budget, settings, emit);
  }
  const contentHash = crypto.createHash('sha256').update(bytes).digest('hex');
  const kind = documentKind(detected);
  const existing = findByHash(db, corpusId, contentHash);
  if (existing?.status === 'ready') return emit({ filename, status: 'duplicate', documentId: existing.id, kind, bytes: bytes.length });
  try {
    // In a worker thread with a wall-clock limit: a crafted file costs its worker, never the event loop.
    const { parsed, chunks } = await parseInPool(bytes, filename, detected, settings);
    const documentId = insertDocument(db, { corpusId, filename, contentHash, kind: parsed.kind, raw: bytes, text: parsed.text, structure: parsed.structure, chunks });
    emit({ filename, status: 'stored', documentId, kind: parsed.kind, bytes: bytes.length, ...(parsed.note ? { note: parsed.note } : {}) });
  } catch (error) {
    const result = failure(filename, bytes.length, error, kind);
    if (bytes.length > 0 || !(error instanceof EvaporateError)) {
      result.documentId = insertFailedDocument(db, {
        corpusId, filename, contentHash, kind, byteSize: bytes.length, errorCode: result.error!.code, errorMessage: result.error!.message,
      });
    }
    emit(result);
  }
}

async function ingestArchive(
  db: Db,
  corpusId: number,
  file: IngestFile,
  kind: ArchiveKind,
  depth: number,
  budget: ArchiveBudget,
  settings: IngestSettings,
  emit: (r: IngestResult) => void,
): Promise<void> {
  if (depth >= settings.archiveMaxDepth) {
    return emit(failure(file.filename, file.bytes.length, new EvaporateError(
      'archive_too_deep',
      `"${file.filename}" is an archive nested more than ${settings.archiveMaxDepth} deep (setting EVAPORATE_ARCHIVE_MAX_DEPTH); it was not unpacked.`,
      422,
    )));
  }
  const limits = {
    maxTotalBytes: settings.archiveMaxTotalBytes,
    maxEntries: settings.archiveMaxEntries,
    maxDepth: settings.archiveMaxDepth,
    maxRatio: settings.archiveMaxCompressionRatio,
    maxFileBytes: settings.maxFileBytes,
  };
  try {
    for await (const item of expandArchive(file.bytes, kind, file.filename, limits, budget)) {
      if ('error' in item) emit(failure(item.name, 0, item.error));
      else await ingestOne(db, corpusId, { filename: item.name, bytes: item.bytes }, depth + 1, budget, settings, emit);
    }
  } catch (error) {
    emit(failure(file.filename, file.bytes.length, error));
  }
}

export function summarize(results: IngestResult[]): { stored: number; duplicates: number; failed: number } {
  let stored = 0;
  let duplicates = 0;
  let failed = 0;
  for (const r of results) {
    if (r.status === 'stored') stored++;
    else if (r.status === 'duplicate') duplicates++;
    else failed++;
  }
  return { stored, duplicates, failed };
}
