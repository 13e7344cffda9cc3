/**
 * Scripted model answers for pipeline tests, served by the fake OpenAI server over real HTTP.
 * The "model" reads the prompt like a model would: direct extraction copies the gold value of whichever
 * page's value appears in the passages it was shown (so retrieval matters), synthesis answers with a mix
 * of good functions (realistic model output) and bad ones: throwing, hanging, wrong, and malformed answers.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FakeChatRequest, FakeOpenAI } from './fake-openai.js';
import { readGold, type Gold } from '../src/pipeline/eval.js';

/** 40 real SWDE christianbook pages with their gold (fixtures/swde/README.md). */
export const swdeDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'swde', 'book-christianbook');
export const swdeGold: Gold = readGold(path.join(swdeDir, 'groundtruth'));

const fence = (src: string) => `Here is the function:\n\n\`\`\`javascript\n${src.trim()}\n\`\`\`\n`;

/** Good functions, written the way a capable model answers; two styles per attribute so they can agree. */
export const GOOD: Record<string, string[]> = {
  isbn_13: [
    `function extract(text, doc) {\n  const m = text.match(/ISBN-13:\\s*([0-9]{13})/);\n  return m ? m[1] : null;\n}`,
    `function extract(text, doc) {\n  const v = doc.textAfter('ISBN-13');\n  if (!v) return null;\n  const digits = v.replace(/[^0-9]/g, '');\n  return digits.length === 13 ? digits : null;\n}`,
  ],
  publisher: [
    `function extract(text, doc) {\n  const m = text.match(/\\nVendor:\\s*([^\\n]+)/);\n  return m ? m[1].trim() : null;\n}`,
    `// The product information block labels the publisher "Vendor".\nfunction extract(text, doc) {\n  const v = doc.textAfter('Vendor');\n  return v ? v.trim() : null;\n}`,
  ],
  publication_date: [
    `function extract(text, doc) {\n  const m = text.match(/Publication Date:\\s*([^\\n]+)/);\n  return m ? m[1].trim() : null;\n}`,
    `function extract(text, doc) {\n  const v = doc.textAfter(/^Publication Date:?$/i);\n  return v || null;\n}`,
  ],
  title: [
    `function extract(text, doc) {\n  const h = doc.textOf('h1');\n  return h ? h.trim() : null;\n}`,
    `function extract(text, doc) {\n  const el = doc.selectOne('h1');\n  if (!el) return null;\n  const t = el.text.replace(/\\s+/g, ' ').trim();\n  return t || null;\n}`,
  ],
  author: [
    `function extract(text, doc) {\n  const m = text.match(/\\n\\nBy: ([^\\n]+)/);\n  if (!m) return null;\n  return m[1].split(/,\\s*/).map((s) => s.trim()).filter(Boolean);\n}`,
    `function extract(text, doc) {\n  const lines = text.split('\\n');\n  for (const line of lines) {\n    if (line.startsWith('By: ')) return line.slice(4).split(', ');\n  }\n  return null;\n}`,
  ],
};

/** Bad answers every synthesis call may return: the pipeline must drop or outvote them. */
export const BAD = {
  throwing: `function extract(text, doc) {\n  const parts = text.split('ISBN');\n  return parts[7].trim().toUpperCase();\n}`,
  hanging: `function extract(text, doc) {\n  let i = 0;\n  while (text.length > 0) { i++; }\n  return String(i);\n}`,
  wrong: `function extract(text, doc) {\n  return 'Christianbook.com';\n}`,
  noCode: `I cannot write this function without more examples of the documents.`,
  syntax: `function extract(text, doc) {\n  return text.match(/Vendor: (.*/)[1];\n}`,
};

const task = (req: FakeChatRequest) => /TASK: ([a-z-]+)/.exec(req.prompt)?.[1];
const attributeOf = (req: FakeChatRequest) => /Attribute: ([a-z0-9_]+)/.exec(req.prompt)?.[1] ?? /attribute "([a-z0-9_]+)"/.exec(req.prompt)?.[1] ?? '';

export interface ScriptOptions {
  /** Page ids ("0003") whose direct extraction of publisher comes back wrong. */
  wrongPublisherPages?: string[];
  /** Page ids whose direct extraction of isbn_13 comes back as malformed JSON. */
  malformedIsbnPages?: string[];
}

/** The page whose gold value of `attribute` appears in the prompt (longest match wins). */
function pageShown(prompt: string, attribute: string): string | undefined {
  let best: [string, number] | undefined;
  for (const [page, values] of swdeGold.get(attribute) ?? []) {
    for (const v of values) if (v && prompt.includes(v) && (!best || v.length > best[1])) best = [page, v.length];
  }
  if (best) return best[0];
  // Pages without a value for this attribute: recognise them by their ISBN-13.
  for (const [page, values] of swdeGold.get('isbn_13') ?? []) if (values[0] && prompt.includes(values[0])) return page;
  return undefined;
}

export function scriptModel(fake: FakeOpenAI, options: ScriptOptions = {}): void {
  const synthesisCalls = new Map<string, number>();
  fake.on((req) => task(req) === 'extract-value', (req) => {
    const attribute = attributeOf(req);
    const page = pageShown(req.prompt.split('Document:')[1] ?? '', attribute);
    if (page && attribute === 'publisher' && options.wrongPublisherPages?.includes(page)) return '{"value": "Christian Book Distributors"}';
    if (page && attribute === 'isbn_13' && options.malformedIsbnPages?.includes(page)) return '{"value": "97816026';
    const values = page ? swdeGold.get(attribute)?.get(page) ?? [] : [];
    return JSON.stringify({ value: values.length === 0 ? null : values.length === 1 ? values[0] : values });
  });
  fake.on((req) => task(req) === 'write-function', (req, i) => {
    const attribute = attributeOf(req);
    const k = synthesisCalls.get(attribute) ?? 0;
    if (i === 0) synthesisCalls.set(attribute, k + 1);
    const good = GOOD[attribute] ?? [];
    const pool = [...good.map(fence), fence(BAD.throwing), fence(BAD.wrong), fence(BAD.hanging), BAD.noCode, fence(BAD.syntax), fence(good[0] ?? BAD.wrong)];
    return pool[(k * req.n + i) % pool.length];
  });
  fake.on((req) => task(req) === 'list-attributes', () =>
    JSON.stringify({ attributes: ['title', 'Authors', 'ISBN-13', 'publisher', 'vendor', 'publication_date', 'availability', 'number_of_pages_in_navigation_menu'] }),
  );
  fake.on((req) => task(req) === 'merge-synonyms', () => JSON.stringify({ groups: [['publisher', 'vendor']] }));
  fake.on((req) => task(req) === 'plausibility', (req) => (attributeOf(req) === 'availability' ? '{"plausible": false}' : '{"plausible": true}'));
}
