/**
 * `npm run bench [name...]`: runs every bench/*.bench.ts (or the named ones), prints a table for each
 * and writes bench/results/<name>.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { printTable, repoRoot, writeResult, type BenchResult } from './lib.js';

const wanted = process.argv.slice(2);
const benchDir = path.join(repoRoot, 'bench');
const files = fs
  .readdirSync(benchDir)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => wanted.length === 0 || wanted.includes(f.replace(/\.bench\.ts$/, '')))
  .sort();

let failed = 0;
for (const file of files) {
  console.log(`\n== ${file}`);
  try {
    const mod = (await import(pathToFileURL(path.join(benchDir, file)).href)) as { default: () => Promise<BenchResult | BenchResult[]> };
    const results = [await mod.default()].flat();
    for (const result of results) {
      if (result.skipped) {
        console.log(`skipped: ${result.skipped}`);
        continue;
      }
      printTable(result.rows);
      for (const [target, met] of Object.entries(result.targets ?? {})) console.log(`${met ? 'MET   ' : 'MISSED'} ${target}`);
      for (const note of result.notes ?? []) console.log(`note: ${note}`);
      console.log(`-> ${path.relative(repoRoot, writeResult(result))}`);
    }
  } catch (error) {
    failed++;
    console.error(`bench ${file} failed:`, error);
  }
}
process.exitCode = failed ? 1 : 0;
