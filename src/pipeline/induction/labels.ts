/**
 * Labels as people and gold files give them, made into the values a rule should return. Gold copied from a page
 * keeps its label punctuation (": Hachette Book Group", "410-821-6358 |") and sometimes the label itself
 * ("Height: 6'10'"); a person types the bare value. Rules learn from the bare value either way, so what they
 * return never depends on how the labels were written.
 */

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Punctuation that separates a label from its value or cells from each other, never part of a value's edge. */
const LEADING = /^[\s:;,|>\u2013\u2014\u00b7\u2022]+/u;
const TRAILING = /[\s:;,|\u2013\u2014\u00b7\u2022]+$/u;

export function withoutLabelPunctuation(value: string): string {
  const out = value.replace(LEADING, '').replace(TRAILING, '');
  return out || value.trim();
}

/**
 * A leading "Label:" naming the attribute itself ("Height: 6'10'" for height, "Date Posted: 05/20/2011" for
 * date_posted) is the page's label, not the value.
 */
export function withoutAttributeLabel(attribute: string, value: string): string {
  const words = attribute.split(/[\s_-]+/).filter(Boolean).map(escape);
  if (!words.length) return value;
  const stripped = value.replace(new RegExp(`^\\s*${words.join('[\\s_-]*')}\\s*[:\\uFF1A]\\s*`, 'i'), '');
  return stripped.trim() ? stripped : value;
}

const SHARED_LABEL = /^([\p{L}][\p{L}\s.#/-]{0,30}?)\s*[:\uFF1A]\s+\S/u;

/**
 * A "Label:" that opens every labelled value (at least two documents) is the page's label too, whatever it is
 * called ("Posted: ...", "Ht: ..."); one value alone, or values that differ there, prove nothing.
 */
function sharedLabel(golds: string[][]): string | null {
  const firsts = golds.filter((g) => g.length).map((g) => SHARED_LABEL.exec(g[0])?.[1]?.trim() ?? null);
  if (firsts.length < 2 || firsts.some((f) => f === null)) return null;
  const label = firsts[0]!;
  return firsts.every((f) => f!.toLowerCase() === label.toLowerCase()) && golds.every((g) => g.every((v) => v.toLowerCase().startsWith(label.toLowerCase()))) ? label : null;
}

/** Every labelled document's values as the bare values rules should learn to return. */
export function cleanLabels(attribute: string, golds: string[][]): string[][] {
  const trimmed = golds.map((g) => g.map((v) => withoutLabelPunctuation(withoutAttributeLabel(attribute, v.trim()))).filter(Boolean));
  const label = sharedLabel(trimmed);
  if (!label) return trimmed;
  const re = new RegExp(`^\\s*${escape(label)}\\s*[:\\uFF1A]\\s*`, 'i');
  return trimmed.map((g) => g.map((v) => withoutLabelPunctuation(v.replace(re, '')) || v));
}
