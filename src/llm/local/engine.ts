/**
 * The TypeScript face of the native engine: model loading, states, batched forward passes. Forwards from any
 * number of concurrent callers go through one BatchScheduler, which runs one native forward at a time (the
 * native side has one thread pool or device) and merges what waits into it (continuous batching).
 */
import { loadAddon, toEvaporateError, type EngineInfo, type NativeEngine, type NativeSequence, type NativeState } from './addon.js';
import { BatchScheduler, type BatchingOptions, type SchedulerStats, type StepInfo } from './scheduler.js';

export type { NativeState } from './addon.js';
export type { BatchingOptions, SchedulerStats, StepInfo } from './scheduler.js';

export class LocalEngine {
  readonly info: EngineInfo;
  private readonly scheduler: BatchScheduler;

  private constructor(private readonly native: NativeEngine, batching: Partial<BatchingOptions> = {}) {
    this.info = native.info();
    const run = async (batch: NativeSequence[], allLogits: boolean) => {
      try {
        return await native.forward(batch, allLogits);
      } catch (e) {
        throw toEvaporateError(e);
      }
    };
    this.scheduler = new BatchScheduler(run, this.info.vocabPadded, this.info.vocabPadded, batching);
  }

  /** A checkpoint directory: config.json plus *.safetensors (see native/README.md). */
  static open(dir: string, threads = 0, batching?: Partial<BatchingOptions>): LocalEngine {
    const addon = loadAddon();
    try {
      return new LocalEngine(new addon.Engine({ dir }, threads), batching);
    } catch (e) {
      throw toEvaporateError(e);
    }
  }

  /** Random weights at a given config.json (benchmarks and tests). */
  static random(config: object, seed = 1, threads = 0, batching?: Partial<BatchingOptions>): LocalEngine {
    const addon = loadAddon();
    try {
      return new LocalEngine(new addon.Engine({ randomConfig: JSON.stringify(config), seed }, threads), batching);
    } catch (e) {
      throw toEvaporateError(e);
    }
  }

  newState(): NativeState {
    return this.native.newState();
  }
  cloneState(s: NativeState): NativeState {
    return this.native.cloneState(s);
  }
  saveState(s: NativeState): Buffer {
    return this.native.saveState(s);
  }
  loadState(b: Uint8Array): NativeState {
    try {
      return this.native.loadState(b);
    } catch (e) {
      throw toEvaporateError(e);
    }
  }

  /**
   * Advances every sequence's state by its tokens. Returns logits over the padded vocabulary: one row per
   * sequence (its last token), or one row per token when allLogits. Concurrent calls share native forwards;
   * calls that advance the same state run one after another, in the order they were made.
   */
  forward(batch: NativeSequence[], allLogits = false): Promise<Float32Array> {
    return this.scheduler.submit(batch, allLogits);
  }

  /** Row i of a logits block, trimmed to the real vocabulary (padding ids are never sampled). */
  row(logits: Float32Array, i: number): Float32Array {
    const v = this.info.vocabPadded;
    return logits.subarray(i * v, i * v + this.info.vocab);
  }

  get batching(): BatchingOptions {
    return this.scheduler.options;
  }

  /** How well forwards were batched: steps run, sequences per step. */
  batchStats(): SchedulerStats {
    return this.scheduler.stats();
  }
  resetBatchStats(): void {
    this.scheduler.resetStats();
  }
  onStep(listener: (step: StepInfo) => void): () => void {
    return this.scheduler.onStep(listener);
  }
}
