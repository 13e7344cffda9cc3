/** Schemas shared by several route plugins, registered once with `app.addSchema` and referenced by $id. */
export const errorSchema = {
  $id: 'Error',
  type: 'object',
  description: 'Every error: a stable machine code and a sentence a person understands.',
  properties: {
    error: {
      type: 'object',
      properties: {
        code: { type: 'string', examples: ['corpus_not_found'] },
        message: { type: 'string' },
        details: { type: 'object', additionalProperties: true },
      },
      required: ['code', 'message'],
    },
  },
  required: ['error'],
} as const;

/** `{ $ref: 'Error#' }` responses for the given statuses, for route schemas. */
export function errorResponses(...statuses: number[]): Record<number, { $ref: string }> {
  return Object.fromEntries(statuses.map((s) => [s, { $ref: 'Error#' }]));
}

export const idParam = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^[0-9]+$' } },
  required: ['id'],
} as const;

/** Corpora are addressed by numeric id or by name. */
export const corpusParam = {
  type: 'object',
  properties: { id: { type: 'string', description: 'corpus id or name', minLength: 1, maxLength: 64 } },
  required: ['id'],
} as const;
