/**
 * The web console (web/, built by `npm run build:web` into web/dist) served at `/`. Only the files found in
 * the build folder at start-up are served, looked up by exact name, so no request path reaches the file
 * system. The page and its assets load without the API key: the page asks for the key, and every data
 * route still requires it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync } from 'fastify';
import { EvaporateError } from '../../errors.js';

/** Two levels up from src/server/routes (or dist/server/routes once compiled) is the repository root. */
export const consoleDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'web', 'dist');

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
};

/** Paths the console answers without the API key (the hook in app.ts asks this). */
export function isConsoleAsset(url: string): boolean {
  const p = url.split('?')[0];
  return p === '/' || p === '/index.html' || p === '/favicon.svg' || p.startsWith('/assets/');
}

function listFiles(dir: string, prefix = ''): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(path.join(dir, e.name), `${prefix}${e.name}/`) : e.isFile() ? [`${prefix}${e.name}`] : [],
  );
}

// The console shows untrusted text (documents, model-written code) only as text; this keeps it that way
// should a bug ever render some as markup: no script but the bundle's, no connection but to this service.
const contentSecurityPolicy = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "worker-src 'self' blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

const consoleRoutes: FastifyPluginAsync = async (app) => {
  const files = new Set(listFiles(consoleDir));
  const send = (name: string, immutable: boolean) => {
    const body = fs.readFileSync(path.join(consoleDir, name));
    return { body, type: contentTypes[path.extname(name)] ?? 'application/octet-stream', cache: immutable ? 'public, max-age=31536000, immutable' : 'no-cache' };
  };
  const notBuilt = () =>
    new EvaporateError('console_not_built', `The web console is not built (no ${consoleDir}/index.html): run "npm run build:web", then restart the service.`, 503);

  app.get('/', { schema: { hide: true } }, async (_request, reply) => {
    if (!files.has('index.html')) throw notBuilt();
    const file = send('index.html', false);
    return reply
      .type(file.type)
      .header('cache-control', file.cache)
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', contentSecurityPolicy)
      .send(file.body);
  });
  app.get<{ Params: { '*': string } }>('/assets/*', { schema: { hide: true } }, async (request, reply) => {
    const name = `assets/${request.params['*']}`;
    if (!files.has(name)) {
      throw new EvaporateError('asset_not_found', `The console has no asset ${name}.`, 404);
    }
    // Vite names assets by content hash, so they never change under one name.
    const file = send(name, true);
    return reply.type(file.type).header('cache-control', file.cache).header('x-content-type-options', 'nosniff').send(file.body);
  });
};

export default consoleRoutes;
