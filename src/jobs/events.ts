/**
 * In-process job events. A runner in this process reports progress here at once; progress of runners in
 * other processes reaches SSE clients by polling the job row (see routes/jobs.ts), so both paths are needed.
 */
import { EventEmitter } from 'node:events';
import type { JobState } from './store.js';

export interface JobProgressEvent {
  id: number;
  state: JobState;
  step: string | null;
  done: number;
  total: number;
}

export class JobEvents extends EventEmitter {
  constructor() {
    super();
    // One listener per SSE client and per runner: the default cap of 10 is a false alarm here.
    this.setMaxListeners(0);
  }
  emitProgress(e: JobProgressEvent): void {
    this.emit('progress', e);
  }
  onProgress(fn: (e: JobProgressEvent) => void): () => void {
    this.on('progress', fn);
    return () => this.off('progress', fn);
  }
  /** Lets a same-process runner abort at once instead of at its next heartbeat. */
  emitCancel(id: number): void {
    this.emit('cancel', id);
  }
  onCancel(fn: (id: number) => void): () => void {
    this.on('cancel', fn);
    return () => this.off('cancel', fn);
  }
  /** Wakes idle runners when work is enqueued or retried. */
  emitQueued(id: number): void {
    this.emit('queued', id);
  }
  onQueued(fn: (id: number) => void): () => void {
    this.on('queued', fn);
    return () => this.off('queued', fn);
  }
}

/** The process-wide bus shared by the runner, the routes and the scheduler unless one is injected. */
export const jobEvents = new JobEvents();
