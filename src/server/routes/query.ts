/**
 * POST /query: a user's SQL over the result tables, read-only and time-boxed (see pipeline/query.ts).
 * JSON by default; CSV with {"format": "csv"} or Accept: text/csv.
 */
import type { FastifyPluginAsync } from 'fastify';
import { runQuery, toCsv } from '../../pipeline/query.js';
import { errorResponses } from '../schemas.js';

const queryRoutes: FastifyPluginAsync = async (app) => {
  const { db, settings } = app.ctx;
  app.post<{ Body: { sql: string; params?: unknown[] | Record<string, unknown>; offset?: number; limit?: number; format?: 'json' | 'csv' } }>(
    '/query',
    {
      schema: {
        tags: ['query'],
        summary: 'Run a read-only SQL query over the extracted tables (row cap, paging, time limit)',
        body: {
          type: 'object',
          properties: {
            sql: { type: 'string', minLength: 1, maxLength: 100000 },
            // SQLite binds only scalars: anything nested is refused here, at its first level.
            params: {
              anyOf: [
                { type: 'array', maxItems: 1000, items: { type: ['string', 'number', 'boolean', 'null'] } },
                { type: 'object', maxProperties: 1000, additionalProperties: { type: ['string', 'number', 'boolean', 'null'] } },
              ],
            },
            offset: { type: 'integer', minimum: 0 },
            limit: { type: 'integer', minimum: 1 },
            format: { type: 'string', enum: ['json', 'csv'] },
          },
          required: ['sql'],
          additionalProperties: false,
        },
        response: errorResponses(400, 408, 409, 413, 429),
      },
    },
    async (request, reply) => {
      const { sql, params, offset, limit, format } = request.body;
      const result = await runQuery(db, { sql, params, offset, limit }, {
        timeoutMs: settings.query.timeoutMs,
        maxRows: settings.query.maxRows,
        memoryMb: settings.query.memoryMb,
        maxConcurrent: settings.query.maxConcurrent,
      });
      const csv = format === 'csv' || (format === undefined && /\btext\/csv\b/.test(String(request.headers.accept ?? '')));
      if (csv) {
        reply.header('content-type', 'text/csv; charset=utf-8');
        if (result.hasMore) reply.header('x-next-offset', String(result.nextOffset));
        return toCsv(result);
      }
      return result;
    },
  );
};

export default queryRoutes;
