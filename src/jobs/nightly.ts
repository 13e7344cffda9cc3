/**
 * The incremental ("nightly") job: extend a corpus's tables with the documents added since the last run,
 * reusing the stored functions and label-model weights (no LLM call), and re-synthesize only the attributes
 * whose health drifted. The document range is fixed when the job starts, so a document that arrives during
 * the run is left whole for the next one.
 *
 * The pipeline provides the work through IncrementalPipeline; this module owns the order, the checkpoints,
 * the watermark and the health history.
 */
import type { Settings } from '../config.js';
import type { Db } from '../store/database.js';
import { EvaporateError } from '../errors.js';
import type { Vote } from '../weak-supervision/types.js';
import type { JobContext, JobHandler } from './types.js';
import { addCounts, baselineShare, countHealth, hasDrifted, recordHealth, toHealth, type HealthCounts } from './health.js';

/** What the pipeline must offer for incremental runs. */
export interface IncrementalPipeline {
  /** Attributes of the corpus that have kept functions. */
  attributes(corpusId: number): { id: number; name: string }[];
  /** Runs the attribute's kept functions on the documents (sandbox, no LLM): votes[i][f] for documentIds[i]. */
  apply(corpusId: number, attributeId: number, documentIds: number[], ctx: JobContext): Promise<Vote[][]>;
  /**
   * Writes the documents' cells (label model with its stored weights over the votes) to the extractions and the
   * result table. Synchronous: it runs inside the checkpoint transaction, so a batch is written whole or not at all.
   */
  write(corpusId: number, attributeId: number, documentIds: number[], votes: Vote[][], jobId: number): void;
  /**
   * Synthesizes, scores and keeps new functions for the attribute (LLM calls, cached and counted), on a sample
   * that includes `recentDocumentIds`, and stores them with fresh label-model weights.
   */
  resynthesize(corpusId: number, attributeId: number, recentDocumentIds: number[], ctx: JobContext): Promise<void>;
}

export interface NightlyParams {
  corpusId: number;
  /** Process documents with id > from; defaults to the schedule's watermark. */
  from?: number;
}

export interface NightlyAttributeResult {
  attribute: string;
  documents: number;
  unhealthyShare: number;
  baselineShare: number | null;
  drifted: boolean;
  resynthesized: boolean;
}

export interface NightlyResult {
  corpusId: number;
  from: number;
  to: number;
  documents: number;
  attributes: NightlyAttributeResult[];
}

type JobSettings = Settings['jobs'];

function documentIds(db: Db, corpusId: number, from: number, to: number, limit = -1): number[] {
  return db
    .prepare(`SELECT id FROM documents WHERE corpus_id = ? AND status = 'ready' AND id > ? AND id <= ? ORDER BY id LIMIT ?`)
    .pluck()
    .all(corpusId, from, to, limit) as number[];
}

export function createNightlyHandler(deps: { db: Db; pipeline: IncrementalPipeline; settings: JobSettings }): JobHandler<
  NightlyParams,
  NightlyResult
> {
  const { db, pipeline, settings } = deps;

  return async (params, ctx) => {
    const corpusId = params.corpusId;
    if (!db.prepare('SELECT 1 FROM corpora WHERE id = ?').get(corpusId)) {
      throw new EvaporateError('corpus_not_found', `There is no corpus with id ${corpusId}.`, 404);
    }
    // The range is fixed once, at the first attempt: a resumed job processes exactly the same documents.
    const range = await ctx.checkpoint('range', async () => {
      const watermark = db.prepare('SELECT watermark FROM job_schedules WHERE corpus_id = ?').pluck().get(corpusId) as
        | number
        | undefined;
      const from = params.from ?? watermark ?? 0;
      const to = db
        .prepare("SELECT COALESCE(MAX(id), 0) FROM documents WHERE corpus_id = ? AND status = 'ready'")
        .pluck()
        .get(corpusId) as number;
      return { from, to: Math.max(from, to) };
    });
    const ids = documentIds(db, corpusId, range.from, range.to);
    const attributes = await ctx.checkpoint('attributes', async () => pipeline.attributes(corpusId));
    const batches: number[][] = [];
    for (let i = 0; i < ids.length; i += settings.batchSize) batches.push(ids.slice(i, i + settings.batchSize));
    const totalUnits = attributes.length * batches.length;
    let doneUnits = 0;
    const results: NightlyAttributeResult[] = [];

    const pass = async (attr: { id: number; name: string }, label: string): Promise<HealthCounts> => {
      let counts: HealthCounts = { documents: 0, abstained: 0, disagreed: 0 };
      for (let b = 0; b < batches.length; b++) {
        const batch = batches[b]!;
        const c = await ctx.checkpoint(
          `attribute:${attr.id}:${label}:batch:${b}`,
          async () => {
            const votes = await pipeline.apply(corpusId, attr.id, batch, ctx);
            return { votes, counts: countHealth(votes, settings.agreementShare) };
          },
          { commit: (r) => pipeline.write(corpusId, attr.id, batch, r.votes, ctx.jobId) },
        );
        counts = addCounts(counts, c.counts);
        ctx.progress(`${label} ${attr.name}`, Math.min(++doneUnits, totalUnits), totalUnits);
      }
      return counts;
    };

    for (const attr of attributes) {
      // Without a recorded full run, measure the kept functions on already processed documents (no LLM).
      let baseline = baselineShare(db, attr.id);
      if (baseline === null && range.from > 0) {
        const old = db
          .prepare(`SELECT id FROM documents WHERE corpus_id = ? AND status = 'ready' AND id <= ? ORDER BY id DESC LIMIT ?`)
          .pluck()
          .all(corpusId, range.from, Math.max(settings.batchSize, settings.driftMinDocuments)) as number[];
        const measured = await ctx.checkpoint(
          `attribute:${attr.id}:baseline`,
          async () => toHealth(countHealth(await pipeline.apply(corpusId, attr.id, old, ctx), settings.agreementShare)),
          {
            commit: (h) =>
              old.length && recordHealth(db, { ...h, jobId: ctx.jobId, corpusId, attributeId: attr.id, runKind: 'baseline' }),
          },
        );
        baseline = old.length ? measured.unhealthyShare : null;
      }
      const health = toHealth(await pass(attr, 'apply'));
      const drifted = hasDrifted(health, baseline, settings);
      let resynthesized = false;
      if (drifted) {
        await ctx.checkpoint(`attribute:${attr.id}:resynthesis`, () => pipeline.resynthesize(corpusId, attr.id, ids, ctx));
        // Rewrite the new documents with the new functions; their health is the attribute's new baseline.
        const after = toHealth(await pass(attr, 'reapply'));
        await ctx.checkpoint(`attribute:${attr.id}:rebaseline`, async () => after, {
          commit: (h) => recordHealth(db, { ...h, jobId: ctx.jobId, corpusId, attributeId: attr.id, runKind: 'baseline' }),
        });
        resynthesized = true;
      }
      await ctx.checkpoint(`attribute:${attr.id}:health`, async () => health, {
        commit: (h) =>
          recordHealth(db, {
            ...h,
            jobId: ctx.jobId,
            corpusId,
            attributeId: attr.id,
            runKind: 'nightly',
            baselineShare: baseline,
            drifted,
            resynthesized,
          }),
      });
      results.push({
        attribute: attr.name,
        documents: health.documents,
        unhealthyShare: health.unhealthyShare,
        baselineShare: baseline,
        drifted,
        resynthesized,
      });
    }

    // The watermark moves only once every attribute has been written for the whole range.
    await ctx.checkpoint('watermark', async () => range.to, {
      commit: (to) =>
        db
          .prepare(
            `UPDATE job_schedules SET watermark = MAX(watermark, ?), last_job_id = ?,
               last_run_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE corpus_id = ?`,
          )
          .run(to, ctx.jobId, corpusId),
    });
    return { corpusId, from: range.from, to: range.to, documents: ids.length, attributes: results };
  };
}
