/**
 * Builds the fastify app: OpenAPI, auth, the one error shape, and the route plugins. Each area adds
 * its routes as a plugin in src/server/routes/<area>.ts and one line in `routePlugins` below; services
 * an area needs (llm, sandbox, jobs, ...) go into AppContext as optional fields.
 */
import crypto from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Settings } from '../config.js';
import type { Db } from '../store/database.js';
import { EvaporateError } from '../errors.js';
import { errorSchema } from './schemas.js';
import { limitJsonDepth, multipartClientError } from './request-limits.js';
import corporaRoutes from './routes/corpora.js';
import documentsRoutes from './routes/documents.js';
import jobsRoutes from './routes/jobs.js';
import labelRoutes from './routes/labels.js';
import extractionsRoutes from './routes/extractions.js';
import queryRoutes from './routes/query.js';
import tableRoutes from './routes/table.js';
import consoleRoutes, { isConsoleAsset } from './routes/console.js';

export interface AppContext {
  db: Db;
  settings: Settings;
  // Areas add their services here as optional fields, e.g. `llm?: LlmProvider; jobs?: JobRunner;`.
}

declare module 'fastify' {
  interface FastifyInstance {
    ctx: AppContext;
  }
}

/** Route plugins, one line per area. Each reads its services from `app.ctx`. */
const routePlugins: FastifyPluginAsync[] = [corporaRoutes, documentsRoutes, labelRoutes, jobsRoutes, extractionsRoutes, queryRoutes, tableRoutes, consoleRoutes];

const loopback = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/** Binding off loopback exposes the data to the network; refuse it without an API key. */
export function assertSafeBinding(settings: Pick<Settings, 'host' | 'apiKey'>): void {
  if (!loopback.has(settings.host) && !settings.apiKey) {
    throw new EvaporateError(
      'api_key_required',
      `Refusing to listen on ${settings.host} without an API key: set EVAPORATE_API_KEY (clients then send "Authorization: Bearer <key>"), or bind to 127.0.0.1.`,
      500,
    );
  }
}

// Framework errors mapped to stable codes of our own, so clients never depend on fastify internals.
const frameworkCodes: Record<string, string> = {
  FST_ERR_VALIDATION: 'invalid_request',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_BODY_TOO_LARGE: 'body_too_large',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_request',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_INVALID_MULTIPART_CONTENT_TYPE: 'not_multipart',
  FST_FILES_LIMIT: 'too_many_files',
  FST_PARTS_LIMIT: 'too_many_files',
  FST_FIELDS_LIMIT: 'too_many_fields',
  FST_REQ_FILE_TOO_LARGE: 'file_too_large',
};

function sameSecret(given: string, expected: string): boolean {
  const a = crypto.createHash('sha256').update(given).digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}

export async function buildApp(ctx: AppContext): Promise<FastifyInstance> {
  // Coercion as fastify's default minus arrays: query strings still turn "5" into 5, but a one-item array
  // is no longer accepted where a string is expected (name: ["a"]). Union types (a query parameter is a string,
  // number, boolean or null) are meant: allowed outright, instead of a strict-mode warning on every start.
  const app = Fastify({ logger: false, bodyLimit: 10 * 1024 * 1024, ajv: { customOptions: { coerceTypes: true, allowUnionTypes: true } } });
  app.decorate('ctx', ctx);
  limitJsonDepth(app);

  app.setErrorHandler((error: FastifyError | EvaporateError, request, reply) => {
    if (error instanceof EvaporateError) return reply.status(error.status).send(error.toJSON());
    const multipartError = multipartClientError(error);
    if (multipartError) return reply.status(multipartError.status).send(multipartError.toJSON());
    const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
    const code = (error.code && frameworkCodes[error.code]) ?? (status >= 500 ? 'internal_error' : 'bad_request');
    if (status >= 500) request.log.error(error);
    const message = status >= 500 ? 'The server hit an unexpected error; the request was not completed.' : error.message;
    return reply.status(status).send({ error: { code, message } });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ error: { code: 'route_not_found', message: `There is no route ${request.method} ${request.url.split('?')[0]}.` } }),
  );

  // Checked on every route but /health (load balancers and scripts probe it without credentials) and the
  // console's static files (the page itself asks for the key; its data calls send it).
  if (ctx.settings.apiKey) {
    const key = ctx.settings.apiKey;
    app.addHook('onRequest', async (request) => {
      if (request.url === '/health' || request.url.startsWith('/health?') || isConsoleAsset(request.url)) return;
      const header = request.headers.authorization ?? '';
      const match = /^Bearer\s+(.+)$/i.exec(header);
      if (!match || !sameSecret(match[1].trim(), key)) {
        throw new EvaporateError('unauthorized', 'Missing or wrong API key: send "Authorization: Bearer <EVAPORATE_API_KEY>".', 401);
      }
    });
  }

  app.addSchema(errorSchema);
  await app.register(swagger, {
    openapi: {
      info: { title: 'Evaporate', version: '0.1.0', description: 'Semi-structured documents to queryable SQL tables with LLMs.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      ...(ctx.settings.apiKey ? { security: [{ bearer: [] }] } : {}),
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  await app.register(multipart, {
    throwFileSizeLimit: false,
    limits: {
      fileSize: ctx.settings.ingest.maxFileBytes,
      files: ctx.settings.ingest.maxFilesPerRequest,
      parts: ctx.settings.ingest.maxFilesPerRequest + 100,
      fields: 100,
    },
  });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get(
    '/health',
    { schema: { tags: ['service'], summary: 'Liveness probe (no API key needed)', response: { 200: { type: 'object', properties: { status: { type: 'string' } } } } } },
    async () => ({ status: 'ok' }),
  );
  for (const plugin of routePlugins) await app.register(plugin);
  return app;
}
