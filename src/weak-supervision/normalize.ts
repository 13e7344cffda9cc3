/**
 * The one place that decides when two extracted values are "the same", and the paper's text-F1 metric.
 * The label model compares votes with normalizeForComparison; evaluation scores with textF1.
 * Both must agree on unicode and punctuation handling, which is why they live together.
 */

/** What an extraction function may return (see src/sandbox/types.ts), plus loose inputs from elsewhere. */
export type RawValue = string | number | readonly (string | number | null | undefined)[] | null | undefined;

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
  ndash: '-',
  mdash: '-',
  hellip: '...',
  copy: '©',
  reg: '®',
  trade: '™',
};

/** Functions that read raw HTML often return entity-encoded text; "&amp;" must match "&". */
function decodeEntities(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&(#x[0-9a-f]{1,6}|#[0-9]{1,7}|[a-z]{2,8});/gi, (whole, body: string) => {
    if (body[0] === '#') {
      const code = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return NAMED_ENTITIES[body.toLowerCase()] ?? whole;
  });
}

const NON_ASCII = /[^\x00-\x7f]/;

/**
 * NFKC folds compatibility forms (full-width digits, ligatures, non-breaking spaces); decomposing and dropping
 * combining marks makes "Café" and "Cafe" compare equal, since pages and LLMs disagree on accents more often
 * than two different values differ only by one.
 */
function foldUnicode(text: string): string {
  // Most extracted values are plain ASCII, which every step below leaves unchanged.
  if (!NON_ASCII.test(text)) return text;
  return text.normalize('NFKD').replace(/\p{M}+/gu, '').normalize('NFKC');
}

const MONTHS: Record<string, number> = {
  jan: 1, january: 1, feb: 2, february: 2, mar: 3, march: 3, apr: 4, april: 4, may: 5, jun: 6, june: 6,
  jul: 7, july: 7, aug: 8, august: 8, sep: 9, sept: 9, september: 9, oct: 10, october: 10, nov: 11,
  november: 11, dec: 12, december: 12,
};

const pad = (n: number) => String(n).padStart(2, '0');

function isoDate(year: number, month: number, day?: number): string | null {
  if (month < 1 || month > 12 || year < 1000 || year > 2999) return null;
  if (day === undefined) return `${year}-${pad(month)}`;
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day < 1 || day > daysInMonth) return null;
  return `${year}-${pad(month)}-${pad(day)}`;
}

/**
 * A whole value that is a date becomes ISO (YYYY-MM-DD, or YYYY-MM without a day). Numeric day/month order
 * is read US-style (month first) unless the first number cannot be a month. A bare year stays a number.
 */
export function canonicalDate(text: string): string | null {
  const t = text.trim().toLowerCase().replace(/\s+/g, ' ');
  let m = /^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[t ]\d{1,2}:\d{2}.*)?$/.exec(t);
  if (m) return isoDate(+m[1], +m[2], +m[3]);
  m = /^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})$/.exec(t);
  if (m) {
    const a = +m[1];
    const b = +m[2];
    return a > 12 ? isoDate(+m[3], b, a) : isoDate(+m[3], a, b);
  }
  m = /^(\d{4})[-/](\d{1,2})$/.exec(t);
  if (m) return isoDate(+m[1], +m[2]);
  // "January 5, 2008", "Jan. 5th 2008", "January 2008", "Jan-2008"
  m = /^([a-z]{3,9})\.?[ -]?(?:(\d{1,2})(?:st|nd|rd|th)?,?[ -])?,? ?(\d{4})$/.exec(t);
  if (m && MONTHS[m[1]] !== undefined) return isoDate(+m[3], MONTHS[m[1]], m[2] === undefined ? undefined : +m[2]);
  // "5 January 2008", "5th of Jan 2008"
  m = /^(\d{1,2})(?:st|nd|rd|th)?(?: of)?[ -]([a-z]{3,9})\.?,?[ -](\d{4})$/.exec(t);
  if (m && MONTHS[m[2]] !== undefined) return isoDate(+m[3], MONTHS[m[2]], +m[1]);
  return null;
}

/**
 * A whole value that is a number becomes a plain decimal: thousands separators, a leading plus, a currency
 * sign and trailing fractional zeros go ("$1,234.50" -> "1234.5"). Done on the digits as text, so long
 * identifiers (ISBNs, phone numbers) keep every digit; leading zeros are kept because they are often part of
 * a code.
 */
export function canonicalNumber(text: string): string | null {
  const m = /^([+-]?)[$€£¥]?\s?((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)\s?%?$/.exec(text.trim());
  if (!m) return null;
  let digits = m[2].replace(/,/g, '');
  if (digits.startsWith('.')) digits = '0' + digits;
  if (digits.includes('.')) digits = digits.replace(/0+$/, '').replace(/\.$/, '');
  const percent = text.trim().endsWith('%') ? '%' : '';
  const sign = m[1] === '-' && /[1-9]/.test(digits) ? '-' : '';
  return sign + digits + percent;
}

/**
 * Hyphens, apostrophes and dots between letters or digits join ("978-1-60", "Lydia's", "U.S." read the same
 * with or without them); every other punctuation or symbol separates words.
 */
function stripPunctuation(text: string): string {
  return text
    .replace(/(?<=\d),(?=\d{3}(?!\d))/gu, '')
    .replace(/(?<=[\p{L}\p{N}])[-'’‘.‐‑‒–](?=[\p{L}\p{N}])/gu, '')
    .replace(/[\p{P}\p{S}]+/gu, ' ');
}

function collapseSpace(text: string): string {
  return text.replace(/\s+/gu, ' ').trim();
}

const DIGIT = /\d/;
const FOUR_DIGITS = /\d{4}/;

function normalizeOne(value: string): string {
  const folded = collapseSpace(foldUnicode(decodeEntities(value)).toLowerCase());
  if (folded === '') return '';
  // Dates and numbers need digits (a date, four in a row); most text values skip both parsers.
  if (DIGIT.test(folded)) {
    const date = FOUR_DIGITS.test(folded) ? canonicalDate(folded) : null;
    if (date !== null) return date;
    const number = canonicalNumber(folded);
    if (number !== null) return number;
  }
  return collapseSpace(stripPunctuation(folded));
}

/**
 * The comparison key of a value: two outputs are the same vote exactly when their keys are equal.
 * Multi-valued outputs (several authors) compare as the sorted set of their parts, so order and duplicates do
 * not matter. Returns null for an abstain: null, undefined, an empty list, or text with nothing left.
 */
export function normalizeForComparison(value: RawValue): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number') return Number.isFinite(value) ? normalizeOne(String(value)) : null;
  if (typeof value === 'string') {
    const key = normalizeOne(value);
    return key === '' ? null : key;
  }
  const parts = new Set<string>();
  for (const part of value) {
    if (part === null || part === undefined) continue;
    const key = normalizeOne(String(part));
    if (key !== '') parts.add(key);
  }
  if (parts.size === 0) return null;
  // Sorting by code unit keeps the key identical on every platform and locale.
  return [...parts].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).join(' | ');
}

const ARTICLES = new Set(['a', 'an', 'the']);

/**
 * The paper's answer normalization (SQuAD style): lower case, punctuation and the articles a/an/the removed,
 * whitespace collapsed; plus unicode folding so full-width or accented forms do not cost points. Punctuation is
 * removed, not replaced by a space, as in the reference metric ("978-1-60" -> "978160").
 */
export function textF1Tokens(value: string): string[] {
  const text = foldUnicode(decodeEntities(value)).toLowerCase().replace(/[\p{P}\p{S}]+/gu, '');
  return text.split(/\s+/u).filter((t) => t !== '' && !ARTICLES.has(t));
}

function tokenF1(predicted: string[], gold: string[]): number {
  if (predicted.length === 0 || gold.length === 0) return predicted.length === gold.length ? 1 : 0;
  const counts = new Map<string, number>();
  for (const t of gold) counts.set(t, (counts.get(t) ?? 0) + 1);
  let common = 0;
  for (const t of predicted) {
    const c = counts.get(t);
    if (c) {
      common++;
      counts.set(t, c - 1);
    }
  }
  if (common === 0) return 0;
  const precision = common / predicted.length;
  const recall = common / gold.length;
  return (2 * precision * recall) / (precision + recall);
}

function asText(value: RawValue): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  return value.filter((v) => v !== null && v !== undefined).join(' ');
}

/**
 * Token-overlap F1 between a prediction and the gold value(s), in [0, 1]. Several gold values (a book with two
 * authors) score as the best match against any one of them or against all of them together, so naming one
 * author or listing all of them both count. Both empty scores 1 (correctly found nothing); one empty scores 0.
 */
export function textF1(predicted: RawValue, gold: RawValue): number {
  const p = textF1Tokens(asText(predicted));
  const golds = Array.isArray(gold) ? gold.filter((g) => g !== null && g !== undefined) : gold === null || gold === undefined ? [] : [gold];
  if (golds.length <= 1) return tokenF1(p, textF1Tokens(asText(golds[0] ?? null)));
  let best = tokenF1(p, textF1Tokens(asText(golds)));
  for (const g of golds) best = Math.max(best, tokenF1(p, textF1Tokens(String(g))));
  return best;
}
