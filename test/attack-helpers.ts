/**
 * Shared pieces of the attack tests: a real server on a loopback port, a /health prober that records the
 * worst latency while an attack runs, and generators for crafted files.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import { loadSettings, type Settings } from '../src/config.js';
import { buildApp } from '../src/server/app.js';
import { openDatabase, type Db } from '../src/store/database.js';

export interface Server {
  url: string;
  app: FastifyInstance;
  db: Db;
  settings: Settings;
  json: (p: string, init?: RequestInit) => Promise<{ status: number; body: any; text: string }>;
  close: () => Promise<void>;
}

export async function startServer(overrides: (s: Settings) => Settings = (s) => s): Promise<Server> {
  const settings = overrides(loadSettings({ databasePath: ':memory:' }));
  const db = openDatabase(settings.databasePath);
  const app = await buildApp({ db, settings });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const json = async (p: string, init: RequestInit = {}) => {
    const res = await fetch(url + p, init);
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: res.status, body: body as any, text };
  };
  return { url, app, db, settings, json, close: async () => { await app.close(); db.close(); } };
}

/** Runs `attack` while probing GET /health back to back; returns its result and the worst probe latency (ms). */
export async function whileProbingHealth<T>(url: string, attack: () => Promise<T>): Promise<{ result: T; worstMs: number; probes: number }> {
  let done = false;
  let worstMs = 0;
  let probes = 0;
  const prober = (async () => {
    while (!done) {
      const t0 = performance.now();
      const res = await fetch(`${url}/health`);
      await res.text();
      if (res.status !== 200) throw new Error(`/health answered ${res.status}`);
      worstMs = Math.max(worstMs, performance.now() - t0);
      probes++;
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  try {
    const result = await attack();
    return { result, worstMs, probes };
  } finally {
    done = true;
    await prober;
  }
}

export function form(files: { name: string; data: Buffer | string }[]): FormData {
  const f = new FormData();
  for (const file of files) f.append('file', new Blob([file.data]), file.name);
  return f;
}

/** A valid PDF whose page tree is one flat /Kids array of `pages` empty pages (the slow shape for pdfjs). */
export function flatPagePdf(pages: number): Buffer {
  const parts: string[] = ['%PDF-1.4\n'];
  const offsets: number[] = [];
  let length = parts[0].length;
  const add = (s: string) => {
    offsets.push(length);
    parts.push(s);
    length += Buffer.byteLength(s);
  };
  add('1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n');
  const kids = Array.from({ length: pages }, (_, i) => `${i + 3} 0 R`).join(' ');
  add(`2 0 obj\n<< /Type /Pages /Kids [${kids}] /Count ${pages} >>\nendobj\n`);
  for (let i = 0; i < pages; i++) add(`${i + 3} 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>\nendobj\n`);
  const xref = length;
  const rows = offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('');
  parts.push(`xref\n0 ${offsets.length + 1}\n0000000000 65535 f \n${rows}trailer\n<< /Size ${offsets.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`);
  return Buffer.from(parts.join(''), 'latin1');
}

export const nestedHtml = (depth: number) => `<html><body>${'<div>'.repeat(depth)}deep${'</div>'.repeat(depth)}</body></html>`;

/** Runs `attack` and returns the worst event-loop delay of this process meanwhile (what a /health probe would wait). */
export async function worstLoopDelay<T>(attack: () => Promise<T>): Promise<{ result: T; worstMs: number }> {
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  try {
    return { result: await attack(), worstMs: loop.max / 1e6 };
  } finally {
    loop.disable();
  }
}
