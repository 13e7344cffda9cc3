import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSettings } from '../src/config.js';
import { pipelineLlm } from '../src/pipeline/service.js';
import { openDatabase } from '../src/store/database.js';
import { startFakeOpenAI, type FakeOpenAI } from './fake-openai.js';

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
