/**
 * Local BASED engine on the CPU at the based-360m shape with random weights: prefill and decode tokens/s,
 * beside the bound a decode step cannot beat (bytes it must read, weights + state, over the memory bandwidth
 * measured here with a STREAM-like copy).
 */
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot, type BenchResult } from './lib.js';
import { loadAddon } from '../src/llm/local/addon.js';
import { LocalEngine } from '../src/llm/local/engine.js';

const PREFILL_TOKENS = 256;
const DECODE_STEPS = 8;
const BATCHES = [1, 8];

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
  return {
    name: 'based-cpu',
    rows,
    targets: { 'decode batch 1 reaches >= 50% of the bytes/bandwidth bound': fractions[1] >= 0.5 },
    notes: [
      `based-360m shape (27 layers, d=1024, 5 linear-attention + 5 window(256) + 17 BaseConv layers), fp32 random weights, ${threads} threads, backend ${info.backend}`,
      `memory bandwidth ${bandwidthGBs.toFixed(1)} GB/s (best of 5 multi-threaded copies of 256 MiB, read + write counted)`,
      `weights ${(info.weightBytes / 1e6).toFixed(0)} MB, state ${(info.stateBytes / 1e6).toFixed(2)} MB per sequence (fixed, whatever the length); random weights built in ${loadSeconds.toFixed(1)} s`,
    ],
    extra: { bandwidthGBs, weightBytes: info.weightBytes, stateBytes: info.stateBytes, threads, prefillTokens: PREFILL_TOKENS, decodeSteps: DECODE_STEPS },
  };
}
