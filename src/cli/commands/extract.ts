/** `evaporate extract <corpus>`: start a closed (--attributes) or open extraction and run it to the end here. */
import type { Command } from 'commander';
import { getCorpus } from '../../store/corpora.js';
import { JobService } from '../../jobs/service.js';
import { jobLlmUsage } from '../../llm/index.js';
import { createPipelineServices, EXTRACT_JOB_KIND, parseExtractRequest, runExtractionHere } from '../../pipeline/service.js';
import { action, openStore, printRows } from '../common.js';
import { followInBackground } from '../progress.js';

export interface ExtractCliOptions {
  attributes?: string;
  open?: boolean;
  sampleSize?: number;
  candidates?: number;
  topK?: number;
  maxAttributes?: number;
  budgetTokens?: number;
  budgetUsd?: number;
  fallbackDirect?: boolean;
  enqueue?: boolean;
  json?: boolean;
}

/** The REST body the options stand for, so the CLI and the API validate the same way. */
export function extractBody(o: ExtractCliOptions): Record<string, unknown> {
  return {
    mode: o.open || !o.attributes ? 'open' : 'closed',
    ...(o.attributes ? { attributes: o.attributes.split(',').map((a) => a.trim()).filter(Boolean) } : {}),
    ...(o.sampleSize !== undefined ? { sampleSize: o.sampleSize } : {}),
    ...(o.candidates !== undefined ? { candidates: o.candidates } : {}),
    ...(o.topK !== undefined ? { topK: o.topK } : {}),
    ...(o.maxAttributes !== undefined ? { maxAttributes: o.maxAttributes } : {}),
    ...(o.fallbackDirect ? { fallbackDirect: true } : {}),
    ...(o.budgetTokens || o.budgetUsd ? { budget: { maxTokens: o.budgetTokens, maxUsd: o.budgetUsd } } : {}),
  };
}

export function register(program: Command): void {
  const int = (v: string) => Number.parseInt(v, 10);
  program
    .command('extract')
    .description('extract a table from a corpus: closed with --attributes, open (discover the attributes) otherwise')
    .argument('<corpus>', 'corpus name or id')
    .option('--attributes <names>', 'comma-separated attribute names (closed mode)')
    .option('--open', 'discover the attributes from a sample (open mode)')
    .option('--sample-size <n>', 'sample documents the LLM reads', int)
    .option('--candidates <n>', 'candidate functions per attribute', int)
    .option('--top-k <n>', 'functions kept per attribute', int)
    .option('--max-attributes <n>', 'open mode: attributes kept', int)
    .option('--budget-tokens <n>', 'LLM token budget of the job', int)
    .option('--budget-usd <x>', 'LLM spend budget of the job (USD)', Number)
    .option('--fallback-direct', 'ask the LLM directly where every function abstained')
    .option('--enqueue', 'only enqueue the job (a running `evaporate serve` picks it up)')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (corpusName: string, options: ExtractCliOptions, command: Command) => {
        const { db, settings } = openStore(command);
        const corpus = getCorpus(db, corpusName);
        const body = extractBody(options);
        if (options.enqueue) {
          const { params } = parseExtractRequest(corpus.id, body);
          const job = new JobService(db).enqueue({ kind: EXTRACT_JOB_KIND, corpusId: corpus.id, params });
          console.log(options.json ? JSON.stringify(job) : `queued extraction job ${job.id} for corpus ${corpus.name}`);
          db.close();
          return;
        }
        const { withShardQueue } = await import('../../app/shards.js');
        const services = withShardQueue(createPipelineServices(db, settings), settings);
        try {
          let progress: Promise<void> | undefined;
          const { jobId, result } = await runExtractionHere(services, corpus.id, body, {
            onQueued: (id) => {
              console.error(`extraction job ${id} for corpus ${corpus.name} (${body.mode})`);
              progress = followInBackground(db, id, settings.jobs.pollMs);
            },
          }).finally(() => progress);
          const usage = jobLlmUsage(db, jobId);
          if (options.json) {
            console.log(JSON.stringify({ jobId, result, llm: usage }, null, 2));
            return;
          }
          console.log(`table ${result.table}: ${result.rows} rows (query it with: evaporate query 'SELECT * FROM "${result.table}" LIMIT 10')`);
          printRows(
            result.attributes.map((a) => ({ ...a, bestSampleScore: a.bestSampleScore.toFixed(2) })),
            ['name', 'column', 'type', 'candidates', 'kept', 'bestSampleScore', 'filled'],
          );
          if (result.dropped.length) console.log(`dropped as implausible: ${result.dropped.join(', ')}`);
          for (const a of result.attributes)
            for (const d of a.labelDisputes ?? [])
              console.log(
                `${a.name}: document ${d.documentId}'s sample label ${JSON.stringify(d.silver)} vs ${JSON.stringify(d.consensus)} from ${Math.round(d.support * 100)}% of the candidates` +
                  (d.overruled ? ' (label overruled)' : d.kind === 'split' ? ' (the column rests on this one label: check it)' : ' (label kept)'),
              );
          if (result.cut?.length) console.log(`left out by the attribute cap (EVAPORATE_MAX_ATTRIBUTES or maxAttributes): ${result.cut.join(', ')}`);
          for (const w of result.warnings ?? []) console.log(`warning ${w.code}: ${w.message}`);
          console.log(`LLM: ${result.llm.calls} calls (${result.llm.cachedCalls} cached), ${result.llm.promptTokens + result.llm.completionTokens} tokens; direct extraction of every document would send about ${result.directTokensEstimate} prompt tokens`);
        } finally {
          await services.close();
          db.close();
        }
      }),
    );
}
