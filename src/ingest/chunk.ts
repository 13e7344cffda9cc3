/**
 * Token-bounded chunking with character offsets into the document text, so an extracted value can be
 * traced back to its place. Counts are real GPT-2 BPE counts (src/llm/tokens.ts).
 *
 * The text is cut only where the BPE pre-tokenizer itself cuts (after a newline before a non-space
 * character, or before a space that follows a non-space character): there the token count of a
 * concatenation is exactly the sum of its pieces, so pieces are counted once and packed greedily.
 */
import { countTokens } from '../llm/tokens.js';

export interface Chunk {
  start: number;
  end: number;
  tokens: number;
}

// Crawled pages of one site repeat the same lines (navigation, footers): counting each distinct line
// once is most of the speed of ingestion. Bounded so a long run cannot grow it without limit.
const countCache = new Map<string, number>();
const countCacheMax = 200_000;

function cachedCount(piece: string): number {
  let n = countCache.get(piece);
  if (n === undefined) {
    n = countTokens(piece);
    if (countCache.size >= countCacheMax) countCache.clear();
    countCache.set(piece, n);
  }
  return n;
}

/** Splits [start, end) of text at exact pre-token boundaries matched by `boundary` (a global regex). */
function split(text: string, start: number, end: number, boundary: RegExp): number[] {
  const cuts: number[] = [start];
  const slice = text.slice(start, end);
  boundary.lastIndex = 0;
  for (let m = boundary.exec(slice); m; m = boundary.exec(slice)) {
    const at = start + m.index + m[0].length;
    if (at > cuts[cuts.length - 1] && at < end) cuts.push(at);
    if (m[0].length === 0) boundary.lastIndex++;
  }
  cuts.push(end);
  return cuts;
}

const lineBoundary = /\n(?=\S)/g; // cut after the newline
const wordBoundary = /[^\s](?= )/g; // cut after the non-space, before the space

export function chunkText(text: string, maxTokens: number): Chunk[] {
  if (text.length === 0) return [];
  const pieces: Chunk[] = [];
  const lineCuts = split(text, 0, text.length, lineBoundary);
  for (let i = 0; i + 1 < lineCuts.length; i++) pushPiece(text, lineCuts[i], lineCuts[i + 1], maxTokens, pieces);

  const chunks: Chunk[] = [];
  let current: Chunk | null = null;
  for (const p of pieces) {
    if (current && current.tokens + p.tokens <= maxTokens) {
      current.end = p.end;
      current.tokens += p.tokens;
    } else {
      if (current) chunks.push(current);
      current = { ...p };
    }
  }
  if (current) chunks.push(current);
  return chunks;
}

// BPE cost grows with the square of a pre-token's length (js-tiktoken merges pairwise): a 4,000-char
// run without spaces (base64, minified code) takes seconds. Such runs are cut into windows first.
const longRun = /\S{257,}|\s{257,}/;
const window = 256;

/** A line over the limit is split at word boundaries; a run with no boundary into character windows. */
function pushPiece(text: string, start: number, end: number, maxTokens: number, out: Chunk[]): void {
  const piece = text.slice(start, end);
  const risky = piece.length > window && longRun.test(piece);
  if (!risky) {
    const tokens = piece.length > 4096 ? countTokens(piece) : cachedCount(piece);
    if (tokens <= maxTokens) {
      out.push({ start, end, tokens });
      return;
    }
  }
  const wordCuts = split(text, start, end, wordBoundary);
  if (wordCuts.length > 2) {
    for (let i = 0; i + 1 < wordCuts.length; i++) pushPiece(text, wordCuts[i], wordCuts[i + 1], maxTokens, out);
    return;
  }
  // No exact boundary left: cut by characters (never inside a surrogate pair). Counts stay exact per
  // piece; the sum may differ from the whole by a token at each such cut.
  const size = end - start > window ? window : Math.floor((end - start) / 2);
  if (size < 1) {
    out.push({ start, end, tokens: countTokens(piece) });
    return;
  }
  for (let at = start; at < end; ) {
    let next = Math.min(end, at + size);
    if (next < end && isLowSurrogate(text.charCodeAt(next))) next++;
    pushPiece(text, at, next, maxTokens, out);
    at = next;
  }
}

const isLowSurrogate = (c: number) => c >= 0xdc00 && c <= 0xdfff;
