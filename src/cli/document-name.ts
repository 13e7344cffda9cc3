/**
 * Finds the document a person means on the command line. `evaporate ingest` stores each file under the path it was
 * given (relative or absolute), so people name a document by its id, its file name ("0007.htm"), or a path to the
 * file they ingested, from wherever they stand now. Rules are tried from the most exact to the loosest; the first rule
 * that matches decides, and it must match one document: several are an error that lists them.
 */
import path from 'node:path';
import { EvaporateError } from '../errors.js';
import type { Db } from '../store/database.js';

interface Row {
  id: number;
  filename: string;
}

const SHOWN = 5;

export function resolveDocumentName(db: Db, corpus: { id: number; name: string }, name: string, cwd = process.cwd()): Row {
  const where = (clause: string, ...args: unknown[]) =>
    db.prepare(`SELECT id, filename FROM documents WHERE corpus_id = ? AND (${clause}) ORDER BY id LIMIT ${SHOWN + 1}`).all(corpus.id, ...args) as Row[];
  const given = path.normalize(name);
  const rules: (() => Row[])[] = [
    () => (/^\d+$/.test(name) ? where('id = ?', Number(name)) : []),
    () => where('filename = ? OR filename = ?', name, given),
    // The same file on disk: the stored path is the given one resolved from here, or a tail of it (ingested from elsewhere).
    ...pathTails(path.resolve(cwd, name)).map((tail) => () => where('filename = ?', tail)),
    // The given path is the end of the stored one ("0007.htm" of "books/pages/0007.htm").
    () => where(`filename LIKE ? ESCAPE '\\'`, `%/${likeEscape(given.replace(/^\.\//, ''))}`),
  ];
  for (const rule of rules) {
    const rows = rule();
    if (rows.length === 1) return rows[0];
    if (rows.length > 1) throw ambiguous(corpus, name, rows);
  }
  throw new EvaporateError(
    'document_not_found',
    `Corpus "${corpus.name}" has no document "${name}": give its id (see \`evaporate documents list ${corpus.name}\`), its file name, or the path it was ingested from.`,
    404,
  );
}

/** "/a/b/c.htm" -> "/a/b/c.htm", "a/b/c.htm", "b/c.htm": longest first, the bare file name left to the suffix rule. */
function pathTails(absolute: string): string[] {
  const parts = absolute.split(path.sep).filter(Boolean);
  return [absolute, ...parts.slice(0, -1).map((_, i) => parts.slice(i).join(path.sep))];
}

function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

function ambiguous(corpus: { name: string }, name: string, rows: Row[]): EvaporateError {
  const listed = rows.slice(0, SHOWN).map((r) => `#${r.id} ${r.filename}`).join(', ');
  return new EvaporateError(
    'ambiguous_document',
    `"${name}" names ${rows.length > SHOWN ? `more than ${SHOWN}` : rows.length} documents in corpus "${corpus.name}" (${listed}${rows.length > SHOWN ? ', …' : ''}); give the id or a longer path.`,
    409,
  );
}
