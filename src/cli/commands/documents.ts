/** `evaporate documents list <corpus> | show <id> | delete <id>`. */
import type { Command } from 'commander';
import { getCorpus } from '../../store/corpora.js';
import { deleteDocument, getChunks, getDocument, listDocuments, type DocumentStatus } from '../../store/documents.js';
import { action, openStore, printRows } from '../common.js';

export function register(program: Command): void {
  const documents = program.command('documents').description('list, show or delete documents');
  documents
    .command('list', { isDefault: true })
    .argument('<corpus>', 'name or id')
    .option('--status <status>', 'ready or failed')
    .option('--after <id>', 'page after this document id', (v) => Number(v))
    .option('--limit <n>', 'page size (max 1000)', (v) => Number(v), 100)
    .option('--json', 'JSON output')
    .action(
      action((corpusName: string, options: { status?: DocumentStatus; after?: number; limit: number; json?: boolean }, command: Command) => {
        const { db } = openStore(command);
        try {
          const corpus = getCorpus(db, corpusName);
          const page = listDocuments(db, corpus.id, options);
          if (options.json) return console.log(JSON.stringify(page, null, 2));
          printRows(page.items as unknown as Record<string, unknown>[], ['id', 'kind', 'status', 'byteSize', 'filename', 'errorCode']);
          if (page.nextAfter !== null) console.error(`more: --after ${page.nextAfter}`);
        } finally {
          db.close();
        }
      }),
    );
  documents
    .command('show')
    .argument('<id>', 'document id')
    .option('--json', 'metadata, structure and chunks as JSON')
    .description('print a document\'s text (or its metadata with --json)')
    .action(
      action((id: string, options: { json?: boolean }, command: Command) => {
        const { db } = openStore(command);
        try {
          const doc = getDocument(db, Number(id));
          if (options.json) console.log(JSON.stringify({ ...doc, chunks: getChunks(db, doc.id) }, null, 2));
          else if (doc.status === 'failed') console.log(`${doc.filename}: failed: ${doc.errorMessage} [${doc.errorCode}]`);
          else console.log(doc.text);
        } finally {
          db.close();
        }
      }),
    );
  documents
    .command('delete')
    .argument('<id>', 'document id')
    .action(
      action((id: string, _options: unknown, command: Command) => {
        const { db } = openStore(command);
        try {
          deleteDocument(db, Number(id));
          console.log(`deleted document ${id}`);
        } finally {
          db.close();
        }
      }),
    );
}
