import OpenAI from 'openai';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeOpenAI, type FakeOpenAI } from './fake-openai.js';

describe('fake OpenAI-compatible server', () => {
  let fake: FakeOpenAI;
  let client: OpenAI;
  beforeEach(async () => {
    fake = await startFakeOpenAI({ models: ['m1', 'm2'] });
    client = new OpenAI({ baseURL: fake.url, apiKey: 'test', maxRetries: 0, timeout: 2000 });
  });
  afterEach(async () => {
    await fake.close();
  });

  it('answers the real client by prompt content, with usage and n candidates', async () => {
    fake.on(/capital of France/, 'Paris').on((r) => r.n > 1, (_r, i) => `candidate ${i}`);
    const one = await client.chat.completions.create({ model: 'm1', messages: [{ role: 'user', content: 'The capital of France?' }] });
    expect(one.choices[0]!.message.content).toBe('Paris');
    expect(one.usage!.prompt_tokens).toBeGreaterThan(0);
    expect(one.usage!.completion_tokens).toBeGreaterThan(0);
    const many = await client.chat.completions.create({ model: 'm1', n: 3, messages: [{ role: 'user', content: 'write code' }] });
    expect(many.choices.map((c) => c.message.content)).toEqual(['candidate 0', 'candidate 1', 'candidate 2']);
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['m1', 'm2']);
    expect(fake.chatRequests).toHaveLength(2);
    expect(fake.chatRequests[1]!.n).toBe(3);
  });

  it('rejects prompts no rule matches, loudly', async () => {
    await expect(client.chat.completions.create({ model: 'm1', messages: [{ role: 'user', content: 'nobody expects this' }] })).rejects.toThrow(/no rule matches/);
  });

  it('serves faults on demand before answers', async () => {
    fake.otherwise('fine');
    fake.fault({ status: 429, retryAfter: 2 }).fault({ status: 500 }).fault({ kind: 'malformed' }).fault({ kind: 'reset' });
    const call = () => fetch(`${fake.url}/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm1', messages: [{ role: 'user', content: 'x' }] }) });
    const r429 = await call();
    expect(r429.status).toBe(429);
    expect(r429.headers.get('retry-after')).toBe('2');
    expect((await call()).status).toBe(500);
    const malformed = await call();
    expect(malformed.status).toBe(200);
    await expect(malformed.json()).rejects.toThrow();
    await expect(call()).rejects.toThrow();
    const ok = (await (await call()).json()) as { choices: { message: { content: string } }[] };
    expect(ok.choices[0]!.message.content).toBe('fine');
    expect(fake.requests.map((r) => r.outcome)).toEqual(['status_429', 'status_500', 'malformed', 'reset', 'ok']);
  });

  it('can hang a request until the client gives up, and records in-flight peaks', async () => {
    fake.otherwise('ok').fault({ kind: 'hang' });
    const hung = client.chat.completions.create({ model: 'm1', messages: [{ role: 'user', content: 'x' }] }, { timeout: 200 });
    await expect(hung).rejects.toThrow(/timed out/i);
    fake.setLatency(50);
    await Promise.all(Array.from({ length: 5 }, () => client.chat.completions.create({ model: 'm1', messages: [{ role: 'user', content: 'y' }] })));
    expect(fake.maxInFlight).toBeGreaterThanOrEqual(2);
    expect(fake.inFlight).toBe(0);
  });
});
