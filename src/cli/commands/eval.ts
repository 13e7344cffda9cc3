/**
 * `evaporate eval --corpus <dir|corpus> --gold <dir|file>`: extract (unless --no-extract) and score the table
 * against gold values: per-attribute text F1, schema precision/recall, and the LLM cost against the tokens
 * direct extraction of every document would have sent.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { findCorpus, getOrCreateCorpus } from '../../store/corpora.js';
import { ingestFile } from '../../ingest/ingest.js';
import { jobLlmUsage } from '../../llm/index.js';
import { createPipelineServices, runExtractionHere } from '../../pipeline/service.js';
import { directExtractionTokens, evaluateTable, readGold } from '../../pipeline/eval.js';
import { EvaporateError } from '../../errors.js';
import { action, openStore, printRows } from '../common.js';
import { collectFiles } from './ingest.js';
import { extractBody, type ExtractCliOptions } from './extract.js';

export function register(program: Command): void {
  const int = (v: string) => Number.parseInt(v, 10);
  program
    .command('eval')
    .description('score an extraction against gold values (text F1, schema precision/recall, LLM cost)')
    .requiredOption('--corpus <dir|corpus>', 'a folder of documents (ingested into corpus eval-<folder>) or an existing corpus')
    .requiredOption('--gold <dir|file>', 'SWDE ground-truth folder, or a JSON/CSV gold file')
    .option('--open', 'open mode: discover the attributes (default: closed, with the gold attribute names)')
    .option('--no-extract', 'score the existing table without running an extraction')
    .option('--sample-size <n>', 'sample documents the LLM reads', int)
    .option('--candidates <n>', 'candidate functions per attribute', int)
    .option('--json', 'print the report as JSON')
    .action(
      action(async (options: { corpus: string; gold: string; open?: boolean; extract: boolean; sampleSize?: number; candidates?: number; json?: boolean }, command: Command) => {
        const gold = readGold(options.gold);
        const { db, settings } = openStore(command);
        try {
          let corpus = findCorpus(db, options.corpus);
          if (!corpus) {
            if (!fs.existsSync(options.corpus) || !fs.statSync(options.corpus).isDirectory())
              throw new EvaporateError('corpus_not_found', `"${options.corpus}" is neither a corpus nor a folder of documents.`, 400);
            corpus = getOrCreateCorpus(db, `eval-${path.basename(path.resolve(options.corpus))}`);
            for (const file of collectFiles([options.corpus])) await ingestFile(db, corpus.id, { filename: path.relative(options.corpus, file), bytes: fs.readFileSync(file) }, { settings: settings.ingest });
          }
          let llm: ReturnType<typeof jobLlmUsage> | null = null;
          let jobId: number | null = null;
          if (options.extract) {
            const services = createPipelineServices(db, settings);
            try {
              const body = extractBody({ open: options.open, attributes: options.open ? undefined : [...gold.keys()].join(','), sampleSize: options.sampleSize, candidates: options.candidates } as ExtractCliOptions);
              const run = await runExtractionHere(services, corpus.id, body, { onQueued: (id) => console.error(`extraction job ${id} on corpus ${corpus!.name}`) });
              jobId = run.jobId;
              llm = jobLlmUsage(db, run.jobId);
            } finally {
              await services.close();
            }
          }
          const report = evaluateTable(db, corpus.id, gold);
          const direct = directExtractionTokens(db, corpus.id, [...gold.keys()].map((name) => ({ name })), settings.pipeline.directContextTokens);
          const out = { corpus: corpus.name, jobId, ...report, cost: { llm, directExtractionPromptTokens: direct.tokens, directExact: direct.exact, documents: direct.documents } };
          if (options.json) {
            console.log(JSON.stringify(out, null, 2));
            return;
          }
          printRows(
            report.attributes.map((a) => ({ ...a, f1: a.f1.toFixed(3), typed: a.typedAccuracy.toFixed(3), labelled: a.labelled.documents ? `${a.labelled.documents} (F1 ${a.labelled.f1.toFixed(3)})` : '0' })),
            ['gold', 'column', 'f1', 'typed', 'documents', 'labelled'],
          );
          console.log(`mean text F1: ${report.meanF1.toFixed(3)} (on the text each value came from), typed-value accuracy ${report.meanTypedAccuracy.toFixed(3)} (documents labelled for an attribute are scored apart)`);
          console.log(`schema: precision ${report.schema.precision.toFixed(2)}, recall ${report.schema.recall.toFixed(2)} (discovered: ${report.schema.discovered.join(', ')})`);
          const used = llm ? `${llm.calls} LLM calls (${llm.cacheHits} from cache), ${llm.totalTokens} tokens, $${llm.costUsd.toFixed(4)}` : 'no extraction run';
          const ratio = llm && llm.promptTokens > 0 ? ` (${(direct.tokens / llm.promptTokens).toFixed(1)}x the prompt tokens used)` : '';
          console.log(`cost: ${used}; direct extraction of all ${direct.documents} documents would send ${direct.tokens} prompt tokens${direct.exact ? '' : ' (estimated from a subset)'}${ratio}`);
        } finally {
          db.close();
        }
      }),
    );
}
