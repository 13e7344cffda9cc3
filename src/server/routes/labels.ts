/**
 * Labels a person gives (document, attribute, value). They stand in for direct extraction as silver labels,
 * and wrapper induction learns candidate functions from them with no model endpoint at all.
 *   POST   /corpora/:id/labels                      {document, attribute, value} or {labels: [...]}; replaces
 *   GET    /corpora/:id/labels?attribute=&document=
 *   DELETE /corpora/:id/labels?document=&attribute=
 *   POST   /corpora/:id/labels/:attribute/induce    candidate functions learned from that attribute's labels
 */
import type { FastifyInstance } from 'fastify';
import { EvaporateError } from '../../errors.js';
import { induceCandidates } from '../../pipeline/induction/index.js';
import { labelledExamples } from '../../pipeline/induction/candidates.js';
import { deleteLabels, listLabels, setLabels, type LabelInput } from '../../store/labels.js';

const labelSchema = {
  type: 'object',
  required: ['document', 'attribute', 'value'],
  additionalProperties: false,
  properties: {
    document: { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'string', minLength: 1, maxLength: 1024 }] },
    attribute: { type: 'string', minLength: 1, maxLength: 64 },
    value: { anyOf: [{ type: 'string' }, { type: 'null' }, { type: 'array', maxItems: 100, items: { type: 'string' } }] },
  },
} as const;

interface LabelBody {
  document: number | string;
  attribute: string;
  value: string | string[] | null;
}

const toInput = (l: LabelBody): LabelInput => ({
  document: l.document,
  attribute: l.attribute,
  values: l.value === null ? [] : Array.isArray(l.value) ? l.value : [l.value],
});

export default async function labelRoutes(app: FastifyInstance): Promise<void> {
  app.post<{ Params: { id: string }; Body: LabelBody | { labels: LabelBody[] } }>(
    '/corpora/:id/labels',
    {
      schema: {
        tags: ['labels'],
        summary: 'Label documents: set (replace) the values of an attribute; null = the document has no value',
        body: {
          anyOf: [
            labelSchema,
            { type: 'object', required: ['labels'], additionalProperties: false, properties: { labels: { type: 'array', minItems: 1, maxItems: 10_000, items: labelSchema } } },
          ],
        },
      },
    },
    async (request) => {
      const body = request.body;
      const inputs = 'labels' in body ? body.labels.map(toInput) : [toInput(body)];
      return { labels: setLabels(app.ctx.db, request.params.id, inputs) };
    },
  );

  app.get<{ Params: { id: string }; Querystring: { attribute?: string; document?: string } }>(
    '/corpora/:id/labels',
    {
      schema: {
        tags: ['labels'],
        summary: 'List labels, optionally of one attribute or document',
        querystring: { type: 'object', additionalProperties: false, properties: { attribute: { type: 'string' }, document: { type: 'string' } } },
      },
    },
    async (request) => ({ labels: listLabels(app.ctx.db, request.params.id, request.query) }),
  );

  app.delete<{ Params: { id: string }; Querystring: { attribute: string; document: string } }>(
    '/corpora/:id/labels',
    {
      schema: {
        tags: ['labels'],
        summary: "Remove a document's label for an attribute",
        querystring: {
          type: 'object',
          required: ['attribute', 'document'],
          additionalProperties: false,
          properties: { attribute: { type: 'string' }, document: { type: 'string' } },
        },
      },
    },
    async (request) => {
      const removed = deleteLabels(app.ctx.db, request.params.id, request.query.document, request.query.attribute);
      if (!removed) throw new EvaporateError('label_not_found', `Document "${request.query.document}" has no label for "${request.query.attribute}".`, 404);
      return { removed };
    },
  );

  app.post<{ Params: { id: string; attribute: string }; Body: { maxCandidates?: number; minScore?: number } | undefined }>(
    '/corpora/:id/labels/:attribute/induce',
    {
      schema: {
        tags: ['labels'],
        summary: "Learn candidate extraction functions from an attribute's labels (wrapper induction, no LLM)",
        body: {
          anyOf: [
            { type: 'null' },
            {
              type: 'object',
              additionalProperties: false,
              properties: { maxCandidates: { type: 'integer', minimum: 1, maximum: 100 }, minScore: { type: 'number', minimum: 0, maximum: 1 } },
            },
          ],
        },
      },
    },
    async (request) => {
      const docs = labelledExamples(app.ctx.db, request.params.id, request.params.attribute);
      const settings = app.ctx.settings.induction;
      const result = induceCandidates(
        request.params.attribute,
        docs,
        { maxCandidates: request.body?.maxCandidates ?? settings.maxCandidates, minScore: request.body?.minScore ?? settings.minScore, maxExamples: settings.maxExamples },
      );
      return { attribute: request.params.attribute, labelled: docs.length, ...result };
    },
  );
}
