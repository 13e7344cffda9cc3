/**
 * An attribute that ends empty is reported, not hidden: a labels-only extraction of real SWDE restaurant pages
 * (fixtures/swde/restaurant-gayot) where one attribute's labels match nothing any rule can find. The job
 * succeeds with the other column filled, and its result, the jobs API and the CLI all say which attribute got
 * no function, why, and what to do.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { chunkText } from '../src/ingest/chunk.js';
import { parseHtml } from '../src/ingest/html.js';
import { createLlm, llmConfigFromEnv } from '../src/llm/index.js';
import { createPipelineServices, runExtractionHere } from '../src/pipeline/service.js';
import { buildApp } from '../src/server/app.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { insertDocument } from '../src/store/documents.js';
import { setLabels } from '../src/store/labels.js';
import { swdeFixtures } from './swde-fixtures.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const site = path.join(swdeFixtures, 'restaurant-gayot');
let dir: string;
let file: string;
let db: Db;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-warnings-'));
  file = path.join(dir, 'e.db');
  db = openDatabase(file);
});
afterAll(() => {
  db?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('the empty-attribute warning', () => {
  it('names the attribute that got no function in the result, the API and the CLI', async () => {
    const corpusId = Number(db.prepare("INSERT INTO corpora (name) VALUES ('restaurants')").run().lastInsertRowid);
    for (const f of fs.readdirSync(path.join(site, 'pages')).sort()) {
      const raw = fs.readFileSync(path.join(site, 'pages', f));
      const parsed = parseHtml(raw);
      insertDocument(db, { corpusId, filename: f, contentHash: createHash('sha256').update(raw).digest('hex'), kind: 'html', raw, text: parsed.text, structure: {}, chunks: chunkText(parsed.text, 3000) });
    }
    setLabels(db, corpusId, [
      { document: '0000.htm', attribute: 'name', values: ['Einstein Bros Bagels'] },
      { document: '0001.htm', attribute: 'name', values: ['The Melting Pot'] },
      // A rating nobody can find on these pages: no rule can agree with such labels.
      { document: '0000.htm', attribute: 'rating', values: ['four stars'] },
      { document: '0001.htm', attribute: 'rating', values: ['three stars'] },
    ]);
    const settings = loadSettings({ databasePath: file });
    settings.sandbox = { ...settings.sandbox, workers: 1 };
    const services = createPipelineServices(db, settings, { llm: createLlm({ db, settings, config: llmConfigFromEnv({}) }) });
    let jobId: number;
    try {
      const run = await runExtractionHere(services, corpusId, { mode: 'closed', attributes: ['name', 'rating'] });
      jobId = run.jobId;
      expect(run.result.attributes.find((a) => a.name === 'name')!.filled).toBe(3);
      expect(run.result.warnings).toEqual([
        {
          code: 'attribute_no_function',
          attribute: 'rating',
          message: '"rating" got no extraction function: no rule agrees with the labels (2 labelled documents); label more documents, or configure a model. Its column is empty.',
        },
      ]);
    } finally {
      await services.close();
    }

    const app = await buildApp({ db, settings });
    try {
      const res = await app.inject({ method: 'GET', url: `/jobs/${jobId}` });
      const view = res.json();
      expect(view.state).toBe('succeeded');
      expect(view.outcome).toBe('succeeded_with_warnings');
      expect(view.warnings.map((w: { attribute: string }) => w.attribute)).toEqual(['rating']);
    } finally {
      await app.close();
    }

    const { stdout } = await promisify(execFile)(process.execPath, [path.join(root, 'bin', 'evaporate.js'), 'jobs', 'show', String(jobId), '--db', file], { cwd: root });
    expect(stdout).toContain('succeeded_with_warnings');
    expect(stdout).toContain('warning attribute_no_function: "rating" got no extraction function');
  });
});
