/**
 * One error shape for the whole service: a stable machine-readable code, a sentence a person
 * understands, and the HTTP status it maps to. Modules throw these; the server serializes them.
 */
export class EvaporateError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number = 400,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'EvaporateError';
  }

  toJSON(): { error: { code: string; message: string; details?: Record<string, unknown> } } {
    return { error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) } };
  }
}

export const isEvaporateError = (e: unknown): e is EvaporateError => e instanceof EvaporateError;
