/**
 * Archive unpacking (zip, tar, tar.gz, .gz) entirely in memory, never touching the file system, with
 * limits checked before and while inflating: total expanded size, entry count, nesting depth,
 * compression ratio (zip bombs) and entry paths (no absolute path, no "..", no links).
 */
import zlib from 'node:zlib';
import yauzl from 'yauzl';
import tarStream from 'tar-stream';
import { EvaporateError } from '../errors.js';

export interface ArchiveLimits {
  maxTotalBytes: number;
  maxEntries: number;
  maxDepth: number;
  maxRatio: number;
  maxFileBytes: number;
}

/** Shared by an archive and every archive nested in it, so nesting cannot multiply the limits. */
export interface ArchiveBudget {
  entries: number;
  bytes: number;
}

export type ArchiveItem = { name: string; bytes: Buffer } | { name: string; error: EvaporateError };
export type ArchiveKind = 'zip' | 'gzip' | 'tar';

// Small archives may legitimately compress far better than any sane ratio (a page of spaces).
const ratioFloorBytes = 1024 * 1024;

const mib = (n: number) => `${Math.round((n / 1024 / 1024) * 10) / 10} MiB`;

export function safeEntryPath(name: string): string | null {
  const normalized = name.replace(/\\/g, '/');
  if (normalized.includes('\0') || normalized.startsWith('/') || /^[A-Za-z]:/.test(normalized)) return null;
  const segments = normalized.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.length === 0 || segments.some((s) => s === '..')) return null;
  return segments.join('/');
}

const isJunk = (path: string) => path.startsWith('__MACOSX/') || path.endsWith('/.DS_Store') || path === '.DS_Store';

function unsafe(archiveName: string, entryName: string): ArchiveItem {
  return {
    name: `${archiveName}/${entryName}`,
    error: new EvaporateError('archive_unsafe_path', `Entry "${entryName}" in "${archiveName}" has a path that escapes the archive; it was skipped.`, 422),
  };
}

/** `expanded` is everything this archive has expanded to so far, for the ratio (defaults to addBytes). */
function checkTotals(archiveName: string, archiveBytes: number, addEntries: number, addBytes: number, limits: ArchiveLimits, budget: ArchiveBudget, expanded = addBytes) {
  if (budget.entries + addEntries > limits.maxEntries) {
    throw new EvaporateError('archive_too_many_entries', `"${archiveName}" holds more than ${limits.maxEntries} files (the limit per upload).`, 413);
  }
  if (budget.bytes + addBytes > limits.maxTotalBytes) {
    throw new EvaporateError('archive_too_large', `"${archiveName}" expands past the ${mib(limits.maxTotalBytes)} limit per upload.`, 413);
  }
  if (expanded > ratioFloorBytes && expanded / Math.max(archiveBytes, 1) > limits.maxRatio) {
    throw new EvaporateError(
      'archive_bomb',
      `"${archiveName}" expands ${Math.round(expanded / Math.max(archiveBytes, 1))} times its size (limit ${limits.maxRatio}x); it looks like a zip bomb and was not unpacked.`,
      413,
    );
  }
}

function tooLarge(archiveName: string, entryName: string, size: number, limits: ArchiveLimits): ArchiveItem {
  return {
    name: `${archiveName}/${entryName}`,
    error: new EvaporateError('file_too_large', `"${entryName}" in "${archiveName}" is ${mib(size)}, over the ${mib(limits.maxFileBytes)} limit per file.`, 413),
  };
}

/**
 * Yields entries one at a time so a large archive is never held expanded in memory all at once.
 * Throws (an EvaporateError) for a failure of the whole archive; entries already yielded stand.
 */
export async function* expandArchive(bytes: Buffer, kind: ArchiveKind, archiveName: string, limits: ArchiveLimits, budget: ArchiveBudget): AsyncGenerator<ArchiveItem> {
  try {
    if (kind === 'zip') yield* expandZip(bytes, archiveName, limits, budget);
    else if (kind === 'tar') yield* expandTar(bytes, bytes.length, archiveName, limits, budget);
    else yield* expandGzip(bytes, archiveName, limits, budget);
  } catch (error) {
    if (error instanceof EvaporateError) throw error;
    throw new EvaporateError('archive_invalid', `"${archiveName}" is not a readable archive (${(error as Error).message}).`, 422);
  }
}

async function* expandZip(bytes: Buffer, archiveName: string, limits: ArchiveLimits, budget: ArchiveBudget): AsyncGenerator<ArchiveItem> {
  const zip = await yauzl.fromBufferPromise(bytes, { lazyEntries: true, decodeStrings: false, validateEntrySizes: true });
  try {
    const entries = await readZipEntries(zip);
    const files = entries.filter((e) => !e.path.endsWith('/') && !isJunk(e.path));
    // Declared sizes are checked before anything is inflated; yauzl then refuses any entry whose real
    // size differs from its declaration, so a lying header cannot slip past.
    checkTotals(archiveName, bytes.length, files.length, files.reduce((s, e) => s + e.entry.uncompressedSize, 0), limits, budget);
    for (const { entry, path } of files) {
      const safe = safeEntryPath(path);
      if (!safe) {
        yield unsafe(archiveName, path);
        continue;
      }
      if (entry.uncompressedSize > limits.maxFileBytes) {
        yield tooLarge(archiveName, safe, entry.uncompressedSize, limits);
        continue;
      }
      if (entry.isEncrypted()) {
        yield { name: `${archiveName}/${safe}`, error: new EvaporateError('archive_encrypted_entry', `"${safe}" in "${archiveName}" is encrypted; it was skipped.`, 422) };
        continue;
      }
      const data = await readZipEntry(zip, entry);
      budget.entries++;
      budget.bytes += data.length;
      yield { name: `${archiveName}/${safe}`, bytes: data };
    }
  } finally {
    zip.close();
  }
}

function readZipEntries(zip: yauzl.ZipFile): Promise<{ entry: yauzl.Entry; path: string }[]> {
  return new Promise((resolve, reject) => {
    const out: { entry: yauzl.Entry; path: string }[] = [];
    zip.on('entry', (entry: yauzl.Entry) => {
      const path = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, false);
      out.push({ entry, path });
      zip.readEntry();
    });
    zip.on('end', () => resolve(out));
    zip.on('error', reject);
    zip.readEntry();
  });
}

async function readZipEntry(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<Buffer> {
  const stream = await zip.openReadStreamPromise(entry);
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

async function* expandGzip(bytes: Buffer, archiveName: string, limits: ArchiveLimits, budget: ArchiveBudget): AsyncGenerator<ArchiveItem> {
  const cap = Math.min(limits.maxTotalBytes - budget.bytes, Math.max(bytes.length * limits.maxRatio, ratioFloorBytes));
  let inflated: Buffer;
  try {
    inflated = zlib.gunzipSync(bytes, { maxOutputLength: Math.max(cap, 1) });
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      const overTotal = cap === limits.maxTotalBytes - budget.bytes;
      throw overTotal
        ? new EvaporateError('archive_too_large', `"${archiveName}" expands past the ${mib(limits.maxTotalBytes)} limit per upload.`, 413)
        : new EvaporateError('archive_bomb', `"${archiveName}" expands more than ${limits.maxRatio} times its size; it looks like a decompression bomb and was not unpacked.`, 413);
    }
    throw new EvaporateError('archive_invalid', `"${archiveName}" is not valid gzip data (${(error as Error).message}).`, 422);
  }
  if (inflated.length >= 262 && inflated.toString('latin1', 257, 262) === 'ustar') {
    yield* expandTar(inflated, bytes.length, archiveName, limits, budget);
    return;
  }
  const inner = archiveName.replace(/\.(gz|gzip)$/i, '') || 'file';
  checkTotals(archiveName, bytes.length, 1, inflated.length, limits, budget);
  if (inflated.length > limits.maxFileBytes) {
    yield tooLarge(archiveName, inner, inflated.length, limits);
    return;
  }
  budget.entries++;
  budget.bytes += inflated.length;
  yield { name: inner, bytes: inflated };
}

/** `compressedSize` is what arrived over the wire (for tar.gz, the gzip size), for the ratio check. */
async function* expandTar(bytes: Buffer, compressedSize: number, archiveName: string, limits: ArchiveLimits, budget: ArchiveBudget): AsyncGenerator<ArchiveItem> {
  const extract = tarStream.extract();
  extract.end(bytes);
  let total = 0;
  for await (const entry of extract) {
    const header = entry.header;
    if (header.type === 'directory' || isJunk(header.name)) {
      entry.resume();
      continue;
    }
    if (header.type !== 'file' && header.type !== 'contiguous-file') {
      entry.resume();
      yield {
        name: `${archiveName}/${header.name}`,
        error: new EvaporateError('archive_unsafe_entry', `"${header.name}" in "${archiveName}" is a ${header.type}, not a regular file; links are never followed.`, 422),
      };
      continue;
    }
    const safe = safeEntryPath(header.name);
    if (!safe) {
      entry.resume();
      yield unsafe(archiveName, header.name);
      continue;
    }
    const size = header.size ?? 0;
    checkTotals(archiveName, compressedSize, 1, size, limits, budget, total + size);
    if (size > limits.maxFileBytes) {
      entry.resume();
      yield tooLarge(archiveName, safe, size, limits);
      continue;
    }
    const parts: Buffer[] = [];
    for await (const part of entry) parts.push(part as Buffer);
    total += size;
    budget.entries++;
    budget.bytes += size;
    yield { name: `${archiveName}/${safe}`, bytes: Buffer.concat(parts) };
  }
}
