/**
 * Browsing a result table: sorted pages of rows with each cell's confidence, and one cell's provenance
 * (evidence span, the functions that agreed with their code and learned accuracy). The web console reads these.
 */
import type { FastifyPluginAsync } from 'fastify';
import { getCorpus } from '../../store/corpora.js';
import { cellProvenance, tablePage } from '../../store/result-table.js';
import { corpusParam, errorResponses } from '../schemas.js';

const tableRoutes: FastifyPluginAsync = async (app) => {
  const { db } = app.ctx;

  app.get<{ Params: { id: string }; Querystring: { offset: number; limit: number; sort?: string; order?: 'asc' | 'desc' } }>(
    '/corpora/:id/table/rows',
    {
      schema: {
        tags: ['extractions'],
        summary: "A page of a corpus's result table, sorted, with each cell's confidence and origin and per-column fill",
        params: corpusParam,
        querystring: {
          type: 'object',
          properties: {
            offset: { type: 'integer', minimum: 0, default: 0 },
            limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
            sort: { type: 'string', maxLength: 64, description: 'a column name, or _document_id (default)' },
            order: { type: 'string', enum: ['asc', 'desc'], default: 'asc' },
          },
          additionalProperties: false,
        },
        response: errorResponses(400, 404),
      },
    },
    async (request) => tablePage(db, getCorpus(db, request.params.id), request.query),
  );

  app.get<{ Params: { id: string; documentId: string; column: string } }>(
    '/corpora/:id/table/cells/:documentId/:column',
    {
      schema: {
        tags: ['extractions'],
        summary: 'One cell: value, confidence, evidence span in the document text, and the agreeing functions with their code and learned accuracy',
        params: {
          type: 'object',
          properties: {
            id: corpusParam.properties.id,
            documentId: { type: 'string', pattern: '^[0-9]{1,12}$' },
            column: { type: 'string', minLength: 1, maxLength: 64 },
          },
          required: ['id', 'documentId', 'column'],
        },
        response: errorResponses(404),
      },
    },
    async (request) => cellProvenance(db, getCorpus(db, request.params.id), Number(request.params.documentId), request.params.column),
  );
};

export default tableRoutes;
