/**
 * Materialization: one typed SQLite table per corpus (a column per attribute plus _document_id) and a
 * provenance table with, per cell, where the value came from and where it stands in documents.text.
 * The table is rebuilt inside one transaction, so readers see the old table or the new one, never half.
 */
import type { Db } from '../store/database.js';
import { canonicalDate, canonicalNumber } from '../weak-supervision/normalize.js';
import type { AttributeType } from './types.js';

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A safe identifier: lower-case letters, digits and _, not starting with a digit or sqlite_. */
export function safeIdentifier(name: string, fallback = 'col'): string {
  let id = name
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 48);
  if (!id) id = fallback;
  if (/^[0-9]/.test(id) || id.startsWith('sqlite')) id = `${fallback}_${id}`;
  return id;
}

export function resultTableName(corpusName: string, corpusId: number): string {
  return `corpus_${safeIdentifier(corpusName, 'c')}_${corpusId}`;
}

/** The narrowest type every non-null value fits. */
export function inferType(values: readonly (string | null)[]): AttributeType {
  const present = values.filter((v): v is string => v !== null && v.trim() !== '');
  if (present.length === 0) return 'text';
  // Long digit strings and leading zeros are identifiers (ISBN, ZIP codes), not quantities: they stay text.
  if (present.every((v) => /^[+-]?(0|[1-9]\d{0,9})$/.test(v.trim().replace(/,(?=\d{3})/g, '')))) return 'integer';
  const decimal = (v: string) => /^[+-]?(\d{1,3}(,\d{3})+|\d{1,15})?\.\d+$/.test(v.trim());
  const shortInteger = (v: string) => /^[+-]?(0|[1-9]\d{0,9})$/.test(v.trim().replace(/,(?=\d{3})/g, ''));
  if (present.some(decimal) && present.every((v) => decimal(v) || shortInteger(v))) return 'real';
  if (present.every((v) => canonicalDate(v) !== null && !/^\d{4}$/.test(v.trim()))) return 'date';
  return 'text';
}

export function typedValue(value: string | null, type: AttributeType): string | number | null {
  if (value === null) return null;
  switch (type) {
    case 'integer': {
      const n = Number(value.trim().replace(/,/g, ''));
      return Number.isSafeInteger(n) ? n : value;
    }
    case 'real': {
      const c = canonicalNumber(value);
      const n = Number(c ?? value.replace(/,/g, ''));
      return Number.isFinite(n) ? n : value;
    }
    case 'date':
      return canonicalDate(value) ?? value;
    default:
      return value;
  }
}

/** Character span of a value in the text: exact, then case-insensitive, then with any whitespace run. */
export function findSpan(text: string, value: string): [number, number] | null {
  if (!value) return null;
  let at = text.indexOf(value);
  if (at >= 0) return [at, at + value.length];
  at = text.toLowerCase().indexOf(value.toLowerCase());
  if (at >= 0) return [at, at + value.length];
  const words = value.trim().split(/\s+/).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  if (words.length === 0 || words.join('').length > 500) return null;
  const m = new RegExp(words.join('\\s+'), 'i').exec(text);
  return m ? [m.index, m.index + m[0].length] : null;
}

export interface MaterialColumn {
  attributeId: number;
  name: string;
  column: string;
  type: AttributeType;
  /** Several values per document: every filled cell holds a JSON array of strings. */
  list?: boolean;
}

export interface MaterialCell {
  documentId: number;
  attributeId: number;
  /** The cell's text: the value, or for a list column a JSON array of the values. */
  value: string | null;
  /** The values themselves (several for a list attribute). */
  values?: string[];
  origin: 'functions' | 'direct' | 'none';
  confidence: number;
  functions: string[];
  span: [number, number] | null;
  /** One span per value, in the order of values. */
  spans?: ([number, number] | null)[];
}

/** Column names for attributes: safe, unique, never _document_id. */
export function columnsFor(attributes: readonly { id: number; name: string; type: AttributeType }[]): MaterialColumn[] {
  const used = new Set(['_document_id']);
  return attributes.map((a) => {
    let column = safeIdentifier(a.name, 'attr');
    for (let i = 2; used.has(column); i++) column = `${safeIdentifier(a.name, 'attr')}_${i}`;
    used.add(column);
    return { attributeId: a.id, name: a.name, column, type: a.type };
  });
}

export function materializeTable(
  db: Db,
  input: { corpusId: number; table: string; jobId: number | null; columns: MaterialColumn[]; documentIds: number[]; cells: MaterialCell[] },
): void {
  const { table, columns } = input;
  const provenance = `${table}__provenance`;
  const sqlType = (t: AttributeType) => (t === 'integer' ? 'INTEGER' : t === 'real' ? 'REAL' : 'TEXT');
  const byDoc = new Map<number, Map<number, MaterialCell>>();
  for (const c of input.cells) {
    if (!byDoc.has(c.documentId)) byDoc.set(c.documentId, new Map());
    byDoc.get(c.documentId)!.set(c.attributeId, c);
  }
  db.transaction(() => {
    db.exec(`DROP TABLE IF EXISTS ${quoteIdent(table)}; DROP TABLE IF EXISTS ${quoteIdent(provenance)};`);
    db.exec(
      `CREATE TABLE ${quoteIdent(table)} (_document_id INTEGER PRIMARY KEY${columns.map((c) => `, ${quoteIdent(c.column)} ${sqlType(c.type)}`).join('')})`,
    );
    db.exec(`CREATE TABLE ${quoteIdent(provenance)} (
      _document_id INTEGER NOT NULL, attribute TEXT NOT NULL, value TEXT, origin TEXT NOT NULL, confidence REAL,
      functions TEXT NOT NULL, span_start INTEGER, span_end INTEGER, spans TEXT, PRIMARY KEY (_document_id, attribute))`);
    const insertRow = db.prepare(
      `INSERT INTO ${quoteIdent(table)} (_document_id${columns.map((c) => `, ${quoteIdent(c.column)}`).join('')}) VALUES (?${', ?'.repeat(columns.length)})`,
    );
    const insertProv = db.prepare(
      `INSERT INTO ${quoteIdent(provenance)} (_document_id, attribute, value, origin, confidence, functions, span_start, span_end, spans) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const upsertExtraction = db.prepare(
      `INSERT INTO extractions (document_id, attribute_id, value, normalized, origin, confidence, span_start, span_end, evidence, job_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (document_id, attribute_id) DO UPDATE SET value = excluded.value, normalized = excluded.normalized,
         origin = excluded.origin, confidence = excluded.confidence, span_start = excluded.span_start, span_end = excluded.span_end,
         evidence = excluded.evidence, job_id = excluded.job_id`,
    );
    for (const docId of input.documentIds) {
      const cells = byDoc.get(docId) ?? new Map<number, MaterialCell>();
      insertRow.run(docId, ...columns.map((c) => typedValue(cells.get(c.attributeId)?.value ?? null, c.type)));
      for (const c of columns) {
        const cell = cells.get(c.attributeId);
        if (!cell || cell.value === null) continue;
        const typed = typedValue(cell.value, c.type);
        const fns = JSON.stringify(cell.functions);
        insertProv.run(docId, c.column, cell.value, cell.origin, cell.confidence, fns, cell.span?.[0] ?? null, cell.span?.[1] ?? null, cell.spans ? JSON.stringify(cell.spans) : null);
        upsertExtraction.run(docId, c.attributeId, cell.value, typed === null ? null : String(typed), cell.origin, cell.confidence, cell.span?.[0] ?? null, cell.span?.[1] ?? null, JSON.stringify({ functions: cell.functions }), input.jobId);
      }
    }
    db.prepare(
      `INSERT INTO result_tables (corpus_id, table_name, provenance_table, columns, job_id, rows, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ','now'))
       ON CONFLICT (corpus_id) DO UPDATE SET table_name = excluded.table_name, provenance_table = excluded.provenance_table,
         columns = excluded.columns, job_id = excluded.job_id, rows = excluded.rows, updated_at = excluded.updated_at`,
    ).run(input.corpusId, table, provenance, JSON.stringify(columns), input.jobId, input.documentIds.length);
  })();
}

/**
 * Adds or replaces the cells of one attribute for some documents (incremental runs): the row is created when
 * the document is new, only this attribute's column changes otherwise. Synchronous, for checkpoint commits.
 */
export function upsertCells(db: Db, input: { corpusId: number; attributeId: number; jobId: number | null; cells: MaterialCell[] }): void {
  const reg = db.prepare('SELECT table_name, provenance_table, columns FROM result_tables WHERE corpus_id = ?').get(input.corpusId) as
    | { table_name: string; provenance_table: string; columns: string }
    | undefined;
  const column = reg ? (JSON.parse(reg.columns) as MaterialColumn[]).find((c) => c.attributeId === input.attributeId) : undefined;
  const upsertExtraction = db.prepare(
    `INSERT INTO extractions (document_id, attribute_id, value, normalized, origin, confidence, span_start, span_end, evidence, job_id)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (document_id, attribute_id) DO UPDATE SET value = excluded.value, normalized = excluded.normalized,
       origin = excluded.origin, confidence = excluded.confidence, span_start = excluded.span_start, span_end = excluded.span_end,
       evidence = excluded.evidence, job_id = excluded.job_id`,
  );
  const t = reg && column ? quoteIdent(reg.table_name) : null;
  const upsertRow = t ? db.prepare(`INSERT INTO ${t} (_document_id, ${quoteIdent(column!.column)}) VALUES (?, ?) ON CONFLICT (_document_id) DO UPDATE SET ${quoteIdent(column!.column)} = excluded.${quoteIdent(column!.column)}`) : null;
  const deleteProv = t ? db.prepare(`DELETE FROM ${quoteIdent(reg!.provenance_table)} WHERE _document_id = ? AND attribute = ?`) : null;
  const insertProv = t
    ? db.prepare(`INSERT INTO ${quoteIdent(reg!.provenance_table)} (_document_id, attribute, value, origin, confidence, functions, span_start, span_end) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
    : null;
  const deleteExtraction = db.prepare('DELETE FROM extractions WHERE document_id = ? AND attribute_id = ?');
  db.transaction(() => {
    for (const cell of input.cells) {
      // A list column keeps every cell as a JSON array, whichever run wrote it.
      if (column?.list && cell.values?.length) cell.value = JSON.stringify(cell.values);
      const typed = column ? typedValue(cell.value, column.type) : cell.value;
      upsertRow?.run(cell.documentId, typed);
      deleteProv?.run(cell.documentId, column?.column ?? '');
      if (cell.value === null) {
        deleteExtraction.run(cell.documentId, input.attributeId);
        continue;
      }
      insertProv?.run(cell.documentId, column!.column, cell.value, cell.origin, cell.confidence, JSON.stringify(cell.functions), cell.span?.[0] ?? null, cell.span?.[1] ?? null);
      upsertExtraction.run(cell.documentId, input.attributeId, cell.value, typed === null ? null : String(typed), cell.origin, cell.confidence, cell.span?.[0] ?? null, cell.span?.[1] ?? null, JSON.stringify({ functions: cell.functions }), input.jobId);
    }
    if (reg) db.prepare(`UPDATE result_tables SET rows = (SELECT count(*) FROM ${quoteIdent(reg.table_name)}), updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE corpus_id = ?`).run(input.corpusId);
  })();
}
