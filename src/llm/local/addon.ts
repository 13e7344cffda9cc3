/**
 * Loads the compiled engine (native/build/Release/based_engine.node). When the build was impossible on this
 * machine the rest of the service still runs; asking for the local backend then gives a clear error.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EvaporateError } from '../../errors.js';

export interface EngineInfo {
  dModel: number;
  nLayer: number;
  vocab: number;
  vocabPadded: number;
  mlpHidden: number;
  weightBytes: number;
  stateBytes: number;
  backend: string;
  layers: ('conv' | 'linear' | 'prefix-linear' | 'window')[];
}

/** Opaque recurrent state of one sequence; `position` counts the tokens it has consumed. */
export interface NativeState {
  readonly position: number;
}

export interface NativeSequence {
  state: NativeState;
  tokens: Int32Array;
  /** JRT-RNN only, on a fresh state: tokens read non-causally (default min(enc_length, tokens)). */
  prefixLen?: number;
}

export interface NativeEngine {
  info(): EngineInfo;
  newState(): NativeState;
  cloneState(s: NativeState): NativeState;
  saveState(s: NativeState): Buffer;
  loadState(b: Uint8Array): NativeState;
  forward(batch: NativeSequence[], allLogits?: boolean): Promise<Float32Array>;
}

export interface NativeAddon {
  Engine: new (opts: { dir: string } | { randomConfig: string; seed?: number }, threads?: number) => NativeEngine;
  measureBandwidth(megabytes?: number, threads?: number, reps?: number): number;
  defaultThreads: number;
}

const addonPath = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'native', 'build', 'Release', 'based_engine.node');
let cached: NativeAddon | undefined;
let loadError: string | undefined;

export function nativeAvailable(): boolean {
  try {
    loadAddon();
    return true;
  } catch {
    return false;
  }
}

export function loadAddon(): NativeAddon {
  if (cached) return cached;
  if (!loadError) {
    if (!fs.existsSync(addonPath)) loadError = 'the native engine was not built (run `npm run build:native`; it needs a C++17 compiler)';
    else {
      try {
        cached = createRequire(import.meta.url)(addonPath) as NativeAddon;
        return cached;
      } catch (e) {
        loadError = `the native engine failed to load: ${(e as Error).message}`;
      }
    }
  }
  throw new EvaporateError('local_backend_unavailable', `The local BASED backend is unavailable: ${loadError}.`, 503);
}

/** Engine errors carry a stable code from C++; map them onto the service's error shape. */
export function toEvaporateError(e: unknown): EvaporateError {
  if (e instanceof EvaporateError) return e;
  const err = e as { code?: string; message?: string };
  const code = typeof err?.code === 'string' ? err.code : 'engine_failed';
  const clientSide = ['missing_tensor', 'shape_mismatch', 'model_not_found', 'weights_missing', 'weights_invalid', 'config_missing',
    'config_invalid', 'config_unsupported', 'token_out_of_range', 'empty_input', 'state_mismatch', 'bad_argument'];
  // cuda_unavailable: EVAPORATE_LOCAL_DEVICE=cuda on a machine that cannot honour it, a deployment problem
  return new EvaporateError(code, err?.message ?? String(e), clientSide.includes(code) ? 400 : code === 'cuda_unavailable' ? 503 : 500);
}
