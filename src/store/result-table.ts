/**
 * Reading a corpus's result table the way a person browses it: a sorted page of rows with each cell's
 * confidence beside its value, per-column fill and confidence (so an empty or doubtful column shows), and
 * one cell's provenance with the functions that agreed on it, their code and learned accuracy.
 */
import type { Db } from './database.js';
import { EvaporateError } from '../errors.js';

interface Registration {
  table: string;
  provenance: string;
  columns: { attributeId: number; name: string; column: string; type: string }[];
  rows: number;
  jobId: number | null;
  updatedAt: string;
}

export interface ColumnSummary {
  name: string;
  column: string;
  type: string;
  /** Rows with a value. */
  filled: number;
  /** Mean confidence of the filled cells; null when none is filled. */
  meanConfidence: number | null;
}

export interface CellSummary {
  value: string | number | null;
  confidence: number | null;
  origin: string | null;
}

export interface TablePage {
  table: string;
  total: number;
  offset: number;
  limit: number;
  columns: ColumnSummary[];
  rows: { documentId: number; filename: string; cells: Record<string, CellSummary> }[];
}

export interface CellProvenance {
  documentId: number;
  attribute: string;
  column: string;
  value: string | number | null;
  origin: string | null;
  confidence: number | null;
  span: [number, number] | null;
  functions: { id: number; origin: string; source: string; learnedAccuracy: number | null; sampleScore: number | null }[];
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

function registration(db: Db, corpusId: number, corpusName: string): Registration {
  const row = db.prepare('SELECT table_name, provenance_table, columns, rows, job_id, updated_at FROM result_tables WHERE corpus_id = ?').get(corpusId) as
    | { table_name: string; provenance_table: string; columns: string; rows: number; job_id: number | null; updated_at: string }
    | undefined;
  if (!row) throw new EvaporateError('no_result_table', `Corpus "${corpusName}" has no extracted table yet; start an extraction first.`, 404);
  return { table: row.table_name, provenance: row.provenance_table, columns: JSON.parse(row.columns), rows: row.rows, jobId: row.job_id, updatedAt: row.updated_at };
}

export function tablePage(
  db: Db,
  corpus: { id: number; name: string },
  query: { offset: number; limit: number; sort?: string; order?: 'asc' | 'desc' },
): TablePage {
  const reg = registration(db, corpus.id, corpus.name);
  const sortable = ['_document_id', ...reg.columns.map((c) => c.column)];
  const sort = query.sort ?? '_document_id';
  if (!sortable.includes(sort)) {
    throw new EvaporateError('unknown_column', `The table has no column "${sort}"; sort by one of: ${sortable.join(', ')}.`, 400);
  }
  const order = query.order === 'desc' ? 'DESC' : 'ASC';
  const t = quote(reg.table);
  const rows = db
    .prepare(
      `SELECT t.*, d.filename AS _filename FROM ${t} t JOIN documents d ON d.id = t._document_id
       ORDER BY t.${quote(sort)} IS NULL, t.${quote(sort)} ${order}, t._document_id LIMIT ? OFFSET ?`,
    )
    .all(query.limit, query.offset) as Record<string, string | number | null>[];
  const ids = rows.map((r) => Number(r._document_id));
  const provenance = new Map<string, { confidence: number | null; origin: string }>();
  if (ids.length > 0) {
    const prov = db
      .prepare(`SELECT _document_id, attribute, confidence, origin FROM ${quote(reg.provenance)} WHERE _document_id IN (${ids.map(() => '?').join(',')})`)
      .all(...ids) as { _document_id: number; attribute: string; confidence: number | null; origin: string }[];
    for (const p of prov) provenance.set(`${p._document_id}\u0000${p.attribute}`, p);
  }
  const stats = db.prepare(`SELECT attribute, count(*) AS filled, avg(confidence) AS mean FROM ${quote(reg.provenance)} GROUP BY attribute`).all() as {
    attribute: string;
    filled: number;
    mean: number | null;
  }[];
  const byColumn = new Map(stats.map((s) => [s.attribute, s]));
  const total = (db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n;
  return {
    table: reg.table,
    total,
    offset: query.offset,
    limit: query.limit,
    columns: reg.columns.map((c) => ({
      name: c.name,
      column: c.column,
      type: c.type,
      filled: byColumn.get(c.column)?.filled ?? 0,
      meanConfidence: byColumn.get(c.column)?.mean ?? null,
    })),
    rows: rows.map((r) => ({
      documentId: Number(r._document_id),
      filename: String(r._filename),
      cells: Object.fromEntries(
        reg.columns.map((c) => {
          const p = provenance.get(`${r._document_id}\u0000${c.column}`);
          return [c.column, { value: r[c.column] ?? null, confidence: p?.confidence ?? null, origin: p?.origin ?? null }];
        }),
      ),
    })),
  };
}

export function cellProvenance(db: Db, corpus: { id: number; name: string }, documentId: number, column: string): CellProvenance {
  const reg = registration(db, corpus.id, corpus.name);
  const col = reg.columns.find((c) => c.column === column || c.name === column);
  if (!col) throw new EvaporateError('unknown_column', `The table of corpus "${corpus.name}" has no column "${column}".`, 404);
  const row = db.prepare(`SELECT ${quote(col.column)} AS value FROM ${quote(reg.table)} WHERE _document_id = ?`).get(documentId) as
    | { value: string | number | null }
    | undefined;
  if (!row) throw new EvaporateError('row_not_found', `Document ${documentId} has no row in the table of corpus "${corpus.name}".`, 404);
  const prov = db
    .prepare(`SELECT origin, confidence, functions, span_start, span_end FROM ${quote(reg.provenance)} WHERE _document_id = ? AND attribute = ?`)
    .get(documentId, col.column) as { origin: string; confidence: number | null; functions: string; span_start: number | null; span_end: number | null } | undefined;
  const ids = prov ? (JSON.parse(prov.functions) as string[]).map(Number).filter(Number.isInteger) : [];
  const functions =
    ids.length === 0
      ? []
      : (db
          .prepare(
            `SELECT id, origin, source, learned_accuracy AS learnedAccuracy, sample_score AS sampleScore FROM functions
             WHERE attribute_id = ? AND id IN (${ids.map(() => '?').join(',')}) ORDER BY learned_accuracy DESC, id`,
          )
          .all(col.attributeId, ...ids) as CellProvenance['functions']);
  return {
    documentId,
    attribute: col.name,
    column: col.column,
    value: row.value,
    origin: prov?.origin ?? null,
    confidence: prov?.confidence ?? null,
    span: prov && prov.span_start !== null && prov.span_end !== null ? [prov.span_start, prov.span_end] : null,
    functions,
  };
}
