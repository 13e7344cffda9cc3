#!/usr/bin/env node
/**
 * The `evaporate` command. Each area adds its subcommands in src/cli/commands/ and registers them here;
 * commands call the same functions the server uses.
 */
import { Command } from 'commander';
import { registerLabelCommands } from './commands/label.js';

const program = new Command();
program.name('evaporate').description('Turn semi-structured documents into queryable SQL tables with LLMs.');

// Subcommand registration (serve, ingest, corpora, documents, extract, query, eval, jobs, label) goes here.
registerLabelCommands(program);

await program.parseAsync(process.argv);
