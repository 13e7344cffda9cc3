/**
 * Versioned schema migrations, applied in order at start inside one transaction each.
 * Never edit a released migration: add a new one with the next version number.
 * Reserved numbers so modules built in parallel do not collide:
 *   1 core data model, 2 llm layer, 3 pipeline, 4 jobs, 5 labels/induction.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: Migration[] = [
  {
    version: 1,
    name: 'core data model',
    sql: `
      CREATE TABLE corpora (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
      );

      -- One row per uploaded file. A file that failed to parse is kept as status 'failed' with its
      -- reason, so a batch reports every bad file without sinking the good ones.
      CREATE TABLE documents (
        id            INTEGER PRIMARY KEY,
        corpus_id     INTEGER NOT NULL REFERENCES corpora(id) ON DELETE CASCADE,
        filename      TEXT NOT NULL,
        content_hash  TEXT NOT NULL,
        kind          TEXT NOT NULL,            -- html | pdf | text | unknown
        byte_size     INTEGER NOT NULL,
        raw           BLOB,                     -- original bytes (NULL for failed files)
        text          TEXT,                     -- readable rendering used by extraction
        structure     TEXT,                     -- JSON: e.g. PDF page boundaries, HTML title
        status        TEXT NOT NULL CHECK (status IN ('ready','failed')),
        error_code    TEXT,
        error_message TEXT,
        created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        UNIQUE (corpus_id, content_hash)
      );
      CREATE INDEX documents_corpus_status ON documents(corpus_id, status, id);

      -- Token-bounded chunks addressed by character offsets into documents.text.
      CREATE TABLE chunks (
        id          INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        idx         INTEGER NOT NULL,
        start_char  INTEGER NOT NULL,
        end_char    INTEGER NOT NULL,
        token_count INTEGER NOT NULL,
        UNIQUE (document_id, idx)
      );

      CREATE TABLE attributes (
        id          INTEGER PRIMARY KEY,
        corpus_id   INTEGER NOT NULL REFERENCES corpora(id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        type        TEXT NOT NULL DEFAULT 'text',   -- text | integer | real | date
        description TEXT NOT NULL DEFAULT '',
        origin      TEXT NOT NULL CHECK (origin IN ('discovered','user')),
        rank        INTEGER NOT NULL DEFAULT 0,
        created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        UNIQUE (corpus_id, name)
      );

      CREATE TABLE functions (
        id               INTEGER PRIMARY KEY,
        attribute_id     INTEGER NOT NULL REFERENCES attributes(id) ON DELETE CASCADE,
        source           TEXT NOT NULL,
        source_hash      TEXT NOT NULL,
        origin           TEXT NOT NULL DEFAULT 'llm',  -- llm | induction
        prompt           TEXT,                          -- prompt variant / version that produced it
        model            TEXT,
        sample_score     REAL,
        learned_accuracy REAL,
        selected         INTEGER NOT NULL DEFAULT 0,
        created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        UNIQUE (attribute_id, source_hash)
      );

      -- One cell of a result table, with where it came from.
      CREATE TABLE extractions (
        id           INTEGER PRIMARY KEY,
        document_id  INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        attribute_id INTEGER NOT NULL REFERENCES attributes(id) ON DELETE CASCADE,
        value        TEXT,
        normalized   TEXT,
        origin       TEXT NOT NULL,             -- functions | direct | label
        confidence   REAL,
        span_start   INTEGER,
        span_end     INTEGER,
        evidence     TEXT,                      -- JSON: function ids that agreed, etc.
        job_id       INTEGER,
        UNIQUE (document_id, attribute_id)
      );

      CREATE TABLE jobs (
        id             INTEGER PRIMARY KEY,
        kind           TEXT NOT NULL,
        corpus_id      INTEGER REFERENCES corpora(id) ON DELETE CASCADE,
        params         TEXT NOT NULL DEFAULT '{}',
        state          TEXT NOT NULL DEFAULT 'queued', -- queued | running | succeeded | failed | cancelled
        step           TEXT,
        done           INTEGER NOT NULL DEFAULT 0,
        total          INTEGER NOT NULL DEFAULT 0,
        checkpoint     TEXT,
        error_code     TEXT,
        error_message  TEXT,
        heartbeat_at   TEXT,
        created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        started_at     TEXT,
        finished_at    TEXT
      );

      -- The LLM cache and ledger: one row per request hash; every call (hit or miss) is also counted
      -- in llm_usage by the LLM layer's own migration.
      CREATE TABLE llm_calls (
        id                INTEGER PRIMARY KEY,
        request_hash      TEXT NOT NULL UNIQUE,
        provider          TEXT NOT NULL,
        model             TEXT NOT NULL,
        prompt_tokens     INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost_usd          REAL NOT NULL DEFAULT 0,
        latency_ms        INTEGER NOT NULL DEFAULT 0,
        response          TEXT NOT NULL,
        job_id            INTEGER,
        created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
      );
    `,
  },
  {
    version: 4,
    name: 'durable jobs: leases, checkpoints, schedules, attribute health',
    sql: `
      -- Lease: a runner owns a running job until lease_expires_at (ms since epoch); the heartbeat renews it.
      -- A lapsed lease means the owner died, and any runner may claim the job again.
      ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
      ALTER TABLE jobs ADD COLUMN lease_expires_at INTEGER;
      ALTER TABLE jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE jobs ADD COLUMN tokens INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE jobs ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0;
      ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE jobs ADD COLUMN step_started_at INTEGER;
      ALTER TABLE jobs ADD COLUMN step_done_at_start INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE jobs ADD COLUMN dedupe_key TEXT;
      ALTER TABLE jobs ADD COLUMN result TEXT;
      -- One scheduled run per corpus and tick even when several runner processes share the database.
      CREATE UNIQUE INDEX jobs_dedupe_key ON jobs(dedupe_key) WHERE dedupe_key IS NOT NULL;
      CREATE INDEX jobs_claim ON jobs(state, lease_expires_at, id);

      -- Durable memo of completed units of work: a resumed job skips every key found here.
      CREATE TABLE job_checkpoints (
        id         INTEGER PRIMARY KEY,
        job_id     INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        key        TEXT NOT NULL,
        result     TEXT NOT NULL,
        attempt    INTEGER NOT NULL,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        UNIQUE (job_id, key)
      );

      -- Nightly incremental runs: watermark = highest document id already processed for the corpus.
      CREATE TABLE job_schedules (
        corpus_id   INTEGER PRIMARY KEY REFERENCES corpora(id) ON DELETE CASCADE,
        cron        TEXT NOT NULL,
        timezone    TEXT,
        kind        TEXT NOT NULL DEFAULT 'nightly',
        params      TEXT NOT NULL DEFAULT '{}',
        enabled     INTEGER NOT NULL DEFAULT 1,
        watermark   INTEGER NOT NULL DEFAULT 0,
        last_job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
        last_run_at TEXT,
        created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
      );

      -- Health of each attribute per run: the share of documents where the kept functions all abstain
      -- or disagree. The first full run is the baseline a nightly run compares against.
      CREATE TABLE attribute_health (
        id              INTEGER PRIMARY KEY,
        job_id          INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
        corpus_id       INTEGER NOT NULL REFERENCES corpora(id) ON DELETE CASCADE,
        attribute_id    INTEGER NOT NULL REFERENCES attributes(id) ON DELETE CASCADE,
        run_kind        TEXT NOT NULL CHECK (run_kind IN ('full','nightly','baseline')),
        documents       INTEGER NOT NULL,
        abstain_share   REAL NOT NULL,
        disagree_share  REAL NOT NULL,
        unhealthy_share REAL NOT NULL,
        baseline_share  REAL,
        drifted         INTEGER NOT NULL DEFAULT 0,
        resynthesized   INTEGER NOT NULL DEFAULT 0,
        created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        UNIQUE (job_id, attribute_id, run_kind)
      );
      CREATE INDEX attribute_health_attr ON attribute_health(attribute_id, id);
    `,
  },
  {
    version: 2,
    name: 'llm ledger and job budgets',
    sql: `
      -- The ledger: one row per logical LLM call (retries folded in), cache hits included at zero
      -- tokens and zero cost, failures included with their error code. Per-job totals sum this table.
      CREATE TABLE llm_usage (
        id                INTEGER PRIMARY KEY,
        job_id            INTEGER,
        request_hash      TEXT,
        provider          TEXT NOT NULL,
        model             TEXT NOT NULL,
        role              TEXT,
        cached            INTEGER NOT NULL DEFAULT 0,
        candidates        INTEGER NOT NULL DEFAULT 1,
        prompt_tokens     INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd          REAL NOT NULL DEFAULT 0,
        latency_ms        INTEGER NOT NULL DEFAULT 0,
        status            TEXT NOT NULL CHECK (status IN ('ok','error')),
        error_code        TEXT,
        created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
      );
      CREATE INDEX llm_usage_job ON llm_usage(job_id, id);

      -- A job's spending limit; NULL means no limit on that axis. Checked before each call is sent.
      CREATE TABLE llm_budgets (
        job_id     INTEGER PRIMARY KEY,
        max_tokens INTEGER,
        max_usd    REAL,
        updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
      );
    `,
  },
  {
    version: 5,
    name: 'labels: user-given values per document and attribute',
    sql: `
      -- Values a person gave for a document's attribute (through the API or the CLI). They stand in for
      -- direct extraction as the silver labels of the sample, and are what wrapper induction learns from.
      -- One (document, attribute) holds a set of values (several authors); a row with value NULL says the
      -- document has no value for it. Labelling again replaces the set.
      CREATE TABLE labels (
        id          INTEGER PRIMARY KEY,
        corpus_id   INTEGER NOT NULL REFERENCES corpora(id) ON DELETE CASCADE,
        document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        attribute   TEXT NOT NULL,
        value       TEXT,
        position    INTEGER NOT NULL DEFAULT 0,
        created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
        UNIQUE (document_id, attribute, position)
      );
      CREATE INDEX labels_corpus_attribute ON labels(corpus_id, attribute, document_id);
    `,
  },
  {
    version: 3,
    name: 'pipeline result tables',
    sql: `
      -- The materialized table of each corpus and its provenance table: what the query path may read.
      CREATE TABLE result_tables (
        corpus_id        INTEGER PRIMARY KEY REFERENCES corpora(id) ON DELETE CASCADE,
        table_name       TEXT NOT NULL UNIQUE,
        provenance_table TEXT NOT NULL UNIQUE,
        columns          TEXT NOT NULL,          -- JSON: [{attributeId, name, column, type}]
        job_id           INTEGER,
        rows             INTEGER NOT NULL DEFAULT 0,
        updated_at       TEXT NOT NULL
      );
    `,
  },
  {
    // Numbered after its issue (18) so migrations written in parallel branches do not collide.
    version: 18,
    name: 'llm ledger: requests sent and failed per logical call, locally counted prompt tokens',
    sql: `
      -- A logical call may send several requests (retries). attempts = requests sent (0 for a cache hit),
      -- failed_attempts = those that failed; rows written before this migration count as one request.
      ALTER TABLE llm_usage ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
      ALTER TABLE llm_usage ADD COLUMN failed_attempts INTEGER NOT NULL DEFAULT 0;
      -- The prompt's tokens counted locally (GPT-2 BPE), for cache hits too: what the job's method needed,
      -- comparable with the direct-extraction estimate, which is counted the same way.
      ALTER TABLE llm_usage ADD COLUMN counted_prompt_tokens INTEGER NOT NULL DEFAULT 0;
      UPDATE llm_usage SET attempts = 0 WHERE cached = 1;
      UPDATE llm_usage SET failed_attempts = 1 WHERE status = 'error';
    `,
  },
];
