import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadSettings, type Settings } from '../src/config.js';
import {
  createLlm,
  jobLlmUsage,
  composeLlm,
  llmConfigFromEnv,
  RateLimiter,
  requireModels,
  routeByRole,
  setJobBudget,
  type CreateLlmOptions,
} from '../src/llm/index.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { costOf, loadPrices, priceFor } from '../src/llm/pricing.js';
import { backoffDelay } from '../src/llm/retry.js';
import { LlmError } from '../src/llm/errors.js';
import { OpenAiProvider } from '../src/llm/openai-provider.js';
import { startFakeOpenAI, type FakeOpenAI } from './fake-openai.js';

function testSettings(llm: Partial<Settings['llm']> = {}): Settings {
  const base = loadSettings({ databasePath: ':memory:' });
  return {
    ...base,
    llm: { ...base.llm, timeoutMs: 5000, maxRetries: 4, retryBaseMs: 5, retryMaxMs: 1000, cache: true, budgetTokens: 0, budgetUsd: 0, prices: '', ...llm },
  };
}

const env = (fake: FakeOpenAI) =>
  llmConfigFromEnv({ OPENAI_BASE_URL: fake.url, EVAPORATE_MODEL: 'fake-model', EVAPORATE_MODEL_SYNTHESIS: 'fake-coder' });

const ask = (content: string, extra: Record<string, unknown> = {}) => ({ messages: [{ role: 'user' as const, content }], ...extra });

describe('LLM layer against a real HTTP fake', () => {
  let fake: FakeOpenAI;
  let db: Db;
  let dir: string;
  const make = (opts: Partial<CreateLlmOptions> & { llm?: Partial<Settings['llm']> } = {}) =>
    createLlm({ db, settings: testSettings(opts.llm), config: env(fake), limiter: new RateLimiter({ concurrency: 8, requestsPerMinute: 0, tokensPerMinute: 0, defaultMaxTokens: 256 }), ...opts });

  beforeEach(async () => {
    fake = await startFakeOpenAI();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-llm-'));
    db = openDatabase(path.join(dir, 'e.db'));
  });
  afterEach(async () => {
    await fake.close();
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('routes roles to models and returns texts, usage and candidates', async () => {
    fake.on(/title/, (req, i) => `${req.model}:${i}`);
    const llm = make();
    const r = await llm.complete(ask('extract the title', { role: 'synthesis', n: 3, temperature: 0.7, jsonMode: true, stop: ['\n\n'] }));
    expect(r.texts).toEqual(['fake-coder:0', 'fake-coder:1', 'fake-coder:2']);
    expect(r.cached).toBe(false);
    expect(r.usage.promptTokens).toBeGreaterThan(0);
    const sent = fake.chatRequests[0]!;
    expect(sent).toMatchObject({ model: 'fake-coder', n: 3, temperature: 0.7, jsonMode: true, stop: ['\n\n'] });
    expect(sent.maxTokens).toBe(2048); // a default max_tokens is always sent, so budgets have a worst case
    const r2 = await llm.complete(ask('extract the title', { role: 'extraction' }));
    expect(r2.texts).toEqual(['fake-model:0']);
  });

  it('asks again for the missing candidates when a server ignores n', async () => {
    let k = 0;
    fake.on(/draft/, () => ({ texts: [`one of many ${k++}`] }));
    const r = await make({ jobId: 14 }).complete(ask('draft a function', { n: 3, temperature: 0.8 }));
    expect(r.texts).toEqual(['one of many 0', 'one of many 1', 'one of many 2']);
    expect(fake.chatRequests.map((q) => q.n)).toEqual([3, 2, 1]);
    expect(jobLlmUsage(db, 14)).toMatchObject({ calls: 1 });
    // The prompt was paid for three times, and the ledger says so.
    expect(r.usage.promptTokens % 3).toBe(0);
    expect(r.usage.promptTokens).toBeGreaterThan(0);
    expect(jobLlmUsage(db, 14).promptTokens).toBe(r.usage.promptTokens);
  });

  it('serves a rerun from the cache at zero calls, across a restart', async () => {
    fake.on(/author/, 'Jane Austen');
    const first = make({ jobId: 1 });
    await first.complete(ask('who is the author?', { temperature: 0 }));
    await first.complete(ask('who is the author?', { temperature: 0 }));
    expect(fake.chatRequests).toHaveLength(1);
    // A different temperature is a different request.
    await first.complete(ask('who is the author?', { temperature: 1 }));
    expect(fake.chatRequests).toHaveLength(2);

    db.close();
    const port = fake.port;
    await fake.close();
    fake = await startFakeOpenAI({ port }); // the same endpoint after a restart, on a new connection; nothing is scripted
    db = openDatabase(path.join(dir, 'e.db'));
    const again = make({ jobId: 2 });
    const r = await again.complete(ask('who is the author?', { temperature: 0 }));
    expect(r).toMatchObject({ texts: ['Jane Austen'], cached: true });
    await again.complete(ask('who is the author?', { temperature: 1 }));
    expect(fake.chatRequests).toHaveLength(0);
    const usage = jobLlmUsage(db, 2);
    expect(usage).toMatchObject({ calls: 2, cacheHits: 2, totalTokens: 0, costUsd: 0 });
    expect(jobLlmUsage(db, 1)).toMatchObject({ calls: 3, cacheHits: 1 });
    expect(jobLlmUsage(db, 1).promptTokens).toBeGreaterThan(0);
  });

  it('keeps endpoints apart: the same model name and prompt elsewhere is not served from this cache', async () => {
    fake.on(/capital/, 'Paris');
    await make({ jobId: 30 }).complete(ask('the capital?', { temperature: 0 }));
    const other = await startFakeOpenAI();
    try {
      other.on(/capital/, 'Lyon');
      const elsewhere = createLlm({ db, settings: testSettings(), config: env(other), limiter: new RateLimiter({ concurrency: 8, requestsPerMinute: 0, tokensPerMinute: 0, defaultMaxTokens: 256 }) });
      expect(await elsewhere.complete(ask('the capital?', { temperature: 0 }))).toMatchObject({ texts: ['Lyon'], cached: false });
      expect((await make({ jobId: 31 }).complete(ask('the capital?', { temperature: 0 }))).cached).toBe(true);
    } finally {
      await other.close();
    }
  });

  it('shares one call between identical requests in flight', async () => {
    fake.on(/same/, 'x').setLatency(30);
    const llm = make({ jobId: 3 });
    const results = await Promise.all(Array.from({ length: 10 }, () => llm.complete(ask('same prompt'))));
    expect(fake.chatRequests).toHaveLength(1);
    expect(results.filter((r) => r.cached)).toHaveLength(9);
    expect(jobLlmUsage(db, 3)).toMatchObject({ calls: 10, cacheHits: 9 });
  });

  it('stops a job before its token budget is exceeded, never after', async () => {
    fake.otherwise((req) => 'word '.repeat(40) + req.prompt.length);
    setJobBudget(db, 7, { maxTokens: 1000 });
    const llm = make({ jobId: 7 });
    let refused: unknown;
    let sent = 0;
    for (let i = 0; i < 50 && !refused; i++) {
      try {
        await llm.complete(ask(`document ${i}: some text to read`, { maxTokens: 100 }));
        sent++;
      } catch (err) {
        refused = err;
      }
    }
    expect(refused).toMatchObject({ code: 'budget_exceeded', status: 402 });
    expect((refused as Error).message).toMatch(/budget of 1000 tokens/);
    // The refused call never reached the server.
    expect(fake.chatRequests).toHaveLength(sent);
    expect(sent).toBeGreaterThan(3);
    const usage = jobLlmUsage(db, 7);
    expect(usage.totalTokens).toBeLessThanOrEqual(1000);
    expect(usage.calls).toBe(sent);
  });

  it('counts calls in flight against the budget, so parallel calls cannot overshoot it', async () => {
    fake.otherwise('ok').setLatency(20);
    const llm = make({ jobId: 8, budget: { maxTokens: 500 } });
    const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => llm.complete(ask(`q${i}`, { maxTokens: 100 }))));
    const ok = outcomes.filter((o) => o.status === 'fulfilled').length;
    expect(ok).toBeGreaterThan(0);
    expect(ok).toBeLessThan(20);
    expect(fake.chatRequests).toHaveLength(ok);
    expect(jobLlmUsage(db, 8).totalTokens).toBeLessThanOrEqual(500);
  });

  it('enforces a USD budget with the user price table', async () => {
    fake.otherwise('answer');
    const prices = JSON.stringify({ 'fake-model': { input: 1000, output: 1000 } }); // $0.001 per token
    const llm = make({ jobId: 9, budget: { maxUsd: 0.5 }, llm: { prices } });
    await llm.complete(ask('cheap', { maxTokens: 50 }));
    const usage = jobLlmUsage(db, 9);
    expect(usage.costUsd).toBeCloseTo((usage.totalTokens * 1000) / 1e6, 10);
    await expect(llm.complete(ask('expensive', { maxTokens: 1000 }))).rejects.toMatchObject({ code: 'budget_exceeded' });
    expect(fake.chatRequests).toHaveLength(1);
  });

  it('retries bursts of 429 (honouring Retry-After) and 500 and succeeds', async () => {
    fake.otherwise('done');
    fake.fault({ status: 429, retryAfter: 0.05 }, { times: 2 }).fault({ status: 500 }, { times: 2 });
    const retries: number[] = [];
    const llm = make({ jobId: 10, retry: { onRetry: (r) => retries.push(r.delayMs) } });
    const started = Date.now();
    const r = await llm.complete(ask('please'));
    expect(r.texts).toEqual(['done']);
    expect(fake.requests.map((q) => q.outcome)).toEqual(['status_429', 'status_429', 'status_500', 'status_500', 'ok']);
    expect(retries[0]).toBeGreaterThanOrEqual(50);
    expect(retries[1]).toBeGreaterThanOrEqual(50);
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    // One logical call in the ledger; the four failed requests before its success are counted.
    expect(jobLlmUsage(db, 10)).toMatchObject({ calls: 1, requests: 5, errors: 4, failedCalls: 0 });
  });

  it('honours Retry-After in each form a server sends: retry-after-ms, and an HTTP date', async () => {
    fake.otherwise('done');
    fake.fault({ status: 429, retryAfterMs: 120 }, { times: 1 }).fault({ status: 503, retryAfter: new Date(Date.now() + 3000).toUTCString() }, { times: 1 });
    const retries: number[] = [];
    const llm = make({ jobId: 14, llm: { retryMaxMs: 5000 }, retry: { onRetry: (r) => retries.push(r.delayMs) } });
    expect((await llm.complete(ask('wait for it'))).texts).toEqual(['done']);
    expect(retries[0]).toBeGreaterThanOrEqual(120);
    // an HTTP date has one-second resolution: the wait is what is left until then, 2-3 s less the first wait
    expect(retries[1]).toBeGreaterThanOrEqual(1000);
    expect(retries[1]).toBeLessThanOrEqual(3000);
  });

  it('retries malformed bodies and reset connections', async () => {
    fake.otherwise('fine').fault({ kind: 'malformed' }).fault({ kind: 'reset' });
    const r = await make().complete(ask('x'));
    expect(r.texts).toEqual(['fine']);
    expect(fake.requests.map((q) => q.outcome)).toEqual(['malformed', 'reset', 'ok']);
  });

  it('gives up after maxRetries, and fails at once on a Retry-After longer than allowed', async () => {
    fake.otherwise('never').fault({ status: 503 }, { times: 10 });
    await expect(make({ llm: { maxRetries: 2 }, jobId: 11 }).complete(ask('a'))).rejects.toMatchObject({ code: 'llm_server_error' });
    expect(fake.chatRequests).toHaveLength(3);
    expect(jobLlmUsage(db, 11)).toMatchObject({ calls: 1, requests: 3, errors: 3, failedCalls: 1 });
    fake.reset();
    fake.otherwise('x').fault({ status: 429, retryAfter: 3600 });
    await expect(make().complete(ask('b'))).rejects.toMatchObject({ code: 'llm_rate_limited' });
    expect(fake.chatRequests).toHaveLength(1);
  });

  it('does not retry a request the endpoint rejects', async () => {
    await expect(make().complete(ask('nothing matches this'))).rejects.toMatchObject({ code: 'llm_request_rejected' });
    expect(fake.chatRequests).toHaveLength(1);
  });

  it('cuts a hung server off at the timeout, and a retry then succeeds', async () => {
    fake.otherwise('late but fine').fault({ kind: 'hang' }, { times: 5 });
    const started = Date.now();
    await expect(make({ llm: { timeoutMs: 300, maxRetries: 0 } }).complete(ask('q'))).rejects.toMatchObject({ code: 'llm_timeout' });
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(3000);
    fake.reset();
    fake.otherwise('late but fine').fault({ kind: 'hang' });
    const r = await make({ llm: { timeoutMs: 300, maxRetries: 2 } }).complete(ask('q'));
    expect(r.texts).toEqual(['late but fine']);
    expect(fake.chatRequests).toHaveLength(2);
  });

  it('counts a call that succeeded on its third attempt as 3 requests, 2 errors; a cache hit sends none', async () => {
    fake.otherwise('third time').fault({ status: 503 }, { times: 2 });
    const llm = make({ jobId: 15 });
    expect((await llm.complete(ask('retry me'))).texts).toEqual(['third time']);
    expect((await llm.complete(ask('retry me'))).cached).toBe(true);
    expect(jobLlmUsage(db, 15)).toMatchObject({ calls: 2, cacheHits: 1, requests: 3, errors: 2, failedCalls: 0 });
  });

  it('names the limit and the setting when a slow endpoint runs out of time', async () => {
    fake.otherwise('too late').fault({ kind: 'delay', ms: 2000 });
    const err = await make({ llm: { timeoutMs: 250, maxRetries: 0 } }).complete(ask('slow')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'llm_timeout', details: { timeoutMs: 250, setting: 'EVAPORATE_LLM_TIMEOUT_MS' } });
    expect((err as Error).message).toMatch(/within 250 ms .*EVAPORATE_LLM_TIMEOUT_MS/);
  });

  it("gives the HTTP agent the timeout we set, not Node fetch's fixed 300 s headers timeout", async () => {
    // The agent's own timeout is the only limit here (client backstop and wrapper far away), so a server
    // that answers after 1.5 s fails at the agent's 300 ms: the setting reaches the transport.
    fake.otherwise('slow answer').fault({ kind: 'delay', ms: 1500 }, { times: 2 });
    const tight = new OpenAiProvider({ baseURL: fake.url, defaultMaxTokens: 16, clientTimeoutMs: 60_000, transportTimeoutMs: 300 });
    expect(tight.transport.headersTimeoutMs).toBe(300);
    expect(tight.transport.bodyTimeoutMs).toBe(300);
    const started = Date.now();
    const err = await tight.complete({ ...ask('wait'), model: 'fake-model' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'llm_timeout', retryable: true, details: { timeoutMs: 300 } });
    expect(Date.now() - started).toBeLessThan(1400);
    // The same delay within a longer agent timeout is simply waited for.
    const patient = new OpenAiProvider({ baseURL: fake.url, defaultMaxTokens: 16, clientTimeoutMs: 60_000, transportTimeoutMs: 5000 });
    expect((await patient.complete({ ...ask('wait'), model: 'fake-model' })).texts).toEqual(['slow answer']);
    await Promise.all([tight.transport.close(), patient.transport.close()]);
  });

  it('derives the transport timeouts from EVAPORATE_LLM_TIMEOUT_MS, past 300 s and down to no limit', () => {
    expect(new OpenAiProvider({ defaultMaxTokens: 16, clientTimeoutMs: 2 * 3_600_000 }).transport.headersTimeoutMs).toBe(7_200_000);
    expect(new OpenAiProvider({ defaultMaxTokens: 16, clientTimeoutMs: 0 }).transport.headersTimeoutMs).toBe(0);
  });

  it('holds the concurrency limit under 100 parallel requests', async () => {
    fake.otherwise((req) => `echo ${req.prompt}`).setLatency(15);
    const limiter = new RateLimiter({ concurrency: 5, requestsPerMinute: 0, tokensPerMinute: 0, defaultMaxTokens: 256 });
    const llm = make({ limiter });
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => llm.complete(ask(`doc ${i}`))));
    expect(results.map((r) => r.texts[0])).toEqual(Array.from({ length: 100 }, (_, i) => `echo doc ${i}`));
    expect(fake.chatRequests).toHaveLength(100);
    expect(fake.maxInFlight).toBe(5);
    expect(limiter.inFlight).toBe(0);
  });

  it('paces requests per minute once the bucket is spent', async () => {
    fake.otherwise('ok');
    const limiter = new RateLimiter({ concurrency: 50, requestsPerMinute: 600, tokensPerMinute: 0, defaultMaxTokens: 16 });
    const llm = make({ limiter, llm: { cache: false } });
    const started = Date.now();
    // 600/min = one every 100 ms after the first 600; start with an empty bucket by spending it.
    for (let i = 0; i < 600; i++) (await limiter.acquire(0))();
    await Promise.all(Array.from({ length: 5 }, (_, i) => llm.complete(ask(`p${i}`))));
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(fake.chatRequests).toHaveLength(5);
  });

  it('paces tokens per minute by each call\'s worst case (prompt + max_tokens)', async () => {
    fake.otherwise('ok');
    const limiter = new RateLimiter({ concurrency: 50, requestsPerMinute: 0, tokensPerMinute: 60_000, defaultMaxTokens: 16 });
    const llm = make({ limiter, llm: { cache: false } });
    (await limiter.acquire(60_000))(); // spend the bucket: from here on 1,000 tokens per second
    const started = Date.now();
    await Promise.all(Array.from({ length: 3 }, (_, i) => llm.complete(ask(`t${i}`, { maxTokens: 90 }))));
    // Each call reserves ~100 tokens (a few prompt tokens + 90), so three need ~0.3 s of refill.
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(fake.chatRequests).toHaveLength(3);
  });

  it('starts without a model and fails a call at once naming the variables to set', async () => {
    const config = llmConfigFromEnv({});
    const llm = createLlm({ db, settings: testSettings(), config });
    await expect(llm.complete(ask('hi', { role: 'synthesis' }))).rejects.toMatchObject({ code: 'llm_not_configured' });
    await expect(llm.complete(ask('hi', { role: 'synthesis' }))).rejects.toThrow(/EVAPORATE_MODEL_SYNTHESIS or EVAPORATE_MODEL.*OPENAI_API_KEY/);
    const local = llmConfigFromEnv({ OPENAI_BASE_URL: 'http://127.0.0.1:1/v1', EVAPORATE_MODEL_SCHEMA: 'm' });
    expect(local.missing.schema).toEqual([]);
    expect(local.missing.extraction).toEqual(['EVAPORATE_MODEL_EXTRACTION or EVAPORATE_MODEL']);
  });

  it('lets a job check its roles up front, and routes roles to different stacks', async () => {
    const schemaOnly = createLlm({ db, settings: testSettings(), config: llmConfigFromEnv({ OPENAI_API_KEY: 'k', EVAPORATE_MODEL_SCHEMA: 's' }) });
    expect(() => requireModels(schemaOnly, ['schema'])).not.toThrow();
    expect(() => requireModels(schemaOnly, ['schema', 'synthesis'])).toThrow(/"synthesis" model.*EVAPORATE_MODEL_SYNTHESIS or EVAPORATE_MODEL/);
    fake.otherwise((req) => `remote ${req.model}`);
    const local = {
      name: 'local-test',
      async complete() {
        return { texts: ['local answer'], usage: { promptTokens: 3, completionTokens: 2 }, model: 'tiny', latencyMs: 1, cached: false };
      },
    };
    const settings = testSettings();
    const llm = routeByRole({
      synthesis: make({ jobId: 12 }),
      extraction: composeLlm(local, { db, settings, jobId: 12, models: { extraction: 'tiny' } }),
    });
    expect((await llm.complete(ask('a', { role: 'synthesis' }))).texts).toEqual(['remote fake-coder']);
    expect((await llm.complete(ask('a', { role: 'extraction' }))).texts).toEqual(['local answer']);
    expect(llm.missingFor?.('extraction')).toEqual([]);
    expect(llm.missingFor?.('schema')).toEqual(['EVAPORATE_MODEL_SCHEMA']);
    expect((await llm.complete(ask('a', { role: 'extraction' }))).cached).toBe(true);
    const byModel = jobLlmUsage(db, 12).byModel.map((m) => [m.model, m.calls, m.cacheHits]);
    expect(byModel).toEqual([['fake-coder', 1, 0], ['tiny', 2, 1]]);
  });

  it('stops at once when the caller aborts, without retrying', async () => {
    fake.otherwise('x').fault({ kind: 'hang' }, { times: 5 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    await expect(make({ jobId: 13 }).complete(ask('q'), { signal: controller.signal })).rejects.toMatchObject({ code: 'llm_aborted' });
    expect(fake.chatRequests).toHaveLength(1);
    expect(jobLlmUsage(db, 13)).toMatchObject({ calls: 1, requests: 1, errors: 1, failedCalls: 1 });
  });
});

describe('prices and backoff', () => {
  it('prices dated snapshots by their longest listed prefix, unknown models at zero, with user overrides', () => {
    const table = loadPrices('');
    expect(priceFor(table, 'gpt-4o-mini-2024-07-18')).toEqual(table['gpt-4o-mini']);
    expect(priceFor(table, 'llama-3.1-8b-instruct')).toEqual({ input: 0, output: 0 });
    expect(costOf(table, 'gpt-4o', { promptTokens: 1_000_000, completionTokens: 100_000 })).toBeCloseTo(2.5 + 1, 10);
    const file = path.join(os.tmpdir(), `prices-${process.pid}.json`);
    fs.writeFileSync(file, JSON.stringify({ 'llama-3.1': { input: 0.2, output: 0.2 }, '*': { input: 1, output: 1 } }));
    const custom = loadPrices(file);
    expect(priceFor(custom, 'llama-3.1-8b-instruct')).toEqual({ input: 0.2, output: 0.2 });
    expect(priceFor(custom, 'mystery')).toEqual({ input: 1, output: 1 });
    fs.rmSync(file);
    expect(() => loadPrices('{"m": {"input": -1, "output": 0}}')).toThrow(/non-negative/);
    expect(() => loadPrices('{not json')).toThrow(/not valid JSON/);
  });

  it('backs off exponentially with jitter, and never earlier than Retry-After', () => {
    const opts = { maxRetries: 6, baseDelayMs: 100, maxDelayMs: 1000, random: () => 0.9999 };
    const err = new LlmError('llm_server_error', 'x', 502, true);
    expect([0, 1, 2, 3, 4].map((a) => Math.round(backoffDelay(a, err, opts)!))).toEqual([100, 200, 400, 800, 1000]);
    expect(backoffDelay(3, err, { ...opts, random: () => 0 })).toBe(0);
    const limited = new LlmError('llm_rate_limited', 'x', 429, true, 700);
    expect(backoffDelay(0, limited, { ...opts, random: () => 0 })).toBe(700);
    expect(backoffDelay(0, new LlmError('llm_rate_limited', 'x', 429, true, 5000), opts)).toBeUndefined();
  });
});
