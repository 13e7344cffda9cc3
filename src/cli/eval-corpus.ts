/**
 * Which corpus `eval --corpus <dir>` uses. A folder is named after its site, not after itself: SWDE keeps each
 * site's pages in a folder called pages/, and two sites' pages/ folders in one corpus would score gold against
 * the wrong pages. A corpus of that name that holds documents from elsewhere is refused, not mixed into.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Db } from '../store/database.js';
import { findCorpus, getOrCreateCorpus, type Corpus } from '../store/corpora.js';
import { EvaporateError } from '../errors.js';

// Folder names that say what is inside, not whose it is: the site is the folder above.
const GENERIC_FOLDER = /^(pages?|html?|docs?|documents?|files?|data|input|raw|corpus|web)$/i;

export function siteNameOf(dir: string): string {
  const abs = path.resolve(dir);
  const own = path.basename(abs);
  const parent = path.basename(path.dirname(abs));
  return GENERIC_FOLDER.test(own) && parent ? parent : own;
}

export interface EvalCorpus {
  corpus: Corpus | undefined;
  /** Files to ingest (relative names as stored), empty when the argument named an existing corpus. */
  files: { absolute: string; filename: string }[];
  name: string;
}

/** Resolves --corpus without writing anything: an existing corpus by name, or a folder and the name it gets. */
export function resolveEvalCorpus(db: Db, argument: string, files: (dir: string) => string[], name?: string): EvalCorpus {
  const byName = findCorpus(db, argument);
  if (byName && !name) return { corpus: byName, files: [], name: byName.name };
  if (!fs.existsSync(argument) || !fs.statSync(argument).isDirectory())
    throw new EvaporateError('corpus_not_found', `"${argument}" is neither a corpus nor a folder of documents.`, 400);
  const corpusName = name ?? siteNameOf(argument);
  const list = files(argument).map((absolute) => ({ absolute, filename: path.relative(argument, absolute) }));
  const existing = findCorpus(db, corpusName);
  if (existing) {
    const ours = new Set(list.map((f) => f.filename));
    const foreign = (db.prepare('SELECT filename FROM documents WHERE corpus_id = ?').pluck().all(existing.id) as string[]).filter((f) => !ours.has(f));
    if (foreign.length > 0)
      throw new EvaporateError(
        'corpus_name_taken',
        `Corpus "${corpusName}" already holds ${foreign.length} document(s) that are not in ${argument} (e.g. ${foreign[0]}); ` +
          'pass --corpus-name to score this folder under another name.',
        409,
        { corpus: corpusName },
      );
  }
  return { corpus: existing, files: list, name: corpusName };
}

export function createEvalCorpus(db: Db, name: string): Corpus {
  return getOrCreateCorpus(db, name);
}

/** The registered result table of a corpus, if an extraction has built one. */
export function resultTableOf(db: Db, corpusId: number): { table: string; rows: number; columns: { name: string }[] } | undefined {
  const r = db.prepare('SELECT table_name AS t, rows, columns FROM result_tables WHERE corpus_id = ?').get(corpusId) as { t: string; rows: number; columns: string } | undefined;
  return r ? { table: r.t, rows: r.rows, columns: JSON.parse(r.columns) as { name: string }[] } : undefined;
}
