/**
 * Every number a user may want to change lives here, as a named setting with a default.
 * Values come from the environment (EVAPORATE_*), so the service needs no config file to start.
 */
import path from 'node:path';

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`Setting ${name} must be a number, got "${raw}".`);
  return value;
}

function envString(name: string, fallback: string): string {
  const raw = process.env[name];
  return raw === undefined || raw === '' ? fallback : raw;
}

export interface Settings {
  /** SQLite database file; ':memory:' is allowed for tests. */
  databasePath: string;
  host: string;
  port: number;
  /** Bearer token required on every route but /health when set; mandatory when binding off loopback. */
  apiKey: string | undefined;
  ingest: {
    maxFileBytes: number;
    maxRequestBytes: number;
    maxFilesPerRequest: number;
    archiveMaxTotalBytes: number;
    archiveMaxEntries: number;
    archiveMaxDepth: number;
    archiveMaxCompressionRatio: number;
    chunkTokens: number;
    /** Wall-clock limit for parsing and chunking one file in the parse pool; past it the worker is stopped (parse_timeout). */
    parseTimeoutMs: number;
    /** PDFs with more pages are refused before any page is read (too_many_pages). */
    pdfMaxPages: number;
    /** HTML nested deeper is refused as soon as the parser gets there (too_deep). */
    htmlMaxDepth: number;
    /** Parse worker threads; 0 = half the cores, at least 2 and at most 4. */
    parseWorkers: number;
    /** Heap cap per parse worker. */
    parseMemoryMb: number;
  };
  pipeline: {
    sampleSize: number;
    candidatesPerAttribute: number;
    topK: number;
    maxAttributes: number;
    seed: number;
    /** Most documents per corpus-pass batch (one checkpoint, and one shard with Redis). */
    batchSize: number;
    /**
     * Most bytes of text and HTML per corpus-pass batch (a single larger document gets a batch of its own): with
     * HTML pages the document count alone would make shards of tens of MB, each held in Redis while in flight.
     */
    batchBytes: number;
    /** Prompt budget for the passages shown in one direct extraction. */
    directContextTokens: number;
    /** max_tokens of a direct extraction answer (four times this for long-text attributes such as a description). */
    directMaxTokens: number;
    /** An answer cut at max_tokens (finish_reason "length") is asked again with four times the room, up to this. */
    directMaxTokensCeiling: number;
    /** Prompt budget for the document excerpt shown to function synthesis. */
    synthesisContextTokens: number;
    /** Sample documents shown to synthesis (one prompt each per variant). */
    synthesisDocuments: number;
    /** Prompt budget of the passages read for schema discovery, per sample document. */
    schemaContextTokens: number;
    /** Open mode keeps attributes seen in at least this share of the sample. */
    minAttributeSupport: number;
    /** Direct fallback reads at most this many documents per attribute. */
    fallbackMaxDocuments: number;
    labelModel: string;
  };
  sandbox: {
    callTimeoutMs: number;
    memoryLimitMb: number;
    maxOutputChars: number;
    maxFailuresPerFunction: number;
    workers: number;
    /** Most strings one call may return as an array. */
    maxOutputItems: number;
    /** Largest accepted function source, in characters. */
    maxSourceChars: number;
    /** Documents per batch sent to a worker; 0 = chosen from corpus size and worker count. */
    batchDocuments: number;
    /** 'process': the pool runs in a child process under Node's permission model; 'thread': in this process. */
    isolation: 'process' | 'thread';
  };
  llm: {
    timeoutMs: number;
    maxRetries: number;
    concurrency: number;
    requestsPerMinute: number;
    tokensPerMinute: number;
    /** Exponential backoff: first retry waits up to retryBaseMs (full jitter), doubling up to retryMaxMs. */
    retryBaseMs: number;
    /** Longest single wait between retries; a Retry-After beyond it fails the call instead of stalling. */
    retryMaxMs: number;
    /** max_tokens sent when a caller sets none, so every call has a known worst-case cost for budgeting. */
    defaultMaxTokens: number;
    /** Content-addressed response cache in SQLite (llm_calls). */
    cache: boolean;
    /** Default per-job budgets; 0 = no limit. A job's own budget (llm_budgets) wins. */
    budgetTokens: number;
    budgetUsd: number;
    /** Price table override: inline JSON or a path to a JSON file, {"model": {"input": usdPer1M, "output": usdPer1M}}. */
    prices: string;
  };
  query: {
    timeoutMs: number;
    maxRows: number;
    /** All the memory one query process may hold (JavaScript and SQLite), MB. */
    memoryMb: number;
    /** Queries running at once; past it, 429 too_many_queries. */
    maxConcurrent: number;
  };
  /** The local BASED / JRT-RNN engine (provider local-based). */
  local: {
    /** Checkpoint directory (config.json + *.safetensors); empty = not configured. */
    modelDir: string;
    /** Engine threads; 0 = one per core. */
    threads: number;
    maxNewTokens: number;
    /** JRT-Prompt: write the context twice before the question. */
    jrtPrompt: boolean;
    /** Context states kept for reuse across questions about the same document. */
    prefixCacheEntries: number;
    topK: number;
    /** Most sequences in one engine forward (continuous batching); also how many requests the local route lets in at once. */
    maxBatch: number;
    /** Token budget of one engine forward: how many prompt tokens are read together with the running decodes. */
    maxBatchTokens: number;
  };
  /** The corpus pass on worker processes over Redis (BullMQ); see src/shards. */
  shards: {
    /** Redis URL of the shard queue; empty = the corpus pass runs in this process. */
    redisUrl: string;
    /** BullMQ queue name shared by the coordinators and `evaporate worker` processes. */
    queue: string;
    /** Prefix of every Redis key the queue and the job-wide failure counts use. */
    prefix: string;
    /** Runs of one shard (worker crashes and errors) before the job fails naming it. */
    attempts: number;
    /** First retry delay of a failed shard (doubles each attempt). */
    backoffMs: number;
    /** A worker's lock on the shard in hand; a SIGKILLed worker's shard is retried once it expires. */
    lockMs: number;
    /** How often workers look for shards whose lock expired. */
    stalledCheckMs: number;
    /** Shards of one job in Redis at once (their documents travel with them, so this bounds Redis memory). */
    inFlight: number;
    /** How often the coordinator checks that its issued shards are still in Redis (a restarted Redis loses them). */
    pollMs: number;
    /** Shards one `evaporate worker` runs at once. */
    workerConcurrency: number;
    /** With a queue, the direct-extraction fallback runs on workers that have an extraction model (false = here). */
    direct: boolean;
    /** Direct-extraction calls per shard. */
    directCalls: number;
    /** Direct-extraction calls of this coordinator in flight at once, over all workers. */
    directInFlight: number;
  };
  induction: {
    /** Most candidate functions wrapper induction hands to scoring per attribute. */
    maxCandidates: number;
    /** Induced candidates whose leave-one-out F1 on the labels is below this are dropped. */
    minScore: number;
    /** Most labelled documents induction learns from (cost grows with each; a few dozen say all a site has). */
    maxExamples: number;
  };
  jobs: {
    /** How long a runner owns a claimed job without a heartbeat before another runner may take it over. */
    leaseMs: number;
    heartbeatMs: number;
    /** How often an idle runner looks for queued work, and how often SSE re-reads a job row. */
    pollMs: number;
    /** Claims of one job (crash restarts included) before it is failed as poison. */
    maxAttempts: number;
    /** Process deaths inside one unit of an extract job before the job fails (see pipeline/crash-markers.ts). */
    unitMaxCrashes: number;
    /** Minimum interval between progress writes to the job row (events in-process are not throttled). */
    progressWriteMs: number;
    /** Nightly runs: documents per corpus batch (one checkpoint each). */
    batchSize: number;
    /** Rise in the unhealthy share (abstain or disagree) over the baseline that triggers re-synthesis. */
    driftThreshold: number;
    /** Below this many new documents, health is recorded but never triggers re-synthesis. */
    driftMinDocuments: number;
    /** Share of non-abstaining votes the leading value needs for a document to count as agreed. */
    agreementShare: number;
  };
  /** Label model that combines the top-k functions' outputs (src/weak-supervision). */
  labelModel: {
    /** one-coin (default), triplet, majority or best-single. */
    name: string;
    maxIterations: number;
    tolerance: number;
    /** Weight of a function's sample score, in documents. */
    priorStrength: number;
    /** Error correlation below which two functions count as independent. */
    correlationFloor: number;
    /** Error correlation from raw agreement above which two functions are treated as copies. */
    copyCorrelation: number;
    /** Expected documents where both of a pair are wrong before their correlation is judged. */
    minCorrelationEvidence: number;
  };
}

export function loadSettings(overrides: Partial<Settings> = {}): Settings {
  const base: Settings = {
    databasePath: envString('EVAPORATE_DB', path.resolve('data', 'evaporate.db')),
    host: envString('EVAPORATE_HOST', '127.0.0.1'),
    port: envNumber('EVAPORATE_PORT', 8787),
    apiKey: process.env.EVAPORATE_API_KEY || undefined,
    ingest: {
      maxFileBytes: envNumber('EVAPORATE_MAX_FILE_BYTES', 50 * 1024 * 1024),
      maxRequestBytes: envNumber('EVAPORATE_MAX_REQUEST_BYTES', 1024 * 1024 * 1024),
      maxFilesPerRequest: envNumber('EVAPORATE_MAX_FILES_PER_REQUEST', 10_000),
      archiveMaxTotalBytes: envNumber('EVAPORATE_ARCHIVE_MAX_TOTAL_BYTES', 1024 * 1024 * 1024),
      archiveMaxEntries: envNumber('EVAPORATE_ARCHIVE_MAX_ENTRIES', 100_000),
      archiveMaxDepth: envNumber('EVAPORATE_ARCHIVE_MAX_DEPTH', 3),
      archiveMaxCompressionRatio: envNumber('EVAPORATE_ARCHIVE_MAX_RATIO', 200),
      chunkTokens: envNumber('EVAPORATE_CHUNK_TOKENS', 3000),
      parseTimeoutMs: envNumber('EVAPORATE_PARSE_TIMEOUT_MS', 60_000),
      pdfMaxPages: envNumber('EVAPORATE_PDF_MAX_PAGES', 5000),
      htmlMaxDepth: envNumber('EVAPORATE_HTML_MAX_DEPTH', 1000),
      parseWorkers: envNumber('EVAPORATE_PARSE_WORKERS', 0),
      parseMemoryMb: envNumber('EVAPORATE_PARSE_MEMORY_MB', 4096),
    },
    pipeline: {
      sampleSize: envNumber('EVAPORATE_SAMPLE_SIZE', 10),
      candidatesPerAttribute: envNumber('EVAPORATE_CANDIDATES', 20),
      topK: envNumber('EVAPORATE_TOP_K', 10),
      maxAttributes: envNumber('EVAPORATE_MAX_ATTRIBUTES', 15),
      seed: envNumber('EVAPORATE_SEED', 0),
      batchSize: envNumber('EVAPORATE_BATCH_SIZE', 500),
      batchBytes: envNumber('EVAPORATE_BATCH_BYTES', 8 * 1024 * 1024),
      directContextTokens: envNumber('EVAPORATE_DIRECT_CONTEXT_TOKENS', 1000),
      directMaxTokens: envNumber('EVAPORATE_DIRECT_MAX_TOKENS', 300),
      directMaxTokensCeiling: envNumber('EVAPORATE_DIRECT_MAX_TOKENS_CEILING', 4800),
      synthesisContextTokens: envNumber('EVAPORATE_SYNTHESIS_CONTEXT_TOKENS', 1000),
      synthesisDocuments: envNumber('EVAPORATE_SYNTHESIS_DOCUMENTS', 3),
      schemaContextTokens: envNumber('EVAPORATE_SCHEMA_CONTEXT_TOKENS', 1500),
      minAttributeSupport: envNumber('EVAPORATE_MIN_ATTRIBUTE_SUPPORT', 0.3),
      fallbackMaxDocuments: envNumber('EVAPORATE_FALLBACK_MAX_DOCUMENTS', 1000),
      labelModel: envString('EVAPORATE_LABEL_MODEL', 'one-coin'),
    },
    sandbox: {
      callTimeoutMs: envNumber('EVAPORATE_SANDBOX_TIMEOUT_MS', 1000),
      memoryLimitMb: envNumber('EVAPORATE_SANDBOX_MEMORY_MB', 128),
      maxOutputChars: envNumber('EVAPORATE_SANDBOX_MAX_OUTPUT', 2000),
      maxFailuresPerFunction: envNumber('EVAPORATE_SANDBOX_MAX_FAILURES', 20),
      workers: envNumber('EVAPORATE_SANDBOX_WORKERS', 0), // 0 = one per core
      maxOutputItems: envNumber('EVAPORATE_SANDBOX_MAX_OUTPUT_ITEMS', 1000),
      maxSourceChars: envNumber('EVAPORATE_SANDBOX_MAX_SOURCE', 100_000),
      batchDocuments: envNumber('EVAPORATE_SANDBOX_BATCH_DOCS', 0),
      isolation: envString('EVAPORATE_SANDBOX_ISOLATION', 'process') === 'thread' ? 'thread' : 'process',
    },
    llm: {
      timeoutMs: envNumber('EVAPORATE_LLM_TIMEOUT_MS', 120_000),
      maxRetries: envNumber('EVAPORATE_LLM_MAX_RETRIES', 6),
      concurrency: envNumber('EVAPORATE_LLM_CONCURRENCY', 8),
      requestsPerMinute: envNumber('EVAPORATE_LLM_RPM', 500),
      tokensPerMinute: envNumber('EVAPORATE_LLM_TPM', 2_000_000),
      retryBaseMs: envNumber('EVAPORATE_LLM_RETRY_BASE_MS', 500),
      retryMaxMs: envNumber('EVAPORATE_LLM_RETRY_MAX_MS', 60_000),
      defaultMaxTokens: envNumber('EVAPORATE_LLM_MAX_TOKENS', 2048),
      cache: envString('EVAPORATE_LLM_CACHE', '1') !== '0',
      budgetTokens: envNumber('EVAPORATE_LLM_BUDGET_TOKENS', 0),
      budgetUsd: envNumber('EVAPORATE_LLM_BUDGET_USD', 0),
      prices: envString('EVAPORATE_LLM_PRICES', ''),
    },
    local: {
      modelDir: envString('EVAPORATE_LOCAL_MODEL_DIR', ''),
      threads: envNumber('EVAPORATE_LOCAL_THREADS', 0),
      maxNewTokens: envNumber('EVAPORATE_LOCAL_MAX_NEW_TOKENS', 64),
      jrtPrompt: envNumber('EVAPORATE_LOCAL_JRT_PROMPT', 1) !== 0,
      prefixCacheEntries: envNumber('EVAPORATE_LOCAL_PREFIX_CACHE', 16),
      topK: envNumber('EVAPORATE_LOCAL_TOP_K', 40),
      maxBatch: Math.max(1, envNumber('EVAPORATE_LOCAL_MAX_BATCH', 64)),
      maxBatchTokens: Math.max(1, envNumber('EVAPORATE_LOCAL_MAX_BATCH_TOKENS', 8192)),
    },
    query: {
      timeoutMs: envNumber('EVAPORATE_QUERY_TIMEOUT_MS', 5000),
      maxRows: envNumber('EVAPORATE_QUERY_MAX_ROWS', 10_000),
      memoryMb: envNumber('EVAPORATE_QUERY_MEMORY_MB', 512),
      maxConcurrent: envNumber('EVAPORATE_QUERY_CONCURRENCY', 4),
    },
    shards: {
      redisUrl: envString('EVAPORATE_REDIS_URL', ''),
      queue: envString('EVAPORATE_SHARD_QUEUE', 'evaporate-shards'),
      prefix: envString('EVAPORATE_SHARD_PREFIX', 'evaporate'),
      attempts: envNumber('EVAPORATE_SHARD_ATTEMPTS', 3),
      backoffMs: envNumber('EVAPORATE_SHARD_BACKOFF_MS', 1000),
      lockMs: envNumber('EVAPORATE_SHARD_LOCK_MS', 30_000),
      stalledCheckMs: envNumber('EVAPORATE_SHARD_STALLED_CHECK_MS', 15_000),
      inFlight: envNumber('EVAPORATE_SHARD_IN_FLIGHT', 8),
      pollMs: envNumber('EVAPORATE_SHARD_POLL_MS', 500),
      workerConcurrency: envNumber('EVAPORATE_WORKER_CONCURRENCY', 1),
      direct: envString('EVAPORATE_SHARD_DIRECT', '1') !== '0',
      directCalls: envNumber('EVAPORATE_SHARD_DIRECT_CALLS', 16),
      directInFlight: envNumber('EVAPORATE_SHARD_DIRECT_IN_FLIGHT', 64),
    },
    induction: {
      maxCandidates: envNumber('EVAPORATE_INDUCTION_CANDIDATES', 10),
      minScore: envNumber('EVAPORATE_INDUCTION_MIN_SCORE', 0.5),
      maxExamples: envNumber('EVAPORATE_INDUCTION_MAX_EXAMPLES', 50),
    },
    jobs: {
      leaseMs: envNumber('EVAPORATE_JOB_LEASE_MS', 30_000),
      heartbeatMs: envNumber('EVAPORATE_JOB_HEARTBEAT_MS', 5_000),
      pollMs: envNumber('EVAPORATE_JOB_POLL_MS', 1_000),
      maxAttempts: envNumber('EVAPORATE_JOB_MAX_ATTEMPTS', 5),
      progressWriteMs: envNumber('EVAPORATE_JOB_PROGRESS_WRITE_MS', 250),
      unitMaxCrashes: envNumber('EVAPORATE_JOB_UNIT_MAX_CRASHES', 3),
      batchSize: envNumber('EVAPORATE_JOB_BATCH_SIZE', 50),
      driftThreshold: envNumber('EVAPORATE_DRIFT_THRESHOLD', 0.15),
      driftMinDocuments: envNumber('EVAPORATE_DRIFT_MIN_DOCUMENTS', 10),
      agreementShare: envNumber('EVAPORATE_AGREEMENT_SHARE', 0.5),
    },
    labelModel: {
      name: envString('EVAPORATE_LABEL_MODEL', 'one-coin'),
      maxIterations: envNumber('EVAPORATE_LABEL_MAX_ITERATIONS', 50),
      tolerance: envNumber('EVAPORATE_LABEL_TOLERANCE', 1e-4),
      priorStrength: envNumber('EVAPORATE_LABEL_PRIOR_STRENGTH', 20),
      correlationFloor: envNumber('EVAPORATE_LABEL_CORRELATION_FLOOR', 0.25),
      copyCorrelation: envNumber('EVAPORATE_LABEL_COPY_CORRELATION', 0.6),
      minCorrelationEvidence: envNumber('EVAPORATE_LABEL_MIN_CORRELATION_EVIDENCE', 10),
    },
  };
  return { ...base, ...overrides };
}
