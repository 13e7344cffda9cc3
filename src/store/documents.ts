/**
 * Documents and their chunks. Each document is written with its chunks in one transaction, so a
 * crash or a bad file never leaves a document without chunks or chunks without a document.
 */
import type Database from 'better-sqlite3';
import type { Db } from './database.js';
import { EvaporateError } from '../errors.js';
import type { Chunk } from '../ingest/chunk.js';

export type DocumentKind = 'html' | 'pdf' | 'text' | 'unknown';
export type DocumentStatus = 'ready' | 'failed';

export interface DocumentMeta {
  id: number;
  corpusId: number;
  filename: string;
  contentHash: string;
  kind: DocumentKind;
  byteSize: number;
  status: DocumentStatus;
  errorCode: string | null;
  errorMessage: string | null;
  createdAt: string;
}

export interface DocumentFull extends DocumentMeta {
  text: string | null;
  structure: Record<string, unknown> | null;
}

export interface ChunkRow {
  idx: number;
  startChar: number;
  endChar: number;
  tokenCount: number;
}

// Ingestion writes row after row; preparing each statement once per connection saves a parse per row.
const statementCache = new WeakMap<Db, Map<string, Database.Statement>>();
function stmt(db: Db, sql: string): Database.Statement {
  let cache = statementCache.get(db);
  if (!cache) statementCache.set(db, (cache = new Map()));
  let s = cache.get(sql);
  if (!s) cache.set(sql, (s = db.prepare(sql)));
  return s;
}

const metaColumns = `id, corpus_id AS corpusId, filename, content_hash AS contentHash, kind, byte_size AS byteSize,
  status, error_code AS errorCode, error_message AS errorMessage, created_at AS createdAt`;

export interface NewDocument {
  corpusId: number;
  filename: string;
  contentHash: string;
  kind: DocumentKind;
  raw: Buffer;
  text: string;
  structure: Record<string, unknown>;
  chunks: Chunk[];
}

export interface FailedDocument {
  corpusId: number;
  filename: string;
  contentHash: string;
  kind: DocumentKind;
  byteSize: number;
  errorCode: string;
  errorMessage: string;
}

export function findByHash(db: Db, corpusId: number, contentHash: string): { id: number; status: DocumentStatus } | undefined {
  return stmt(db, 'SELECT id, status FROM documents WHERE corpus_id = ? AND content_hash = ?').get(corpusId, contentHash) as
    | { id: number; status: DocumentStatus }
    | undefined;
}

/**
 * Stores a parsed document with its chunks. A previous failed attempt with the same content is
 * replaced (the parser may have improved or a limit been raised); a ready one is left alone.
 */
export function insertDocument(db: Db, doc: NewDocument): number {
  return db.transaction(() => {
    stmt(db, "DELETE FROM documents WHERE corpus_id = ? AND content_hash = ? AND status = 'failed'").run(doc.corpusId, doc.contentHash);
    const id = Number(
      stmt(
        db,
        `INSERT INTO documents (corpus_id, filename, content_hash, kind, byte_size, raw, text, structure, status)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'ready')`,
      )
        .run(doc.corpusId, doc.filename, doc.contentHash, doc.kind, doc.raw.length, doc.raw, doc.text, JSON.stringify(doc.structure))
        .lastInsertRowid,
    );
    const insertChunk = stmt(db, 'INSERT INTO chunks (document_id, idx, start_char, end_char, token_count) VALUES (?, ?, ?, ?, ?)');
    doc.chunks.forEach((c, i) => insertChunk.run(id, i, c.start, c.end, c.tokens));
    return id;
  })();
}

/** Records a file that could not be parsed, with its reason, so it can be listed and retried. */
export function insertFailedDocument(db: Db, doc: FailedDocument): number {
  return db.transaction(() => {
    db.prepare("DELETE FROM documents WHERE corpus_id = ? AND content_hash = ? AND status = 'failed'").run(doc.corpusId, doc.contentHash);
    return Number(
      db
        .prepare(
          `INSERT INTO documents (corpus_id, filename, content_hash, kind, byte_size, status, error_code, error_message)
           VALUES (?, ?, ?, ?, ?, 'failed', ?, ?)`,
        )
        .run(doc.corpusId, doc.filename, doc.contentHash, doc.kind, doc.byteSize, doc.errorCode, doc.errorMessage).lastInsertRowid,
    );
  })();
}

export interface ListOptions {
  status?: DocumentStatus;
  /** Keyset paging: documents with id greater than this. */
  after?: number;
  limit?: number;
}

export function listDocuments(db: Db, corpusId: number, options: ListOptions = {}): { items: DocumentMeta[]; nextAfter: number | null } {
  const limit = Math.max(1, Math.min(options.limit ?? 100, 1000));
  const params: unknown[] = [corpusId, options.after ?? 0];
  let where = 'corpus_id = ? AND id > ?';
  if (options.status) {
    where += ' AND status = ?';
    params.push(options.status);
  }
  const items = db.prepare(`SELECT ${metaColumns} FROM documents WHERE ${where} ORDER BY id LIMIT ?`).all(...params, limit + 1) as DocumentMeta[];
  const more = items.length > limit;
  if (more) items.pop();
  return { items, nextAfter: more ? items[items.length - 1].id : null };
}

export function getDocument(db: Db, id: number): DocumentFull {
  const row = db.prepare(`SELECT ${metaColumns}, text, structure FROM documents WHERE id = ?`).get(id) as
    | (DocumentMeta & { text: string | null; structure: string | null })
    | undefined;
  if (!row) throw new EvaporateError('document_not_found', `There is no document ${id}.`, 404);
  return { ...row, structure: row.structure ? (JSON.parse(row.structure) as Record<string, unknown>) : null };
}

export function getDocumentRaw(db: Db, id: number): { kind: DocumentKind; filename: string; raw: Buffer } {
  const row = db.prepare('SELECT kind, filename, raw FROM documents WHERE id = ?').get(id) as
    | { kind: DocumentKind; filename: string; raw: Buffer | null }
    | undefined;
  if (!row) throw new EvaporateError('document_not_found', `There is no document ${id}.`, 404);
  if (!row.raw) throw new EvaporateError('document_has_no_content', `Document ${id} failed to ingest; its bytes were not kept.`, 404);
  return { kind: row.kind, filename: row.filename, raw: row.raw };
}

export function getChunks(db: Db, documentId: number): ChunkRow[] {
  return db
    .prepare('SELECT idx, start_char AS startChar, end_char AS endChar, token_count AS tokenCount FROM chunks WHERE document_id = ? ORDER BY idx')
    .all(documentId) as ChunkRow[];
}

export function deleteDocument(db: Db, id: number): void {
  const info = db.prepare('DELETE FROM documents WHERE id = ?').run(id);
  if (info.changes === 0) throw new EvaporateError('document_not_found', `There is no document ${id}.`, 404);
}

/** What the pipeline reads: the text every step works on, and the page itself for HTML documents. */
export interface ReadyDocument {
  id: number;
  filename: string;
  kind: DocumentKind;
  text: string;
  /** The raw page decoded with the charset found at ingestion; null for PDF and text. */
  html: string | null;
}

type ReadyRow = { id: number; filename: string; kind: DocumentKind; text: string; structure: string | null; raw: Buffer | null };

function toReady(row: ReadyRow): ReadyDocument {
  let html: string | null = null;
  if (row.kind === 'html' && row.raw) {
    const encoding = row.structure ? ((JSON.parse(row.structure) as { encoding?: string }).encoding ?? 'utf-8') : 'utf-8';
    let decoder: InstanceType<typeof TextDecoder>;
    try {
      decoder = new TextDecoder(encoding);
    } catch {
      decoder = new TextDecoder('utf-8');
    }
    html = decoder.decode(row.raw);
  }
  return { id: row.id, filename: row.filename, kind: row.kind, text: row.text, html };
}

export function readyDocumentIds(db: Db, corpusId: number): number[] {
  return db.prepare("SELECT id FROM documents WHERE corpus_id = ? AND status = 'ready' ORDER BY id").pluck().all(corpusId) as number[];
}

/**
 * Ready documents of a corpus, by id list (the unit of pipeline work: "these functions over this
 * batch") or by keyset page (ids greater than `after`). Ids outside the corpus or not ready are skipped.
 */
export function readyDocuments(db: Db, corpusId: number, options: { ids?: number[]; after?: number; limit?: number } = {}): ReadyDocument[] {
  const select = "SELECT id, filename, kind, text, structure, raw FROM documents WHERE corpus_id = ? AND status = 'ready'";
  if (options.ids) {
    const stmt = db.prepare(`${select} AND id = ?`);
    return options.ids.map((id) => stmt.get(corpusId, id) as ReadyRow | undefined).filter((r): r is ReadyRow => !!r).map(toReady);
  }
  const rows = db.prepare(`${select} AND id > ? ORDER BY id LIMIT ?`).all(corpusId, options.after ?? 0, options.limit ?? -1) as ReadyRow[];
  return rows.map(toReady);
}

/** Streams a whole corpus in pages so a large one is never loaded at once. */
export function* iterateReadyDocuments(db: Db, corpusId: number, pageSize = 200): Generator<ReadyDocument> {
  let after = 0;
  for (;;) {
    const page = readyDocuments(db, corpusId, { after, limit: pageSize });
    if (page.length === 0) return;
    yield* page;
    after = page[page.length - 1].id;
  }
}
