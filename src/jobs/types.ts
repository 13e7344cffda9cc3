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
   */
  checkpoint<T>(key: string, fn: () => Promise<T>): Promise<T>;
}

export type JobHandler<P = unknown, R = unknown> = (params: P, ctx: JobContext) => Promise<R>;
