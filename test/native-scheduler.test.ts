import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { nativeAvailable } from '../src/llm/local/addon.js';
import { LocalEngine, type StepInfo } from '../src/llm/local/engine.js';
import { generate } from '../src/llm/local/generate.js';
import { LocalBasedProvider } from '../src/llm/local/provider.js';
import { BatchScheduler } from '../src/llm/local/scheduler.js';
import { encoderFor } from '../src/llm/tokens.js';
import type { NativeSequence, NativeState } from '../src/llm/local/addon.js';
import { fixtureDir } from './native-fixtures.js';

const enc = encoderFor('gpt2');

/** A stand-in engine: row r of a step's logits is filled with the last token of the row's sequence (or its token). */
function fakeForward(width: number, opts: { delayMs?: number; fail?: (batch: NativeSequence[]) => Error | undefined } = {}) {
  const calls: { batch: NativeSequence[]; allLogits: boolean }[] = [];
  const fn = async (batch: NativeSequence[], allLogits: boolean) => {
    calls.push({ batch, allLogits });
    await new Promise((r) => setTimeout(r, opts.delayMs ?? 1));
    const err = opts.fail?.(batch);
    if (err) throw err;
    const rows = allLogits ? batch.flatMap((s) => Array.from(s.tokens)) : batch.map((s) => s.tokens[s.tokens.length - 1]);
    const out = new Float32Array(rows.length * width);
    rows.forEach((v, i) => out.fill(v, i * width, (i + 1) * width));
    return out;
  };
  return { fn, calls };
}
const st = (): NativeState => ({ position: 0 });
const toks = (...t: number[]) => Int32Array.from(t);

describe('batch scheduler (stand-in engine)', () => {
  it('merges forwards that wait into one call and hands each caller its own rows', async () => {
    const f = fakeForward(4);
    const s = new BatchScheduler(f.fn, 4, 100);
    const a = s.submit([{ state: st(), tokens: toks(1, 2, 3) }]);
    const b = s.submit([{ state: st(), tokens: toks(7) }, { state: st(), tokens: toks(8) }]);
    const c = s.submit([{ state: st(), tokens: toks(5, 6) }], true);
    const [ra, rb, rc] = await Promise.all([a, b, c]);
    expect(Array.from(ra)).toEqual([3, 3, 3, 3]);
    expect(Array.from(rb)).toEqual([7, 7, 7, 7, 8, 8, 8, 8]);
    expect(Array.from(rc)).toEqual([5, 5, 5, 5, 6, 6, 6, 6]);
    // every-token logits cannot share a call with last-token ones
    expect(f.calls.map((c) => [c.batch.length, c.allLogits])).toEqual([[3, false], [1, true]]);
    expect(s.stats()).toMatchObject({ steps: 2, requests: 3, sequences: 4, maxSequencesPerStep: 3, meanSequencesPerStep: 2 });
  });

  it('keeps to the sequence limit and the token budget: decodes first, one over-budget prefill, no overtaking', async () => {
    const f = fakeForward(1);
    const s = new BatchScheduler(f.fn, 1, 10_000, { maxSequences: 4, maxTokens: 100 });
    const long = Int32Array.from({ length: 150 }, (_, i) => i);
    const p = [
      s.submit([{ state: st(), tokens: long }]), // over the budget alone: runs, as the step's first prefill
      s.submit([{ state: st(), tokens: toks(1, 2) }]), // would pass the budget after the long one: next step
      s.submit([{ state: st(), tokens: toks(9) }]), // decodes go first
      s.submit([{ state: st(), tokens: toks(9) }]),
      s.submit([{ state: st(), tokens: Int32Array.from({ length: 10 }, () => 3) }]), // behind the one that waits
    ];
    await Promise.all(p);
    expect(f.calls.map((c) => c.batch.map((q) => q.tokens.length))).toEqual([[1, 1, 150], [2, 10]]);
    const wide = Array.from({ length: 6 }, () => ({ state: st(), tokens: toks(4) }));
    await Promise.all([s.submit(wide), s.submit([{ state: st(), tokens: toks(4) }])]);
    // a request wider than the limit still runs, alone
    expect(f.calls.slice(2).map((c) => c.batch.length)).toEqual([6, 1]);
  });

  it('never puts a state twice in one call and runs its forwards in submission order', async () => {
    const f = fakeForward(1);
    const s = new BatchScheduler(f.fn, 1, 100);
    const shared = st();
    const first = s.submit([{ state: shared, tokens: toks(1, 2) }]);
    const second = s.submit([{ state: shared, tokens: toks(3) }]); // a decode: would go first, but must follow the prefill
    const other = s.submit([{ state: st(), tokens: toks(4) }]);
    await Promise.all([first, second, other]);
    expect(f.calls.map((c) => c.batch.map((q) => Array.from(q.tokens)))).toEqual([[[4], [1, 2]], [[3]]]);
    await expect(s.submit([{ state: shared, tokens: toks(1) }, { state: shared, tokens: toks(2) }])).rejects.toMatchObject({ code: 'bad_argument' });
  });

  it('rejects a bad request alone, before it can fail its batch-mates', async () => {
    const f = fakeForward(1);
    const s = new BatchScheduler(f.fn, 1, 50);
    const good = s.submit([{ state: st(), tokens: toks(1) }]);
    const bad = s.submit([{ state: st(), tokens: toks(1, 50) }]);
    const empty = s.submit([{ state: st(), tokens: new Int32Array(0) }]);
    await expect(bad).rejects.toMatchObject({ code: 'token_out_of_range', status: 400 });
    await expect(empty).rejects.toMatchObject({ code: 'empty_input' });
    expect(Array.from(await good)).toEqual([1]);
  });

  it('a failed step rejects every caller in it, and the next step runs as usual', async () => {
    const f = fakeForward(1, { fail: (b) => (b.some((q) => q.tokens[0] === 13) ? Object.assign(new Error('device lost'), { code: 'engine_failed', status: 500 }) : undefined) });
    const s = new BatchScheduler(f.fn, 1, 100);
    const steps: StepInfo[] = [];
    s.onStep((x) => steps.push(x));
    const doomed = [s.submit([{ state: st(), tokens: toks(1) }]), s.submit([{ state: st(), tokens: toks(13) }]), s.submit([{ state: st(), tokens: toks(2, 3) }])];
    const outcomes = await Promise.allSettled(doomed);
    for (const o of outcomes) {
      expect(o.status).toBe('rejected');
      expect((o as PromiseRejectedResult).reason).toMatchObject({ code: 'engine_failed', status: 500, message: expect.stringMatching(/device lost \(in a batched forward of 3 requests, 3 sequences/) });
    }
    expect(Array.from(await s.submit([{ state: st(), tokens: toks(5) }]))).toEqual([5]);
    expect(steps.map((x) => x.error ?? 'ok')).toEqual(['device lost', 'ok']);
    expect(s.stats()).toMatchObject({ steps: 2, failedSteps: 1 });
  });
});

// the tiny fixture's architecture with the full GPT-2 vocabulary, random weights
const config = { ...JSON.parse(fs.readFileSync(path.join(fixtureDir, 'tiny-based', 'config.json'), 'utf8')), vocab_size: 50257 };
const prompts = Array.from({ length: 8 }, (_, i) => Int32Array.from(enc.encode(`Document ${i}: the ${['red', 'green', 'blue', 'old'][i % 4]} book costs $${i * 7 + 3}.${' More text.'.repeat(i)}`, [], [])));

describe.skipIf(!nativeAvailable())('continuous batching on the native engine', () => {
  const engine = LocalEngine.random(config, 3, 2);
  /** One request: read the prompt, then decode greedily. */
  const request = async (e: LocalEngine, prompt: Int32Array, maxTokens: number, temperature = 0) => {
    const state = e.newState();
    const logits = await e.forward([{ state, tokens: prompt }]);
    return (await generate(e, enc, state, logits, { temperature, maxTokens, seed: prompt.length })).texts[0];
  };
  const oneAtATime = async (e: LocalEngine, maxTokens: (i: number) => number, temperature = 0) => {
    const out: string[] = [];
    for (const [i, p] of prompts.entries()) out.push(await request(e, p, maxTokens(i), temperature));
    return out;
  };

  it('8 concurrent greedy generations give the texts of one-at-a-time runs in far fewer, wider steps', async () => {
    const maxTokens = (i: number) => 12 + 2 * i;
    engine.resetBatchStats();
    const alone = await oneAtATime(engine, maxTokens);
    const sequential = engine.batchStats();
    engine.resetBatchStats();
    const together = await Promise.all(prompts.map((p, i) => request(engine, p, maxTokens(i))));
    const batched = engine.batchStats();
    expect(together).toEqual(alone);
    expect(alone.every((t) => t.length > 0)).toBe(true);
    expect(sequential.maxSequencesPerStep).toBe(1);
    // one prefill and maxTokens - 1 decodes per request one at a time; about the longest request's count together
    expect(sequential.steps).toBe(prompts.reduce((n, _, i) => n + maxTokens(i), 0));
    expect(batched.steps).toBeLessThanOrEqual(maxTokens(7) + 1);
    expect(batched.steps * 5).toBeLessThan(sequential.steps);
    expect(batched.maxSequencesPerStep).toBe(8);
    expect(batched.meanSequencesPerStep).toBeGreaterThan(4);
    // sampling reads every logit, not just the top one: the rows handed back are each request's own, unchanged
    const sampledAlone = await oneAtATime(engine, maxTokens, 1);
    const sampledTogether = await Promise.all(prompts.map((p, i) => request(engine, p, maxTokens(i), 1)));
    expect(new Set(sampledAlone).size).toBe(prompts.length);
    expect(sampledTogether).toEqual(sampledAlone);
  });

  it('requests arriving mid-way join the running batch, and leave it as soon as they finish', async () => {
    const steps: StepInfo[] = [];
    const off = engine.onStep((s) => steps.push(s));
    const finishedAt: Record<string, number> = {};
    const track = (name: string, p: Promise<string>) => p.then((t) => ((finishedAt[name] = steps.length), t));
    const late: Promise<string>[] = [];
    const first = track('a', request(engine, prompts[0], 40));
    await vi.waitFor(() => expect(steps.length).toBeGreaterThanOrEqual(10), { interval: 1 });
    late.push(track('b', request(engine, prompts[1], 25)), track('c', request(engine, prompts[2], 4)));
    const [a, b, c] = await Promise.all([first, ...late]);
    off();
    const joinedAt = steps.findIndex((s) => s.prefills > 0 && s.decodes > 0);
    expect(joinedAt).toBeGreaterThanOrEqual(10); // a had decoded alone for a while...
    expect(steps.slice(1, joinedAt).every((s) => s.sequences === 1)).toBe(true);
    expect(steps[joinedAt]).toMatchObject({ prefills: 2, decodes: 1, sequences: 3 }); // ...then b and c's prompts rode along with its decode
    expect(steps[joinedAt + 1].sequences).toBe(3);
    expect(finishedAt.c).toBeLessThan(finishedAt.b);
    expect(finishedAt.b).toBeLessThan(finishedAt.a); // b started later and still finished first: no waiting for the batch
    expect(steps[finishedAt.c].sequences).toBe(2); // c left, a and b go on
    expect(steps[steps.length - 1].sequences).toBe(1);
    expect([a, b, c]).toEqual([await request(engine, prompts[0], 40), await request(engine, prompts[1], 25), await request(engine, prompts[2], 4)]);
  });

  it('a bad token fails its own request only; a failing native step fails all of its callers, then service goes on', async () => {
    const bad = Int32Array.from([...prompts[3].subarray(0, 3), 100000]);
    const results = await Promise.allSettled([request(engine, prompts[0], 6), request(engine, bad, 6), request(engine, prompts[1], 6)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'token_out_of_range', status: 400 });

    // a state of another engine gets past the scheduler and is refused by the addon for the whole step
    const other = LocalEngine.random(config, 4, 1);
    engine.resetBatchStats();
    let injected: Promise<Float32Array> | undefined;
    const off = engine.onStep(() => {
      if (engine.batchStats().steps === 3 && !injected) injected = engine.forward([{ state: other.newState(), tokens: prompts[4] }]);
    });
    const running = await Promise.allSettled(prompts.slice(0, 4).map((p) => request(engine, p, 10)));
    off();
    await expect(injected).rejects.toMatchObject({ code: 'state_mismatch', message: expect.stringMatching(/belongs to another engine \(in a batched forward of 5 requests, 5 sequences/) });
    for (const r of running) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'state_mismatch' });
    }
    expect(engine.batchStats()).toMatchObject({ steps: 4, failedSteps: 1 });
    const after = await Promise.all(prompts.slice(0, 4).map((p) => request(engine, p, 10)));
    const fresh = LocalEngine.random(config, 3, 2);
    expect(after).toEqual(await oneAtATime(fresh, () => 10).then((t) => t.slice(0, 4)));
  });

  it('concurrent questions about one document read it once and decode together', async () => {
    const provider = new LocalBasedProvider({ engine, maxNewTokens: 8, jrtPrompt: true, prefixCacheEntries: 4 });
    const doc = { role: 'user' as const, content: 'Title: The Hobbit. Author: J.R.R. Tolkien. Publisher: Allen & Unwin. Year: 1937.' };
    const questions = ['Who is the author?', 'What is the title?', 'Who published it?', 'In which year?', 'What is the ISBN?'];
    const ask = (p: LocalBasedProvider, q: string) => p.complete({ messages: [{ role: 'system', content: 'Extract attributes.' }, doc, { role: 'user', content: q }], maxTokens: 8 });
    const spy = vi.spyOn(engine, 'forward');
    engine.resetBatchStats();
    const together = await Promise.all(questions.map((q) => ask(provider, q)));
    const contextReads = spy.mock.calls.filter(([batch]) => batch.some((s) => s.prefixLen !== undefined)).length;
    spy.mockRestore();
    expect(contextReads).toBe(1);
    expect(engine.batchStats().maxRequestsPerStep).toBe(questions.length);
    const fresh = new LocalBasedProvider({ engine, maxNewTokens: 8, jrtPrompt: true, prefixCacheEntries: 4 });
    const alone = [];
    for (const q of questions) alone.push(await ask(fresh, q));
    expect(together.map((r) => r.texts)).toEqual(alone.map((r) => r.texts));
  });
});
