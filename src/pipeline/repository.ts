/**
 * The pipeline's reads and writes of the core data model (documents, attributes, functions), so the
 * steps themselves stay functions of plain data.
 */
import type { Db } from '../store/database.js';
import { decodeHtml } from '../ingest/html.js';
import { EvaporateError } from '../errors.js';
import type { AttributeSpec, AttributeType, DocumentSummary, PipelineDocument, ScoredCandidate } from './types.js';

export function corpusRow(db: Db, corpusId: number): { id: number; name: string } {
  const row = db.prepare('SELECT id, name FROM corpora WHERE id = ?').get(corpusId) as { id: number; name: string } | undefined;
  if (!row) throw new EvaporateError('corpus_not_found', `There is no corpus with id ${corpusId}.`, 404);
  return row;
}

export function documentSummaries(db: Db, corpusId: number): DocumentSummary[] {
  return db
    .prepare(`SELECT id, filename, byte_size AS byteSize FROM documents WHERE corpus_id = ? AND status = 'ready' ORDER BY id`)
    .all(corpusId) as DocumentSummary[];
}

/**
 * Bytes each of the corpus's documents hands the sandbox (its text, plus the HTML of an HTML page), by id, from
 * the stored lengths: SQLite reads a column's length without reading the text itself.
 */
export function documentBytes(db: Db, corpusId: number): Map<number, number> {
  const rows = db
    .prepare(
      `SELECT id, coalesce(octet_length(text), 0) + (CASE WHEN kind = 'html' THEN coalesce(length(raw), 0) ELSE 0 END) AS bytes FROM documents WHERE corpus_id = ?`,
    )
    .raw()
    .all(corpusId) as [number, number][];
  return new Map(rows);
}

export function loadDocuments(db: Db, ids: readonly number[]): PipelineDocument[] {
  if (ids.length === 0) return [];
  const docs = db
    .prepare(`SELECT id, kind, text, raw FROM documents WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`)
    .all(JSON.stringify(ids)) as { id: number; kind: string; text: string | null; raw: Buffer | null }[];
  const chunkStmt = db.prepare('SELECT start_char AS start, end_char AS end, token_count AS tokens FROM chunks WHERE document_id = ? ORDER BY idx');
  return docs.map((d) => ({
    id: d.id,
    text: d.text ?? '',
    html: d.kind === 'html' && d.raw ? decodeHtml(d.raw) : undefined,
    chunks: chunkStmt.all(d.id) as PipelineDocument['chunks'],
  }));
}

export function loadTexts(db: Db, ids: readonly number[]): Map<number, string> {
  const rows = db
    .prepare(`SELECT id, text FROM documents WHERE id IN (SELECT value FROM json_each(?))`)
    .all(JSON.stringify(ids)) as { id: number; text: string | null }[];
  return new Map(rows.map((r) => [r.id, r.text ?? '']));
}

export function upsertAttributes(db: Db, corpusId: number, attrs: readonly (AttributeSpec & { origin: 'discovered' | 'user' })[]): number[] {
  const stmt = db.prepare(
    `INSERT INTO attributes (corpus_id, name, type, description, origin, rank) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (corpus_id, name) DO UPDATE SET description = excluded.description, origin = excluded.origin, rank = excluded.rank
     RETURNING id`,
  );
  return db.transaction(() => attrs.map((a, i) => (stmt.get(corpusId, a.name, a.type ?? 'text', a.description ?? '', a.origin, i) as { id: number }).id))();
}

export function setAttributeType(db: Db, attributeId: number, type: AttributeType): void {
  db.prepare('UPDATE attributes SET type = ? WHERE id = ?').run(type, attributeId);
}

/** Records every scored candidate; the kept ones are marked selected. Returns functions.id per candidate id. */
export function saveFunctions(db: Db, attributeId: number, scored: readonly ScoredCandidate[], kept: ReadonlySet<string>, model: string): Map<string, number> {
  const stmt = db.prepare(
    `INSERT INTO functions (attribute_id, source, source_hash, origin, prompt, model, sample_score, selected) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (attribute_id, source_hash) DO UPDATE SET sample_score = excluded.sample_score, selected = excluded.selected
     RETURNING id`,
  );
  const ids = new Map<string, number>();
  db.transaction(() => {
    db.prepare('UPDATE functions SET selected = 0 WHERE attribute_id = ?').run(attributeId);
    for (const s of scored) ids.set(s.id, (stmt.get(attributeId, s.source, s.id, s.origin, s.prompt, model, s.score, kept.has(s.id) ? 1 : 0) as { id: number }).id);
  })();
  return ids;
}

export function saveAccuracies(db: Db, ids: readonly number[], accuracies: readonly number[]): void {
  const stmt = db.prepare('UPDATE functions SET learned_accuracy = ? WHERE id = ?');
  db.transaction(() => ids.forEach((id, i) => stmt.run(accuracies[i] ?? null, id)))();
}
