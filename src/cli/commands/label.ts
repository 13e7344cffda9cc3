/**
 * `evaporate label`: give, list or remove the values of a document's attribute, and learn candidate
 * functions from them (`evaporate label induce`), through the same store and induction code as the API.
 */
import type { Command } from 'commander';
import type { Settings } from '../../config.js';
import { induceCandidates } from '../../pipeline/induction/index.js';
import { labelledExamples } from '../../pipeline/induction/candidates.js';
import { getCorpus } from '../../store/corpora.js';
import type { Db } from '../../store/database.js';
import { deleteLabels, listLabels, setLabels } from '../../store/labels.js';
import { action, openStore } from '../common.js';
import { resolveDocumentName } from '../document-name.js';

function withDb(command: Command, fn: (db: Db, settings: Settings) => void): void {
  const { db, settings } = openStore(command);
  try {
    fn(db, settings);
  } finally {
    db.close();
  }
}

export function register(program: Command): void {
  const label = program
    .command('label')
    .description('Label documents by hand: the values become silver labels and teach wrapper induction (no LLM needed).');

  label
    .command('set', { isDefault: true })
    .description('Set the values of an attribute on a document (replaces earlier ones); no values with --none.')
    .argument('<corpus>', 'corpus id or name')
    .argument('<document>', 'document id, file name, or the path it was ingested from')
    .argument('<attribute>', 'attribute name')
    .argument('[values...]', 'one or more values (several for multi-valued attributes)')
    .option('--none', 'record that the document has no value for the attribute')
    .action(
      action((corpus: string, document: string, attribute: string, values: string[], opts: { none?: boolean }, command: Command) => {
      if (!values.length && !opts.none) {
        console.error('error: give at least one value, or --none when the document has no value. [invalid_label]');
        process.exitCode = 1;
        return;
      }
      withDb(command, (db) => {
        const c = getCorpus(db, corpus);
        const doc = resolveDocumentName(db, c, document);
        const [saved] = setLabels(db, c.id, [{ document: doc.id, attribute, values: opts.none ? [] : values }]);
        console.log(`${saved.filename} (#${saved.documentId}) ${saved.attribute} = ${saved.values.length ? saved.values.map((v) => JSON.stringify(v)).join(', ') : '(no value)'}`);
      });
    }),
    );

  label
    .command('list')
    .description('List labels of a corpus, optionally of one attribute.')
    .argument('<corpus>', 'corpus id or name')
    .option('-a, --attribute <name>', 'only this attribute')
    .option('--json', 'print JSON')
    .action(action((corpus: string, opts: { attribute?: string; json?: boolean }, command: Command) => {
      withDb(command, (db) => {
        const labels = listLabels(db, corpus, { attribute: opts.attribute });
        if (opts.json) console.log(JSON.stringify(labels, null, 2));
        else for (const l of labels) console.log(`${l.attribute}\t${l.filename} (#${l.documentId})\t${l.values.length ? l.values.join(' | ') : '(no value)'}`);
      });
    }));

  label
    .command('remove')
    .description('Remove the label of an attribute on a document.')
    .argument('<corpus>', 'corpus id or name')
    .argument('<document>', 'document id, file name, or the path it was ingested from')
    .argument('<attribute>', 'attribute name')
    .action(action((corpus: string, document: string, attribute: string, _opts: unknown, command: Command) => {
      withDb(command, (db) => {
        const c = getCorpus(db, corpus);
        console.log(`removed ${deleteLabels(db, c.id, resolveDocumentName(db, c, document).id, attribute)} value(s)`);
      });
    }));

  label
    .command('induce')
    .description("Learn candidate extraction functions for an attribute from its labels and print their source.")
    .argument('<corpus>', 'corpus id or name')
    .argument('<attribute>', 'attribute name')
    .option('-n, --max <count>', 'most candidates to print', (v) => Number(v))
    .option('--json', 'print JSON')
    .action(action((corpus: string, attribute: string, opts: { max?: number; json?: boolean }, command: Command) => {
      withDb(command, (db, settings) => {
        const docs = labelledExamples(db, corpus, attribute);
        const { candidates } = induceCandidates(
          attribute,
          docs,
          { maxCandidates: opts.max ?? settings.induction.maxCandidates, minScore: settings.induction.minScore, maxExamples: settings.induction.maxExamples },
        );
        if (opts.json) console.log(JSON.stringify(candidates, null, 2));
        else if (!candidates.length) console.log(`No rule agrees with the labels of "${attribute}" well enough; label more documents.`);
        else for (const c of candidates) console.log(`// leave-one-out F1 ${c.looScore.toFixed(2)} (${c.generator})\n${c.source}`);
      });
    }));
}
