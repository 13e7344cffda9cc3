/** `evaporate ingest <corpus> <paths...>`: files and folders into a corpus, with a progress bar. */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { ingestFile, oversizeResult, summarize, type IngestResult } from '../../ingest/ingest.js';
import { getOrCreateCorpus } from '../../store/corpora.js';
import { EvaporateError } from '../../errors.js';
import { action, openStore } from '../common.js';

/** Files under the given paths, sorted, hidden files and folders skipped; symlinks are not followed. */
export function collectFiles(paths: string[]): string[] {
  const out: string[] = [];
  const walk = (p: string, top: boolean) => {
    const stat = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!stat) throw new EvaporateError('path_not_found', `There is no file or folder "${p}".`, 400);
    if (!top && path.basename(p).startsWith('.')) return;
    if (stat.isDirectory()) {
      for (const name of fs.readdirSync(p).sort()) walk(path.join(p, name), false);
    } else if (stat.isFile()) out.push(p);
  };
  for (const p of paths) walk(p, true);
  return out;
}

export function register(program: Command): void {
  program
    .command('ingest')
    .description('ingest files, folders and archives into a corpus (created if missing)')
    .argument('<corpus>', 'corpus name or id')
    .argument('<paths...>', 'files or folders (walked recursively)')
    .option('--json', 'print every file result as JSON lines')
    .option('--no-progress', 'no progress bar')
    .action(
      action(async (corpusName: string, paths: string[], options: { json?: boolean; progress: boolean }, command: Command) => {
        const { db, settings } = openStore(command);
        try {
          const corpus = getOrCreateCorpus(db, corpusName);
          const files = collectFiles(paths);
          const bar = options.progress && process.stderr.isTTY
            ? new cliProgress.SingleBar({ format: 'ingest [{bar}] {value}/{total} files | {stored} stored {duplicates} dup {failed} failed', hideCursor: true }, cliProgress.Presets.shades_classic)
            : null;
          const results: IngestResult[] = [];
          bar?.start(files.length, 0, { stored: 0, duplicates: 0, failed: 0 });
          for (const file of files) {
            const size = fs.statSync(file).size;
            const fileResults = size > settings.ingest.maxFileBytes
              ? [oversizeResult(file, settings.ingest.maxFileBytes, size)]
              : await ingestFile(db, corpus.id, { filename: file, bytes: fs.readFileSync(file) }, { settings: settings.ingest });
            results.push(...fileResults);
            if (options.json) for (const r of fileResults) console.log(JSON.stringify(r));
            bar?.increment(1, summarize(results));
          }
          bar?.stop();
          const counts = summarize(results);
          if (!options.json) {
            for (const r of results.filter((x) => x.status === 'failed')) console.error(`failed: ${r.filename}: ${r.error!.message} [${r.error!.code}]`);
            for (const r of results.filter((x) => x.note)) console.error(`note: ${r.note}`);
          }
          console.error(`corpus ${corpus.name} (id ${corpus.id}): ${counts.stored} stored, ${counts.duplicates} duplicates, ${counts.failed} failed`);
          if (counts.failed > 0) process.exitCode = 1;
        } finally {
          db.close();
        }
      }),
    );
}
