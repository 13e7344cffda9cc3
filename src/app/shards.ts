/**
 * Composition root: with EVAPORATE_REDIS_URL set, the pipeline's corpus pass goes to `evaporate worker`
 * processes through the shard queue, and so does the direct-extraction fallback (to the workers that have an
 * extraction model) unless EVAPORATE_SHARD_DIRECT=0; without it nothing changes and both run in this process.
 */
import type { Settings } from '../config.js';
import { composeLlm, llmConfigFromEnv, RateLimiter, type LlmConfig } from '../llm/index.js';
import { LOCAL_MODEL_NAME, type PipelineServices } from '../pipeline/service.js';
import { QueueShardRunner } from '../shards/coordinator.js';
import { QueueLlmProvider } from '../shards/direct-provider.js';

export function withShardQueue(
  services: PipelineServices,
  settings: Settings,
  log: (line: string) => void = (l) => console.error(l),
  config: LlmConfig = llmConfigFromEnv(),
): PipelineServices {
  if (!settings.shards.redisUrl) return services;
  const shards = new QueueShardRunner(settings.shards, log);
  const direct = settings.shards.direct ? new QueueLlmProvider(settings.shards, log) : undefined;
  return {
    ...services,
    shards,
    ...(direct ? { fallbackLlm: workersLlm(direct, services, settings, config) } : {}),
    close: async () => {
      await shards.close();
      await direct?.close();
      await services.close();
    },
  };
}

/**
 * The workers' model behind this coordinator's cache, ledger and budget. Requests name the model this
 * coordinator is configured with for extraction (workers refuse one they do not serve), so cached answers of
 * one model are never served for another. No per-minute limits here: those are the workers' endpoints' own.
 */
function workersLlm(direct: QueueLlmProvider, services: PipelineServices, settings: Settings, config: LlmConfig) {
  const model = settings.local.modelDir ? LOCAL_MODEL_NAME : config.models.extraction;
  const s = settings.shards;
  return composeLlm(direct, {
    db: services.db,
    settings,
    models: { extraction: model, default: model },
    missingVars: () => ['EVAPORATE_MODEL_EXTRACTION (the model the workers serve)'],
    limiter: new RateLimiter({ concurrency: s.directInFlight, requestsPerMinute: 0, tokensPerMinute: 0, defaultMaxTokens: settings.llm.defaultMaxTokens }),
  });
}
