/**
 * A small job handler shaped like the extraction pipeline (schema, per-attribute synthesis, corpus batches,
 * materialization), used to test the runner before and besides the real extract job. Its LLM calls go to
 * the fake OpenAI server over real HTTP; its rows go to the real extractions table inside checkpoint commits.
 */
import { loadSettings } from '../src/config.js';
import { createLlm, OpenAiProvider } from '../src/llm/index.js';
import type { Db } from '../src/store/database.js';
import type { JobHandler } from '../src/jobs/types.js';

export interface DemoParams {
  corpusId: number;
  batchSize: number;
  /** Time spent in each unit before its LLM call / result, so a kill lands inside units. */
  unitMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function demoHandler(db: Db, options: { llmUrl: string; log?: (line: string) => void }): JobHandler<DemoParams> {
  const settings = loadSettings();
  // The real LLM stack (cache, ledger, retries) in front of the fake endpoint: a resumed unit's call is a cache hit.
  const llm = createLlm({
    db,
    settings,
    provider: new OpenAiProvider({ baseURL: options.llmUrl, apiKey: 'test', defaultMaxTokens: 64 }),
    models: { default: 'fake', synthesis: 'fake', schema: 'fake', extraction: 'fake' },
  });
  const log = options.log ?? (() => {});

  return async (params, ctx) => {
    const ask = async (key: string, prompt: string) => {
      const r = await llm.complete({ messages: [{ role: 'user', content: prompt }], temperature: 0 }, { jobId: ctx.jobId, signal: ctx.signal });
      log(`job ${ctx.jobId} llm-done ${key}`);
      return r.texts[0] ?? '';
    };
    const unit = async <T>(key: string, fn: () => Promise<T>, commit?: (r: T) => void) =>
      ctx.checkpoint(
        key,
        async () => {
          log(`job ${ctx.jobId} unit-start ${key}`);
          await sleep(params.unitMs);
          const r = await fn();
          await sleep(params.unitMs);
          log(`job ${ctx.jobId} unit-end ${key}`);
          return r;
        },
        { commit },
      );

    // Fix the document set at job start: documents that arrive later wait for the next run.
    const range = await unit('documents', async () =>
      db.prepare('SELECT COALESCE(MAX(id), 0) FROM documents WHERE corpus_id = ?').pluck().get(params.corpusId) as number,
    );
    const names = await unit(
      'schema',
      async () => (await ask('schema', 'List the attributes of these documents.')).split(',').map((s) => s.trim()),
      (attrs) => {
        const ins = db.prepare("INSERT OR IGNORE INTO attributes (corpus_id, name, origin) VALUES (?, ?, 'discovered')");
        for (const a of attrs) ins.run(params.corpusId, a);
      },
    );
    const patterns: Record<string, string> = {};
    for (const name of names) {
      ctx.progress('synthesis', names.indexOf(name), names.length);
      patterns[name] = await unit(`attribute:${name}:synthesis`, () => ask(`attribute:${name}:synthesis`, `Write a function for the attribute ${name}.`));
    }
    const ids = db
      .prepare("SELECT id FROM documents WHERE corpus_id = ? AND id <= ? AND status = 'ready' ORDER BY id")
      .pluck()
      .all(params.corpusId, range) as number[];
    const attrIds = Object.fromEntries(
      (db.prepare('SELECT name, id FROM attributes WHERE corpus_id = ?').all(params.corpusId) as { name: string; id: number }[]).map(
        (r) => [r.name, r.id],
      ),
    );
    const batches = Math.ceil(ids.length / params.batchSize);
    for (let b = 0; b < batches; b++) {
      ctx.progress('corpus', b, batches);
      const batch = ids.slice(b * params.batchSize, (b + 1) * params.batchSize);
      await unit(
        `corpus:batch:${b}`,
        async () => {
          const texts = db.prepare(`SELECT id, text FROM documents WHERE id IN (${batch.join(',')})`).all() as { id: number; text: string }[];
          return texts.flatMap((d) =>
            names.map((n) => [d.id, n, new RegExp(patterns[n]!).exec(d.text)?.[1] ?? null] as [number, string, string | null]),
          );
        },
        (rows) => {
          const ins = db.prepare(
            "INSERT INTO extractions (document_id, attribute_id, value, origin, job_id) VALUES (?, ?, ?, 'functions', ?)",
          );
          for (const [doc, name, value] of rows) ins.run(doc, attrIds[name], value, ctx.jobId);
        },
      );
    }
    ctx.progress('corpus', batches, batches);
    await unit(
      'materialize',
      async () => names,
      (cols) => {
        const table = `demo_${params.corpusId}`;
        db.exec(`CREATE TABLE "${table}" (_document_id INTEGER PRIMARY KEY, ${cols.map((c) => `"${c}" TEXT`).join(', ')})`);
        db.exec(
          `INSERT INTO "${table}" SELECT d.id, ${cols
            .map((c) => `(SELECT e.value FROM extractions e JOIN attributes a ON a.id = e.attribute_id WHERE e.document_id = d.id AND a.name = '${c}')`)
            .join(', ')} FROM documents d WHERE d.corpus_id = ${params.corpusId} AND d.id <= ${range}`,
        );
      },
    );
    return { documents: ids.length, attributes: names.length };
  };
}

/** The fake model's answers for the demo handler. */
export function demoAnswers(fake: { on(m: RegExp, a: string): unknown }): void {
  fake.on(/List the attributes/, 'title, price');
  fake.on(/attribute title/, 'title: ([^;]+)');
  fake.on(/attribute price/, 'price: ([0-9.]+)');
}

export function seedCorpus(db: Db, name: string, count: number): number {
  const corpus = Number(db.prepare('INSERT INTO corpora (name) VALUES (?)').run(name).lastInsertRowid);
  const ins = db.prepare(
    "INSERT INTO documents (corpus_id, filename, content_hash, kind, byte_size, text, status) VALUES (?, ?, ?, 'text', ?, ?, 'ready')",
  );
  db.transaction(() => {
    for (let i = 0; i < count; i++) {
      const text = `title: Book ${i}; price: ${(i * 1.5).toFixed(2)}`;
      ins.run(corpus, `doc${i}.txt`, `h${i}`, text.length, text);
    }
  })();
  return corpus;
}
