/**
 * Attributes with several values per document (authors, genres, directors). Functions return them in
 * different shapes: a list, one "A; B" string, a list with a repeat. Those must count as the same vote; a
 * function that returns every value must not be outvoted by functions that return the first one; and the
 * table keeps the values as a list (a JSON array in the cell), never as text to be split again, since values
 * themselves contain separators ("Roads; Rivers and Rain" is one title).
 */
import { normalizeForComparison, textF1 } from '../weak-supervision/normalize.js';
import { findSpan, type MaterialCell } from './materialize.js';
import type { SilverLabels } from './types.js';

// How one string stands for several values when another shape says it is a list. Commas and "and" only
// split where a list shape is already known, so "Smith, John" stays one author on its own.
const LIST_SEPARATORS = /\s*[;|\n]\s*|\s*,\s+|\s+(?:and|&)\s+/i;

export function splitListText(text: string): string[] {
  return text.split(LIST_SEPARATORS).map((s) => s.trim()).filter(Boolean);
}

/** Values without repeats (compared as votes are, so "Charles Dickens" and "charles dickens." are one). */
export function distinctValues(values: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const v of values) {
    const trimmed = v.trim();
    const key = normalizeForComparison(trimmed);
    if (key === null || seen.has(key)) continue;
    seen.add(key);
    out.push(trimmed);
  }
  return out;
}

/** The values of a one-string answer, split when the other side of a comparison is a list. */
function asList(values: readonly string[], otherIsList: boolean): string[] {
  return distinctValues(values.length === 1 && otherIsList ? splitListText(values[0]) : values);
}

/**
 * Agreement of an output with a silver label when either holds several values: each value is matched with
 * its best counterpart (token F1), precision over the output's values, recall over the label's. Returning one
 * genre of three scores 0.5, not the 1.0 that "matches any one gold value" would give.
 */
export function listF1(output: readonly string[], silver: readonly string[]): number {
  const o = asList(output, distinctValues(silver).length > 1);
  const s = asList(silver, distinctValues(output).length > 1);
  if (o.length <= 1 && s.length <= 1) return textF1(o, s);
  if (o.length === 0 || s.length === 0) return 0;
  const best = (x: string, ys: readonly string[]) => ys.reduce((m, y) => Math.max(m, textF1(x, y)), 0);
  const precision = o.reduce((sum, x) => sum + best(x, s), 0) / o.length;
  const recall = s.reduce((sum, y) => sum + best(y, o), 0) / s.length;
  return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
}

/** An attribute is list-shaped when at least two sample labels hold several distinct values. */
export function isListShaped(silver: SilverLabels): boolean {
  return Object.values(silver).filter((v) => v !== null && distinctValues(v).length > 1).length >= 2;
}

/**
 * The vote keys of one document's outputs (one per function; null = abstain). Beyond normalizeForComparison:
 * a one-string output that splits into another output's list is that list; and for a list-shaped attribute,
 * an output whose values are all inside a larger output supports the largest such output whose function scored
 * at least as well on the sample (`quality`, per function).
 */
export function voteKeys(row: readonly (readonly string[] | null)[], listShaped: boolean, quality?: readonly number[]): (string | null)[] {
  const keys = row.map((v) => normalizeForComparison(v));
  // The common case, one value per output and no list expected, needs nothing more (this runs per document).
  if (!listShaped && !row.some((v) => v !== null && v.length > 1)) return keys;
  const parts = row.map((v) => (v ? new Set(distinctValues(v).map((p) => normalizeForComparison(p)!)) : null));
  const lists = new Set(keys.filter((k, f): k is string => k !== null && (parts[f]?.size ?? 0) > 1));
  if (lists.size > 0) {
    row.forEach((v, f) => {
      if (!v || parts[f]!.size !== 1) return;
      const split = distinctValues(splitListText(v.join(' ')));
      if (split.length < 2) return;
      const key = normalizeForComparison(split);
      if (key !== null && lists.has(key)) {
        keys[f] = key;
        parts[f] = new Set(split.map((p) => normalizeForComparison(p)!));
      }
    });
  }
  if (!listShaped) return keys;
  const largest = (f: number) => {
    let best: number | undefined;
    parts.forEach((p, g) => {
      if (!p || g === f || p.size <= parts[f]!.size) return;
      // Only a rule that matched the sample at least as well may take a partial rule's vote: a superset with a
      // wrong extra value (a mall's name for the street) must not collect the votes of the rules it contains.
      if (quality && (quality[g] ?? 0) < (quality[f] ?? 0) - 1e-9) return;
      if (![...parts[f]!].every((x) => p.has(x))) return;
      if (best === undefined || p.size > parts[best]!.size) best = g;
    });
    return best;
  };
  return keys.map((k, f) => {
    if (k === null) return null;
    const g = largest(f);
    return g === undefined ? k : keys[g];
  });
}

/** A cell's values without repeats, with its first value standing as the cell's value until finalizeCells. */
export function cellValues(values: readonly string[] | null): Pick<MaterialCell, 'value' | 'values'> {
  const distinct = values ? distinctValues(values) : [];
  return distinct.length ? { value: distinct[0], values: distinct } : { value: null, values: undefined };
}

/**
 * Writes the cells' final text: a list column (list-shaped labels, or any cell with several values) holds a
 * JSON array in every filled cell, a single-valued column the value itself. Returns whether it is a list.
 */
export function finalizeCells(cells: MaterialCell[], silver: SilverLabels): boolean {
  const list = isListShaped(silver) || cells.some((c) => (c.values?.length ?? 0) > 1);
  for (const c of cells) {
    if (!c.values || c.values.length === 0) {
      c.value = null;
      continue;
    }
    // In a list column, one string that holds several values ("A; B") is those values; commas and "and" are
    // left alone here, since names and titles carry them.
    if (list && c.values.length === 1 && /[;|\n]/.test(c.values[0])) c.values = distinctValues(c.values[0].split(/\s*[;|\n]\s*/));
    c.value = list ? JSON.stringify(c.values) : c.values[0];
  }
  return list;
}

/** One span per value (null where a value is not found); the cell's span is its first value's. */
export function locateSpans(text: string, cell: MaterialCell): void {
  const values = cell.values ?? (cell.value === null ? [] : [cell.value]);
  cell.spans = values.map((v) => findSpan(text, v));
  cell.span = cell.spans[0] ?? null;
}

/** A list column's cell as values (the JSON array it holds); a single-valued cell as its one value. */
export function parseCell(raw: unknown, list: boolean | undefined): string[] {
  if (raw === null || raw === undefined) return [];
  if (list && typeof raw === 'string' && raw.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(raw);
      if (Array.isArray(parsed)) return parsed.map(String);
    } catch {
      // not JSON after all: the text is the value
    }
  }
  return [String(raw)];
}

/**
 * Renders the list columns of a query's result as arrays: an output column named like a list column of a
 * result table the SQL mentions, whose cells hold JSON arrays. Parsed from the JSON the table stores, never by
 * splitting text.
 */
export function renderListColumns(
  tables: readonly { table_name: string; columns: string }[],
  sql: string,
  result: { columns: string[]; rows: unknown[][] },
): void {
  const text = sql.toLowerCase();
  const listNames = new Set<string>();
  for (const t of tables) {
    if (!text.includes(t.table_name.toLowerCase())) continue;
    for (const c of JSON.parse(t.columns) as { column: string; list?: boolean }[]) if (c.list) listNames.add(c.column);
  }
  if (listNames.size === 0) return;
  const at = result.columns.flatMap((name, i) => (listNames.has(name) ? [i] : []));
  for (const row of result.rows) for (const i of at) if (typeof row[i] === 'string' && (row[i] as string).startsWith('[')) row[i] = parseCell(row[i], true);
}
