/** What every subcommand needs: settings with the global --db applied, and the opened store. */
import type { Command } from 'commander';
import { loadSettings, type Settings } from '../config.js';
import { EvaporateError } from '../errors.js';
import { openDatabase, type Db } from '../store/database.js';

export function settingsFor(command: Command, overrides: Partial<Settings> = {}): Settings {
  const { db } = command.optsWithGlobals<{ db?: string }>();
  return loadSettings({ ...(db ? { databasePath: db } : {}), ...overrides });
}

export function openStore(command: Command): { db: Db; settings: Settings } {
  const settings = settingsFor(command);
  return { db: openDatabase(settings.databasePath), settings };
}

/** Runs an action; an EvaporateError prints its sentence (not a stack) and sets a failing exit code. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (error) {
      if (error instanceof EvaporateError) {
        console.error(`error: ${error.message} [${error.code}]`);
        process.exitCode = 1;
        return;
      }
      throw error;
    }
  };
}

export function printRows(rows: Record<string, unknown>[], columns: string[]): void {
  const cell = (v: unknown) => (v === null || v === undefined ? '' : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  console.log(line(columns));
  for (const r of rows) console.log(line(columns.map((c) => cell(r[c]))));
}
