/**
 * Plain data passed between pipeline steps. Steps never see the database or HTTP: only these shapes.
 */
export type AttributeType = 'text' | 'integer' | 'real' | 'date';

export interface AttributeSpec {
  name: string;
  description?: string;
  /** Forced column type (closed mode); inferred from the extracted values when absent. */
  type?: AttributeType;
}

/** A document as the steps need it: text for the LLM and spans, HTML for the sandbox helpers. */
export interface PipelineDocument {
  id: number;
  text: string;
  html?: string;
  /** Chunk boundaries (character offsets into text). */
  chunks: { start: number; end: number; tokens: number }[];
}

export interface DocumentSummary {
  id: number;
  filename: string;
  byteSize: number;
}

/** Silver label of one sample document (direct extraction); null = the model found no value. */
export type SilverLabels = Record<number, string[] | null>;

export interface Candidate {
  id: string;
  source: string;
  origin: 'llm' | 'induction';
  prompt: string;
}

export interface ScoredCandidate extends Candidate {
  score: number;
  errors: number;
  nonEmpty: number;
}
