/**
 * Reading model answers: JSON objects (possibly fenced or wrapped in prose) and code blocks.
 * Malformed answers yield undefined, never an exception: a bad answer costs one candidate, not the job.
 */
export function parseJsonObject(text: string): Record<string, unknown> | undefined {
  const fenced = /```(?:json)?\s*([\s\S]*?)```/i.exec(text);
  const candidates = [fenced?.[1], text];
  for (const c of candidates) {
    if (!c) continue;
    const start = c.indexOf('{');
    const end = c.lastIndexOf('}');
    if (start < 0 || end <= start) continue;
    try {
      const value = JSON.parse(c.slice(start, end + 1)) as unknown;
      if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
    } catch {
      // try the next reading
    }
  }
  return undefined;
}

/** The source of the first code block (or the whole answer when it is bare code defining extract). */
export function parseCode(text: string): string | undefined {
  const block = /```(?:javascript|js|typescript|ts)?[^\n]*\n([\s\S]*?)```/i.exec(text);
  const code = (block ? block[1] : text).trim();
  return /function\s+extract\s*\(|(?:const|let|var)\s+extract\s*=/.test(code) ? code : undefined;
}

/** A value field as a list of non-empty strings, or null (absent / malformed). */
export function valueList(value: unknown): string[] | null {
  const list = Array.isArray(value) ? value : [value];
  const out = list
    .filter((v): v is string | number => typeof v === 'string' || typeof v === 'number')
    .map((v) => String(v).trim())
    .filter((v) => v !== '' && !/^(null|none|n\/a|unknown)$/i.test(v));
  return out.length > 0 ? out : null;
}
