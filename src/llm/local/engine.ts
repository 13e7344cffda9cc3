/**
 * The TypeScript face of the native engine: model loading, states, batched forward passes. Calls are
 * serialized per engine (the native side runs one forward at a time on its own thread pool).
 */
import { loadAddon, toEvaporateError, type EngineInfo, type NativeEngine, type NativeSequence, type NativeState } from './addon.js';

export type { NativeState } from './addon.js';

export class LocalEngine {
  readonly info: EngineInfo;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly native: NativeEngine) {
    this.info = native.info();
  }

  /** A checkpoint directory: config.json plus *.safetensors (see native/README.md). */
  static open(dir: string, threads = 0): LocalEngine {
    const addon = loadAddon();
    try {
      return new LocalEngine(new addon.Engine({ dir }, threads));
    } catch (e) {
      throw toEvaporateError(e);
    }
  }

  /** Random weights at a given config.json (benchmarks and tests). */
  static random(config: object, seed = 1, threads = 0): LocalEngine {
    const addon = loadAddon();
    try {
      return new LocalEngine(new addon.Engine({ randomConfig: JSON.stringify(config), seed }, threads));
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
   * sequence (its last token), or one row per token when allLogits.
   */
  forward(batch: NativeSequence[], allLogits = false): Promise<Float32Array> {
    const run = this.queue.then(async () => {
      try {
        return await this.native.forward(batch, allLogits);
      } catch (e) {
        throw toEvaporateError(e);
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Row i of a logits block, trimmed to the real vocabulary (padding ids are never sampled). */
  row(logits: Float32Array, i: number): Float32Array {
    const v = this.info.vocabPadded;
    return logits.subarray(i * v, i * v + this.info.vocab);
  }
}
