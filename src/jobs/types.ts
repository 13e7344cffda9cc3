/**
 * The seam between durable jobs (src/jobs) and the work they run (src/pipeline).
 * A handler is plain async code; everything that must survive a crash goes through checkpoint().
 */
export interface JobContext {
  jobId: number;
  /** Aborted when the job is cancelled or the process is shutting down: stop at the next checkpoint. */
  signal: AbortSignal;
  /** Reports progress (shown by GET /jobs/:id, SSE and the CLI bar). */
  progress(step: string, done: number, total: number): void;
  /**
   * Durable memo: if this job already completed `key`, returns the stored (JSON) result without running fn;
   * otherwise runs fn, stores its result atomically, and returns it. Keys name units of work
   * ("attribute:title:synthesis", "attribute:title:batch:17"), so a resumed job skips what is done.
   *
   * options.commit runs synchronously inside the same SQLite transaction (on the runner's connection) that
   * records the checkpoint: write the unit's rows there and they exist if and only if the unit is marked done.
   * The returned value is always the JSON round trip of fn's result, fresh or resumed, so both paths agree.
   * Throws an AbortError (name 'AbortError') instead of starting fn once signal is aborted.
   */
  checkpoint<T>(key: string, fn: () => Promise<T>, options?: CheckpointOptions<T>): Promise<T>;
}

export interface CheckpointOptions<T> {
  commit?: (result: T) => void;
}

export type JobHandler<P = unknown, R = unknown> = (params: P, ctx: JobContext) => Promise<R>;
