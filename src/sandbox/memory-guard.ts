/**
 * The sandbox's memory cap, read from the process: Node 20 gives no memory figure per worker thread, so what
 * the process holds outside the main thread's own heap and buffers (the workers, mostly) stands for them, and
 * a running call's growth is measured against the lowest reading seen.
 */
export interface MemorySample {
  rss: number;
  heapTotal: number;
  external: number;
}

export class MemoryGuard {
  private baseline = Infinity;
  private cooldownUntil = 0;
  private rebase = false;
  private lastOwn = 0;

  /**
   * @param budgetBytes growth allowed before the guard steps in
   * @param cooldownMs how long a stopped worker's memory takes to go back
   * @param shrinkBytes a drop of the main thread's own memory that makes a reading unreliable
   */
  constructor(
    private readonly budgetBytes: number,
    private readonly cooldownMs: number,
    private readonly shrinkBytes = 16 * 1024 * 1024,
  ) {}

  /** Measuring (re)starts: the lowest reading so far stays the baseline. */
  start(m: MemorySample): void {
    this.baseline = Math.min(this.baseline, this.read(m).used);
  }

  /** A worker was stopped: measure growth afresh once its memory has gone back. */
  settle(now: number): void {
    this.cooldownUntil = now + this.cooldownMs;
  }

  /** Whether the growth since the baseline is past the budget, so the longest-running call is to be stopped. */
  over(m: MemorySample, now: number): boolean {
    const { used, shrank } = this.read(m);
    // When the main thread's heap or buffers shrink, the resident size lags behind (freed pages go back to the
    // system later), which would read as the workers growing: skip the reading and rebase on the next one.
    if (now < this.cooldownUntil || shrank) {
      this.rebase = true;
      return false;
    }
    if (this.rebase) {
      this.rebase = false;
      this.baseline = used;
      return false;
    }
    this.baseline = Math.min(this.baseline, used);
    return used - this.baseline > this.budgetBytes;
  }

  private read(m: MemorySample): { used: number; shrank: boolean } {
    const own = m.heapTotal + m.external;
    const shrank = own < this.lastOwn - this.shrinkBytes;
    this.lastOwn = own;
    return { used: m.rss - own, shrank };
  }
}
