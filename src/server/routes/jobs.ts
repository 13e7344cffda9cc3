/**
 * Job routes: list, inspect (state, step, counts, tokens and cost so far, ETA), follow as server-sent events,
 * cancel, retry; and per-corpus schedules with the attribute health history of their runs.
 */
import type { FastifyPluginAsync } from 'fastify';
import { JobService } from '../../jobs/service.js';
import { TERMINAL_STATES, type JobState } from '../../jobs/store.js';
import { corpusParam, errorResponses, idParam } from '../schemas.js';
import { getCorpus } from '../../store/corpora.js';

declare module '../app.js' {
  interface AppContext {
    /** Shared with the in-process runner so cancel aborts at once and SSE sees progress without polling lag. */
    jobs?: JobService;
  }
}

const states = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

const jobsRoutes: FastifyPluginAsync = async (app) => {
  const service = app.ctx.jobs ?? new JobService(app.ctx.db);
  const pollMs = app.ctx.settings.jobs.pollMs;
  const jobId = (raw: string) => Number(raw);

  app.get<{ Querystring: { state?: JobState; corpus?: number; kind?: string; limit?: number } }>(
    '/jobs',
    {
      schema: {
        tags: ['jobs'],
        summary: 'List jobs, newest first',
        querystring: {
          type: 'object',
          properties: {
            state: { type: 'string', enum: states },
            corpus: { type: 'integer', minimum: 1 },
            kind: { type: 'string', maxLength: 64 },
            limit: { type: 'integer', minimum: 1, maximum: 1000 },
          },
          additionalProperties: false,
        },
        response: errorResponses(400),
      },
    },
    async (request) => ({
      jobs: service.list({
        state: request.query.state,
        corpusId: request.query.corpus,
        kind: request.query.kind,
        limit: request.query.limit,
      }),
    }),
  );

  app.get<{ Params: { id: string } }>(
    '/jobs/:id',
    { schema: { tags: ['jobs'], summary: 'A job: state, step, done/total, tokens and cost so far, ETA', params: idParam, response: errorResponses(404) } },
    async (request) => service.get(jobId(request.params.id)),
  );

  app.post<{ Params: { id: string } }>(
    '/jobs/:id/cancel',
    { schema: { tags: ['jobs'], summary: 'Cancel a job; a running one stops at its next checkpoint', params: idParam, response: errorResponses(404, 409) } },
    async (request, reply) => reply.status(202).send(service.cancel(jobId(request.params.id))),
  );

  app.post<{ Params: { id: string } }>(
    '/jobs/:id/retry',
    { schema: { tags: ['jobs'], summary: 'Re-queue a failed or cancelled job; completed checkpoints are kept', params: idParam, response: errorResponses(404, 409) } },
    async (request, reply) => reply.status(202).send(service.retry(jobId(request.params.id))),
  );

  app.get<{ Params: { id: string } }>(
    '/jobs/:id/events',
    { schema: { tags: ['jobs'], summary: 'Progress as server-sent events (event: progress, then end)', params: idParam, response: errorResponses(404) } },
    async (request, reply) => {
      const id = jobId(request.params.id);
      let last = '';
      let closed = false;
      const first = service.get(id); // 404 before the stream starts
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      const finish = () => {
        if (closed) return;
        closed = true;
        clearInterval(timer);
        unsubscribe();
        res.end();
      };
      const send = (view = service.get(id)) => {
        if (closed) return;
        const data = JSON.stringify(view);
        if (data !== last) {
          last = data;
          res.write(`event: progress\nid: ${Date.now()}\ndata: ${data}\n\n`);
        }
        if (TERMINAL_STATES.includes(view.state)) {
          res.write(`event: end\ndata: ${JSON.stringify({ id, state: view.state })}\n\n`);
          finish();
        }
      };
      // In-process runner events arrive at once; the poll covers runners in other processes.
      const unsubscribe = service.events.onProgress((e) => {
        if (e.id === id) send();
      });
      const timer = setInterval(() => {
        try {
          send();
        } catch {
          finish();
        }
      }, pollMs);
      request.raw.on('close', finish);
      send(first);
    },
  );

  // Corpora are addressed by id or name here too, like every other corpus route.
  const corpusId = (raw: string) => getCorpus(app.ctx.db, raw).id;

  app.get('/schedules', { schema: { tags: ['jobs'], summary: 'Every corpus schedule' } }, async () => ({
    schedules: service.listSchedules(),
  }));

  app.get<{ Params: { id: string } }>(
    '/corpora/:id/schedule',
    { schema: { tags: ['jobs'], summary: "A corpus's nightly schedule and watermark", params: corpusParam, response: errorResponses(404) } },
    async (request) => service.getSchedule(corpusId(request.params.id)),
  );

  app.put<{ Params: { id: string }; Body: { cron: string; timezone?: string; enabled?: boolean; params?: Record<string, unknown> } }>(
    '/corpora/:id/schedule',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Set the cron expression of the incremental run of a corpus',
        params: corpusParam,
        body: {
          type: 'object',
          properties: {
            cron: { type: 'string', minLength: 1, maxLength: 200 },
            timezone: { type: 'string', maxLength: 64 },
            enabled: { type: 'boolean' },
            params: { type: 'object', additionalProperties: true },
          },
          required: ['cron'],
          additionalProperties: false,
        },
        response: errorResponses(400, 404),
      },
    },
    async (request) => service.setSchedule(corpusId(request.params.id), request.body),
  );

  app.delete<{ Params: { id: string } }>(
    '/corpora/:id/schedule',
    { schema: { tags: ['jobs'], summary: 'Remove the schedule of a corpus', params: corpusParam, response: errorResponses(404) } },
    async (request, reply) => {
      service.deleteSchedule(corpusId(request.params.id));
      return reply.status(204).send();
    },
  );

  app.get<{ Params: { id: string } }>(
    '/corpora/:id/health',
    { schema: { tags: ['jobs'], summary: 'Per-run health of each attribute (abstain / disagree shares, drift)', params: corpusParam, response: errorResponses(404) } },
    async (request) => ({ health: service.health(corpusId(request.params.id)) }),
  );
};

export default jobsRoutes;
