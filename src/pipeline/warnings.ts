/**
 * An attribute that ends with an empty column is a failure of that attribute, not a quiet success: the job's
 * result names each one and says why, in a sentence a person can act on. The job still succeeds (the other
 * columns are good); its view reads "succeeded_with_warnings".
 */
export interface JobWarning {
  code: 'attribute_no_function' | 'attribute_empty';
  attribute: string;
  message: string;
}

export interface AttributeOutcome {
  name: string;
  /** Candidate functions kept after scoring. */
  kept: number;
  /** Documents that got a value. */
  filled: number;
}

export function emptyAttributeWarnings(attributes: readonly AttributeOutcome[], context: { hasModel: boolean; labelledDocuments: (name: string) => number }): JobWarning[] {
  const out: JobWarning[] = [];
  for (const a of attributes) {
    if (a.filled > 0) continue;
    const labelled = context.labelledDocuments(a.name);
    if (a.kept === 0) {
      const why = context.hasModel
        ? 'no candidate function agreed with the sample well enough'
        : `no rule agrees with the labels (${labelled} labelled document${labelled === 1 ? '' : 's'})`;
      const fix = context.hasModel ? 'label a few documents of it, or try a stronger model' : 'label more documents, or configure a model';
      out.push({ code: 'attribute_no_function', attribute: a.name, message: `"${a.name}" got no extraction function: ${why}; ${fix}. Its column is empty.` });
    } else {
      out.push({
        code: 'attribute_empty',
        attribute: a.name,
        message: `"${a.name}" is empty on every document: its ${a.kept} function${a.kept === 1 ? '' : 's'} returned nothing; label documents that carry it, or check that the corpus has it.`,
      });
    }
  }
  return out;
}
