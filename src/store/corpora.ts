/** Corpora: a named collection of documents of one kind. */
import type { Db } from './database.js';
import { EvaporateError } from '../errors.js';

export interface Corpus {
  id: number;
  name: string;
  description: string;
  createdAt: string;
}

export interface CorpusWithCounts extends Corpus {
  documents: number;
  failed: number;
}

// Names become parts of result-table names and URLs, so they stay identifier-like.
const namePattern = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

const columns = 'id, name, description, created_at AS createdAt';

export function createCorpus(db: Db, name: string, description = ''): Corpus {
  if (!namePattern.test(name)) {
    throw new EvaporateError(
      'invalid_corpus_name',
      `Corpus name "${name}" is not allowed: use 1 to 64 letters, digits, "_" or "-", starting with a letter.`,
      400,
    );
  }
  try {
    const id = Number(db.prepare('INSERT INTO corpora (name, description) VALUES (?, ?)').run(name, description).lastInsertRowid);
    return getCorpus(db, id);
  } catch (error) {
    if ((error as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
      throw new EvaporateError('corpus_exists', `A corpus named "${name}" already exists.`, 409);
    }
    throw error;
  }
}

export function findCorpus(db: Db, idOrName: number | string): Corpus | undefined {
  const byId = typeof idOrName === 'number' || /^\d+$/.test(idOrName);
  const sql = `SELECT ${columns} FROM corpora WHERE ${byId ? 'id' : 'name'} = ?`;
  return db.prepare(sql).get(byId ? Number(idOrName) : idOrName) as Corpus | undefined;
}

/** Looks a corpus up by numeric id or by name; 404 when there is none. */
export function getCorpus(db: Db, idOrName: number | string): Corpus {
  const corpus = findCorpus(db, idOrName);
  if (!corpus) throw new EvaporateError('corpus_not_found', `There is no corpus "${idOrName}".`, 404);
  return corpus;
}

export function getOrCreateCorpus(db: Db, name: string): Corpus {
  return findCorpus(db, name) ?? createCorpus(db, name);
}

export function listCorpora(db: Db): CorpusWithCounts[] {
  return db
    .prepare(
      `SELECT c.id, c.name, c.description, c.created_at AS createdAt,
              (SELECT count(*) FROM documents d WHERE d.corpus_id = c.id AND d.status = 'ready') AS documents,
              (SELECT count(*) FROM documents d WHERE d.corpus_id = c.id AND d.status = 'failed') AS failed
       FROM corpora c ORDER BY c.id`,
    )
    .all() as CorpusWithCounts[];
}

export function corpusCounts(db: Db, corpusId: number): { documents: number; failed: number } {
  return db
    .prepare(
      `SELECT coalesce(sum(status = 'ready'), 0) AS documents, coalesce(sum(status = 'failed'), 0) AS failed
       FROM documents WHERE corpus_id = ?`,
    )
    .get(corpusId) as { documents: number; failed: number };
}

/** Deletes the corpus and, by cascade, its documents, chunks, attributes, functions and extractions. */
export function deleteCorpus(db: Db, idOrName: number | string): Corpus {
  const corpus = getCorpus(db, idOrName);
  db.prepare('DELETE FROM corpora WHERE id = ?').run(corpus.id);
  return corpus;
}
