/**
 * The contract of an extraction function and the sandbox that runs it.
 * A function's source defines `function extract(text, doc)` returning string | string[] | null.
 * What `doc` offers is documented once in contract.ts, which the prompts embed verbatim.
 */
export interface ExtractionFunction {
  /** Stable id (e.g. functions.id or a source hash); results and failure counts are keyed by it. */
  id: string;
  source: string;
}

export interface SandboxDocument {
  id: number | string;
  /** Readable text of the document (or of a chunk). */
  text: string;
  /** Raw HTML, when the document is HTML; the doc helpers work over it. */
  html?: string;
}

export type SandboxErrorCode =
  | 'compile' // source does not define a callable extract
  | 'timeout' // wall-clock limit hit; worker replaced
  | 'memory' // memory cap hit; worker replaced
  | 'runtime' // threw (anything, Error or not)
  | 'invalid_output' // returned something other than string | string[] | null, or too large
  | 'disabled'; // too many failures for this function in this job

export type CallOutcome =
  | { ok: true; value: string[] | null }
  | { ok: false; error: { code: SandboxErrorCode; message: string } };

export interface RunOptions {
  timeoutMs?: number;
  /** Failure counts per function id, kept by the caller across the runs of one job; updated in place. */
  failures?: Map<string, number>;
  /**
   * Which calls may share a function's vm context (a job: "job:17"). Contexts are never shared across scopes;
   * without one, each run() is its own scope. Within a scope every call still starts from a fresh copy of
   * the function's top-level bindings.
   */
  scope?: string;
}

export interface Sandbox {
  /** Runs every function on every document. Result indexed [function][document]. */
  run(functions: ExtractionFunction[], documents: SandboxDocument[], options?: RunOptions): Promise<CallOutcome[][]>;
  close(): Promise<void>;
}
