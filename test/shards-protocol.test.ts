/**
 * The checks on what crosses Redis: a worker refuses a malformed shard, the coordinator refuses outputs that do
 * not fit the shard it issued, and keeps only failure counts of the shard's own functions.
 */
import { describe, expect, it } from 'vitest';
import { decodeDocuments, encodeDocuments } from '../src/shards/documents-blob.js';
import { checkDirectOutputs, checkOutputs, parseDirectShard, parseShard, PROTOCOL_VERSION, toWire } from '../src/shards/protocol.js';

const issued = {
  attributes: [{ name: 'title', functions: [{ id: 'f1', source: 'function extract(t) { return t; }' }, { id: 'f2', source: 'function extract() { return null; }' }] }],
  documentIds: [7, 8],
};
const good = { title: { documentIds: [7, 8], values: [[['A'], null], [null, ['B', 'C']]], errors: 0, failures: { f2: 1 } } };

describe('shard protocol', () => {
  it('accepts outputs that fit the issued shard', () => {
    expect(checkOutputs(issued, good)).toEqual(good);
  });

  it('refuses outputs for other documents, a missing attribute, a wrong number of functions or non-string values', () => {
    expect(() => checkOutputs(issued, { title: { ...good.title, documentIds: [7, 9] } })).toThrow(/other documents/);
    expect(() => checkOutputs(issued, {})).toThrow(/No outputs for attribute "title"/);
    expect(() => checkOutputs(issued, { title: { ...good.title, values: [[['A']], [null]] } })).toThrow(/one row of 2 values/);
    expect(() => checkOutputs(issued, { title: { ...good.title, values: [[[1], null], [null, null]] } })).toThrow(/string lists or null/);
    expect(() => checkOutputs(issued, null)).toThrow(/not an object/);
  });

  it("keeps only positive whole failure counts of the shard's own functions", () => {
    const out = checkOutputs(issued, { title: { ...good.title, failures: { f1: 2, f2: -3, other: 50, f3: 1.5 } } });
    expect(out.title.failures).toEqual({ f1: 2 });
  });

  it('a worker refuses a shard of another protocol version or a malformed one', () => {
    const shard = { v: PROTOCOL_VERSION, run: 'j1.abc', jobId: 1, index: 0, attributes: issued.attributes, documentsKey: 'p:q:documents:j1.abc.b0', documentCount: 2 };
    expect(parseShard(shard)).toEqual(shard);
    expect(() => parseShard({ ...shard, v: PROTOCOL_VERSION + 1 })).toThrow(/as new as the coordinator/);
    expect(() => parseShard({ ...shard, documentsKey: undefined })).toThrow(/documentsKey and documentCount/);
    expect(() => parseShard({ ...shard, documentCount: 0 })).toThrow(/documentsKey and documentCount/);
    expect(() => parseShard({ ...shard, attributes: [{ name: 'title', functions: [{ id: 1 }] }] })).toThrow(/functions/);
  });

  it('a direct-extraction result is one well-formed outcome per call issued', () => {
    const ok = { ok: { texts: ['{"value":"K1"}'], usage: { promptTokens: 120, completionTokens: 8 }, model: 'm', latencyMs: 30 } };
    const error = { error: { code: 'llm_truncated', message: 'cut at max_tokens' } };
    expect(checkDirectOutputs(2, [ok, error])).toEqual([ok, error]);
    expect(() => checkDirectOutputs(3, [ok, error])).toThrow(/list of 3 call outcomes/);
    expect(() => checkDirectOutputs(1, [{ ok: { ...ok.ok, usage: { promptTokens: -5, completionTokens: 0 } } }])).toThrow(/usage/);
    expect(() => checkDirectOutputs(1, [{ ok: { ...ok.ok, texts: [3] } }])).toThrow(/texts/);
    expect(() => checkDirectOutputs(1, [{ nothing: true }])).toThrow(/\{ok: completion\} or \{error/);
    // A worker's long error text is cut, not carried whole into the job's error.
    expect(checkDirectOutputs(1, [{ error: { code: 'x', message: 'y'.repeat(5000) } }])[0]).toEqual({ error: { code: 'x', message: 'y'.repeat(1000) } });
  });

  it('a worker refuses a direct-extraction shard without calls or with malformed messages; only what a provider reads travels', () => {
    const wire = toWire({ messages: [{ role: 'user', content: 'hi' }], role: 'extraction', model: 'm', maxTokens: 10, jsonMode: true });
    expect(wire).toEqual({ messages: [{ role: 'user', content: 'hi' }], role: 'extraction', model: 'm', maxTokens: 10, jsonMode: true });
    const shard = { v: PROTOCOL_VERSION, run: 'j1.abc', jobId: 1, index: 0, calls: [wire] };
    expect(parseDirectShard(shard)).toEqual(shard);
    expect(() => parseDirectShard({ ...shard, calls: [] })).toThrow(/lists calls/);
    expect(() => parseDirectShard({ ...shard, calls: [{ messages: [{ role: 'tool', content: 'x' }] }] })).toThrow(/lists calls/);
    expect(() => parseDirectShard({ ...shard, v: 0 })).toThrow(/as new as the coordinator/);
  });

  it("a shard's documents read back exactly, and a blob that is cut, padded or of another count is refused", () => {
    const docs = [
      { id: 7, text: 'plain text' },
      { id: 'x-9', text: 'héllo — ✓ 𝄞', html: '<p>héllo — ✓ 𝄞</p>' },
      { id: 12, text: '', html: '' },
    ];
    const blob = encodeDocuments(docs);
    expect(decodeDocuments(blob, 3)).toEqual(docs);
    expect(() => decodeDocuments(blob, 2)).toThrow(/do not read as 2 documents/);
    expect(() => decodeDocuments(blob.subarray(0, blob.length - 3), 3)).toThrow(/do not read as 3 documents/);
    expect(() => decodeDocuments(Buffer.concat([blob, Buffer.from([0])]), 3)).toThrow(/do not read as 3 documents/);
    const badKind = Buffer.from(blob);
    badKind[4] = 9;
    expect(() => decodeDocuments(badKind, 3)).toThrow(/do not read/);
  });
});
