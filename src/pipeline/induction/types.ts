/**
 * Wrapper induction: candidate extraction functions learned from a few labelled documents, at no token cost.
 * Candidates come out in the same contract as LLM-written ones (src/sandbox/types.ts), so the pipeline's
 * scoring step and label model treat both alike.
 */
import type { SandboxDocument } from '../../sandbox/types.js';

/** One labelled document: its values for the attribute (several for multi-valued ones; none = no value). */
export interface LabelledExample {
  document: SandboxDocument;
  values: string[];
}

export type GeneratorName = 'text-anchor' | 'dom-path' | 'label-anchor' | 'value-shape';

/**
 * A rule is evaluated in-process while ranking (fast, no sandbox round trip per try) and emitted as source
 * for the sandbox; test/induction.test.ts checks that the two agree on real pages.
 */
export interface Rule {
  /** Identity of the rule: equal keys mean the same extractor, whichever document proposed it. */
  key: string;
  generator: GeneratorName;
  /** One sentence saying what the function does, written into the source as a comment. */
  description: string;
  /** Smaller is simpler; breaks ties between rules that agree equally with the labels. */
  complexity: number;
  apply(doc: PreparedDocument): string[] | null;
  /** Body statements of `function extract(text, doc)`. */
  body(): string;
}

/** A document with its lazily parsed forms, shared by every rule evaluated on it. */
export interface PreparedDocument {
  text: string;
  html: string;
  lines(): string[];
  /** The contract's `doc` helpers (src/sandbox/contract.ts), parsed once on first use. */
  doc(): import('../../sandbox/contract.js').DocHelpers;
}

/** What the pipeline's scoring step takes alongside LLM-written candidates. */
export interface InducedCandidate {
  source: string;
  origin: 'induction';
  description: string;
  generator: GeneratorName;
  /** Mean leave-one-out text F1 on the labelled documents, 0..1. */
  looScore: number;
  /** Mean text F1 on all labelled documents (the rule fitted to all of them), 0..1. */
  fitScore: number;
}

export interface InductionOptions {
  /** At most this many candidates per attribute. */
  maxCandidates?: number;
  /** Candidates whose leave-one-out F1 falls below this are dropped. */
  minScore?: number;
  /** Learn from at most this many labelled documents (the first ones given). */
  maxExamples?: number;
  /** Documents without labels (the rest of the sample): rules that agree on every label but not on these are kept apart. */
  unlabelled?: SandboxDocument[];
}
