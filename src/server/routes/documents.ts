/**
 * Document routes. Uploads stream through multipart one file at a time: each file is read up to the
 * per-file limit, ingested and released before the next, so a request is never buffered whole.
 */
import type { FastifyPluginAsync } from 'fastify';
import { EvaporateError } from '../../errors.js';
import { ingestFile, oversizeResult, summarize, type IngestResult } from '../../ingest/ingest.js';
import { getCorpus } from '../../store/corpora.js';
import { deleteDocument, getChunks, getDocument, getDocumentRaw, listDocuments, type DocumentStatus } from '../../store/documents.js';
import { corpusParam, errorResponses, idParam } from '../schemas.js';

const resultSchema = {
  type: 'object',
  properties: {
    filename: { type: 'string' },
    status: { type: 'string', enum: ['stored', 'duplicate', 'failed'] },
    documentId: { type: 'integer' },
    kind: { type: 'string' },
    bytes: { type: 'integer' },
    error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } },
    note: { type: 'string' },
  },
  required: ['filename', 'status', 'bytes'],
} as const;

const uploadSchema = {
  type: 'object',
  properties: {
    corpusId: { type: 'integer' },
    stored: { type: 'integer' },
    duplicates: { type: 'integer' },
    failed: { type: 'integer' },
    results: { type: 'array', items: resultSchema },
  },
  required: ['corpusId', 'stored', 'duplicates', 'failed', 'results'],
} as const;

const metaProperties = {
  id: { type: 'integer' },
  corpusId: { type: 'integer' },
  filename: { type: 'string' },
  contentHash: { type: 'string' },
  kind: { type: 'string', enum: ['html', 'pdf', 'text', 'unknown'] },
  byteSize: { type: 'integer' },
  status: { type: 'string', enum: ['ready', 'failed'] },
  errorCode: { type: ['string', 'null'] },
  errorMessage: { type: ['string', 'null'] },
  createdAt: { type: 'string' },
} as const;

const rawTypes: Record<string, string> = { html: 'text/html', pdf: 'application/pdf', text: 'text/plain; charset=utf-8' };

const documentsRoutes: FastifyPluginAsync = async (app) => {
  const { db, settings } = app.ctx;

  app.post<{ Params: { id: string } }>(
    '/corpora/:id/documents',
    {
      schema: {
        tags: ['documents'],
        summary: 'Upload documents (multipart: any number of files, or archives)',
        description:
          'HTML, PDF, plain text, or zip / tar / tar.gz archives of them, as multipart/form-data file fields (any field name). ' +
          'Each file gets its own result; bad files are reported and the good ones stored. Re-uploading the same bytes is a duplicate, not an error. ' +
          'Status 201 when anything was stored, 200 when everything was already there, and when every file failed, the status of the failure (413 too large, 422 unreadable, 415 unsupported).',
        consumes: ['multipart/form-data'],
        params: corpusParam,
        response: { 200: uploadSchema, 201: uploadSchema, ...errorResponses(400, 404, 413, 415, 422) },
      },
    },
    async (request, reply) => {
      const corpus = getCorpus(db, request.params.id);
      if (!request.isMultipart()) {
        throw new EvaporateError('not_multipart', 'Send files as multipart/form-data, e.g. curl -F file=@page.html .../documents.', 415);
      }
      const results: IngestResult[] = [];
      let requestBytes = 0;
      let filesRead = 0;
      // The files before a limit are ingested and reported; the limit's error carries them.
      const stopped = (code: string, message: string) => new EvaporateError(code, message, 413, { corpusId: corpus.id, ...summarize(results), results });
      const parts = request.parts()[Symbol.asyncIterator]();
      for (;;) {
        let next: Awaited<ReturnType<typeof parts.next>>;
        try {
          next = await parts.next();
        } catch (error) {
          const code = (error as { code?: string }).code;
          if (code !== 'FST_FILES_LIMIT' && code !== 'FST_PARTS_LIMIT') throw error;
          throw stopped(
            'too_many_files',
            `The upload holds more than ${settings.ingest.maxFilesPerRequest} files, the limit per request (EVAPORATE_MAX_FILES_PER_REQUEST); the first ${filesRead} were processed, the rest was not read. Send the rest in another request, or as an archive.`,
          );
        }
        if (next.done) break;
        const part = next.value;
        if (part.type !== 'file') continue;
        filesRead++;
        const filename = (part.filename || part.fieldname || 'file').slice(0, 255);
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of part.file) {
          size += (chunk as Buffer).length;
          chunks.push(chunk as Buffer);
        }
        requestBytes += size;
        if (part.file.truncated) {
          chunks.length = 0;
          results.push(oversizeResult(filename, settings.ingest.maxFileBytes));
        } else {
          results.push(...(await ingestFile(db, corpus.id, { filename, bytes: Buffer.concat(chunks) }, { settings: settings.ingest })));
        }
        if (requestBytes > settings.ingest.maxRequestBytes) {
          throw stopped(
            'request_too_large',
            `The upload passed the ${settings.ingest.maxRequestBytes} byte limit per request (EVAPORATE_MAX_REQUEST_BYTES) after ${filesRead} files; those were processed, the rest was not read.`,
          );
        }
      }
      if (results.length === 0) throw new EvaporateError('no_files', 'The request held no files: attach them as multipart file fields, e.g. -F file=@page.html.', 400);
      const counts = summarize(results);
      const body = { corpusId: corpus.id, ...counts, results };
      if (counts.stored > 0) return reply.status(201).send(body);
      if (counts.duplicates > 0) return reply.status(200).send(body);
      // Nothing usable: answer with the failure's own status so a single bad upload reads as an error.
      const first = results[0].error!;
      const statuses = new Set(results.map((r) => statusOf(r.error!.code)));
      const status = statuses.size === 1 ? [...statuses][0] : 422;
      const message = results.length === 1 ? first.message : `None of the ${results.length} files could be ingested; see results for each file's reason.`;
      return reply.status(status).send({ error: { code: results.length === 1 ? first.code : 'all_files_failed', message }, ...body });
    },
  );

  app.get<{ Params: { id: string }; Querystring: { status?: DocumentStatus; after?: number; limit?: number } }>(
    '/corpora/:id/documents',
    {
      schema: {
        tags: ['documents'],
        summary: 'List documents of a corpus, by pages',
        description: 'Pages by id: pass the nextAfter of one page as after to get the next; nextAfter is null on the last page.',
        params: corpusParam,
        querystring: {
          type: 'object',
          properties: {
            status: { type: 'string', enum: ['ready', 'failed'] },
            after: { type: 'integer', minimum: 0, default: 0 },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: { items: { type: 'array', items: { type: 'object', properties: metaProperties } }, nextAfter: { type: ['integer', 'null'] } },
            required: ['items', 'nextAfter'],
          },
          ...errorResponses(400, 404),
        },
      },
    },
    async (request) => {
      const corpus = getCorpus(db, request.params.id);
      return listDocuments(db, corpus.id, request.query);
    },
  );

  app.get<{ Params: { id: string }; Querystring: { raw?: boolean; chunks?: boolean } }>(
    '/documents/:id',
    {
      schema: {
        tags: ['documents'],
        summary: 'A document: metadata and text; the original bytes with ?raw=true',
        params: idParam,
        querystring: {
          type: 'object',
          properties: {
            raw: { type: 'boolean', default: false, description: 'answer with the original file instead of JSON' },
            chunks: { type: 'boolean', default: false, description: 'include the token-bounded chunks (character offsets into text)' },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              ...metaProperties,
              text: { type: ['string', 'null'] },
              structure: { type: ['object', 'null'], additionalProperties: true },
              chunks: {
                type: 'array',
                items: { type: 'object', properties: { idx: { type: 'integer' }, startChar: { type: 'integer' }, endChar: { type: 'integer' }, tokenCount: { type: 'integer' } } },
              },
            },
          },
          ...errorResponses(404),
        },
      },
    },
    async (request, reply) => {
      const id = Number(request.params.id);
      if (request.query.raw) {
        const doc = getDocumentRaw(db, id);
        const safeName = doc.filename.split('/').pop()!.replace(/[^\w.\- ]/g, '_');
        return reply
          .header('content-type', rawTypes[doc.kind] ?? 'application/octet-stream')
          .header('content-disposition', `inline; filename="${safeName}"`)
          .header('x-content-type-options', 'nosniff')
          // A stored page is untrusted HTML: never let it run script in this origin.
          .header('content-security-policy', "sandbox; default-src 'none'")
          .send(doc.raw);
      }
      const doc = getDocument(db, id);
      return request.query.chunks ? { ...doc, chunks: getChunks(db, id) } : doc;
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/documents/:id',
    {
      schema: {
        tags: ['documents'],
        summary: 'Delete a document with its chunks and extracted values',
        params: idParam,
        response: { 204: { type: 'null', description: 'deleted' }, ...errorResponses(404) },
      },
    },
    async (request, reply) => {
      deleteDocument(db, Number(request.params.id));
      return reply.status(204).send();
    },
  );
};

function statusOf(code: string): number {
  if (['file_too_large', 'archive_too_large', 'archive_too_many_entries', 'archive_bomb'].includes(code)) return 413;
  if (code === 'unsupported_type') return 415;
  return 422;
}

export default documentsRoutes;
