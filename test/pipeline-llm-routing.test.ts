import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { nativeAvailable } from '../src/llm/local/addon.js';
import { directConcurrency } from '../src/pipeline/direct.js';
import { pipelineLlm, sharedLocalProvider } from '../src/pipeline/service.js';
import { openDatabase } from '../src/store/database.js';
import { startFakeOpenAI, type FakeOpenAI } from './fake-openai.js';
import { gpt2VocabModel } from './native-fixtures.js';

const messages = [{ role: 'user' as const, content: 'What is the title of this page?' }];

describe('pipeline model routing', () => {
  let fake: FakeOpenAI;
  beforeAll(async () => {
    fake = await startFakeOpenAI();
    fake.on(/title/, 'remote answer');
    process.env.OPENAI_BASE_URL = fake.url;
    process.env.EVAPORATE_MODEL = 'fake-model';
  });
  afterAll(() => fake.close());

  it('sends direct extraction to the local engine and synthesis to the endpoint when a local model is set', async () => {
    const base = loadSettings({ databasePath: ':memory:' });
    const settings = { ...base, local: { ...base.local, modelDir: '/nonexistent/based-model' } };
    const llm = pipelineLlm(openDatabase(':memory:'), settings);
    const synthesis = await llm.complete({ role: 'synthesis', messages, maxTokens: 16 });
    expect(synthesis.texts[0]).toBe('remote answer');
    const before = fake.chatRequests.length;
    // the local model directory does not exist: the local engine, not the endpoint, must be the one to fail
    await expect(llm.complete({ role: 'extraction', messages, maxTokens: 16 })).rejects.toThrow();
    expect(fake.chatRequests.length).toBe(before);
  });

  it('sends every role to the endpoint when no local model is set', async () => {
    const settings = loadSettings({ databasePath: ':memory:' });
    const llm = pipelineLlm(openDatabase(':memory:'), settings);
    const before = fake.chatRequests.length;
    const extraction = await llm.complete({ role: 'extraction', messages, maxTokens: 16 });
    expect(extraction.texts[0]).toBe('remote answer');
    expect(fake.chatRequests.length).toBe(before + 1);
  });
});

describe.skipIf(!nativeAvailable())('pipeline model routing: the local engine is fed a full batch', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'local-route-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('lets maxBatch direct-extraction calls in at once, past the endpoint concurrency, and they decode together', async () => {
    const base = loadSettings({ databasePath: ':memory:' });
    const settings = {
      ...base,
      llm: { ...base.llm, concurrency: 2, requestsPerMinute: 3 },
      local: { ...base.local, modelDir: gpt2VocabModel(path.join(tmp, 'model')), maxBatch: 12, threads: 1 },
    };
    expect(directConcurrency(settings)).toBe(12);
    expect(directConcurrency(base)).toBe(4);
    const llm = pipelineLlm(openDatabase(':memory:'), settings);
    const docs = Array.from({ length: 12 }, (_, i) => `Page ${i}: the price of item ${i} is $${i * 3 + 1}. What is the price?`);
    const results = await Promise.all(docs.map((d) => llm.complete({ role: 'extraction', messages: [{ role: 'user', content: d }], maxTokens: 6 })));
    expect(results.every((r) => r.texts.length === 1 && r.model === 'local-based')).toBe(true);
    // the endpoint's limits (2 at a time, 3 a minute) would have let 2 in and then stalled for a minute
    const stats = sharedLocalProvider(settings.local).batchStats()!;
    expect(stats.maxRequestsPerStep).toBe(12);
    expect(stats.steps).toBeLessThan(12 * 6);
  });
});
