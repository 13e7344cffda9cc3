/**
 * Composition root: with EVAPORATE_REDIS_URL set, the pipeline's corpus pass goes to `evaporate worker`
 * processes through the shard queue; without it nothing changes and the pass runs in this process.
 */
import type { Settings } from '../config.js';
import type { PipelineServices } from '../pipeline/service.js';
import { QueueShardRunner } from '../shards/coordinator.js';

export function withShardQueue(services: PipelineServices, settings: Settings, log: (line: string) => void = (l) => console.error(l)): PipelineServices {
  if (!settings.shards.redisUrl) return services;
  const shards = new QueueShardRunner(settings.shards, log);
  return {
    ...services,
    shards,
    close: async () => {
      await shards.close();
      await services.close();
    },
  };
}
