/**
 * Charset sniffing on real SWDE pages (fixtures/swde): a page that declares no charset but whose bytes are valid
 * UTF-8 with non-ASCII sequences is read as UTF-8, as browsers do; a declared charset or invalid UTF-8 keeps the
 * declaration or the windows-1252 default.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { htmlEncoding, parseHtml } from '../src/ingest/html.js';
import { swdeFixtures } from './swde-fixtures.js';

const bytes = (site: string, id: string) => fs.readFileSync(path.join(swdeFixtures, site, 'pages', `${id}.htm`));

describe('HTML charset', () => {
  it('reads a UTF-8 page without a charset declaration as UTF-8 (nbaplayer-usatoday)', () => {
    const page = bytes('nbaplayer-usatoday', '0000');
    expect(page.toString('latin1')).not.toMatch(/charset/i);
    const parsed = parseHtml(page);
    expect(parsed.encoding).toBe('UTF-8');
    expect(parsed.text).toContain('"Oh man, it\uFFFDs been going great,"');
    expect(parsed.text).not.toContain('ï¿½');
  });

  it('keeps windows-1252 for bytes that are not valid UTF-8, and a declared charset over the sniff', () => {
    const page = bytes('nbaplayer-usatoday', '0000');
    const broken = Buffer.concat([page, Buffer.from('<p>caf\xe9</p>', 'latin1')]);
    expect(htmlEncoding(broken)).toBe('windows-1252');
    expect(parseHtml(broken).text).toContain('café');
    const declared = Buffer.concat([Buffer.from('<meta charset="windows-1252">'), page]);
    expect(htmlEncoding(declared)).toBe('windows-1252');
  });

  it('decodes a page by its declaration (gayot, iso-8859-1 bytes): the gold name is in the text', () => {
    const parsed = parseHtml(bytes('restaurant-gayot', '0002'));
    expect(parsed.encoding).toBe('windows-1252');
    expect(parsed.text).toContain('Orchard Market & Café');
  });

  it('leaves a plain-ASCII page without a declaration on the default', () => {
    expect(htmlEncoding(bytes('job-nettemps', '0001'))).toBe('windows-1252');
  });
});
