/**
 * What travels between a coordinator and `evaporate worker` processes through Redis, and the checks each side
 * applies to what it reads: a worker refuses a malformed shard, a coordinator refuses outputs that do not fit
 * the shard it issued (wrong documents, wrong number of functions, values that are not strings).
 *
 * A shard carries the functions' sources, and its documents' texts go through Redis beside it (one binary
 * value, src/shards/documents-blob.ts). The alternative, ids only with the worker fetching texts from the
 * coordinator's HTTP API, saves Redis memory but costs a round trip per shard to a server that must then be
 * running and reachable with an API key a worker would hold; with texts in Redis a worker needs nothing but
 * Redis, and the coordinator bounds memory by keeping few shards in flight.
 */
import type { ChatMessage, CompletionRequest, CompletionResult } from '../llm/types.js';
import type { ExtractionFunction } from '../sandbox/types.js';
import type { BatchOutputs } from '../pipeline/aggregation.js';
import type { ShardOutputs } from '../pipeline/corpus-shards.js';

export const SHARD_JOB_NAME = 'corpus-shard';
export const PROTOCOL_VERSION = 2;

export interface ShardPayload {
  v: number;
  /** The coordinator's id for this run of the job (random): names the job-wide failure counts. */
  run: string;
  jobId: number;
  index: number;
  attributes: { name: string; functions: ExtractionFunction[] }[];
  /** Redis key of the documents (documents-blob.ts), written before the job and deleted once its result is taken. */
  documentsKey: string;
  documentCount: number;
}

export class ShardProtocolError extends Error {
  override name = 'ShardProtocolError';
}

const isStr = (v: unknown): v is string => typeof v === 'string';

/** A worker's check of a shard read from Redis (anything may have written it there). */
export function parseShard(data: unknown): ShardPayload {
  const d = data as Partial<ShardPayload> | null;
  if (!d || d.v !== PROTOCOL_VERSION) throw new ShardProtocolError(`Shard protocol version ${String(d?.v)} is not ${PROTOCOL_VERSION}: is this worker as new as the coordinator?`);
  if (!isStr(d.run) || !Number.isInteger(d.jobId) || !Number.isInteger(d.index)) throw new ShardProtocolError('A shard needs run, jobId and index.');
  if (!Array.isArray(d.attributes) || !d.attributes.every((a) => a && isStr(a.name) && Array.isArray(a.functions) && a.functions.every((f) => f && isStr(f.id) && isStr(f.source))))
    throw new ShardProtocolError('A shard lists attributes, each with functions {id, source}.');
  if (!isStr(d.documentsKey) || !Number.isInteger(d.documentCount) || d.documentCount! < 1) throw new ShardProtocolError('A shard names its documents: documentsKey and documentCount.');
  return d as ShardPayload;
}

/** The coordinator's check of a returned result against the shard it issued; throws on any mismatch. */
export function checkOutputs(issued: Pick<ShardPayload, 'attributes'> & { documentIds: number[] }, result: unknown): ShardOutputs {
  if (!result || typeof result !== 'object') throw new ShardProtocolError('The result is not an object.');
  const r = result as Record<string, Partial<BatchOutputs>>;
  const out: ShardOutputs = {};
  for (const a of issued.attributes) {
    const b = r[a.name];
    if (!b || !Array.isArray(b.documentIds) || !Array.isArray(b.values)) throw new ShardProtocolError(`No outputs for attribute "${a.name}".`);
    if (b.documentIds.length !== issued.documentIds.length || b.documentIds.some((id, i) => id !== issued.documentIds[i]))
      throw new ShardProtocolError(`Outputs for "${a.name}" are for other documents than the shard's.`);
    if (b.values.length !== issued.documentIds.length || !b.values.every((row) => Array.isArray(row) && row.length === a.functions.length && row.every((v) => v === null || (Array.isArray(v) && v.every(isStr)))))
      throw new ShardProtocolError(`Outputs for "${a.name}" are not one row of ${a.functions.length} values (string lists or null) per document.`);
    const known = new Set(a.functions.map((f) => f.id));
    const failures: Record<string, number> = {};
    for (const [id, n] of Object.entries(b.failures ?? {})) if (known.has(id) && Number.isInteger(n) && n > 0) failures[id] = n;
    out[a.name] = { documentIds: b.documentIds, values: b.values, errors: Number.isInteger(b.errors) ? b.errors! : 0, failures };
  }
  return out;
}

/** Redis key of one shard's documents. */
export const documentsKey = (prefix: string, queue: string, shardId: string) => `${prefix}:${queue}:documents:${shardId}`;

/** Redis hash of a job run's failure counts, field `<attribute>\u0000<function id>`. */
export const failuresKey = (prefix: string, queue: string, run: string) => `${prefix}:${queue}:failures:${run}`;
export const failureField = (attribute: string, fn: string) => `${attribute}\u0000${fn}`;

/** Raises the hash's counts to at least `counts` (a flushed Redis lost them; workers may have added more). */
export const RAISE_TO_SCRIPT = `
for i = 1, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if cur < tonumber(ARGV[i + 1]) then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
redis.call('PEXPIRE', KEYS[1], 86400000)
return 1`;

/** Direct-extraction calls travel on their own queue, which only workers with an extraction model listen to. */
export const DIRECT_JOB_NAME = 'direct-calls';
export const directQueueName = (queue: string) => `${queue}-direct`;

/** A model request as it crosses Redis: only what a provider reads. */
export type WireRequest = Pick<CompletionRequest, 'messages' | 'role' | 'model' | 'temperature' | 'maxTokens' | 'stop' | 'n' | 'jsonMode' | 'seed' | 'rejectTruncated'>;

export interface DirectShardPayload {
  v: number;
  run: string;
  jobId: number;
  index: number;
  calls: WireRequest[];
}

/** One call's outcome: the completion, or the error the worker's provider ended with (after its own retries). */
export type CallOutcome = { ok: Omit<CompletionResult, 'cached'> } | { error: { code: string; message: string } };

const MAX_ERROR_TEXT = 1000;

export function toWire(request: CompletionRequest): WireRequest {
  const { messages, role, model, temperature, maxTokens, stop, n, jsonMode, seed, rejectTruncated } = request;
  return JSON.parse(JSON.stringify({ messages, role, model, temperature, maxTokens, stop, n, jsonMode, seed, rejectTruncated })) as WireRequest;
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** A worker's check of a direct-extraction shard read from Redis. */
export function parseDirectShard(data: unknown): DirectShardPayload {
  const d = data as Partial<DirectShardPayload> | null;
  if (!d || d.v !== PROTOCOL_VERSION) throw new ShardProtocolError(`Shard protocol version ${String(d?.v)} is not ${PROTOCOL_VERSION}: is this worker as new as the coordinator?`);
  if (!isStr(d.run) || !Number.isInteger(d.jobId) || !Number.isInteger(d.index)) throw new ShardProtocolError('A shard needs run, jobId and index.');
  const okMessage = (m: unknown) => !!m && typeof m === 'object' && ['system', 'user', 'assistant'].includes((m as ChatMessage).role) && isStr((m as ChatMessage).content);
  if (!Array.isArray(d.calls) || d.calls.length === 0 || !d.calls.every((c) => c && Array.isArray(c.messages) && c.messages.every(okMessage) && (c.model === undefined || isStr(c.model))))
    throw new ShardProtocolError('A direct-extraction shard lists calls, each with messages [{role, content}].');
  return d as DirectShardPayload;
}

/** The coordinator's check of a direct-extraction shard's result: one outcome per call issued, well formed. */
export function checkDirectOutputs(calls: number, result: unknown): CallOutcome[] {
  if (!Array.isArray(result) || result.length !== calls) throw new ShardProtocolError(`The result is not a list of ${calls} call outcomes.`);
  return result.map((r: unknown, i) => {
    const o = r as { ok?: Partial<CompletionResult>; error?: { code?: unknown; message?: unknown } } | null;
    if (o?.ok) {
      const ok = o.ok;
      if (!Array.isArray(ok.texts) || !ok.texts.every(isStr) || !ok.usage || !isNum(ok.usage.promptTokens) || !isNum(ok.usage.completionTokens) || ok.usage.promptTokens < 0 || ok.usage.completionTokens < 0 || !isStr(ok.model))
        throw new ShardProtocolError(`Call ${i}: a completion needs texts, usage {promptTokens, completionTokens} and model.`);
      return { ok: { texts: ok.texts, usage: { promptTokens: ok.usage.promptTokens, completionTokens: ok.usage.completionTokens }, model: ok.model, latencyMs: isNum(ok.latencyMs) ? ok.latencyMs : 0 } };
    }
    if (o?.error && isStr(o.error.code) && isStr(o.error.message)) return { error: { code: o.error.code.slice(0, 100), message: o.error.message.slice(0, MAX_ERROR_TEXT) } };
    throw new ShardProtocolError(`Call ${i}: an outcome is {ok: completion} or {error: {code, message}}.`);
  });
}
