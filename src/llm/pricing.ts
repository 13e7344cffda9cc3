/**
 * Estimated cost of a call from a price table in USD per million tokens. The defaults cover common
 * hosted models; anything unknown (local endpoints) costs 0, and users override or extend the table
 * with EVAPORATE_LLM_PRICES (inline JSON or a JSON file path).
 */
import fs from 'node:fs';
import { EvaporateError } from '../errors.js';
import type { TokenUsage } from './types.js';

export interface Price {
  /** USD per 1M prompt tokens. */
  input: number;
  /** USD per 1M completion tokens. */
  output: number;
}

export type PriceTable = Record<string, Price>;

export const DEFAULT_PRICES: PriceTable = {
  'gpt-4o-mini': { input: 0.15, output: 0.6 },
  'gpt-4o': { input: 2.5, output: 10 },
  'gpt-4.1-nano': { input: 0.1, output: 0.4 },
  'gpt-4.1-mini': { input: 0.4, output: 1.6 },
  'gpt-4.1': { input: 2, output: 8 },
  'gpt-4-turbo': { input: 10, output: 30 },
  'gpt-4': { input: 30, output: 60 },
  'gpt-3.5-turbo': { input: 0.5, output: 1.5 },
  'gpt-5-nano': { input: 0.05, output: 0.4 },
  'gpt-5-mini': { input: 0.25, output: 2 },
  'gpt-5': { input: 1.25, output: 10 },
  'o4-mini': { input: 1.1, output: 4.4 },
  'o3-mini': { input: 1.1, output: 4.4 },
  'o3': { input: 2, output: 8 },
  // Anything not listed (self-hosted endpoints) is free unless the user says otherwise.
  '*': { input: 0, output: 0 },
};

function validPrice(v: unknown): v is Price {
  const p = v as Price;
  return !!p && typeof p === 'object' && Number.isFinite(p.input) && Number.isFinite(p.output) && p.input >= 0 && p.output >= 0;
}

/** The default table merged with the user's override (inline JSON, or a path to a JSON file). */
export function loadPrices(override: string | undefined): PriceTable {
  if (!override || override.trim() === '') return { ...DEFAULT_PRICES };
  const text = override.trim().startsWith('{') ? override : readFile(override);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new EvaporateError('invalid_setting', 'EVAPORATE_LLM_PRICES is not valid JSON: expected {"model": {"input": usdPer1M, "output": usdPer1M}}.');
  }
  const table: PriceTable = { ...DEFAULT_PRICES };
  for (const [model, price] of Object.entries(parsed as Record<string, unknown>)) {
    if (!validPrice(price)) {
      throw new EvaporateError('invalid_setting', `EVAPORATE_LLM_PRICES: the price of "${model}" needs non-negative numbers "input" and "output" (USD per 1M tokens).`);
    }
    table[model] = { input: price.input, output: price.output };
  }
  return table;
}

function readFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    throw new EvaporateError('invalid_setting', `EVAPORATE_LLM_PRICES names a file that cannot be read: ${file}`);
  }
}

/** Exact model name first, then the longest listed prefix (dated snapshots), then "*". */
export function priceFor(table: PriceTable, model: string): Price {
  if (table[model]) return table[model];
  let best: string | undefined;
  for (const key of Object.keys(table)) {
    if (key !== '*' && model.startsWith(key) && (!best || key.length > best.length)) best = key;
  }
  return best ? table[best]! : (table['*'] ?? { input: 0, output: 0 });
}

export function costOf(table: PriceTable, model: string, usage: TokenUsage): number {
  const price = priceFor(table, model);
  return (usage.promptTokens * price.input + usage.completionTokens * price.output) / 1_000_000;
}
