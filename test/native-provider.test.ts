import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encoderFor } from '../src/llm/tokens.js';
import { LocalEngine } from '../src/llm/local/engine.js';
import { generate } from '../src/llm/local/generate.js';
import { jrtPrompt, splitPrompt } from '../src/llm/local/prompt.js';
import { LocalBasedProvider } from '../src/llm/local/provider.js';
import { findStop, sampleToken, seededRandom } from '../src/llm/local/sampling.js';
import { fixtureDir } from './native-fixtures.js';

// the tiny fixture's architecture with the full GPT-2 vocabulary, random weights
const config = { ...JSON.parse(fs.readFileSync(path.join(fixtureDir, 'tiny-based', 'config.json'), 'utf8')), vocab_size: 50257 };
const engine = LocalEngine.random(config, 3, 2);

describe('sampling and stop strings', () => {
  it('greedy picks the maximum; temperature sampling is seeded and top-k bounded', () => {
    const logits = Float32Array.of(0.1, 3, -1, 2.9, 0);
    expect(sampleToken(logits, { temperature: 0 }, Math.random)).toBe(1);
    const draw = (seed: number) => {
      const r = seededRandom(seed);
      return Array.from({ length: 50 }, () => sampleToken(logits, { temperature: 1, topK: 2 }, r));
    };
    expect(draw(7)).toEqual(draw(7));
    expect(new Set(draw(7))).toEqual(new Set([1, 3]));
  });
  it('cuts at the earliest stop string, also one completed by the newest token', () => {
    expect(findStop('Price: $12\nNext', ['\n', 'Next'])).toBe(10);
    expect(findStop('abc', ['x'])).toBe(-1);
    expect(findStop('hello wor', ['lo w'], 6)).toBe(3); // the match ends in the new text
    expect(findStop('hello wor', ['lo w'], 7)).toBe(-1); // wholly in text already checked
  });
});

describe('prompts', () => {
  it('splits instructions from the question and writes the context twice for JRT', () => {
    const parts = splitPrompt([
      { role: 'system', content: 'Extract fields.' },
      { role: 'user', content: 'Document: <b>Dune</b>' },
      { role: 'user', content: 'What is the title?' },
    ]);
    expect(parts.context).toBe('Extract fields.\n\nDocument: <b>Dune</b>\n\n');
    expect(parts.question).toBe('What is the title?\n\nAnswer:');
    expect(jrtPrompt(parts).context).toBe(parts.context + parts.context);
    const single = jrtPrompt(splitPrompt([{ role: 'user', content: 'Doc. Q?' }]));
    expect(single.question).toBe('Doc. Q?\n\nDoc. Q?\n\nAnswer:');
  });
});

describe('local-based provider', () => {
  const messages = [
    { role: 'system' as const, content: 'You extract attributes from book pages.' },
    { role: 'user' as const, content: 'Title: The Hobbit. Author: J.R.R. Tolkien.' },
    { role: 'user' as const, content: 'Who is the author?' },
  ];

  it('generates deterministic greedy text, n candidates, within maxTokens', async () => {
    const provider = new LocalBasedProvider({ engine, maxNewTokens: 8, jrtPrompt: true, prefixCacheEntries: 4 });
    const a = await provider.complete({ messages, maxTokens: 6, n: 2 });
    expect(a.texts).toHaveLength(2);
    expect(a.texts[0]).toBe(a.texts[1]); // greedy: both candidates agree
    expect(a.usage.completionTokens).toBeLessThanOrEqual(12);
    expect(a.usage.promptTokens).toBeGreaterThan(20);
    const enc = encoderFor('gpt2');
    expect(enc.encode(a.texts[0], [], []).length).toBeLessThanOrEqual(6);
    // a second question about the same context reuses its cached state and still gives the same answer
    const b = await provider.complete({ messages, maxTokens: 6 });
    expect(b.texts[0]).toBe(a.texts[0]);
    expect(a.model).toBe('local-based');
  });

  it('matches a direct engine run of the same prompt (the cached context changes nothing)', async () => {
    const provider = new LocalBasedProvider({ engine, maxNewTokens: 5, jrtPrompt: false, prefixCacheEntries: 2 });
    const viaProvider = await provider.complete({ messages, maxTokens: 5 });
    const enc = encoderFor('gpt2');
    const parts = splitPrompt(messages);
    const s = engine.newState();
    await engine.forward([{ state: s, tokens: Int32Array.from(enc.encode(parts.context, [], [])), prefixLen: 1 << 30 }]);
    const logits = await engine.forward([{ state: s, tokens: Int32Array.from(enc.encode(parts.question, [], [])) }]);
    const direct = await generate(engine, enc, s, logits, { temperature: 0, maxTokens: 5 });
    expect(viaProvider.texts[0]).toBe(direct.texts[0]);
  });

  it('honours stop strings and temperature sampling', async () => {
    const provider = new LocalBasedProvider({ engine, maxNewTokens: 12, jrtPrompt: false, prefixCacheEntries: 2 });
    const free = await provider.complete({ messages, maxTokens: 12 });
    const probe = free.texts[0].slice(2, 4);
    expect(probe).toHaveLength(2);
    const stopped = await provider.complete({ messages, maxTokens: 12, stop: [probe] });
    expect(stopped.texts[0]).toBe(free.texts[0].slice(0, free.texts[0].indexOf(probe)));
    const hot = await provider.complete({ messages, maxTokens: 12, temperature: 1.5, n: 3 });
    expect(hot.texts).toHaveLength(3);
  });

  it('says clearly when no model is configured', async () => {
    const provider = new LocalBasedProvider({ maxNewTokens: 4, jrtPrompt: false, prefixCacheEntries: 1 });
    await expect(provider.complete({ messages })).rejects.toMatchObject({ code: 'local_model_not_configured', status: 503 });
  });
});

describe('local-based from settings', () => {
  it('builds from EVAPORATE_LOCAL_* defaults and reports the missing model directory', async () => {
    const { loadSettings } = await import('../src/config.js');
    const { localBasedFromSettings } = await import('../src/llm/local/provider.js');
    const settings = loadSettings();
    expect(settings.local).toMatchObject({ maxNewTokens: 64, jrtPrompt: true, prefixCacheEntries: 16 });
    const provider = localBasedFromSettings({ ...settings.local, modelDir: '' });
    expect(provider.name).toBe('local-based');
    await expect(provider.complete({ messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ code: 'local_model_not_configured' });
    const bad = localBasedFromSettings({ ...settings.local, modelDir: path.join(fixtureDir, 'does-not-exist') });
    await expect(bad.complete({ messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ code: 'config_missing', status: 400 });
  });
});
