/**
 * `evaporate llm check [--ping]`: which model serves each role, which variables are still missing,
 * and (with --ping) whether the endpoint answers /v1/models, which costs no tokens.
 * `evaporate llm usage <jobId>`: the job's LLM ledger totals (calls, cache hits, tokens, cost) and budget.
 */
import type { Command } from 'commander';
import OpenAI from 'openai';
import { loadSettings } from '../../config.js';
import { openDatabase } from '../../store/database.js';
import { getJobBudget, jobLlmUsage, llmConfigFromEnv } from '../../llm/index.js';
import { MODEL_ROLES } from '../../llm/config.js';

export function register(program: Command): void {
  const llm = program.command('llm').description('Language-model configuration and spending');

  llm
    .command('check')
    .description('Show the model per role and the environment variables still to set')
    .option('--ping', 'list the endpoint models to check that it answers (costs no tokens)')
    .action(async (opts: { ping?: boolean }) => {
      const config = llmConfigFromEnv();
      console.log(`endpoint: ${config.baseURL ?? 'https://api.openai.com/v1 (OPENAI_BASE_URL unset)'}`);
      console.log(`api key:  ${config.apiKey ? 'set' : 'not set'}`);
      let missing = false;
      for (const role of MODEL_ROLES) {
        const vars = config.missing[role];
        if (vars.length > 0) missing = true;
        console.log(`${role.padEnd(11)} ${vars.length === 0 ? config.models[role] : `not configured: set ${vars.join(' and ')}`}`);
      }
      if (opts.ping && (config.baseURL || config.apiKey)) {
        const client = new OpenAI({ baseURL: config.baseURL, apiKey: config.apiKey ?? 'not-needed', maxRetries: 0, timeout: loadSettings().llm.timeoutMs });
        try {
          const models = await client.models.list();
          console.log(`endpoint answers; models: ${models.data.map((m) => m.id).slice(0, 20).join(', ') || '(none listed)'}`);
        } catch (err) {
          console.error(`endpoint did not answer: ${err instanceof Error ? err.message : String(err)}`);
          process.exitCode = 1;
        }
      }
      if (missing) process.exitCode = 1;
    });

  llm
    .command('usage <jobId>')
    .description("A job's LLM calls, cache hits, tokens and estimated cost")
    .action((raw: string) => {
      const jobId = Number.parseInt(raw, 10);
      const root = program.opts<{ db?: string }>();
      const db = openDatabase(root.db ?? loadSettings().databasePath);
      try {
        const u = jobLlmUsage(db, jobId);
        const budget = getJobBudget(db, jobId);
        console.log(
          `job ${jobId}: ${u.calls} calls (${u.cacheHits} from cache, ${u.failedCalls} failed), ` +
            `${u.requests} requests sent (${u.errors} failed, retried or not), ` +
            `${u.promptTokens} tokens in, ${u.completionTokens} out, $${u.costUsd.toFixed(4)}`,
        );
        for (const m of u.byModel) console.log(`  ${m.model}: ${m.calls} calls, ${m.totalTokens} tokens, $${m.costUsd.toFixed(4)}`);
        if (budget) console.log(`  budget: ${budget.maxTokens ? `${budget.maxTokens} tokens` : ''}${budget.maxTokens && budget.maxUsd ? ', ' : ''}${budget.maxUsd ? `$${budget.maxUsd}` : ''}`);
      } finally {
        db.close();
      }
    });
}
