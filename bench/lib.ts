import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** What every benchmark returns: rows for the printed table, plus anything worth keeping in the JSON. */
export interface BenchResult {
  /** File name under bench/results/ (without .json). */
  name: string;
  rows: Record<string, string | number | boolean | null>[];
  /** Targets from the issues, checked and reported, e.g. { 'html pages/s >= 100': true }. */
  targets?: Record<string, boolean>;
  notes?: string[];
  extra?: Record<string, unknown>;
  /** Set when the benchmark could not run here (its data is missing): printed as one line, no result file written. */
  skipped?: string;
}

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const sharedData = path.resolve(repoRoot, '..', 'shared', 'data');

/**
 * Benchmarks run on the development set in ../shared/data, which a fresh clone does not have. Returns a skipped
 * result naming what is missing (the caller returns it), or undefined when every named data set is there.
 */
export function needsSharedData(bench: string, ...datasets: string[]): BenchResult | undefined {
  const missing = datasets.filter((d) => !fs.existsSync(path.join(sharedData, d)));
  if (missing.length === 0) return undefined;
  return { name: bench, rows: [], skipped: `${bench}: needs ${missing.map((d) => path.relative(repoRoot, path.join(sharedData, d))).join(', ')}, not found; skipped.` };
}

export function printTable(rows: BenchResult['rows']): void {
  if (rows.length === 0) return;
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : String(v ?? ''));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i])).join('  ');
  console.log(line(columns));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(columns.map((c) => cell(r[c]))));
}

export function writeResult(result: BenchResult): string {
  const dir = path.join(repoRoot, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${result.name}.json`);
  const machine = { node: process.version, platform: process.platform, arch: process.arch, cpus: (globalThis as any).navigator?.hardwareConcurrency };
  fs.writeFileSync(file, JSON.stringify({ ...result, machine, date: new Date().toISOString() }, null, 2) + '\n');
  return file;
}
