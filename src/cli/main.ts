#!/usr/bin/env node
/**
 * The `evaporate` command. Each area adds its subcommands in src/cli/commands/<area>.ts exporting
 * `register(program)`, and one line in `commands` below; commands call the same functions the server uses.
 */
import { Command } from 'commander';
import { exitQuietlyWhenOutputCloses } from './closed-output.js';
import * as serve from './commands/serve.js';
import * as ingest from './commands/ingest.js';
import * as corpora from './commands/corpora.js';
import * as documents from './commands/documents.js';
import * as label from './commands/label.js';
import * as jobs from './commands/jobs.js';
import * as extract from './commands/extract.js';
import * as query from './commands/query.js';
import * as evaluate from './commands/eval.js';
import * as llm from './commands/llm.js';
import * as worker from './commands/worker.js';

const commands: { register(program: Command): void }[] = [serve, ingest, corpora, documents, label, jobs, extract, query, evaluate, llm, worker];

exitQuietlyWhenOutputCloses();

const program = new Command();
program
  .name('evaporate')
  .description('Turn semi-structured documents into queryable SQL tables with LLMs.')
  .option('--db <file>', 'SQLite database file (default: EVAPORATE_DB or ./data/evaporate.db)');
for (const c of commands) c.register(program);

await program.parseAsync(process.argv);
