/**
 * Builds the fastify app. Each area registers its routes as a plugin in src/server/routes/;
 * add yours to the list in buildApp. Errors leave as { error: { code, message } }.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Settings } from '../config.js';
import type { Db } from '../store/database.js';
import { EvaporateError } from '../errors.js';
import labelRoutes from './routes/labels.js';

export interface AppContext {
  db: Db;
  settings: Settings;
}

declare module 'fastify' {
  interface FastifyInstance {
    ctx: AppContext;
  }
}

export async function buildApp(ctx: AppContext): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 10 * 1024 * 1024 });
  app.decorate('ctx', ctx);
  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof EvaporateError) return reply.status(error.status).send(error.toJSON());
    const e = error as { statusCode?: number; code?: string; message?: string };
    const status = e.statusCode ?? 500;
    const code = e.code ?? (status >= 500 ? 'internal_error' : 'bad_request');
    return reply.status(status).send({ error: { code, message: e.message ?? 'Unexpected error.' } });
  });
  app.get('/health', async () => ({ status: 'ok' }));
  // Route plugins are registered here (ingest/corpora, extractions, query, jobs, labels).
  await app.register(labelRoutes);
  return app;
}
