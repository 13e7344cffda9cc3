/**
 * Labels: values a person gives for a document's attribute. They replace direct extraction as the sample's
 * silver labels and are what wrapper induction learns from. Labelling a (document, attribute) again replaces
 * its values; an empty list records that the document has no value.
 */
import { attributeNameProblem } from './attribute-names.js';
import type { Db } from './database.js';
import { EvaporateError } from '../errors.js';

export interface Label {
  documentId: number;
  filename: string;
  attribute: string;
  /** Empty when the document was labelled as having no value. */
  values: string[];
  createdAt: string;
}

export interface LabelInput {
  /** Document id, or its filename within the corpus. */
  document: number | string;
  attribute: string;
  values: string[];
}

const MAX_VALUE_CHARS = 10_000;
const MAX_VALUES = 100;
const attributePattern = /^[A-Za-z_][A-Za-z0-9_ -]{0,63}$/;

function resolveCorpusId(db: Db, corpus: number | string): number {
  const byId = typeof corpus === 'number' || /^\d+$/.test(corpus);
  const row = db.prepare(`SELECT id FROM corpora WHERE ${byId ? 'id' : 'name'} = ?`).get(byId ? Number(corpus) : corpus) as { id: number } | undefined;
  if (!row) throw new EvaporateError('corpus_not_found', `There is no corpus "${corpus}".`, 404);
  return row.id;
}

function resolveDocument(db: Db, corpusId: number, document: number | string): { id: number; filename: string } {
  const byId = typeof document === 'number' || /^\d+$/.test(document);
  let row = byId
    ? (db.prepare('SELECT id, filename FROM documents WHERE corpus_id = ? AND id = ?').get(corpusId, Number(document)) as { id: number; filename: string } | undefined)
    : undefined;
  // A numeric-looking name ("0001.htm" is not, "0001" may be) falls back to a filename lookup.
  row ??= db.prepare('SELECT id, filename FROM documents WHERE corpus_id = ? AND filename = ? ORDER BY id LIMIT 2').get(corpusId, String(document)) as
    | { id: number; filename: string }
    | undefined;
  if (!row) throw new EvaporateError('document_not_found', `Corpus ${corpusId} has no document "${document}" (give its id or filename).`, 404);
  return row;
}

function validate(input: LabelInput): string[] {
  if (typeof input.attribute !== 'string' || !attributePattern.test(input.attribute.trim())) {
    throw new EvaporateError('invalid_attribute', `Attribute name "${input.attribute}" is not allowed: use 1 to 64 letters, digits, "_", "-" or spaces, starting with a letter.`, 400);
  }
  const reserved = attributeNameProblem(input.attribute);
  if (reserved) throw new EvaporateError('invalid_attribute', reserved, 400);
  if (!Array.isArray(input.values) || input.values.some((v) => typeof v !== 'string')) {
    throw new EvaporateError('invalid_label', 'A label value must be a string, a list of strings, or null for "no value".', 400);
  }
  if (input.values.length > MAX_VALUES) throw new EvaporateError('invalid_label', `A label may hold at most ${MAX_VALUES} values.`, 400);
  const values = [...new Set(input.values.map((v) => v.trim()).filter(Boolean))];
  if (values.some((v) => v.length > MAX_VALUE_CHARS)) throw new EvaporateError('invalid_label', `A label value may be at most ${MAX_VALUE_CHARS} characters.`, 400);
  return values;
}

/** Sets (replaces) the labels of each (document, attribute), all or nothing. */
export function setLabels(db: Db, corpus: number | string, inputs: LabelInput[]): Label[] {
  const corpusId = resolveCorpusId(db, corpus);
  const prepared = inputs.map((input) => ({ input, values: validate(input), doc: resolveDocument(db, corpusId, input.document) }));
  const remove = db.prepare('DELETE FROM labels WHERE document_id = ? AND attribute = ?');
  const insert = db.prepare('INSERT INTO labels (corpus_id, document_id, attribute, value, position) VALUES (?, ?, ?, ?, ?)');
  db.transaction(() => {
    for (const { input, values, doc } of prepared) {
      const attribute = input.attribute.trim();
      remove.run(doc.id, attribute);
      if (values.length === 0) insert.run(corpusId, doc.id, attribute, null, 0);
      values.forEach((v, i) => insert.run(corpusId, doc.id, attribute, v, i));
    }
  })();
  return prepared.map(({ input, doc }) => listLabels(db, corpusId, { attribute: input.attribute.trim(), document: doc.id })[0]);
}

export function listLabels(db: Db, corpus: number | string, filter: { attribute?: string; document?: number | string } = {}): Label[] {
  const corpusId = resolveCorpusId(db, corpus);
  const where = ['l.corpus_id = ?'];
  const args: (string | number)[] = [corpusId];
  if (filter.attribute !== undefined) {
    where.push('l.attribute = ?');
    args.push(filter.attribute);
  }
  if (filter.document !== undefined) {
    where.push('l.document_id = ?');
    args.push(resolveDocument(db, corpusId, filter.document).id);
  }
  const rows = db
    .prepare(
      `SELECT l.document_id AS documentId, d.filename, l.attribute, l.value, l.created_at AS createdAt
       FROM labels l JOIN documents d ON d.id = l.document_id
       WHERE ${where.join(' AND ')} ORDER BY l.attribute, l.document_id, l.position`,
    )
    .all(...args) as { documentId: number; filename: string; attribute: string; value: string | null; createdAt: string }[];
  const grouped = new Map<string, Label>();
  for (const r of rows) {
    const key = `${r.attribute}\u0000${r.documentId}`;
    let label = grouped.get(key);
    if (!label) {
      label = { documentId: r.documentId, filename: r.filename, attribute: r.attribute, values: [], createdAt: r.createdAt };
      grouped.set(key, label);
    }
    if (r.value !== null) label.values.push(r.value);
  }
  return [...grouped.values()];
}

export function deleteLabels(db: Db, corpus: number | string, document: number | string, attribute: string): number {
  const corpusId = resolveCorpusId(db, corpus);
  const doc = resolveDocument(db, corpusId, document);
  return db.prepare('DELETE FROM labels WHERE document_id = ? AND attribute = ?').run(doc.id, attribute).changes;
}

/** Labelled documents of one attribute with their text and raw bytes: the input of wrapper induction. */
export function labelledDocuments(db: Db, corpus: number | string, attribute: string): { id: number; kind: string; raw: Buffer | null; text: string; values: string[] }[] {
  const corpusId = resolveCorpusId(db, corpus);
  const get = db.prepare('SELECT kind, raw, text FROM documents WHERE id = ?');
  return listLabels(db, corpusId, { attribute }).map((label) => {
    const row = get.get(label.documentId) as { kind: string; raw: Buffer | null; text: string | null };
    return { id: label.documentId, kind: row.kind, raw: row.raw, text: row.text ?? '', values: label.values };
  });
}

/** Per attribute, the documents labelled for it and how many of those labels carry a value. */
export function labelledByAttribute(db: Db, corpusId: number): Map<string, { documents: number[]; withValue: number }> {
  const out = new Map<string, { documents: number[]; withValue: number }>();
  for (const label of listLabels(db, corpusId)) {
    const entry = out.get(label.attribute) ?? out.set(label.attribute, { documents: [], withValue: 0 }).get(label.attribute)!;
    entry.documents.push(label.documentId);
    if (label.values.length) entry.withValue++;
  }
  return out;
}

/** The given values of an attribute on these documents (an empty list: labelled as having no value). */
export function givenLabels(db: Db, corpusId: number, attribute: string, documentIds: readonly number[]): Map<number, string[]> {
  const wanted = new Set(documentIds);
  const out = new Map<number, string[]>();
  for (const label of listLabels(db, corpusId, { attribute })) if (wanted.has(label.documentId)) out.set(label.documentId, label.values);
  return out;
}
