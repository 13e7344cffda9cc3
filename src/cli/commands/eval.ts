/**
 * `evaporate eval --corpus <dir|corpus> --gold <dir|file>`: extract (unless --no-extract) and score the table
 * against gold values: per-attribute text F1, schema precision/recall, and the LLM cost against the tokens
 * direct extraction of every document would have sent (the same attributes, counted the same way).
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import { createEvalCorpus, resolveEvalCorpus, resultTableOf } from '../eval-corpus.js';
import { followInBackground } from '../progress.js';
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
    .requiredOption('--corpus <dir|corpus>', 'a folder of documents (ingested into a corpus named after its site) or an existing corpus')
    .requiredOption('--gold <dir|file>', 'SWDE ground-truth folder, or a JSON/CSV gold file')
    .option('--corpus-name <name>', 'name of the corpus a folder is ingested into (default: the site, e.g. swde-book-christianbook for .../swde-book-christianbook/pages)')
    .option('--open', 'open mode: discover the attributes (default: closed, with the gold attribute names)')
    .option('--no-extract', 'score the existing table without running an extraction')
    .option('--sample-size <n>', 'sample documents the LLM reads', int)
    .option('--candidates <n>', 'candidate functions per attribute', int)
    .option('--json', 'print the report as JSON')
    .action(
      action(
        async (
          options: { corpus: string; gold: string; corpusName?: string; open?: boolean; extract: boolean; sampleSize?: number; candidates?: number; json?: boolean },
          command: Command,
        ) => {
          const gold = readGold(options.gold);
          const { db, settings } = openStore(command);
          try {
            const target = resolveEvalCorpus(db, options.corpus, (dir) => collectFiles([dir]), options.corpusName);
            // Scoring only needs a table: say so before ingesting anything.
            if (!options.extract && (!target.corpus || !resultTableOf(db, target.corpus.id)))
              throw new EvaporateError(
                'nothing_to_score',
                `Corpus "${target.name}" has no result table yet, so --no-extract has nothing to score; run eval without --no-extract first.`,
                409,
              );
            const corpus = target.corpus ?? createEvalCorpus(db, target.name);
            for (const f of target.files) await ingestFile(db, corpus.id, { filename: f.filename, bytes: fs.readFileSync(f.absolute) }, { settings: settings.ingest });
            let llm: ReturnType<typeof jobLlmUsage> | null = null;
            let jobId: number | null = null;
            let extracted: string[] | null = null;
            if (options.extract) {
              const services = createPipelineServices(db, settings);
              try {
                const body = extractBody({ open: options.open, attributes: options.open ? undefined : [...gold.keys()].join(','), sampleSize: options.sampleSize, candidates: options.candidates } as ExtractCliOptions);
                let progress: Promise<void> | undefined;
                const run = await runExtractionHere(services, corpus.id, body, {
                  onQueued: (id) => {
                    console.error(`extraction job ${id} on corpus ${corpus.name}`);
                    progress = followInBackground(db, id, settings.jobs.pollMs);
                  },
                }).finally(() => progress);
                jobId = run.jobId;
                llm = jobLlmUsage(db, run.jobId);
                extracted = run.result.attributes.map((a) => a.name);
              } finally {
                await services.close();
              }
            }
            const table = resultTableOf(db, corpus.id);
            const report = evaluateTable(db, corpus.id, gold);
            // Like with like: direct extraction of the attributes this run extracted (open mode: the discovered ones),
            // both sides counted with the same tokenizer (countPromptTokens), cache hits included on the LLM side.
            const compared = extracted ?? table?.columns.map((c) => c.name) ?? [...gold.keys()];
            const direct = directExtractionTokens(db, corpus.id, compared.map((name) => ({ name })), settings.pipeline.directContextTokens);
            const fewerTokens = llm && llm.countedPromptTokens > 0 ? direct.tokens / llm.countedPromptTokens : null;
            const out = {
              corpus: corpus.name,
              table: table?.table ?? null,
              jobId,
              ...report,
              cost: {
                llm,
                llmPromptTokensCounted: llm?.countedPromptTokens ?? null,
                directExtractionPromptTokens: direct.tokens,
                directExact: direct.exact,
                documents: direct.documents,
                attributesCompared: compared,
                fewerTokens,
              },
            };
            if (options.json) {
              console.log(JSON.stringify(out, null, 2));
              return;
            }
            console.log(`table ${table?.table ?? '(none)'} of corpus ${corpus.name}${table ? `: ${table.rows} rows` : ''}`);
            printRows(
              report.attributes.map((a) => ({ ...a, f1: a.f1.toFixed(3), typed: a.typedAccuracy.toFixed(3), labelled: a.labelled.documents ? `${a.labelled.documents} (F1 ${a.labelled.f1.toFixed(3)})` : '0' })),
              ['gold', 'column', 'f1', 'typed', 'documents', 'labelled'],
            );
            console.log(`mean text F1: ${report.meanF1.toFixed(3)} (on the text each value came from), typed-value accuracy ${report.meanTypedAccuracy.toFixed(3)} (documents labelled for an attribute are scored apart)`);
            console.log(`schema: precision ${report.schema.precision.toFixed(2)}, recall ${report.schema.recall.toFixed(2)} (discovered: ${report.schema.discovered.join(', ')})`);
            const used = llm
              ? `${llm.calls} LLM calls (${llm.cacheHits} from cache; ${llm.requests} requests sent, ${llm.errors} failed), ${llm.totalTokens} tokens, $${llm.costUsd.toFixed(4)}`
              : 'no extraction run';
            const ratio = fewerTokens !== null ? ` (${fewerTokens.toFixed(1)}x the ${llm!.countedPromptTokens} prompt tokens this run's calls need, counted the same way)` : '';
            console.log(
              `cost: ${used}; direct extraction of all ${direct.documents} documents would send ${direct.tokens} prompt tokens for the same ${compared.length} attributes${direct.exact ? '' : ' (estimated from a subset)'}${ratio}`,
            );
          } finally {
            db.close();
          }
        },
      ),
    );
}
