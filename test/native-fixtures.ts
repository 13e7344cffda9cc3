/** Reads and writes safetensors for the native engine tests (fixtures come from native/reference/gen_fixtures.py). */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const fixtureDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'based');

export interface Tensor {
  dtype: string;
  shape: number[];
  data: Buffer;
}

export function readSafetensors(file: string): Map<string, Tensor> {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, Tensor>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    out.set(name, { dtype: t.dtype, shape: t.shape, data: Buffer.from(buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1])) });
  }
  return out;
}

export function writeSafetensors(file: string, tensors: Map<string, Tensor>): void {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length] };
    off += t.data.length;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8) json += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json), ...[...tensors.values()].map((t) => t.data)]));
}

export function floats(t: Tensor): Float32Array {
  return new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.length));
}

export interface FixtureCase {
  tokens: Int32Array;
  logits: Float32Array;
  prefixLen?: number;
}

export function readCases(name: string): FixtureCase[] {
  const t = readSafetensors(path.join(fixtureDir, name, 'cases', 'cases.safetensors'));
  const cases: FixtureCase[] = [];
  for (let i = 0; t.has(`case${i}.tokens`); i++) {
    const pl = t.get(`case${i}.prefix_len`);
    cases.push({
      tokens: Int32Array.from(floats(t.get(`case${i}.tokens`)!)),
      logits: floats(t.get(`case${i}.logits`)!),
      prefixLen: pl ? floats(pl)[0] : undefined,
    });
  }
  return cases;
}

/** ||a - b|| / ||b|| */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

/** The tiny fixture model with the GPT-2 vocabulary (random embeddings), as a checkpoint directory. */
export function gpt2VocabModel(dir: string): string {
  const config = { ...JSON.parse(fs.readFileSync(path.join(fixtureDir, 'tiny-based', 'config.json'), 'utf8')), vocab_size: 50257 };
  const tensors = readSafetensors(path.join(fixtureDir, 'tiny-based', 'model.safetensors'));
  const rows = 50264; // padded to a multiple of 8
  const emb = new Float32Array(rows * config.n_embd);
  for (let i = 0; i < emb.length; i++) emb[i] = Math.sin(i * 12.9898) * 0.1;
  tensors.set('transformer.embeddings.word_embeddings.weight', { dtype: 'F32', shape: [rows, config.n_embd], data: Buffer.from(emb.buffer) });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return dir;
}
