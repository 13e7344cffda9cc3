/**
 * Attribute health: on how many documents the kept functions give no answer (all abstain) or no clear
 * answer (the leading value holds no more than `agreementShare` of the votes cast). A rise of that share
 * over the baseline run means the documents changed under the functions: drift.
 */
import type { Db } from '../store/database.js';
import { normalizeForComparison } from '../weak-supervision/normalize.js';
import type { Vote } from '../weak-supervision/types.js';

export interface HealthCounts {
  documents: number;
  abstained: number;
  disagreed: number;
}

export interface AttributeHealth {
  documents: number;
  abstainShare: number;
  disagreeShare: number;
  unhealthyShare: number;
}

/** votes[d][f]: function f's output on document d, null when it abstained. */
export function countHealth(votes: readonly (readonly Vote[])[], agreementShare: number): HealthCounts {
  let abstained = 0;
  let disagreed = 0;
  for (const row of votes) {
    const tally = new Map<string, number>();
    let cast = 0;
    for (const v of row) {
      const key = v === null ? null : normalizeForComparison(v);
      if (key === null || key === '') continue;
      cast++;
      tally.set(key, (tally.get(key) ?? 0) + 1);
    }
    if (cast === 0) abstained++;
    else if (Math.max(...tally.values()) / cast <= agreementShare) disagreed++;
  }
  return { documents: votes.length, abstained, disagreed };
}

export function addCounts(a: HealthCounts, b: HealthCounts): HealthCounts {
  return { documents: a.documents + b.documents, abstained: a.abstained + b.abstained, disagreed: a.disagreed + b.disagreed };
}

export function toHealth(c: HealthCounts): AttributeHealth {
  const share = (n: number) => (c.documents === 0 ? 0 : n / c.documents);
  return {
    documents: c.documents,
    abstainShare: share(c.abstained),
    disagreeShare: share(c.disagreed),
    unhealthyShare: share(c.abstained + c.disagreed),
  };
}

export interface DriftSettings {
  driftThreshold: number;
  driftMinDocuments: number;
}

/** Drifted when enough documents were seen and the unhealthy share rose by more than the threshold. */
export function hasDrifted(current: AttributeHealth, baselineShare: number | null, s: DriftSettings): boolean {
  if (baselineShare === null || current.documents < s.driftMinDocuments) return false;
  return current.unhealthyShare - baselineShare > s.driftThreshold;
}

/** The reference a nightly run compares with: the latest full extraction or baseline measurement. */
export function baselineShare(db: Db, attributeId: number): number | null {
  const r = db
    .prepare(
      `SELECT unhealthy_share FROM attribute_health WHERE attribute_id = ? AND run_kind IN ('full','baseline')
       ORDER BY id DESC LIMIT 1`,
    )
    .pluck()
    .get(attributeId) as number | undefined;
  return r ?? null;
}

export interface HealthRecord extends AttributeHealth {
  jobId: number | null;
  corpusId: number;
  attributeId: number;
  runKind: 'full' | 'nightly' | 'baseline';
  baselineShare?: number | null;
  drifted?: boolean;
  resynthesized?: boolean;
}

/** For the extract job too: a full run that records its health gives later nightly runs their baseline. */
export function recordHealth(db: Db, r: HealthRecord): void {
  // A run outside the job system (an in-memory job context) has no jobs row to point at.
  const jobId = r.jobId !== null && db.prepare('SELECT 1 FROM jobs WHERE id = ?').get(r.jobId) ? r.jobId : null;
  db.prepare(
    `INSERT INTO attribute_health (job_id, corpus_id, attribute_id, run_kind, documents, abstain_share, disagree_share,
       unhealthy_share, baseline_share, drifted, resynthesized)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (job_id, attribute_id, run_kind) DO UPDATE SET documents = excluded.documents,
       abstain_share = excluded.abstain_share, disagree_share = excluded.disagree_share,
       unhealthy_share = excluded.unhealthy_share, baseline_share = excluded.baseline_share,
       drifted = excluded.drifted, resynthesized = excluded.resynthesized`,
  ).run(
    jobId,
    r.corpusId,
    r.attributeId,
    r.runKind,
    r.documents,
    r.abstainShare,
    r.disagreeShare,
    r.unhealthyShare,
    r.baselineShare ?? null,
    r.drifted ? 1 : 0,
    r.resynthesized ? 1 : 0,
  );
}
