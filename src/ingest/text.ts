/**
 * Plain text decoding. UTF-8 (with or without BOM) and BOM-marked UTF-16 are accepted; anything else
 * is refused with a clear error rather than guessed, because a wrong guess silently corrupts every value.
 */
import { EvaporateError } from '../errors.js';

export function decodeText(bytes: Uint8Array, filename = 'file'): { text: string; encoding: string } {
  let encoding = 'utf-8';
  if (bytes[0] === 0xff && bytes[1] === 0xfe) encoding = 'utf-16le';
  else if (bytes[0] === 0xfe && bytes[1] === 0xff) encoding = 'utf-16be';
  try {
    // TextDecoder drops the BOM of the encoding it was asked for.
    const text = new TextDecoder(encoding, { fatal: true }).decode(bytes);
    return { text: normalizeNewlines(text), encoding };
  } catch {
    const at = firstInvalidUtf8(bytes);
    throw new EvaporateError(
      'invalid_encoding',
      `"${filename}" is not valid ${encoding.toUpperCase()}${at >= 0 ? ` (bad byte at offset ${at})` : ''}; save it as UTF-8 and upload it again.`,
      422,
    );
  }
}

export function normalizeNewlines(text: string): string {
  return text.includes('\r') ? text.replace(/\r\n?/g, '\n') : text;
}

function firstInvalidUtf8(bytes: Uint8Array): number {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  // Binary search on prefixes would miss a cut code point; a linear scan by sequence is exact.
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    const len = b < 0x80 ? 1 : b >> 5 === 6 ? 2 : b >> 4 === 14 ? 3 : b >> 3 === 30 ? 4 : 0;
    if (len === 0 || i + len > bytes.length) return i;
    try {
      decoder.decode(bytes.subarray(i, i + len));
    } catch {
      return i;
    }
    i += len;
  }
  return -1;
}
