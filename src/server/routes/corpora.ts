/** Corpus routes: create, list, show, delete. */
import type { FastifyPluginAsync } from 'fastify';
import { corpusCounts, createCorpus, deleteCorpus, getCorpus, listCorpora } from '../../store/corpora.js';
import { corpusParam, errorResponses } from '../schemas.js';

const corpusSchema = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    name: { type: 'string' },
    description: { type: 'string' },
    createdAt: { type: 'string' },
    documents: { type: 'integer', description: 'ready documents' },
    failed: { type: 'integer', description: 'files that failed to ingest' },
  },
  required: ['id', 'name', 'description', 'createdAt'],
} as const;

const corporaRoutes: FastifyPluginAsync = async (app) => {
  const { db } = app.ctx;

  app.post<{ Body: { name: string; description?: string } }>(
    '/corpora',
    {
      schema: {
        tags: ['corpora'],
        summary: 'Create a corpus',
        body: {
          type: 'object',
          properties: { name: { type: 'string', minLength: 1, maxLength: 64 }, description: { type: 'string', maxLength: 10_000 } },
          required: ['name'],
          additionalProperties: false,
        },
        response: { 201: corpusSchema, ...errorResponses(400, 409) },
      },
    },
    async (request, reply) => {
      const corpus = createCorpus(db, request.body.name, request.body.description ?? '');
      return reply.status(201).send({ ...corpus, documents: 0, failed: 0 });
    },
  );

  app.get(
    '/corpora',
    {
      schema: {
        tags: ['corpora'],
        summary: 'List corpora with their document counts',
        response: { 200: { type: 'object', properties: { items: { type: 'array', items: corpusSchema } }, required: ['items'] } },
      },
    },
    async () => ({ items: listCorpora(db) }),
  );

  app.get<{ Params: { id: string } }>(
    '/corpora/:id',
    { schema: { tags: ['corpora'], summary: 'Show a corpus (by id or name)', params: corpusParam, response: { 200: corpusSchema, ...errorResponses(404) } } },
    async (request) => {
      const corpus = getCorpus(db, request.params.id);
      return { ...corpus, ...corpusCounts(db, corpus.id) };
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/corpora/:id',
    {
      schema: {
        tags: ['corpora'],
        summary: 'Delete a corpus with all its documents and results',
        params: corpusParam,
        response: { 204: { type: 'null', description: 'deleted' }, ...errorResponses(404) },
      },
    },
    async (request, reply) => {
      deleteCorpus(db, request.params.id);
      return reply.status(204).send();
    },
  );
};

export default corporaRoutes;
