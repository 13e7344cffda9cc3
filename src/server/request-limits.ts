/**
 * Request shapes that would otherwise end as a 500: JSON nested so deep that any later recursive walk
 * (JSON.stringify, a validator) overflows the stack, and multipart bodies the parser cannot even start on
 * (no boundary). Both are the client's mistake, answered with a 400 and a sentence.
 */
import type { FastifyInstance } from 'fastify';
import { EvaporateError } from '../errors.js';

/** Deeper than any request this API takes (its deepest body is a few levels); far below a stack overflow. */
export const MAX_JSON_DEPTH = 64;

/** Nesting depth of a JSON text, read in one pass without parsing it; stops counting past `limit`. */
export function jsonDepth(text: string, limit = Infinity): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > max && (max = depth) > limit) return max;
    } else if (c === 125 /* } */ || c === 93 /* ] */) depth--;
  }
  return max;
}

/** Replaces the JSON body parser with fastify's own (prototype-poisoning checks included) behind a depth check. */
export function limitJsonDepth(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (jsonDepth(body as string, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
      return done(new EvaporateError('json_too_deep', `The JSON body is nested more than ${MAX_JSON_DEPTH} levels deep; no request to this API needs that.`, 400), undefined);
    }
    return parse(request, body as string, done);
  });
}

/** A 400 for errors the multipart parser throws on a malformed body, or null for any other error. */
export function multipartClientError(error: unknown): EvaporateError | null {
  const message = error instanceof Error ? error.message : '';
  if (!/^(Multipart: |Malformed part header|Unexpected end of (form|multipart data))/.test(message)) return null;
  return new EvaporateError(
    'invalid_multipart',
    `The upload is not well-formed multipart/form-data (${message}); send files as multipart form fields with a boundary, e.g. curl -F file=@page.html.`,
    400,
  );
}
