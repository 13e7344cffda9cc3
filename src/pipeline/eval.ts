/**
 * Evaluation against gold values: per-attribute text F1 (the paper's metric, via normalize.ts), precision and
 * recall of a discovered schema, and the LLM cost against what direct extraction of every document would cost.
 * Gold comes in the SWDE ground-truth format or a plain JSON/CSV format.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Db } from '../store/database.js';
import { EvaporateError } from '../errors.js';
import { textF1 } from '../weak-supervision/normalize.js';
import { countPromptTokens } from '../llm/tokens.js';
import { quoteIdent, type MaterialColumn } from './materialize.js';
import { parseCell } from './list-values.js';
import { canonicalName } from './schema.js';
import { directExtractionPrompt } from './prompts.js';
import { attributeQuery, selectContext } from './retrieval.js';

/** attribute -> document key -> gold values ([] = the document has no value). */
export type Gold = Map<string, Map<string, string[]>>;

/** The key a document is matched to gold by: its file name without folders or extension. */
export function documentKey(filename: string): string {
  return path.basename(filename).replace(/\.[^.]+$/, '');
}

function addGold(gold: Gold, attribute: string, key: string, values: string[]): void {
  if (!gold.has(attribute)) gold.set(attribute, new Map());
  gold.get(attribute)!.set(key, values.map((v) => v.trim()).filter((v) => v !== '' && v !== '<NULL>'));
}

/** SWDE: per attribute a TSV; line 1 vertical/site/attribute, line 2 counts, then: page id, count, values... */
export function parseSwdeGroundtruth(text: string, gold: Gold = new Map()): Gold {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const header = lines[0]?.split('\t') ?? [];
  if (header.length < 3) throw new EvaporateError('gold_invalid', 'An SWDE ground-truth file starts with "vertical<TAB>site<TAB>attribute".', 400);
  const attribute = header[2].trim();
  for (const line of lines.slice(2)) {
    if (!line.trim()) continue;
    const [id, count, ...values] = line.split('\t');
    addGold(gold, attribute, id.trim(), Number(count) === 0 ? [] : values);
  }
  return gold;
}

function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (cell += '"'), i++;
      else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') row.push(cell), (cell = '');
    else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(cell), rows.push(row), (row = []), (cell = '');
    } else cell += ch;
  }
  if (cell !== '' || row.length) row.push(cell), rows.push(row);
  return rows.filter((r) => r.some((c) => c.trim() !== ''));
}

const KEY_COLUMNS = ['document', 'filename', 'file', 'id', 'page'];

/**
 * Plain formats. JSON: {"<document>": {"attr": "v" | ["v", ...] | null}} or [{"document": ..., "attr": ...}].
 * CSV: a header with a document column (document/filename/id) and one column per attribute; "|" separates values.
 */
export function parsePlainGold(text: string, format: 'json' | 'csv', gold: Gold = new Map()): Gold {
  const asValues = (v: unknown): string[] => (v === null || v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);
  if (format === 'json') {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      throw new EvaporateError('gold_invalid', 'The gold JSON file is not valid JSON.', 400);
    }
    const records: [string, Record<string, unknown>][] = Array.isArray(data)
      ? data.map((r: Record<string, unknown>) => {
          const k = KEY_COLUMNS.find((c) => r[c] !== undefined);
          if (!k) throw new EvaporateError('gold_invalid', `Each gold record needs one of: ${KEY_COLUMNS.join(', ')}.`, 400);
          const { [k]: key, ...rest } = r;
          return [documentKey(String(key)), rest];
        })
      : Object.entries(data as Record<string, Record<string, unknown>>).map(([k, v]) => [documentKey(k), v]);
    for (const [key, attrs] of records) for (const [a, v] of Object.entries(attrs ?? {})) addGold(gold, a, key, asValues(v));
    return gold;
  }
  const [header, ...rows] = parseCsv(text.replace(/^\uFEFF/, ''));
  const keyIndex = header?.findIndex((h) => KEY_COLUMNS.includes(h.trim().toLowerCase())) ?? -1;
  if (keyIndex < 0) throw new EvaporateError('gold_invalid', `The gold CSV needs a header with a document column (${KEY_COLUMNS.join(', ')}).`, 400);
  for (const r of rows)
    header.forEach((h, i) => {
      if (i !== keyIndex) addGold(gold, h.trim(), documentKey(r[keyIndex] ?? ''), (r[i] ?? '').split('|'));
    });
  return gold;
}

/** Reads every gold file of a folder (or one file): SWDE .txt, .json, .csv. */
export function readGold(location: string): Gold {
  if (!fs.existsSync(location)) throw new EvaporateError('gold_not_found', `There is no gold file or folder at ${location}.`, 400);
  const files = fs.statSync(location).isDirectory() ? fs.readdirSync(location).sort().map((f) => path.join(location, f)) : [location];
  const gold: Gold = new Map();
  for (const f of files) {
    const ext = path.extname(f).toLowerCase();
    const text = fs.readFileSync(f, 'utf8');
    if (ext === '.txt' || ext === '.tsv') parseSwdeGroundtruth(text, gold);
    else if (ext === '.json') parsePlainGold(text, 'json', gold);
    else if (ext === '.csv') parsePlainGold(text, 'csv', gold);
  }
  if (gold.size === 0) throw new EvaporateError('gold_invalid', `No gold values found in ${location} (expected SWDE .txt, .json or .csv files).`, 400);
  return gold;
}

/** A discovered attribute answers a gold one when their names agree after normalization, or one contains the other. */
export function attributesMatch(discovered: string, gold: string): boolean {
  const a = canonicalName(discovered);
  const b = canonicalName(gold);
  if (a === b) return true;
  const parts = (s: string) => s.split('_').filter(Boolean);
  const pa = parts(a);
  const pb = parts(b);
  return pa.length > 0 && pb.length > 0 && (pa.every((p) => pb.includes(p)) || pb.every((p) => pa.includes(p)));
}

export interface AttributeScore {
  gold: string;
  column: string | null;
  f1: number;
  documents: number;
}

export interface EvalReport {
  attributes: AttributeScore[];
  meanF1: number;
  schema: { discovered: string[]; gold: string[]; precision: number; recall: number };
}

export function evaluateTable(db: Db, corpusId: number, gold: Gold): EvalReport {
  const reg = db.prepare('SELECT table_name, columns FROM result_tables WHERE corpus_id = ?').get(corpusId) as { table_name: string; columns: string } | undefined;
  if (!reg) throw new EvaporateError('no_result_table', `Corpus ${corpusId} has no extracted table yet; run an extraction first.`, 409);
  const columns = JSON.parse(reg.columns) as MaterialColumn[];
  const rows = db
    .prepare(`SELECT d.filename AS filename, t.* FROM ${quoteIdent(reg.table_name)} t JOIN documents d ON d.id = t._document_id`)
    .all() as Record<string, unknown>[];
  const goldNames = [...gold.keys()];
  const used = new Set<string>();
  const attributes = goldNames.map((g) => {
    const col = columns.find((c) => c.name === g && !used.has(c.column)) ?? columns.find((c) => !used.has(c.column) && attributesMatch(c.name, g));
    if (col) used.add(col.column);
    const values = gold.get(g)!;
    let sum = 0;
    let n = 0;
    for (const r of rows) {
      const expected = values.get(documentKey(String(r.filename)));
      if (expected === undefined) continue;
      const got = col ? parseCell(r[col.column], col.list) : [];
      sum += textF1(got, expected);
      n++;
    }
    return { gold: g, column: col?.column ?? null, f1: n ? sum / n : 0, documents: n };
  });
  const matchedDiscovered = columns.filter((c) => goldNames.some((g) => attributesMatch(c.name, g))).length;
  const matchedGold = goldNames.filter((g) => columns.some((c) => attributesMatch(c.name, g))).length;
  return {
    attributes,
    meanF1: attributes.length ? attributes.reduce((s, a) => s + a.f1, 0) / attributes.length : 0,
    schema: {
      discovered: columns.map((c) => c.name),
      gold: goldNames,
      precision: columns.length ? matchedDiscovered / columns.length : 0,
      recall: goldNames.length ? matchedGold / goldNames.length : 0,
    },
  };
}

/**
 * Prompt tokens that direct extraction of every document and attribute would send (the same prompts the
 * pipeline sends for silver labels). Past `exactUpTo` documents it counts a spread subset and scales up.
 */
export function directExtractionTokens(db: Db, corpusId: number, attributes: readonly { name: string; description?: string }[], contextTokens = 1000, exactUpTo = 2000): { tokens: number; exact: boolean; documents: number } {
  const ids = db.prepare(`SELECT id FROM documents WHERE corpus_id = ? AND status = 'ready' ORDER BY id`).pluck().all(corpusId) as number[];
  const step = ids.length > exactUpTo ? ids.length / exactUpTo : 1;
  const picked = step === 1 ? ids : Array.from({ length: exactUpTo }, (_, i) => ids[Math.floor(i * step)]);
  const text = db.prepare('SELECT text FROM documents WHERE id = ?').pluck();
  let tokens = 0;
  for (const id of picked) {
    const t = (text.get(id) as string | null) ?? '';
    for (const a of attributes) {
      const prompt = directExtractionPrompt(a.name, a.description ?? '', selectContext(t, attributeQuery(a.name, a.description), contextTokens));
      tokens += countPromptTokens(prompt);
    }
  }
  return { tokens: Math.round((tokens * ids.length) / Math.max(1, picked.length)), exact: step === 1, documents: ids.length };
}
