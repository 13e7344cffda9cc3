/**
 * Evaluation against gold values: per-attribute text F1 (the paper's metric, via normalize.ts), precision and
 * recall of a discovered schema, and the LLM cost against what direct extraction of every document would cost.
 * Gold comes in the SWDE ground-truth format or a plain JSON/CSV format.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Db } from '../store/database.js';
import { EvaporateError } from '../errors.js';
import { decodeHTML } from 'entities';
import { normalizeForComparison, textF1, type RawValue } from '../weak-supervision/normalize.js';
import { countPromptTokens } from '../llm/tokens.js';
import { quoteIdent, typedValue, type MaterialColumn } from './materialize.js';
import { parseCell } from './list-values.js';
import type { AttributeType } from './types.js';
import { canonicalName } from './schema.js';
import { directExtractionPrompt } from './prompts.js';
import { attributeQuery, selectContext } from './retrieval.js';
import { withoutAttributeLabel } from './induction/labels.js';

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

/**
 * SWDE gold is copied from the page's markup ("Boston&nbsp;Celtics"), while documents are read as text with
 * entities decoded: decode the gold the same way, and collapse whitespace as the readable text does.
 */
export function decodeGoldValue(value: string): string {
  return decodeHTML(value).replace(/\s+/g, ' ').trim();
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
    addGold(gold, attribute, id.trim(), Number(count) === 0 ? [] : values.map((v) => (v === '<NULL>' ? v : decodeGoldValue(v))));
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

/** Scoring reads a leading label naming the attribute ("Height: 6'10'") off both sides, as induction does. */
export { withoutAttributeLabel } from './induction/labels.js';

function valuesOf(value: RawValue): string[] {
  if (value === null || value === undefined) return [];
  if (typeof value === 'string' || typeof value === 'number') return [String(value)];
  return value.filter((v) => v !== null && v !== undefined).map(String);
}

/** Text F1 (the paper's metric) on the text a value came from, against the gold, both read the same way. */
export function scoreSpan(attribute: string, predicted: RawValue, gold: readonly string[]): number {
  return textF1(
    valuesOf(predicted).map((v) => withoutAttributeLabel(attribute, v)),
    gold.map((v) => withoutAttributeLabel(attribute, v)),
  );
}

/**
 * Typed-value accuracy: 1 when the value, typed as the column stores it ("June 2010" -> 2010-06), equals the
 * gold typed the same way (both empty counts as equal), else 0.
 */
/** Values as the table types them (the attribute's own label read off first), compared normalized. */
function typedKey(attribute: string, values: readonly string[], type: AttributeType): string | null {
  return normalizeForComparison(values.map((v) => String(typedValue(withoutAttributeLabel(attribute, v).trim(), type))));
}

/** A function's raw output against the gold, both typed the same way: 1 when they match. */
export function scoreTyped(attribute: string, predicted: RawValue, gold: readonly string[], type: AttributeType): number {
  return typedKey(attribute, valuesOf(predicted), type) === typedKey(attribute, gold, type) ? 1 : 0;
}

export interface AttributeScore {
  gold: string;
  column: string | null;
  /** Span text F1 (the paper's metric) on the documents nobody labelled for this attribute. */
  f1: number;
  /** Share of those documents whose typed cell equals the gold typed the same way. */
  typedAccuracy: number;
  documents: number;
  /** The documents labelled for this attribute, scored apart: induction learned from them, so they are not evidence. */
  labelled: { f1: number; typedAccuracy: number; documents: number };
}

export interface EvalReport {
  attributes: AttributeScore[];
  meanF1: number;
  meanTypedAccuracy: number;
  schema: { discovered: string[]; gold: string[]; precision: number; recall: number };
}

function labelledKeys(db: Db, corpusId: number): Map<string, Set<string>> {
  const rows = db
    .prepare('SELECT DISTINCT l.attribute AS attribute, d.filename AS filename FROM labels l JOIN documents d ON d.id = l.document_id WHERE l.corpus_id = ?')
    .all(corpusId) as { attribute: string; filename: string }[];
  const out = new Map<string, Set<string>>();
  for (const r of rows) {
    if (!out.has(r.attribute)) out.set(r.attribute, new Set());
    out.get(r.attribute)!.add(documentKey(r.filename));
  }
  return out;
}

export function evaluateTable(db: Db, corpusId: number, gold: Gold): EvalReport {
  const reg = db.prepare('SELECT table_name, provenance_table, columns FROM result_tables WHERE corpus_id = ?').get(corpusId) as
    | { table_name: string; provenance_table: string; columns: string }
    | undefined;
  if (!reg) throw new EvaporateError('no_result_table', `Corpus ${corpusId} has no extracted table yet; run an extraction first.`, 409);
  const columns = JSON.parse(reg.columns) as MaterialColumn[];
  const rows = db
    .prepare(`SELECT d.filename AS filename, t.* FROM ${quoteIdent(reg.table_name)} t JOIN documents d ON d.id = t._document_id`)
    .all() as Record<string, unknown>[];
  // The text each cell came from, before typing: what span F1 compares (a date typed 2010-06 came from "June 2010").
  const spanText = new Map<string, string>();
  for (const p of db.prepare(`SELECT _document_id AS id, attribute, value FROM ${quoteIdent(reg.provenance_table)}`).all() as { id: number; attribute: string; value: string | null }[]) {
    if (p.value !== null) spanText.set(`${p.id}\u0000${p.attribute}`, p.value);
  }
  const labelled = labelledKeys(db, corpusId);
  const goldNames = [...gold.keys()];
  const used = new Set<string>();
  const attributes = goldNames.map((g) => {
    const col = columns.find((c) => c.name === g && !used.has(c.column)) ?? columns.find((c) => !used.has(c.column) && attributesMatch(c.name, g));
    if (col) used.add(col.column);
    const values = gold.get(g)!;
    const learnedFrom = labelled.get(col?.name ?? g) ?? labelled.get(g) ?? new Set<string>();
    const acc = { scored: { f1: 0, typed: 0, n: 0 }, labelled: { f1: 0, typed: 0, n: 0 } };
    for (const r of rows) {
      const key = documentKey(String(r.filename));
      const expected = values.get(key);
      if (expected === undefined) continue;
      const cell = col ? r[col.column] : null;
      const source = col ? spanText.get(`${r._document_id}\u0000${col.column}`) : undefined;
      // A list column's cell and provenance hold JSON arrays: read them as lists, never split text on "; ".
      const typedGot = col ? parseCell(cell, col.list) : [];
      const got = source !== undefined ? parseCell(source, col!.list) : typedGot;
      const bucket = learnedFrom.has(key) ? acc.labelled : acc.scored;
      bucket.f1 += scoreSpan(g, got, expected);
      bucket.typed += typedMatches(g, typedGot, expected, col?.type ?? 'text') ? 1 : 0;
      bucket.n++;
    }
    const mean = (b: { f1: number; typed: number; n: number }) => ({ f1: b.n ? b.f1 / b.n : 0, typedAccuracy: b.n ? b.typed / b.n : 0, documents: b.n });
    return { gold: g, column: col?.column ?? null, ...mean(acc.scored), labelled: mean(acc.labelled) };
  });
  const matchedDiscovered = columns.filter((c) => goldNames.some((g) => attributesMatch(c.name, g))).length;
  const matchedGold = goldNames.filter((g) => columns.some((c) => attributesMatch(c.name, g))).length;
  const avg = (f: (a: AttributeScore) => number) => (attributes.length ? attributes.reduce((s, a) => s + f(a), 0) / attributes.length : 0);
  return {
    attributes,
    meanF1: avg((a) => a.f1),
    meanTypedAccuracy: avg((a) => a.typedAccuracy),
    schema: {
      discovered: columns.map((c) => c.name),
      gold: goldNames,
      precision: columns.length ? matchedDiscovered / columns.length : 0,
      recall: goldNames.length ? matchedGold / goldNames.length : 0,
    },
  };
}

/** A stored cell (already typed) against gold typed the way the column types: equal comparison keys. */
/** A stored cell (already typed) against the gold typed the same way. */
function typedMatches(attribute: string, stored: string[], gold: readonly string[], type: AttributeType): boolean {
  return normalizeForComparison(stored.map((v) => withoutAttributeLabel(attribute, v))) === typedKey(attribute, gold, type);
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
