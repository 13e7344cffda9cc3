/**
 * A shard's documents as one binary value in Redis, beside the BullMQ job rather than inside its JSON.
 * A shard of HTML pages is megabytes; inside the job it would be stringified by the coordinator, copied through
 * BullMQ's Lua scripts (Redis is single-threaded, so every worker waits meanwhile) and parsed by the worker.
 * As a plain SET/GET value it is copied, not parsed, and the job itself stays a few hundred bytes.
 *
 * Layout: u32 count, then per document: u8 id kind (0 number, 1 string), the id (f64, or u32 length + UTF-8),
 * u32 text length + UTF-8 text, i32 html length (-1: no html) + UTF-8 html. Lengths are in bytes.
 */
import type { SandboxDocument } from '../sandbox/types.js';
import { ShardProtocolError } from './protocol.js';

export function encodeDocuments(docs: readonly SandboxDocument[]): Buffer {
  let size = 4;
  for (const d of docs) {
    size += 1 + (typeof d.id === 'number' ? 8 : 4 + Buffer.byteLength(d.id)) + 4 + Buffer.byteLength(d.text) + 4 + (d.html === undefined ? 0 : Buffer.byteLength(d.html));
  }
  const buf = Buffer.allocUnsafe(size);
  let at = buf.writeUInt32LE(docs.length, 0);
  const str = (s: string) => {
    const n = buf.write(s, at + 4);
    buf.writeUInt32LE(n, at);
    at += 4 + n;
  };
  for (const d of docs) {
    if (typeof d.id === 'number') {
      at = buf.writeUInt8(0, at);
      at = buf.writeDoubleLE(d.id, at);
    } else {
      at = buf.writeUInt8(1, at);
      str(d.id);
    }
    str(d.text);
    if (d.html === undefined) at = buf.writeInt32LE(-1, at);
    else str(d.html);
  }
  return buf;
}

/** Reads documents back; anything that does not parse to exactly `count` documents is refused. */
export function decodeDocuments(buf: Buffer, count: number): SandboxDocument[] {
  const bad = () => new ShardProtocolError(`The shard's documents do not read as ${count} documents.`);
  let at = 0;
  const need = (n: number) => {
    if (at + n > buf.length) throw bad();
  };
  const u32 = () => {
    need(4);
    const v = buf.readUInt32LE(at);
    at += 4;
    return v;
  };
  const str = (n: number) => {
    need(n);
    const s = buf.toString('utf8', at, at + n);
    at += n;
    return s;
  };
  if (u32() !== count) throw bad();
  const docs: SandboxDocument[] = [];
  for (let i = 0; i < count; i++) {
    need(1);
    const kind = buf.readUInt8(at++);
    let id: number | string;
    if (kind === 0) {
      need(8);
      id = buf.readDoubleLE(at);
      at += 8;
    } else if (kind === 1) id = str(u32());
    else throw bad();
    const text = str(u32());
    need(4);
    const htmlLength = buf.readInt32LE(at);
    at += 4;
    docs.push(htmlLength < 0 ? { id, text } : { id, text, html: str(htmlLength) });
  }
  if (at !== buf.length) throw bad();
  return docs;
}
