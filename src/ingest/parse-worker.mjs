// Piscina entry for the parse pool. In the built package the task is compiled JavaScript beside this file; from
// the sources (tests, `npm run dev`) it is loaded through tsx, since a worker thread does not inherit the loader
// of the process that started it, and under a test runner there is none.
import fs from 'node:fs';

const compiled = new URL('./parse-task.js', import.meta.url);
const task = fs.existsSync(compiled)
  ? await import(compiled.href)
  : await (await import('tsx/esm/api')).tsImport('./parse-task.ts', import.meta.url);
export default task.default;
