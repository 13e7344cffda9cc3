/** `evaporate query "<sql>"`: read-only SQL over the extracted tables, as a table, JSON or CSV. */
import type { Command } from 'commander';
import { runQuery, toCsv } from '../../pipeline/query.js';
import { action, openStore, printRows } from '../common.js';

export function register(program: Command): void {
  const int = (v: string) => Number.parseInt(v, 10);
  program
    .command('query')
    .description('run a read-only SQL query over the extracted tables')
    .argument('<sql>', 'one SELECT / WITH / VALUES statement')
    .option('--csv', 'print CSV')
    .option('--json', 'print JSON')
    .option('--offset <n>', 'skip this many rows', int)
    .option('--limit <n>', 'at most this many rows (capped by EVAPORATE_QUERY_MAX_ROWS)', int)
    .action(
      action(async (sql: string, options: { csv?: boolean; json?: boolean; offset?: number; limit?: number }, command: Command) => {
        const { db, settings } = openStore(command);
        try {
          const result = await runQuery(db, { sql, offset: options.offset, limit: options.limit }, { timeoutMs: settings.query.timeoutMs, maxRows: settings.query.maxRows });
          if (options.csv) process.stdout.write(toCsv(result));
          else if (options.json) console.log(JSON.stringify(result));
          else {
            printRows(result.rows.map((r) => Object.fromEntries(result.columns.map((c, i) => [c, r[i]]))), result.columns);
            console.error(`${result.rows.length} rows in ${result.elapsedMs} ms${result.hasMore ? `; more with --offset ${result.nextOffset}` : ''}`);
          }
        } finally {
          db.close();
        }
      }),
    );
}
