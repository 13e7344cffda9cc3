/**
 * `local-based`: an LlmProvider backed by the in-process BASED / JRT-RNN engine. The shared part of a prompt
 * (instructions and document) is read once; its state is cached and cloned for every question asked of it.
 */
import { createHash } from 'node:crypto';
import type { Settings } from '../../config.js';
import { EvaporateError } from '../../errors.js';
import { encoderFor } from '../tokens.js';
import type { CallContext, CompletionRequest, CompletionResult, LlmProvider } from '../types.js';
import { LocalEngine, type BatchingOptions, type NativeState, type SchedulerStats } from './engine.js';
import { generate } from './generate.js';
import { jrtPrompt, splitPrompt } from './prompt.js';

export interface LocalBasedOptions {
  /** An engine already open (tests, benchmarks); otherwise modelDir is opened on first use. */
  engine?: LocalEngine;
  modelDir?: string;
  threads?: number;
  /** Name reported in results. */
  modelName?: string;
  maxNewTokens: number;
  /** JRT-Prompt: the context is written twice before the question. */
  jrtPrompt: boolean;
  /** How many context states to keep for reuse. */
  prefixCacheEntries: number;
  /** With temperature > 0, sample only among the k most likely tokens (0 = all). */
  topK?: number;
  /** Batching of the engine opened from modelDir (an engine passed in keeps its own). */
  batching?: Partial<BatchingOptions>;
}

interface CachedPrefix {
  state: NativeState;
  logits: Float32Array;
  tokens: number;
}

export class LocalBasedProvider implements LlmProvider {
  readonly name = 'local-based';
  private engine?: LocalEngine;
  private readonly prefixes = new Map<string, CachedPrefix>();
  /** Contexts being read now: a second question about one arriving meanwhile waits for that read instead of its own. */
  private readonly reading = new Map<string, Promise<CachedPrefix>>();

  constructor(private readonly options: LocalBasedOptions) {
    this.engine = options.engine;
  }

  private open(): LocalEngine {
    if (this.engine) return this.engine;
    if (!this.options.modelDir)
      throw new EvaporateError('local_model_not_configured', 'Set EVAPORATE_LOCAL_MODEL_DIR to a BASED checkpoint directory to use the local-based provider.', 503);
    this.engine = LocalEngine.open(this.options.modelDir, this.options.threads ?? 0, this.options.batching);
    return this.engine;
  }

  /** State after the context, from the cache when this context was read before. */
  private async contextState(engine: LocalEngine, context: number[]): Promise<CachedPrefix | undefined> {
    if (context.length === 0) return undefined;
    const key = createHash('sha256').update(Int32Array.from(context)).digest('hex');
    const hit = this.prefixes.get(key);
    if (hit) {
      this.prefixes.delete(key);
      this.prefixes.set(key, hit); // most recently used last
      return hit;
    }
    const pending = this.reading.get(key);
    if (pending) return pending;
    const read = (async () => {
      const state = engine.newState();
      // JRT-RNN reads the whole context as its non-causal prefix
      const logits = await engine.forward([{ state, tokens: Int32Array.from(context), prefixLen: context.length }]);
      const entry = { state, logits, tokens: context.length };
      this.prefixes.set(key, entry);
      while (this.prefixes.size > Math.max(0, this.options.prefixCacheEntries)) {
        const oldest = this.prefixes.keys().next().value as string;
        this.prefixes.delete(oldest);
      }
      return entry;
    })();
    this.reading.set(key, read);
    try {
      return await read;
    } finally {
      this.reading.delete(key);
    }
  }

  /** How the engine batched forwards so far (undefined until the model is open). */
  batchStats(): SchedulerStats | undefined {
    return this.engine?.batchStats();
  }

  async complete(request: CompletionRequest, context?: CallContext): Promise<CompletionResult> {
    const started = Date.now();
    const engine = this.open();
    const enc = encoderFor('gpt2');
    let parts = splitPrompt(request.messages);
    if (this.options.jrtPrompt) parts = jrtPrompt(parts);
    // context and question are encoded apart so the context's tokens, and so its cached state, never depend on the question
    const ctxTokens = enc.encode(parts.context, [], []);
    const qTokens = enc.encode(parts.question, [], []);
    const maxPrompt = Math.max(1, ctxTokens.length + qTokens.length);
    for (const t of [...ctxTokens, ...qTokens])
      if (t >= engine.info.vocab) throw new EvaporateError('token_out_of_range', `Token ${t} is outside the local model's vocabulary.`, 400);
    const cached = await this.contextState(engine, ctxTokens);
    const state = cached ? engine.cloneState(cached.state) : engine.newState();
    let logits = cached?.logits;
    if (qTokens.length > 0) logits = await engine.forward([{ state, tokens: Int32Array.from(qTokens) }]);
    if (!logits) throw new EvaporateError('empty_prompt', 'The prompt is empty.', 400);
    const gen = await generate(engine, enc, state, logits, {
      temperature: request.temperature ?? 0,
      topK: this.options.topK,
      maxTokens: Math.max(1, request.maxTokens ?? this.options.maxNewTokens),
      stop: request.stop,
      n: request.n ?? 1,
      seed: 0,
      signal: context?.signal,
    });
    return {
      texts: gen.texts,
      usage: { promptTokens: maxPrompt, completionTokens: gen.completionTokens },
      model: request.model ?? this.options.modelName ?? 'local-based',
      latencyMs: Date.now() - started,
      cached: false,
    };
  }
}

/** The provider as configured by EVAPORATE_LOCAL_* settings (the model opens on first use). */
export function localBasedFromSettings(local: Settings['local']): LocalBasedProvider {
  return new LocalBasedProvider({
    modelDir: local.modelDir || undefined,
    threads: local.threads,
    maxNewTokens: local.maxNewTokens,
    jrtPrompt: local.jrtPrompt,
    prefixCacheEntries: local.prefixCacheEntries,
    topK: local.topK,
    batching: { maxSequences: local.maxBatch, maxTokens: local.maxBatchTokens },
  });
}
