/**
 * What the LLM layer costs on top of the endpoint: calls/s through the raw `openai` client vs the full
 * stack (cache miss: hash, budget check, ledger and cache writes, limiter, timeout) against the local
 * fake server with zero model latency, the cache-hit path, and parser throughput on the fixture corpus.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { loadSettings } from '../src/config.js';
import { createLlm, llmConfigFromEnv, RateLimiter, setJobBudget } from '../src/llm/index.js';
import { extractAttributeValues, extractFunctionSource, extractJson, extractList } from '../src/llm/parse.js';
import { openDatabase } from '../src/store/database.js';
import { startFakeOpenAI } from '../test/fake-openai.js';
import { repoRoot, type BenchResult } from './lib.js';

const CALLS = 1000;
const PARALLEL = 8;

async function timed(n: number, parallel: number, call: (i: number) => Promise<unknown>): Promise<{ perSec: number; p50: number; p99: number }> {
  const lat: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) {
        const i = next++;
        const t = performance.now();
        await call(i);
        lat.push(performance.now() - t);
      }
    }),
  );
  const secs = (performance.now() - started) / 1000;
  lat.sort((a, b) => a - b);
  return { perSec: n / secs, p50: lat[Math.floor(lat.length * 0.5)]!, p99: lat[Math.floor(lat.length * 0.99)]! };
}

export default async function run(): Promise<BenchResult> {
  const fake = await startFakeOpenAI();
  fake.otherwise((req) => `value for ${req.prompt.length}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-llm-bench-'));
  const db = openDatabase(path.join(dir, 'bench.db'));
  try {
    const prompt = (i: number) => [{ role: 'user' as const, content: `Extract the title from document ${i}: ${'lorem ipsum '.repeat(200)}` }];
    const client = new OpenAI({ baseURL: fake.url, apiKey: 'x', maxRetries: 0 });
    await timed(50, PARALLEL, (i) => client.chat.completions.create({ model: 'fake-model', messages: prompt(-i - 1) })); // warm up
    const raw = await timed(CALLS, PARALLEL, (i) => client.chat.completions.create({ model: 'fake-model', messages: prompt(i), max_tokens: 64 }));

    const base = loadSettings({ databasePath: ':memory:' });
    const settings = { ...base, llm: { ...base.llm, cache: true, prices: '' } };
    setJobBudget(db, 1, { maxTokens: 1e12 });
    const llm = createLlm({
      db,
      settings,
      jobId: 1,
      config: llmConfigFromEnv({ OPENAI_BASE_URL: fake.url, EVAPORATE_MODEL: 'fake-model' }),
      limiter: new RateLimiter({ concurrency: PARALLEL, requestsPerMinute: 0, tokensPerMinute: 0, defaultMaxTokens: 64 }),
    });
    const miss = await timed(CALLS, PARALLEL, (i) => llm.complete({ messages: prompt(i + CALLS), maxTokens: 64 }));
    const hit = await timed(CALLS, PARALLEL, (i) => llm.complete({ messages: prompt(i + CALLS), maxTokens: 64 }));

    const fixtures = path.join(repoRoot, 'fixtures', 'llm-outputs');
    const texts = fs.readdirSync(fixtures).filter((f) => f.endsWith('.txt')).map((f) => fs.readFileSync(path.join(fixtures, f), 'utf8'));
    const rounds = 200;
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) {
      for (const t of texts) {
        extractFunctionSource(t);
        extractJson(t);
        extractList(t);
        extractAttributeValues(t);
      }
    }
    const parsePerSec = (rounds * texts.length) / ((performance.now() - t0) / 1000);

    const overheadMs = 1000 / miss.perSec - 1000 / raw.perSec;
    return {
      name: 'llm',
      rows: [
        { path: `raw openai client (${PARALLEL} parallel)`, calls_per_s: raw.perSec, p50_ms: raw.p50, p99_ms: raw.p99 },
        { path: 'full stack, cache miss', calls_per_s: miss.perSec, p50_ms: miss.p50, p99_ms: miss.p99 },
        { path: 'full stack, cache hit', calls_per_s: hit.perSec, p50_ms: hit.p50, p99_ms: hit.p99 },
        { path: 'parse (4 parsers per output)', calls_per_s: parsePerSec, p50_ms: null, p99_ms: null },
      ],
      notes: [
        `stack overhead per call on a miss ~${overheadMs.toFixed(2)} ms of wall time at ${PARALLEL} parallel (the endpoint's own latency is 0 here; real models take 100s of ms)`,
        `fake server requests: ${fake.chatRequests.length} (warm-up 50 + raw ${CALLS} + misses ${CALLS}; hits cost none)`,
      ],
      targets: { 'cache hits cost zero requests': fake.chatRequests.length === 50 + 2 * CALLS },
    };
  } finally {
    await fake.close();
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
