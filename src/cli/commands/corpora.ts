/** `evaporate corpora [list|create|delete]`. */
import type { Command } from 'commander';
import { createCorpus, deleteCorpus, listCorpora } from '../../store/corpora.js';
import { action, openStore, printRows } from '../common.js';

export function register(program: Command): void {
  const corpora = program.command('corpora').description('list, create or delete corpora');
  corpora
    .command('list', { isDefault: true })
    .description('list corpora with document counts')
    .option('--json', 'JSON output')
    .action(
      action((options: { json?: boolean }, command: Command) => {
        const { db } = openStore(command);
        const items = listCorpora(db);
        db.close();
        if (options.json) console.log(JSON.stringify(items, null, 2));
        else printRows(items as unknown as Record<string, unknown>[], ['id', 'name', 'documents', 'failed', 'createdAt', 'description']);
      }),
    );
  corpora
    .command('create')
    .argument('<name>')
    .option('-d, --description <text>', 'what the corpus holds', '')
    .action(
      action((name: string, options: { description: string }, command: Command) => {
        const { db } = openStore(command);
        try {
          const c = createCorpus(db, name, options.description);
          console.log(`created corpus ${c.name} (id ${c.id})`);
        } finally {
          db.close();
        }
      }),
    );
  corpora
    .command('delete')
    .argument('<corpus>', 'name or id')
    .description('delete a corpus with all its documents and results')
    .action(
      action((idOrName: string, _options: unknown, command: Command) => {
        const { db } = openStore(command);
        try {
          const c = deleteCorpus(db, idOrName);
          console.log(`deleted corpus ${c.name} (id ${c.id})`);
        } finally {
          db.close();
        }
      }),
    );
}
