import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHtml } from '../src/ingest/html.js';
import { evaluateTable, readGold, scoreSpan, scoreTyped } from '../src/pipeline/eval.js';
import { materializeTable, columnsFor } from '../src/pipeline/materialize.js';
import { setLabels } from '../src/store/labels.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { textF1 } from '../src/weak-supervision/normalize.js';

const fixtures = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'fixtures', 'swde');
const page = (site: string, id: string) => parseHtml(fs.readFileSync(path.join(fixtures, site, 'pages', `${id}.htm`)));

describe('SWDE gold reader', () => {
  it('decodes the markup the gold was copied with, so a gold value is found in the text a function sees', () => {
    const gold = readGold(path.join(fixtures, 'nbaplayer-usatoday', 'groundtruth'));
    expect(gold.get('team')!.get('0000')).toEqual(['Boston Celtics']);
    expect(gold.get('height')!.get('0000')).toEqual(["Height: 6'10'"]);
    const text = page('nbaplayer-usatoday', '0000').text;
    for (const attribute of ['team', 'height', 'weight', 'name']) {
      for (const v of gold.get(attribute)!.get('0000')!) expect(text.replace(/\s+/g, ' '), attribute).toContain(v);
    }
  });
});

describe('scoring: span text F1 and typed accuracy, labelled documents apart', () => {
  let dir: string;
  let db: Db;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-eval-'));
    db = openDatabase(path.join(dir, 'e.db'));
  });
  afterAll(() => {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a date typed 2011-05-20 scores on the text it came from, not as a mismatch with "05/20/2011"', () => {
    const site = 'job-nettemps';
    const gold = readGold(path.join(fixtures, site, 'groundtruth'));
    const corpusId = Number(db.prepare("INSERT INTO corpora (name) VALUES ('jobs')").run().lastInsertRowid);
    const insert = db.prepare("INSERT INTO documents (corpus_id, filename, content_hash, kind, byte_size, text, status) VALUES (?, ?, ?, 'html', 0, ?, 'ready')");
    const ids = ['0000', '0001', '0002', '0003'].map((id) => ({ id, doc: Number(insert.run(corpusId, `${id}.htm`, id, page(site, id).text).lastInsertRowid) }));
    const attributeId = Number(db.prepare("INSERT INTO attributes (corpus_id, name, type, origin) VALUES (?, 'date_posted', 'date', 'user')").run(corpusId).lastInsertRowid);
    const columns = columnsFor([{ id: attributeId, name: 'date_posted', type: 'date' }]);
    // What a function returns on each page: the date after its label, as the page shows it.
    const cells = ids.map(({ id, doc }) => {
      const text = page(site, id).text;
      const m = /Date Posted:\s*(\S+)/.exec(text)!;
      return { documentId: doc, attributeId, value: id === '0003' ? 'Contract' : m[1], origin: 'functions' as const, confidence: 1, functions: ['f'], span: [m.index, m.index + m[0].length] as [number, number] };
    });
    materializeTable(db, { corpusId, table: 'jobs_t', jobId: null, columns, documentIds: ids.map((i) => i.doc), cells });
    setLabels(db, corpusId, [{ document: '0000.htm', attribute: 'date_posted', values: ['05/20/2011'] }]);

    const stored = db.prepare('SELECT date_posted FROM jobs_t ORDER BY _document_id').pluck().all();
    expect(stored[0]).toBe('2011-05-20');
    // The typed cell against the gold as text: what the old scorer compared, and why it read 0.
    expect(textF1(String(stored[0]), gold.get('date_posted')!.get('0000')!)).toBe(0);

    const report = evaluateTable(db, corpusId, new Map([['date_posted', gold.get('date_posted')!]]));
    const a = report.attributes[0];
    expect(a.labelled).toEqual({ f1: 1, typedAccuracy: 1, documents: 1 });
    expect(a.documents).toBe(3);
    // Two of the three unlabelled pages are right in both senses; the third is wrong in both.
    expect(a.f1).toBeCloseTo(2 / 3, 9);
    expect(a.typedAccuracy).toBeCloseTo(2 / 3, 9);
  });

  it('reads a leading label naming the attribute off both sides, and nothing else', () => {
    expect(scoreSpan('height', ["6'10'"], ["Height: 6'10'"])).toBe(1);
    expect(scoreSpan('height', ["Height: 6'10'"], ["6'10'"])).toBe(1);
    expect(scoreSpan('date_posted', ['05/20/2011'], ['Date Posted: 05/20/2011'])).toBe(1);
    // A label that is not the attribute's name is part of the value.
    expect(scoreSpan('weight', ['278'], ['Height: 278'])).toBeLessThan(1);
    expect(scoreTyped('publication_date', ['June 2010'], ['Jun 2010'], 'date')).toBe(1);
    expect(scoreTyped('publication_date', ['June 2010'], ['July 2010'], 'date')).toBe(0);
  });
});
