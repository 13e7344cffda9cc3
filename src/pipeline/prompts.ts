/**
 * Every prompt the pipeline sends, in one versioned module. Changing any text here changes cache keys,
 * so bump PROMPT_VERSION with it: stored functions record the version that produced them.
 * Each prompt names its task on its first line so logs (and scripted test servers) can tell them apart.
 */
import { EXTRACTION_FUNCTION_CONTRACT } from '../sandbox/contract.js';
import type { ChatMessage } from '../llm/types.js';

export const PROMPT_VERSION = 'pipeline-v2';

const system = (content: string): ChatMessage => ({ role: 'system', content });
const user = (content: string): ChatMessage => ({ role: 'user', content });

const EXTRACTOR = 'You extract structured data from semi-structured documents. You answer with JSON only.';

export function listAttributesPrompt(context: string): ChatMessage[] {
  return [
    system(EXTRACTOR),
    user(`TASK: list-attributes
Below is part of a document from a collection of documents of one kind.
List the attributes (fields) whose values are exactly mentioned in this text and that most documents of this kind would carry,
e.g. for a product page: title, price, manufacturer. Use short snake_case names. Skip navigation, advertising and site boilerplate.
Answer as {"attributes": ["name", ...]}.

Document:
"""
${context}
"""`),
  ];
}

export function mergeSynonymsPrompt(names: readonly string[]): ChatMessage[] {
  return [
    system(EXTRACTOR),
    user(`TASK: merge-synonyms
These attribute names were found in documents of one collection:
${names.map((n) => `- ${n}`).join('\n')}
Group the names that mean exactly the same attribute (e.g. "author" and "writer"). Leave every other name alone.
Answer as {"groups": [["name", "synonym", ...], ...]} listing only groups of two or more names.`),
  ];
}

export function plausibilityPrompt(attribute: string, values: readonly string[]): ChatMessage[] {
  return [
    system(EXTRACTOR),
    user(`TASK: plausibility
Values extracted for the attribute "${attribute}" from several documents:
${values.map((v) => `- ${JSON.stringify(v)}`).join('\n')}
Are these plausible values of "${attribute}" (not boilerplate, labels, or values of some other attribute)?
Answer as {"plausible": true} or {"plausible": false}.`),
  ];
}

export function directExtractionPrompt(attribute: string, description: string, context: string): ChatMessage[] {
  return [
    system(EXTRACTOR),
    user(`TASK: extract-value
Attribute: ${attribute}${description ? ` (${description})` : ''}
From the document text below, copy the value of the attribute exactly as written (the full value and nothing else).
If it has several values (e.g. several authors), list them all. If the document does not state it, answer null.
Answer as {"value": "..."}, {"value": ["...", "..."]} or {"value": null}.

Document:
"""
${context}
"""`),
  ];
}

/** One worked example per style, so the model sees the helpers used the way the sandbox offers them. */
const FUNCTION_EXAMPLES = `Examples of good functions for other attributes:

// attribute: price
function extract(text, doc) {
  const v = doc.textAfter('Our Price');
  if (v) return v.replace(/^\\s*:\\s*/, '').trim();
  const m = text.match(/Price:\\s*(\\$[0-9.,]+)/);
  return m ? m[1] : null;
}

// attribute: director
function extract(text, doc) {
  const cells = doc.select('td.director a');
  if (cells.length) return cells.map((el) => el.text);
  const m = text.match(/Directed by:?\\s*([^\\n]+)/i);
  return m ? m[1].trim() : null;
}`;

export type SynthesisVariant = 'plain' | 'examples';
export const SYNTHESIS_VARIANTS: readonly SynthesisVariant[] = ['plain', 'examples'];

export function synthesisPrompt(
  variant: SynthesisVariant,
  attribute: string,
  description: string,
  sample: { text: string; html?: string; value: string[] | null },
): ChatMessage[] {
  const shown = sample.html
    ? `HTML excerpt of one document, around the value:\n"""\n${sample.html}\n"""${sample.text ? `\n\nThe same part of its readable text (what your function receives as \`text\`):\n"""\n${sample.text}\n"""` : ''}`
    : `Text of one document:\n"""\n${sample.text}\n"""`;
  const expected = sample.value === null ? 'This document does not state it (return null).' : `In this document the value is ${JSON.stringify(sample.value.length === 1 ? sample.value[0] : sample.value)}.`;
  return [
    system('You write small, robust JavaScript extraction functions. Answer with one ```javascript code block.'),
    user(`TASK: write-function (${variant})
Attribute: ${attribute}${description ? ` (${description})` : ''}
Write a function that returns the full value of "${attribute}" from any document of this collection, and nothing else.
It will run on thousands of documents laid out like this one; prefer labels and structure over this document's literal values.
Return the value alone: no label ("Publisher:"), no neighbouring field; where they share an element or line, doc.valueAfter('Label') cuts the value out.

${EXTRACTION_FUNCTION_CONTRACT}
${variant === 'examples' ? `\n${FUNCTION_EXAMPLES}\n` : ''}
${shown}
${expected}`),
  ];
}
