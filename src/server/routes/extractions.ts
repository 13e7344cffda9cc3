/**
 * Extraction routes: start a closed or open extraction of a corpus as a durable "extract" job, follow its
 * state and cost, and read the resulting table's description. The job itself runs in the job runner.
 */
import type { FastifyPluginAsync } from 'fastify';
import { EvaporateError } from '../../errors.js';
import { JobService } from '../../jobs/service.js';
import { setJobBudget, jobLlmUsage } from '../../llm/index.js';
import { EXTRACT_JOB_KIND, parseExtractRequest } from '../../pipeline/service.js';
import { getCorpus } from '../../store/corpora.js';
import { corpusParam, errorResponses } from '../schemas.js';

const corpusIdParam = corpusParam;
const jobParams = {
  type: 'object',
  properties: { id: corpusParam.properties.id, jobId: { type: 'string', pattern: '^[0-9]{1,12}$' } },
  required: ['id', 'jobId'],
} as const;

const attributeSchema = {
  oneOf: [
    { type: 'string', minLength: 1, maxLength: 64 },
    {
      type: 'object',
      properties: { name: { type: 'string', minLength: 1, maxLength: 64 }, description: { type: 'string', maxLength: 500 }, type: { type: 'string', enum: ['text', 'integer', 'real', 'date'] } },
      required: ['name'],
      additionalProperties: false,
    },
  ],
};

const extractionsRoutes: FastifyPluginAsync = async (app) => {
  const { db } = app.ctx;
  const jobs = () => app.ctx.jobs ?? new JobService(db);
  const view = (jobId: number) => {
    const job = jobs().get(jobId);
    return { ...job, llm: jobLlmUsage(db, jobId) };
  };

  app.post<{ Params: { id: string }; Body: Record<string, unknown> }>(
    '/corpora/:id/extractions',
    {
      schema: {
        tags: ['extractions'],
        summary: 'Start an extraction job (closed: the attributes you list; open: discover them)',
        params: corpusIdParam,
        body: {
          type: 'object',
          properties: {
            mode: { type: 'string', enum: ['open', 'closed'] },
            attributes: { type: 'array', minItems: 1, maxItems: 100, items: attributeSchema },
            sampleSize: { type: 'integer', minimum: 1, maximum: 100 },
            candidates: { type: 'integer', minimum: 1, maximum: 200 },
            topK: { type: 'integer', minimum: 1, maximum: 50 },
            maxAttributes: { type: 'integer', minimum: 1, maximum: 100 },
            seed: { type: 'integer', minimum: 0 },
            fallbackDirect: { type: 'boolean' },
            budget: { type: 'object', properties: { maxTokens: { type: 'number', minimum: 0 }, maxUsd: { type: 'number', minimum: 0 } }, additionalProperties: false },
          },
          additionalProperties: false,
        },
        response: errorResponses(400, 404),
      },
    },
    async (request, reply) => {
      const corpus = getCorpus(db, request.params.id);
      const { params, budget } = parseExtractRequest(corpus.id, request.body);
      const job = jobs().enqueue({ kind: EXTRACT_JOB_KIND, corpusId: corpus.id, params });
      if (budget && (budget.maxTokens || budget.maxUsd)) setJobBudget(db, job.id, budget);
      return reply.status(202).send(view(job.id));
    },
  );

  app.get<{ Params: { id: string } }>(
    '/corpora/:id/extractions',
    { schema: { tags: ['extractions'], summary: 'Extraction jobs of a corpus, newest first, with their LLM cost', params: corpusIdParam, response: errorResponses(404) } },
    async (request) => {
      const corpus = getCorpus(db, request.params.id);
      return { extractions: jobs().list({ corpusId: corpus.id, kind: EXTRACT_JOB_KIND }).map((j) => ({ ...j, llm: jobLlmUsage(db, j.id) })) };
    },
  );

  app.get<{ Params: { id: string; jobId: string } }>(
    '/corpora/:id/extractions/:jobId',
    { schema: { tags: ['extractions'], summary: 'One extraction: state, progress, result summary and LLM cost', params: jobParams, response: errorResponses(404) } },
    async (request) => {
      const corpus = getCorpus(db, request.params.id);
      const job = jobs().get(Number(request.params.jobId));
      if (job.corpusId !== corpus.id || job.kind !== EXTRACT_JOB_KIND)
        throw new EvaporateError('extraction_not_found', `Corpus ${corpus.id} has no extraction job ${request.params.jobId}.`, 404);
      return view(job.id);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/corpora/:id/table',
    { schema: { tags: ['extractions'], summary: 'The extracted table of a corpus: name, columns and types, row count', params: corpusIdParam, response: errorResponses(404) } },
    async (request) => {
      const corpus = getCorpus(db, request.params.id);
      const row = db.prepare('SELECT table_name, provenance_table, columns, rows, job_id, updated_at FROM result_tables WHERE corpus_id = ?').get(corpus.id) as
        | { table_name: string; provenance_table: string; columns: string; rows: number; job_id: number | null; updated_at: string }
        | undefined;
      if (!row) throw new EvaporateError('no_result_table', `Corpus "${corpus.name}" has no extracted table yet; start an extraction first.`, 404);
      return { table: row.table_name, provenanceTable: row.provenance_table, columns: JSON.parse(row.columns), rows: row.rows, jobId: row.job_id, updatedAt: row.updated_at };
    },
  );
};

export default extractionsRoutes;
