import vm from 'node:vm';
import { domRealmSource } from '../../sandbox/dom-bundle.js';
import type { DocHelpers } from '../../sandbox/contract.js';
import type { SandboxDocument } from '../../sandbox/types.js';
import type { PreparedDocument } from './types.js';

type MakeDoc = (id: string, text: string, html: string) => DocHelpers;
let makeDoc: MakeDoc | undefined;

/**
 * The sandbox's own DOM facade (same parser, same text and textAfter rules), run in a context of its own in
 * this process: induction ranks DOM rules on exactly what the functions will see in the sandbox. Only our
 * bundled helper code runs there; no document-derived code is ever evaluated.
 */
function domFactory(): MakeDoc {
  if (!makeDoc) {
    // The bundled entity decoder builds its tables with atob, which a bare context lacks.
    const context = vm.createContext({ atob: (input: string) => Buffer.from(String(input), 'base64').toString('latin1') }, { codeGeneration: { strings: false, wasm: false } });
    vm.runInContext(domRealmSource(), context);
    makeDoc = (context as { __evaporateMakeDoc: MakeDoc }).__evaporateMakeDoc;
  }
  return makeDoc;
}

/** Parses lazily and once: text-only rules never pay for the DOM, and every rule shares one parse. */
export function prepareDocument(doc: SandboxDocument): PreparedDocument {
  let lines: string[] | undefined;
  let helpers: DocHelpers | undefined;
  const html = doc.html ?? '';
  return {
    text: doc.text,
    html,
    lines: () => (lines ??= doc.text.split('\n')),
    doc: () => (helpers ??= domFactory()(String(doc.id), doc.text, html)),
  };
}
