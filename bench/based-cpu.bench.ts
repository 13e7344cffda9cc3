/**
 * Local BASED engine on the CPU at the based-360m shape with random weights: prefill and decode tokens/s,
 * beside the bound a decode step cannot beat (bytes it must read, weights + state, over the memory bandwidth
 * measured here with a STREAM-like copy); and K generation requests served one at a time against the same K
 * submitted together, which the engine's scheduler batches into shared forwards.
 */
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot, type BenchResult } from './lib.js';
import { loadAddon } from '../src/llm/local/addon.js';
import { LocalEngine } from '../src/llm/local/engine.js';
import { generate } from '../src/llm/local/generate.js';
import { encoderFor } from '../src/llm/tokens.js';

const PREFILL_TOKENS = 256;
const DECODE_STEPS = 8;
const BATCHES = [1, 8];
const REQUESTS = 16;
const REQUEST_PROMPT_TOKENS = 32;
const REQUEST_NEW_TOKENS = 32;

export default async function run(): Promise<BenchResult> {
  const addon = loadAddon();
  const threads = addon.defaultThreads;
  const config = JSON.parse(fs.readFileSync(path.join(repoRoot, 'fixtures', 'based', 'based-360m-config.json'), 'utf8'));
  const bandwidthGBs = addon.measureBandwidth(256, threads, 5);
  let t = performance.now();
  const engine = LocalEngine.random(config, 7, threads);
  const loadSeconds = (performance.now() - t) / 1000;
  const { info } = engine;
  const tokens = Int32Array.from({ length: PREFILL_TOKENS }, (_, i) => (i * 7919) % info.vocab);

  await engine.forward([{ state: engine.newState(), tokens: tokens.subarray(0, 16) }]); // warm-up
  const prompt = engine.newState();
  t = performance.now();
  await engine.forward([{ state: prompt, tokens }]);
  const prefillSeconds = (performance.now() - t) / 1000;
  const rows: BenchResult['rows'] = [
    { phase: 'prefill', batch: 1, tokens: PREFILL_TOKENS, seconds: prefillSeconds, 'tokens/s': PREFILL_TOKENS / prefillSeconds },
  ];
  const fractions: Record<number, number> = {};
  for (const batch of BATCHES) {
    const states = Array.from({ length: batch }, () => engine.cloneState(prompt));
    const step = () => engine.forward(states.map((state, i) => ({ state, tokens: Int32Array.of((i * 31 + 5) % info.vocab) })));
    await step();
    t = performance.now();
    for (let s = 0; s < DECODE_STEPS; s++) await step();
    const stepSeconds = (performance.now() - t) / 1000 / DECODE_STEPS;
    const bytes = info.weightBytes + batch * info.stateBytes;
    const boundSeconds = bytes / (bandwidthGBs * 1e9);
    fractions[batch] = boundSeconds / stepSeconds;
    rows.push({
      phase: 'decode',
      batch,
      tokens: batch * DECODE_STEPS,
      seconds: stepSeconds * DECODE_STEPS,
      'tokens/s': batch / stepSeconds,
      'ms/step': stepSeconds * 1e3,
      'MB read/step': bytes / 1e6,
      'bound ms/step': boundSeconds * 1e3,
      'fraction of bound': fractions[batch],
    });
  }
  // K requests (a prompt read, then greedy decoding), each with its own prompt: one at a time, then all at once
  const encoder = encoderFor('gpt2');
  const prompts = Array.from({ length: REQUESTS }, (_, r) => Int32Array.from({ length: REQUEST_PROMPT_TOKENS }, (_, i) => (i * 7919 + r * 104729 + 13) % info.vocab));
  const serve = async (prompt: Int32Array) => {
    const state = engine.newState();
    const logits = await engine.forward([{ state, tokens: prompt }]);
    return (await generate(engine, encoder, state, logits, { temperature: 0, maxTokens: REQUEST_NEW_TOKENS })).completionTokens;
  };
  const serving: Record<string, { tokens: number; seconds: number; steps: number; meanSequences: number }> = {};
  for (const mode of ['one at a time', 'concurrent'] as const) {
    engine.resetBatchStats();
    t = performance.now();
    let generated = 0;
    if (mode === 'one at a time') for (const p of prompts) generated += await serve(p);
    else generated = (await Promise.all(prompts.map(serve))).reduce((a, b) => a + b, 0);
    const seconds = (performance.now() - t) / 1000;
    const stats = engine.batchStats();
    serving[mode] = { tokens: generated, seconds, steps: stats.steps, meanSequences: stats.meanSequencesPerStep };
    rows.push({
      phase: `${REQUESTS} requests ${mode}`,
      batch: stats.maxSequencesPerStep,
      tokens: generated,
      seconds,
      'tokens/s': generated / seconds,
      steps: stats.steps,
      'seq/step': stats.meanSequencesPerStep,
    });
  }
  const servingSpeedup = serving['concurrent'].tokens / serving['concurrent'].seconds / (serving['one at a time'].tokens / serving['one at a time'].seconds);
  return {
    name: 'based-cpu',
    rows,
    targets: { 'decode batch 1 reaches >= 50% of the bytes/bandwidth bound': fractions[1] >= 0.5 },
    notes: [
      `based-360m shape (27 layers, d=1024, 5 linear-attention + 5 window(256) + 17 BaseConv layers), fp32 random weights, ${threads} threads, backend ${info.backend}`,
      `memory bandwidth ${bandwidthGBs.toFixed(1)} GB/s (best of 5 multi-threaded copies of 256 MiB, read + write counted)`,
      `weights ${(info.weightBytes / 1e6).toFixed(0)} MB, state ${(info.stateBytes / 1e6).toFixed(2)} MB per sequence (fixed, whatever the length); random weights built in ${loadSeconds.toFixed(1)} s`,
      `requests rows: ${REQUESTS} requests of ${REQUEST_PROMPT_TOKENS} prompt tokens and up to ${REQUEST_NEW_TOKENS} greedy tokens, prompt reading included in the time; tokens/s counts generated tokens; batch = most sequences in one forward; concurrent is ${servingSpeedup.toFixed(1)}x one at a time`,
    ],
    extra: {
      bandwidthGBs,
      weightBytes: info.weightBytes,
      stateBytes: info.stateBytes,
      threads,
      prefillTokens: PREFILL_TOKENS,
      decodeSteps: DECODE_STEPS,
      serving: { requests: REQUESTS, promptTokens: REQUEST_PROMPT_TOKENS, newTokens: REQUEST_NEW_TOKENS, ...serving, speedup: servingSpeedup },
    },
  };
}
