// Builds the console into web/dist unless the build there is from the current sources. Run by `npm ci`
// (prepare) and by the browser tests, so a fresh clone needs nothing but `npm ci && npm test`.
// Where the dev dependencies are not installed (npm ci --omit=dev), it says so and leaves the build alone.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const webDir = path.dirname(fileURLToPath(import.meta.url));
const distDir = path.join(webDir, 'dist');
const stampFile = path.join(distDir, '.source-hash');

function sourceHash() {
  const hash = createHash('sha256');
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else {
        hash.update(path.relative(webDir, p));
        hash.update(fs.readFileSync(p));
      }
    }
  };
  walk(path.join(webDir, 'src'));
  for (const f of ['index.html', 'vite.config.ts']) hash.update(fs.readFileSync(path.join(webDir, f)));
  return hash.digest('hex');
}

const lockFile = path.join(webDir, '.build.lock');
const LOCK_STALE_MS = 120_000;

/** Test files run in parallel processes: one builds, the others wait for it and then find the build current. */
async function withLock(fn) {
  for (;;) {
    try {
      fs.writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      const age = Date.now() - fs.statSync(lockFile, { throwIfNoEntry: false })?.mtimeMs;
      if (age > LOCK_STALE_MS) fs.rmSync(lockFile, { force: true }); // left by a killed build
      else await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lockFile, { force: true });
  }
}

const current = (hash) => fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === hash && fs.existsSync(path.join(distDir, 'index.html'));

export async function ensureBuilt({ force = false } = {}) {
  const hash = sourceHash();
  if (!force && current(hash)) return false;
  return withLock(async () => {
    if (!force && current(hash)) return false;
    return build(hash);
  });
}

async function build(hash) {
  let vite;
  try {
    vite = await import('vite');
  } catch {
    console.warn('web console: vite is not installed (dev dependencies omitted?); the console is not built, GET / will say so.');
    return false;
  }
  await vite.build({ configFile: path.join(webDir, 'vite.config.ts'), logLevel: 'warn' });
  fs.writeFileSync(stampFile, hash);
  return true;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  await ensureBuilt({ force: process.argv.includes('--force') });
}
