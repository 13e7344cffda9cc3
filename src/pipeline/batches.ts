/**
 * How a job's documents are cut into the corpus pass's batches (one `batch:<n>` checkpoint and, with Redis, one
 * shard each). A batch is bounded by a document count and by the bytes of text and HTML it carries: a fixed count
 * alone makes an 80 MB shard of 500 HTML pages while 500 short texts are a few hundred KB.
 *
 * The cut is a pure function of the documents' sizes in the job's order and the two limits, and the job
 * checkpoints its result beside the document list, so a resumed job (or one resumed under other settings)
 * finds every batch with the documents it had.
 */
import { EvaporateError } from '../errors.js';

export interface BatchLimits {
  /** Most documents in one batch. */
  documents: number;
  /** Most bytes (text + HTML) in one batch; a single larger document gets a batch of its own. */
  bytes: number;
}

/**
 * Cuts a list into consecutive batches, greedily in order: a batch takes documents while both limits hold.
 * Returns each batch's length (the checkpointed form: small, and it cannot name other documents than the list's).
 */
export function cutBatches(sizes: readonly number[], limits: BatchLimits): number[] {
  if (!Number.isInteger(limits.documents) || limits.documents < 1)
    throw new EvaporateError('invalid_batch_limits', `A batch must allow at least one document (EVAPORATE_BATCH_SIZE), got ${limits.documents}.`);
  if (!(limits.bytes > 0)) throw new EvaporateError('invalid_batch_limits', `A batch's byte budget (EVAPORATE_BATCH_BYTES) must be above 0, got ${limits.bytes}.`);
  const lengths: number[] = [];
  let count = 0;
  let bytes = 0;
  for (const size of sizes) {
    if (count > 0 && (count === limits.documents || bytes + size > limits.bytes)) {
      lengths.push(count);
      count = 0;
      bytes = 0;
    }
    count++;
    bytes += size;
  }
  if (count > 0) lengths.push(count);
  return lengths;
}

/** The batches themselves, from the list and its checkpointed cut. */
export function sliceBatches<T>(items: readonly T[], lengths: readonly number[]): T[][] {
  const total = lengths.reduce((n, l) => n + l, 0);
  if (total !== items.length || lengths.some((l) => !Number.isInteger(l) || l < 1))
    throw new EvaporateError('batch_cut_mismatch', `The job's batch cut covers ${total} documents but the job has ${items.length}; its checkpoints do not belong together.`, 500);
  const out: T[][] = [];
  let at = 0;
  for (const l of lengths) out.push(items.slice(at, (at += l)));
  return out;
}

/**
 * A checkpointed batch's outputs must be for documents of the batch it is resumed as. They can be fewer (a
 * document deleted before the batch ran is not read), never others: that would be a job whose batches were
 * cut another way before (an older version of the cut) and would put values in the wrong rows.
 */
export function checkBatchOutputs(index: number, ids: readonly number[], outputs: Record<string, { documentIds: number[] }>): void {
  const inBatch = new Set(ids);
  for (const [attribute, out] of Object.entries(outputs))
    if (out.documentIds.some((id) => !inBatch.has(id)))
      throw new EvaporateError(
        'batch_cut_mismatch',
        `Checkpoint batch:${index} holds "${attribute}" outputs for documents outside the batch: the job's batches were cut differently when it started. Run the extraction again as a new job.`,
        500,
      );
}
