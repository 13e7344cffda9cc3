/**
 * Which attribute names may be used. Names become object keys, map keys and SQL column names, so a name
 * that is also a property every object inherits (__proto__, constructor, toString, ...) or that looks like
 * an internal column (those start with "_", as _document_id does) is refused, whoever proposed it: a user
 * request, a label, or the model in open mode.
 */
const RESERVED = new Set([...Object.getOwnPropertyNames(Object.prototype), 'prototype', '__proto__'].map((n) => n.toLowerCase()));

const SHAPE = /^[\p{L}\p{N}_ -]{1,64}$/u;

/** Why `name` cannot be an attribute name, as a sentence; null when it can. */
export function attributeNameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return 'An attribute name is a string.';
  const n = name.trim();
  if (!SHAPE.test(n)) return `Attribute names are 1-64 letters, digits, spaces, "_" or "-"; got ${JSON.stringify(name).slice(0, 100)}.`;
  if (n.startsWith('_')) return `Attribute names may not start with "_": that prefix belongs to internal columns such as _document_id; got "${n}".`;
  if (RESERVED.has(n.toLowerCase())) return `"${n}" is reserved (a property every JavaScript object has); choose another attribute name.`;
  return null;
}
