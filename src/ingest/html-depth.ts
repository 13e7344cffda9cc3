/**
 * Builds the DOM cheerio reads with htmlparser2, as cheerio.load would, but refuses a page nested deeper
 * than a limit as soon as the parser gets there: htmlparser2's cost grows about quadratically with nesting
 * (40,000 nested <div>s: 0.3 s; 200,000: about a minute), while real pages nest a few dozen deep.
 */
import { DomHandler, type Document } from 'domhandler';
import { Parser } from 'htmlparser2';
import { EvaporateError } from '../errors.js';

class DepthLimitedHandler extends DomHandler {
  private depth = 0;

  constructor(private readonly maxDepth: number) {
    super(undefined, { xmlMode: false });
  }

  override onopentag(name: string, attribs: Record<string, string>): void {
    if (++this.depth > this.maxDepth) {
      throw new EvaporateError('too_deep', `The page nests elements more than ${this.maxDepth} deep (setting EVAPORATE_HTML_MAX_DEPTH); it was not read.`, 422);
    }
    super.onopentag(name, attribs);
  }

  override onclosetag(): void {
    this.depth--;
    super.onclosetag();
  }
}

/** The parsed document, or an EvaporateError `too_deep`. maxDepth <= 0 means no limit. */
export function parseHtmlDom(html: string, maxDepth: number): Document {
  const handler = new DepthLimitedHandler(maxDepth > 0 ? maxDepth : Infinity);
  new Parser(handler, { xmlMode: false, decodeEntities: true }).end(html);
  return handler.root;
}
