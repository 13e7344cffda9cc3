import fs from 'node:fs';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { extractAttributeValues, extractFunctionSource, extractJson, extractList, extractValue } from '../src/llm/parse.js';

const dir = new URL('../fixtures/llm-outputs/', import.meta.url);
interface Case {
  file: string;
  kind: 'function' | 'json' | 'list' | 'attributes' | 'value';
  name?: string;
  input?: string;
  output?: unknown;
  attribute?: string;
  expected?: unknown;
}
const cases = JSON.parse(fs.readFileSync(new URL('cases.json', dir), 'utf8')) as Case[];

/** Compiles the extracted source and runs it, so "parsed" means "a function that works". */
function run(source: string, name: string, input: string): unknown {
  const context = vm.createContext({});
  vm.runInContext(`${source}\n;globalThis.__fn = ${name};`, context, { timeout: 1000 });
  return (context as { __fn: (t: string) => unknown }).__fn(input);
}

describe('parsing messy model output', () => {
  it('has a corpus of at least 20 outputs, every fixture covered by a case', () => {
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.txt'));
    expect(files.length).toBeGreaterThanOrEqual(20);
    expect(new Set(cases.map((c) => c.file))).toEqual(new Set(files));
  });

  for (const c of cases) {
    it(`${c.kind}: ${c.file}`, () => {
      const text = fs.readFileSync(new URL(c.file, dir), 'utf8');
      switch (c.kind) {
        case 'function': {
          const source = extractFunctionSource(text, c.name);
          expect(source, 'no function found').toBeDefined();
          expect(run(source!, c.name!, c.input!)).toEqual(c.output);
          break;
        }
        case 'json':
          expect(extractJson(text)).toEqual(c.expected);
          break;
        case 'list':
          expect(extractList(text)).toEqual(c.expected);
          break;
        case 'attributes':
          expect(extractAttributeValues(text)).toEqual(c.expected);
          break;
        case 'value':
          expect(extractValue(text, c.attribute!)).toEqual(c.expected);
          break;
      }
    });
  }

  it('says so when there is nothing to parse', () => {
    expect(extractFunctionSource('I cannot help with that.', 'extract_title')).toBeUndefined();
    expect(extractJson('no json here, just words')).toBeUndefined();
    expect(extractJson('{"a": 1}', 'array')).toBeUndefined();
    expect(extractList('')).toEqual([]);
    expect(extractAttributeValues('Sorry, the document does not say.')).toEqual({});
  });

  it('leaves string contents alone while repairing', () => {
    expect(extractJson("{'note': 'it\\'s // not a comment, # nor this', 'n': None,}")).toEqual({ note: "it's // not a comment, # nor this", n: null });
  });
});
