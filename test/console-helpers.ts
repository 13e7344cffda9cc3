/**
 * For the browser tests of the web console: a real service (the app, the job system and its runner, a
 * SQLite file in a temp dir) on a random loopback port, and headless Debian Chromium driven by playwright-core.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { chromium, type BrowserContext } from 'playwright-core';
import { loadSettings, type Settings } from '../src/config.js';
import { startDefaultJobSystem } from '../src/app/job-system.js';
import { buildApp } from '../src/server/app.js';
import { openDatabase, type Db } from '../src/store/database.js';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const chromiumPath = process.env.EVAPORATE_CHROMIUM ?? '/usr/bin/chromium';

/** Builds web/dist unless it is already built from the current sources. */
export async function buildConsole(): Promise<void> {
  const { ensureBuilt } = (await import(path.join(root, 'web', 'ensure-built.mjs'))) as { ensureBuilt: () => Promise<boolean> };
  await ensureBuilt();
}

export interface Service {
  url: string;
  db: Db;
  settings: Settings;
  close: () => Promise<void>;
}

/** With runJobs false the service queues jobs and runs none (as with `serve --no-jobs`). */
export async function startService(overrides: { apiKey?: string; runJobs?: boolean } = {}): Promise<Service> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-console-'));
  const file = path.join(dir, 'e.db');
  const base = loadSettings({ databasePath: file });
  const settings: Settings = { ...base, apiKey: overrides.apiKey, sandbox: { ...base.sandbox, workers: 2 } };
  const db = openDatabase(file);
  const jobs = overrides.runJobs === false ? null : startDefaultJobSystem(db, settings, { schedule: false });
  const app: FastifyInstance = await buildApp({ db, settings, ...(jobs ? { jobs: jobs.system.service } : {}) });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    url,
    db,
    settings,
    close: async () => {
      await app.close();
      await jobs?.system.stop();
      await jobs?.closeServices();
      db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A fresh profile each time (playwright passes it as --user-data-dir). */
export async function launchBrowser(): Promise<{ browser: BrowserContext; close: () => Promise<void> }> {
  if (!fs.existsSync(chromiumPath)) {
    throw new Error(`The browser tests need Chromium at ${chromiumPath}: install it (Debian: apt-get install chromium) or set EVAPORATE_CHROMIUM to its path.`);
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'evaporate-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1360, height: 900 },
  });
  return {
    browser,
    close: async () => {
      await browser.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}
