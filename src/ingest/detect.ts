/**
 * Type detection by content. The file name is only a tie-breaker between text flavours, so a PDF
 * named .txt is still a PDF and an HTML page named .pdf is parsed as HTML.
 */
export type DetectedKind = 'pdf' | 'html' | 'text' | 'zip' | 'gzip' | 'tar' | 'binary';

const startsWith = (bytes: Uint8Array, sig: number[], at = 0) =>
  bytes.length >= at + sig.length && sig.every((b, i) => bytes[at + i] === b);

// Formats we refuse, named so the error can say what the file is rather than "binary".
const knownBinary: { sig: number[]; at?: number; name: string }[] = [
  { sig: [0x89, 0x50, 0x4e, 0x47], name: 'PNG image' },
  { sig: [0xff, 0xd8, 0xff], name: 'JPEG image' },
  { sig: [0x47, 0x49, 0x46, 0x38], name: 'GIF image' },
  { sig: [0x42, 0x5a, 0x68], name: 'bzip2 archive' },
  { sig: [0x37, 0x7a, 0xbc, 0xaf], name: '7-Zip archive' },
  { sig: [0x52, 0x61, 0x72, 0x21], name: 'RAR archive' },
  { sig: [0xfd, 0x37, 0x7a, 0x58, 0x5a], name: 'xz archive' },
  { sig: [0x7f, 0x45, 0x4c, 0x46], name: 'ELF executable' },
  { sig: [0x4d, 0x5a], name: 'Windows executable' },
  { sig: [0xd0, 0xcf, 0x11, 0xe0], name: 'legacy Office document' },
];

export interface Detection {
  kind: DetectedKind;
  /** Human name of a refused binary format, when recognised. */
  formatName?: string;
}

export function detectKind(bytes: Uint8Array, filename = ''): Detection {
  // PDF headers may sit after up to 1 KB of junk (the spec tolerates it; so do real readers).
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 1024));
  if (head.indexOf('%PDF-') >= 0) return { kind: 'pdf' };
  if (startsWith(bytes, [0x50, 0x4b, 0x03, 0x04]) || startsWith(bytes, [0x50, 0x4b, 0x05, 0x06])) return { kind: 'zip' };
  if (startsWith(bytes, [0x1f, 0x8b])) return { kind: 'gzip' };
  if (startsWith(bytes, [0x75, 0x73, 0x74, 0x61, 0x72], 257)) return { kind: 'tar' };
  for (const b of knownBinary) if (startsWith(bytes, b.sig, b.at ?? 0)) return { kind: 'binary', formatName: b.name };
  if (looksBinary(bytes)) return { kind: 'binary' };
  if (looksLikeHtml(bytes)) return { kind: 'html' };
  if (/\.(x?html?)$/i.test(filename)) return { kind: 'html' };
  return { kind: 'text' };
}

/** NUL bytes outside UTF-16 text mean binary; UTF-16 is recognised by its byte-order mark. */
function looksBinary(bytes: Uint8Array): boolean {
  if (startsWith(bytes, [0xff, 0xfe]) || startsWith(bytes, [0xfe, 0xff])) return false;
  const n = Math.min(bytes.length, 8192);
  for (let i = 0; i < n; i++) if (bytes[i] === 0) return true;
  return false;
}

function looksLikeHtml(bytes: Uint8Array): boolean {
  let start = 0;
  if (startsWith(bytes, [0xef, 0xbb, 0xbf])) start = 3;
  const head = Buffer.from(bytes.buffer, bytes.byteOffset + start, Math.min(bytes.length - start, 4096))
    .toString('latin1')
    .trimStart()
    .toLowerCase();
  if (/^<!doctype\s+html/.test(head) || /^<html[\s>]/.test(head)) return true;
  if (!head.startsWith('<')) return false;
  // Pages that begin with a comment, <base>, <head> or <meta> (crawled pages often do).
  return /<(html|head|body|title|meta|base|div|table|p|h[1-6])[\s>/]/.test(head);
}
