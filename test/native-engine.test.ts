import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalEngine } from '../src/llm/local/engine.js';
import { fixtureDir, readCases, readSafetensors, relErr, writeSafetensors } from './native-fixtures.js';

const open = (name: string) => LocalEngine.open(path.join(fixtureDir, name), 2);
const seq = (n: number, seed: number, vocab = 509) => Int32Array.from({ length: n }, (_, i) => (i * 7919 + seed * 104729) % vocab);
const rowsOf = (e: LocalEngine, logits: Float32Array, i: number) => logits.subarray(i * e.info.vocabPadded, (i + 1) * e.info.vocabPadded);

describe('native engine: parity with the PyTorch reference fixtures', () => {
  for (const name of ['tiny-based', 'tiny-based-bf16', 'tiny-jrt']) {
    it(`${name}: every position's logits within 1e-4 relative error`, async () => {
      const engine = open(name);
      const cases = readCases(name);
      expect(cases.length).toBeGreaterThan(2);
      for (const c of cases) {
        const logits = await engine.forward([{ state: engine.newState(), tokens: c.tokens, prefixLen: c.prefixLen }], true);
        expect(logits.length).toBe(c.logits.length);
        expect(relErr(logits, c.logits)).toBeLessThan(1e-4);
      }
    });
  }
});

describe('native engine: recurrent invariants', () => {
  const based = open('tiny-based');
  const jrt = open('tiny-jrt');

  it('prefill of n tokens equals prefill of n-1 plus one decode step (BASED and JRT-RNN past its prefix)', async () => {
    for (const engine of [based, jrt]) {
      const toks = seq(100, 1);
      const full = await engine.forward([{ state: engine.newState(), tokens: toks }]);
      const s = engine.newState();
      await engine.forward([{ state: s, tokens: toks.subarray(0, 99) }]);
      const step = await engine.forward([{ state: s, tokens: toks.subarray(99) }]);
      expect(s.position).toBe(100);
      expect(relErr(step, full)).toBeLessThan(1e-5);
    }
  });

  it('a batch of sequences gives the same logits and states as one-by-one runs (BASED, and JRT-RNN across its prefix)', async () => {
    for (const engine of [based, jrt]) {
      const inputs = [seq(3, 2), seq(80, 3), seq(17, 4)]; // shorter than, past and inside tiny-jrt's 24-token prefix
      const states = inputs.map(() => engine.newState());
      const batched = await engine.forward(inputs.map((tokens, i) => ({ state: states[i], tokens })));
      const next = [seq(1, 5), seq(1, 6), seq(1, 7)];
      const batchedStep = await engine.forward(next.map((tokens, i) => ({ state: states[i], tokens })));
      for (let i = 0; i < inputs.length; i++) {
        const s = engine.newState();
        const one = await engine.forward([{ state: s, tokens: inputs[i] }]);
        expect(relErr(rowsOf(engine, batched, i), one)).toBeLessThan(1e-6);
        const oneStep = await engine.forward([{ state: s, tokens: next[i] }]);
        expect(relErr(rowsOf(engine, batchedStep, i), oneStep)).toBeLessThan(1e-6);
      }
    }
  });

  it('a saved and restored state continues exactly like the original (BASED and JRT-RNN)', async () => {
    for (const engine of [based, jrt]) {
      const s = engine.newState();
      await engine.forward([{ state: s, tokens: seq(50, 8) }]);
      const saved = engine.saveState(s);
      const tail = seq(20, 9);
      const a = await engine.forward([{ state: s, tokens: tail }], true);
      const restored = engine.loadState(saved);
      expect(restored.position).toBe(50);
      const b = await engine.forward([{ state: restored, tokens: tail }], true);
      expect(Array.from(b)).toEqual(Array.from(a));
      const clone = engine.cloneState(restored);
      const c1 = await engine.forward([{ state: restored, tokens: seq(3, 10) }]);
      const c2 = await engine.forward([{ state: clone, tokens: seq(3, 10) }]);
      expect(Array.from(c2)).toEqual(Array.from(c1));
      expect(() => engine.loadState(saved.subarray(0, 100))).toThrow(expect.objectContaining({ code: 'state_mismatch' }));
    }
    expect(() => jrt.loadState(based.saveState(based.newState()))).toThrow(expect.objectContaining({ code: 'state_mismatch' }));
  });

  it('JRT-RNN reads its prefix non-causally and the rest causally; BASED is causal throughout', async () => {
    // tiny-jrt has enc_length 24: positions 0..23 are the prefix
    const base = seq(40, 11);
    const changedInPrefix = Int32Array.from(base);
    changedInPrefix[20] = (base[20] + 1) % 509;
    const changedInSuffix = Int32Array.from(base);
    changedInSuffix[30] = (base[30] + 1) % 509;
    const run = async (e: LocalEngine, t: Int32Array) => e.forward([{ state: e.newState(), tokens: t }], true);
    const j0 = await run(jrt, base);
    const jp = await run(jrt, changedInPrefix);
    const js = await run(jrt, changedInSuffix);
    expect(relErr(rowsOf(jrt, jp, 5), rowsOf(jrt, j0, 5))).toBeGreaterThan(1e-4); // earlier position sees a later prefix token
    for (let t = 0; t < 30; t++) expect(Array.from(rowsOf(jrt, js, t))).toEqual(Array.from(rowsOf(jrt, j0, t)));
    expect(relErr(rowsOf(jrt, js, 30), rowsOf(jrt, j0, 30))).toBeGreaterThan(1e-4);
    const b0 = await run(based, base);
    const bp = await run(based, changedInPrefix);
    for (let t = 0; t < 20; t++) expect(Array.from(rowsOf(based, bp, t))).toEqual(Array.from(rowsOf(based, b0, t)));
  });

  it('a model wider than one cache block gives the same logits in one prefill as in chunks', async () => {
    const cfg = JSON.parse(fs.readFileSync(path.join(fixtureDir, 'tiny-based', 'config.json'), 'utf8'));
    const wide = LocalEngine.random({ ...cfg, n_embd: 320, n_inner: 640 }, 5, 2);
    const toks = seq(40, 12);
    const once = await wide.forward([{ state: wide.newState(), tokens: toks }]);
    const s = wide.newState();
    let last: Float32Array = new Float32Array();
    for (let i = 0; i < 40; i += 8) last = await wide.forward([{ state: s, tokens: toks.subarray(i, i + 8) }]);
    expect(relErr(last, once)).toBeLessThan(1e-5);
  });

  it('rejects bad input with stable codes', async () => {
    await expect(based.forward([{ state: based.newState(), tokens: Int32Array.of(100000) }])).rejects.toMatchObject({ code: 'token_out_of_range' });
    await expect(based.forward([{ state: based.newState(), tokens: new Int32Array(0) }])).rejects.toMatchObject({ code: 'empty_input' });
    await expect(based.forward([{ state: jrt.newState(), tokens: seq(2, 1) }])).rejects.toMatchObject({ code: 'state_mismatch' });
  });
});

describe('native engine: checkpoint loading errors', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'based-load-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const variant = (name: string, edit: (t: Map<string, ReturnType<typeof readSafetensors> extends Map<string, infer T> ? T : never>) => void) => {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir);
    fs.copyFileSync(path.join(fixtureDir, 'tiny-based', 'config.json'), path.join(dir, 'config.json'));
    const t = readSafetensors(path.join(fixtureDir, 'tiny-based', 'model.safetensors'));
    edit(t);
    writeSafetensors(path.join(dir, 'model.safetensors'), t);
    return dir;
  };

  it('an untouched copy loads (the writer is faithful)', () => {
    expect(LocalEngine.open(variant('same', () => {}), 1).info.layers).toEqual(['conv', 'linear', 'window', 'conv', 'linear', 'window', 'conv']);
  });
  it('names a missing tensor', () => {
    const dir = variant('missing', (t) => t.delete('transformer.layers.1.mixer.proj_k.weight'));
    expect(() => LocalEngine.open(dir, 1)).toThrow(expect.objectContaining({ code: 'missing_tensor', message: expect.stringContaining('layers.1.mixer.proj_k.weight') }));
  });
  it('names a tensor whose shape does not match the config', () => {
    const dir = variant('shape', (t) => {
      const w = t.get('transformer.layers.2.mixer.Wqkv.weight')!;
      t.set('transformer.layers.2.mixer.Wqkv.weight', { ...w, shape: [w.shape[1], w.shape[0]] });
    });
    expect(() => LocalEngine.open(dir, 1)).toThrow(expect.objectContaining({ code: 'shape_mismatch', message: expect.stringContaining('Wqkv') }));
  });
  it('reports a directory without weights or without a config', () => {
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    expect(() => LocalEngine.open(empty, 1)).toThrow(expect.objectContaining({ code: 'config_missing' }));
    fs.copyFileSync(path.join(fixtureDir, 'tiny-based', 'config.json'), path.join(empty, 'config.json'));
    expect(() => LocalEngine.open(empty, 1)).toThrow(expect.objectContaining({ code: 'weights_missing' }));
    expect(() => LocalEngine.open(path.join(tmp, 'nope'), 1)).toThrow(expect.objectContaining({ code: 'config_missing' }));
  });
});

describe('native engine: backend chosen at run time (EVAPORATE_LOCAL_DEVICE)', () => {
  const withDevice = <T>(value: string, fn: () => T): T => {
    const before = process.env.EVAPORATE_LOCAL_DEVICE;
    process.env.EVAPORATE_LOCAL_DEVICE = value;
    try {
      return fn();
    } finally {
      if (before === undefined) delete process.env.EVAPORATE_LOCAL_DEVICE;
      else process.env.EVAPORATE_LOCAL_DEVICE = before;
    }
  };
  it('cpu forces the CPU backend, whose results match the reference', async () => {
    const engine = withDevice('cpu', () => open('tiny-based'));
    expect(engine.info.backend).toMatch(/^cpu/);
    const c = readCases('tiny-based')[0];
    const logits = await engine.forward([{ state: engine.newState(), tokens: c.tokens, prefixLen: c.prefixLen }], true);
    expect(relErr(logits, c.logits)).toBeLessThan(1e-4);
  });
  it('cuda gives the CUDA backend where a GPU is visible, and a clear error (not a silent CPU run) where none is', () => {
    let backend = '';
    try {
      backend = withDevice('cuda', () => open('tiny-based')).info.backend;
    } catch (e) {
      expect(e).toMatchObject({ code: 'cuda_unavailable', message: expect.stringContaining('EVAPORATE_LOCAL_DEVICE=cuda') });
      return;
    }
    expect(backend).toBe('cuda');
  });
  it('rejects an unknown device name', () => {
    expect(() => withDevice('tpu', () => open('tiny-based'))).toThrow(expect.objectContaining({ code: 'bad_argument', message: expect.stringContaining('cpu, cuda or auto') }));
  });
});
