/**
 * Continuous batching for the local engine. A native forward reads every weight once whatever the number of
 * sequences in it, so a decode step of 32 sequences costs little more than one of a single sequence. Callers
 * (one generation's step, one prompt's prefill) submit forwards independently; while a native forward runs,
 * new submissions wait, and the next native forward takes all of them that fit: the decode steps of every
 * running generation plus the prefills of newly arrived requests. A caller joins at the next step after it
 * submits and leaves when it stops submitting; nobody waits for a whole batch to finish.
 *
 * Which waiting requests form a step (the policy):
 *  1. The step has the logits mode (last token per sequence, or every token) of the oldest waiting request;
 *     requests of the other mode wait, and since they then become the oldest they get the step after.
 *  2. A request waits for every earlier request that advances one of its states, so each state's forwards run
 *     in submission order and no state appears twice in one native call.
 *  3. Decode requests (one token per sequence) join first, oldest first, while the step stays within
 *     `maxSequences`: they are cheap and they are what running generations are waiting on.
 *  4. Then prefills join, oldest first, while the step stays within `maxSequences` and `maxTokens`. The first
 *     prefill of a step joins even when it alone is over the token budget (a long prompt must run sometime,
 *     and this bounds its wait to one step); after it the budget holds. The first request that does not fit
 *     ends its class: later, smaller ones do not overtake it, so a long prompt is not starved by short ones.
 *  5. A step always takes at least one request, even one with more sequences than `maxSequences`.
 * A full batch of decodes holds new prefills back until a generation finishes: `maxSequences` is also the
 * admission limit. Prefills are not split across steps (a JRT prefix must be read in one call).
 */
import { EvaporateError } from '../../errors.js';
import type { NativeSequence, NativeState } from './addon.js';

export interface BatchingOptions {
  /** Most sequences in one native forward. */
  maxSequences: number;
  /** Token budget of one native forward; see the policy above for how prefills are held to it. */
  maxTokens: number;
}

export const DEFAULT_BATCHING: BatchingOptions = { maxSequences: 64, maxTokens: 8192 };

/** One native forward, as seen by step listeners (tests, benchmarks). */
export interface StepInfo {
  requests: number;
  sequences: number;
  tokens: number;
  /** Requests of one token per sequence. */
  decodes: number;
  prefills: number;
  allLogits: boolean;
  ms: number;
  /** Set when the native forward failed (every request of the step was rejected with it). */
  error?: string;
}

export interface SchedulerStats {
  steps: number;
  failedSteps: number;
  requests: number;
  sequences: number;
  tokens: number;
  maxSequencesPerStep: number;
  meanSequencesPerStep: number;
  maxRequestsPerStep: number;
  meanRequestsPerStep: number;
  /** Wall time spent inside native forwards. */
  busyMs: number;
  /** Requests waiting now. */
  queued: number;
}

export type ForwardFn = (batch: NativeSequence[], allLogits: boolean) => Promise<Float32Array>;

interface Pending {
  batch: NativeSequence[];
  allLogits: boolean;
  tokens: number;
  decode: boolean;
  /** Logits rows this request gets back. */
  rows: number;
  resolve: (logits: Float32Array) => void;
  reject: (err: unknown) => void;
}

export class BatchScheduler {
  private queue: Pending[] = [];
  private running = false;
  private pumpScheduled = false;
  private readonly listeners = new Set<(step: StepInfo) => void>();
  private totals = { steps: 0, failedSteps: 0, requests: 0, sequences: 0, tokens: 0, maxSequencesPerStep: 0, maxRequestsPerStep: 0, busyMs: 0 };
  readonly options: BatchingOptions;

  /**
   * `rowWidth`: floats per logits row. `tokenLimit`: token ids must be below it (the native engine's padded
   * vocabulary); checked here so that one caller's bad token fails that caller alone, not its batch-mates.
   */
  constructor(
    private readonly forwardFn: ForwardFn,
    private readonly rowWidth: number,
    private readonly tokenLimit: number,
    options: Partial<BatchingOptions> = {},
  ) {
    const pick = (v: number | undefined, d: number) => (v !== undefined && Number.isFinite(v) && v >= 1 ? Math.floor(v) : d);
    this.options = { maxSequences: pick(options.maxSequences, DEFAULT_BATCHING.maxSequences), maxTokens: pick(options.maxTokens, DEFAULT_BATCHING.maxTokens) };
  }

  /** Resolves with this request's logits rows once the step that carries it has run. */
  submit(batch: NativeSequence[], allLogits = false): Promise<Float32Array> {
    const invalid = this.validate(batch);
    if (invalid) return Promise.reject(invalid);
    if (batch.length === 0) return Promise.resolve(new Float32Array(0));
    let tokens = 0;
    for (const s of batch) tokens += s.tokens.length;
    return new Promise<Float32Array>((resolve, reject) => {
      this.queue.push({ batch, allLogits, tokens, decode: !allLogits && tokens === batch.length, rows: allLogits ? tokens : batch.length, resolve, reject });
      this.schedulePump();
    });
  }

  stats(): SchedulerStats {
    const t = this.totals;
    return {
      ...t,
      meanSequencesPerStep: t.steps ? t.sequences / t.steps : 0,
      meanRequestsPerStep: t.steps ? t.requests / t.steps : 0,
      queued: this.queue.length,
    };
  }

  resetStats(): void {
    this.totals = { steps: 0, failedSteps: 0, requests: 0, sequences: 0, tokens: 0, maxSequencesPerStep: 0, maxRequestsPerStep: 0, busyMs: 0 };
  }

  /** Called after every native forward; returns the unsubscribe function. */
  onStep(listener: (step: StepInfo) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private validate(batch: NativeSequence[]): EvaporateError | undefined {
    if (!Array.isArray(batch)) return new EvaporateError('bad_argument', 'forward needs an array of sequences', 400);
    const seen = new Set<NativeState>();
    for (const s of batch) {
      if (!s || typeof s !== 'object') return new EvaporateError('bad_argument', 'each sequence is an object', 400);
      if (seen.has(s.state)) return new EvaporateError('bad_argument', 'a state appears twice in one batch', 400);
      seen.add(s.state);
      if (!(s.tokens instanceof Int32Array)) return new EvaporateError('bad_argument', 'tokens must be an Int32Array', 400);
      if (s.tokens.length === 0) return new EvaporateError('empty_input', 'each sequence needs at least one token', 400);
      for (const tok of s.tokens)
        if (tok < 0 || tok >= this.tokenLimit) return new EvaporateError('token_out_of_range', `token id ${tok} is outside the vocabulary`, 400);
    }
    return undefined;
  }

  // The next step is put together on a later turn of the event loop, not when the previous one resolves: the
  // callers it resolved sample their next token and resubmit in microtasks, and they belong in the next step.
  private schedulePump(): void {
    if (this.running || this.pumpScheduled || this.queue.length === 0) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      if (this.running || this.queue.length === 0) return;
      this.running = true;
      const step = this.take();
      void this.run(step).finally(() => {
        this.running = false;
        this.schedulePump();
      });
    });
  }

  /** Removes and returns the requests of the next step (see the policy in the file comment). */
  private take(): Pending[] {
    const mode = this.queue[0].allLogits;
    const claimed = new Set<NativeState>();
    const eligible: Pending[] = [];
    for (const p of this.queue) {
      const free = p.batch.every((s) => !claimed.has(s.state));
      for (const s of p.batch) claimed.add(s.state);
      if (free && p.allLogits === mode) eligible.push(p);
    }
    const chosen: Pending[] = [];
    let sequences = 0;
    let tokens = 0;
    const add = (p: Pending) => {
      chosen.push(p);
      sequences += p.batch.length;
      tokens += p.tokens;
    };
    const { maxSequences, maxTokens } = this.options;
    for (const p of eligible) {
      if (!p.decode) continue;
      if (chosen.length > 0 && sequences + p.batch.length > maxSequences) break;
      add(p);
    }
    let firstPrefill = true;
    for (const p of eligible) {
      if (p.decode) continue;
      if (chosen.length > 0 && (sequences + p.batch.length > maxSequences || (!firstPrefill && tokens + p.tokens > maxTokens))) break;
      add(p);
      firstPrefill = false;
    }
    const taken = new Set(chosen);
    this.queue = this.queue.filter((p) => !taken.has(p));
    return chosen;
  }

  private async run(step: Pending[]): Promise<void> {
    const allLogits = step[0].allLogits;
    const batch = step.flatMap((p) => p.batch);
    let rows = 0;
    let tokens = 0;
    for (const p of step) {
      rows += p.rows;
      tokens += p.tokens;
    }
    const started = performance.now();
    let logits: Float32Array | undefined;
    let error: unknown;
    try {
      logits = await this.forwardFn(batch, allLogits);
      if (!(logits instanceof Float32Array) || logits.length !== rows * this.rowWidth)
        throw new EvaporateError('engine_failed', `the engine returned ${logits?.length ?? 'no'} logits for ${rows} rows of ${this.rowWidth}`, 500);
    } catch (e) {
      error = e;
    }
    const ms = performance.now() - started;
    const t = this.totals;
    t.steps++;
    t.requests += step.length;
    t.sequences += batch.length;
    t.tokens += tokens;
    t.busyMs += ms;
    t.maxSequencesPerStep = Math.max(t.maxSequencesPerStep, batch.length);
    t.maxRequestsPerStep = Math.max(t.maxRequestsPerStep, step.length);
    if (error !== undefined) {
      t.failedSteps++;
      const err = stepError(error, step.length, batch.length);
      for (const p of step) p.reject(err);
    } else if (step.length === 1) {
      step[0].resolve(logits!);
    } else {
      // copies, so a caller that keeps its rows (a cached prefix) does not keep the whole step's block alive
      let row = 0;
      for (const p of step) {
        p.resolve(logits!.slice(row * this.rowWidth, (row + p.rows) * this.rowWidth));
        row += p.rows;
      }
    }
    const info: StepInfo = {
      requests: step.length,
      sequences: batch.length,
      tokens,
      decodes: step.filter((p) => p.decode).length,
      prefills: step.filter((p) => !p.decode).length,
      allLogits,
      ms,
      ...(error !== undefined ? { error: (error as Error)?.message ?? String(error) } : {}),
    };
    for (const l of this.listeners) {
      try {
        l(info);
      } catch {
        // an observer must not stop the engine
      }
    }
  }
}

/** A merged step fails for all its requests; say so, or a caller whose own input was fine cannot tell why it failed. */
function stepError(error: unknown, requests: number, sequences: number): unknown {
  if (requests <= 1) return error;
  const e = error as { code?: unknown; message?: unknown; status?: unknown };
  const code = typeof e?.code === 'string' ? e.code : 'engine_failed';
  const status = typeof e?.status === 'number' ? e.status : 500;
  const message = typeof e?.message === 'string' ? e.message : String(error);
  return new EvaporateError(code, `${message} (in a batched forward of ${requests} requests, ${sequences} sequences; all of them failed with it)`, status);
}
